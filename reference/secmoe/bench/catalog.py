"""Every module that registers a benchmark; importing this module registers them all."""

import secmoe.bench.channel
import secmoe.bench.he
import secmoe.bench.moe
import secmoe.bench.nonlinear
import secmoe.bench.ot
import secmoe.bench.serve  # noqa: F401
