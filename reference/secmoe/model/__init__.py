"""Plaintext MoE models: the float64 reference and the bit-exact fixed-point oracle (spec/06-models.md)."""
