"""Hypothesis settings for slow property tests: each example is a two-party protocol run.

Shrinking a failing example of such a test re-runs the protocol hundreds of times (a failing
MoE-layer property shrank for more than 150 s); these settings skip the shrink phase, so a
failure is reported at once with the example that failed, and fix the example count. Every
property test in ``SLOW_FILES`` uses them (checked by ``test_structure.py``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
SLOW_FILES = (
    "test_baselines.py",
    "test_functions.py",
    "test_he_core.py",
    "test_he_galois.py",
    "test_he_modswitch.py",
    "test_linear.py",
    "test_moe.py",
    "test_moe_experts.py",
    "test_protocol_cost.py",
    "test_protocols.py",
    "test_selection.py",
)


def layer_settings(max_examples: int) -> settings:
    """``max_examples`` examples, no deadline (a run takes seconds), no shrinking."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        phases=NO_SHRINK,
        suppress_health_check=[HealthCheck.too_slow],
    )
