"""Which algorithms each vector file tests beyond its own anchor (spec/05-test-vectors.md §5.6).

A file's ``spec.anchor`` names the algorithm it is about; ``spec.covers`` names the further
algorithms whose every step its cases run, so that their results are pinned by the file's
outputs or transcripts. The table is kept here, in one place, rather than in each generator, so
that the coverage rule of spec §5.6 reads as one list; ``tools/check_vector_coverage.py``
checks that every algorithm of the spec is named somewhere, and
``tests/test_vector_coverage.py`` that each generator listed here really runs what it claims.
"""

from __future__ import annotations

COVERS: dict[str, tuple[str, ...]] = {
    "encoding.fxp": (
        "spec/01-encoding.md#ring",
        "spec/01-encoding.md#fixedpoint",
        "spec/01-encoding.md#fxp_decode",
    ),
    "he.matvec": (
        "spec/20-he.md#dot_ntt",
        "spec/20-he.md#poly_decode",
        "spec/20-he.md#he_setup",
        "spec/20-he.md#galois_keygen",
        "spec/20-he.md#apply_galois",
        "spec/20-he.md#packed_ct_encode",
        "spec/20-he.md#encode_scaled",
    ),
    "he.modswitch": (
        "spec/20-he.md#ntt_forward",
        "spec/20-he.md#ntt_inverse",
        "spec/20-he.md#expand_a",
        "spec/20-he.md#keygen",
        "spec/20-he.md#public_key",
        "spec/20-he.md#bfv_encode",
        "spec/20-he.md#encrypt_pk",
        "spec/20-he.md#decrypt",
        "spec/20-he.md#ct_add",
        "spec/20-he.md#ct_add_plain",
        "spec/20-he.md#ct_mul",
        "spec/20-he.md#mask_and_flood",
        "spec/20-he.md#poly_encode",
        "spec/20-he.md#base_extend",
        "spec/20-he.md#scale_round_t",
        "spec/20-he.md#tensor_scale",
        "spec/20-he.md#divide_round",
    ),
    "he.packing": ("spec/20-he.md#pack_plan",),
    "he.params": ("spec/20-he.md#check_security",),
    "he.respack": ("spec/20-he.md#relin_keygen", "spec/20-he.md#relinearise"),
    "he.toy": ("spec/20-he.md#ct_mul_plain", "spec/20-he.md#decrypt_share"),
    "model.float": (
        "spec/50-transformer.md#transformer_float",
        "spec/50-transformer.md#attention_fixed",
        "spec/50-transformer.md#block_fixed",
        "spec/50-transformer.md#transformer_fixed",
    ),
    "model.norm_fixed": (
        "spec/33-functions.md#rsqrt_fixed",
        "spec/33-functions.md#rmsnorm_fixed",
        "spec/34-baselines.md#gelu_bumblebee_fixed",
    ),
    "model.checkpoint": (
        "spec/06-models.md#read_safetensors",
        "spec/06-models.md#write_safetensors",
        "spec/06-models.md#derive_moe_config",
    ),
    "model.moe_fixed": (
        "spec/06-models.md#moeconfig",
        "spec/06-models.md#topk_order",
        "spec/06-models.md#ffn_fixed",
        "spec/06-models.md#route_fixed",
        "spec/06-models.md#default_weights",
        "spec/06-models.md#sigmoid_fixed",
    ),
    "model.softmax_fixed": ("spec/06-models.md#exp_fixed", "spec/06-models.md#reciprocal_fixed"),
    "moe.experts": ("spec/40-moe.md#shared_ffn",),
    "moe.moe": (
        "spec/40-moe.md#select_setup",
        "spec/40-moe.md#select_experts",
        "spec/40-moe.md#expert_matmul",
        "spec/40-moe.md#route",
        "spec/40-moe.md#select_mac",
    ),
    "moe.routing": (
        "spec/30-protocols.md#sigmoid",
        "spec/40-moe.md#group_mask",
        "spec/40-moe.md#sigmoid_norm",
    ),
    "net.frame": ("spec/04-messages.md#decode_frame",),
    "net.session": ("spec/04-messages.md#channel", "spec/04-messages.md#recv"),
    "ot.base_ot": ("spec/10-ot.md#base_ot_recv",),
    "ot.ferret_extend": (
        "spec/11-silent-ot.md#ferret_extend_send",
        "spec/11-silent-ot.md#ferret_extend_recv",
    ),
    "ot.ferret_ggm": ("spec/11-silent-ot.md#ggm_puncture",),
    "ot.ferret_lpn": ("spec/11-silent-ot.md#lpn_encode",),
    "ot.ferret_mpcot": ("spec/11-silent-ot.md#mpcot_recv",),
    "ot.ferret_spcot": ("spec/11-silent-ot.md#spcot_recv",),
    "ot.flavours": (
        "spec/10-ot.md#take_send",
        "spec/10-ot.md#take_recv",
        "spec/10-ot.md#rot_recv",
        "spec/10-ot.md#cot_send",
        "spec/10-ot.md#cot_recv",
        "spec/10-ot.md#ot_send",
        "spec/10-ot.md#ot_recv",
        "spec/10-ot.md#one_of_n_send",
        "spec/10-ot.md#one_of_n_recv",
    ),
    "ot.triples": (
        "spec/10-ot.md#tccr_hash",
        "spec/10-ot.md#iknp_setup",
        "spec/10-ot.md#iknp_extend_recv",
        "spec/10-ot.md#iknp_extend_send",
        "spec/10-ot.md#ot_setup",
        "spec/10-ot.md#refill",
        "spec/10-ot.md#take_both",
        "spec/10-ot.md#and_triples",
    ),
    "protocols.b2a": ("spec/01-encoding.md#packed_encode", "spec/01-encoding.md#packed_decode"),
    "protocols.exp": ("spec/30-protocols.md#lt_public",),
    "protocols.gelu_bumblebee": ("spec/03-sharing.md#add_public",),
    "protocols.onehot": ("spec/30-protocols.md#equal",),
    "protocols.piecewise": (
        "spec/03-sharing.md#xor_public",
        "spec/30-protocols.md#square",
        "spec/30-protocols.md#lt_public_many",
    ),
    "protocols.reciprocal": ("spec/03-sharing.md#mul_public",),
    "randomness.prg": (
        "spec/02-randomness.md#lp",
        "spec/02-randomness.md#dst",
        "spec/02-randomness.md#instance_prg",
        "spec/02-randomness.md#next_bytes",
        "spec/02-randomness.md#next_ring",
        "spec/02-randomness.md#next_bits",
        "spec/02-randomness.md#next_below",
        "spec/02-randomness.md#derive_seed",
    ),
    "sharing.arith_share": (
        "spec/04-messages.md#run_local",
        "spec/05-test-vectors.md#case_seed",
        "spec/05-test-vectors.md#party_seed",
    ),
    "sharing.bool_share": ("spec/03-sharing.md#bool_split",),
    "sharing.reveal": (
        "spec/01-encoding.md#ring_vec_decode",
        "spec/01-encoding.md#bit_vec_decode",
        "spec/03-sharing.md#arith_reconstruct",
        "spec/03-sharing.md#bool_reveal",
    ),
    "sharing.share_add_reveal": ("spec/03-sharing.md#arith_split",),
    "transformer.transformer_block": (
        "spec/50-transformer.md#transformerconfig",
        "spec/50-transformer.md#transformer_weights",
        "spec/50-transformer.md#attention",
    ),
}
