"""Every module that registers vector generators; importing this module registers them all."""

import secmoe.vectors.core  # noqa: F401
