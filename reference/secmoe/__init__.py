"""secmoe: reference implementation of SecMoE, two-party private MoE inference.

The normative specification lives in ``spec/``; every public protocol function cites the
section it implements.
"""

__version__ = "0.1.0"
SPEC_VERSION = "0.1.0"
