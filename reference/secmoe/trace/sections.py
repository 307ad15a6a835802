"""Which spec section sends a message, from its label (the table ``secmoe trace`` links with).

A key ending in ``/`` is a label prefix, any other key one exact label; the exact label wins,
then the longest prefix. The entries name the algorithm whose step sends the message; the
family prefixes at the end (a spec file without an anchor) are the fallback for a label this
table does not know yet. ``tests/test_trace.py`` checks that every label of every committed
vector resolves to an algorithm heading of the spec, so a new label fails the test until it is
added here.
"""

from __future__ import annotations

LABEL_SECTIONS: dict[str, str] = {
    # spec/03: secret sharing
    "sharing/arith_share": "spec/03-sharing.md#arith_share",
    "sharing/arith_reveal": "spec/03-sharing.md#arith_reveal",
    "sharing/bool_share": "spec/03-sharing.md#bool_share",
    "sharing/bool_reveal": "spec/03-sharing.md#bool_reveal",
    # spec/04: the TCP handshake
    "session/hello": "spec/04-messages.md#handshake",
    "session/done": "spec/04-messages.md#handshake",
    # spec/10: oblivious transfer
    "ot/base/a": "spec/10-ot.md#base_ot_send",
    "ot/base/b": "spec/10-ot.md#base_ot_recv",
    "ot/iknp/u": "spec/10-ot.md#iknp_extend_recv",
    "ot/cot/y": "spec/10-ot.md#cot_send",
    "ot/ot/e": "spec/10-ot.md#ot_send",
    "ot/1ofn/e": "spec/10-ot.md#one_of_n_send",
    "ot/rot/d": "spec/10-ot.md#rot_recv",
    "ot/cot/d": "spec/10-ot.md#cot_recv",
    "ot/ot/d": "spec/10-ot.md#ot_recv",
    "ot/1ofn/d": "spec/10-ot.md#one_of_n_recv",
    "ot/beaver/y": "spec/10-ot.md#beaver_triples",
    # spec/11: silent OT
    "ot/ferret/": "spec/11-silent-ot.md#mpcot_send",
    # spec/20: homomorphic encryption
    "he/keys/": "spec/20-he.md#he_setup",
    "he/matmul/": "spec/20-he.md#he_matmul",
    # spec/30: protocols on shares
    "proto/mul/open": "spec/30-protocols.md#mul",
    "proto/and/open": "spec/30-protocols.md#and_bits",
    # spec/40-41: the MoE layer and its baselines
    "moe/keys/galois": "spec/40-moe.md#select_setup",
    "moe/keys/relin": "spec/40-moe.md#select_setup",
    "moe/keys/pack": "spec/40-moe.md#select_setup",
    "moe/select": "spec/40-moe.md#select_experts",
    "moe/matmul/": "spec/40-moe.md#expert_matmul",
    "moe/tokens": "spec/40-moe.md#demo_client",
    "moe/output": "spec/40-moe.md#demo_server",
    "moe/insecure/route": "spec/41-moe-baselines.md#moe_reveal_routing",
    # spec/50: the transformer demo
    "transformer/tokens": "spec/50-transformer.md#transformer_client",
    "transformer/output": "spec/50-transformer.md#transformer_server",
    # spec/60: the accuracy evaluation
    "classify/tokens": "spec/60-accuracy.md#classify_client",
    "classify/output": "spec/60-accuracy.md#classify_server",
    # families: the spec file, for labels not listed above
    "sharing/": "spec/03-sharing.md",
    "session/": "spec/04-messages.md",
    "ot/": "spec/10-ot.md",
    "he/": "spec/20-he.md",
    "proto/": "spec/30-protocols.md",
    "moe/": "spec/40-moe.md",
    "transformer/": "spec/50-transformer.md",
}


def section_of(label: str) -> str | None:
    """The spec section (``spec/FILE.md#anchor`` or ``spec/FILE.md``) that sends ``label``, or
    None when no entry matches."""
    exact = LABEL_SECTIONS.get(label)
    if exact is not None and not label.endswith("/"):
        return exact
    best = ""
    for key in LABEL_SECTIONS:
        if key.endswith("/") and label.startswith(key) and len(key) > len(best):
            best = key
    return LABEL_SECTIONS[best] if best else None
