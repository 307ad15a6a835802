"""The secure MoE layer: Select-Then-Compute for experts (spec/40-moe.md)."""
