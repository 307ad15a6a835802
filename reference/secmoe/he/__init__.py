"""Lattice homomorphic encryption: BFV with plaintext modulus 2^64 in RNS form (spec/20-he.md)."""
