"""Every module that registers vector generators; importing this module registers them all."""

import secmoe.vectors.gen_baselines
import secmoe.vectors.gen_checkpoint
import secmoe.vectors.gen_classifier
import secmoe.vectors.gen_core
import secmoe.vectors.gen_cost
import secmoe.vectors.gen_demo
import secmoe.vectors.gen_ferret
import secmoe.vectors.gen_float
import secmoe.vectors.gen_functions
import secmoe.vectors.gen_he
import secmoe.vectors.gen_he_galois
import secmoe.vectors.gen_linear
import secmoe.vectors.gen_model
import secmoe.vectors.gen_moe
import secmoe.vectors.gen_msb_width
import secmoe.vectors.gen_ot
import secmoe.vectors.gen_prepare
import secmoe.vectors.gen_protocols
import secmoe.vectors.gen_selection
import secmoe.vectors.gen_session
import secmoe.vectors.gen_transformer  # noqa: F401
