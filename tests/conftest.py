"""Shared test settings: hypothesis profiles sized for the 2-core CI machine."""

from __future__ import annotations

import os

# The suite runs on the "iknp" engine (spec §10.4): its just-in-time refills keep every measured
# cost a closed formula; Ferret has its own tests, which choose it (and its toy set) explicitly.
# Set before secmoe is imported, and inherited by the TCP tests' server processes.
os.environ["SECMOE_OT_ENGINE"] = "iknp"

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")
