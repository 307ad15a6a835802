"""The secure MoE transformer: attention, the pre-norm block and the end-to-end model on
shares (spec/50-transformer.md)."""
