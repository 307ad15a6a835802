"""Oblivious transfer and OT-based correlations (spec/10-ot.md).

Public API, each function run by one party on its own context:

- ``rot_send(ctx, n) -> (m0, m1)`` / ``rot_recv(ctx, choices) -> m_c``: random OT, 16-byte messages.
- ``cot_send(ctx, delta, l) -> x0`` / ``cot_recv(ctx, choices, l) -> x0 + c * delta``: correlated
  OT over Z_2^l.
- ``ot_send(ctx, m0, m1)`` / ``ot_recv(ctx, choices, length) -> m_c``: chosen-message 1-of-2 OT.
- ``one_of_n_send(ctx, messages)`` / ``one_of_n_recv(ctx, choices, n_msgs, length)``: 1-of-N OT.
- ``beaver_triples(ctx, n, l) -> (a, b, c)`` and ``and_triples(ctx, n) -> (a, b, c)``: the
  party's shares of multiplication triples, generated in phase ``offline``; ``dealer_triples``
  is the labelled dealer mode for teaching and tests only.

The first OT in each direction runs the base OTs (spec §10.2) and caches the extension session
on the context (``ctx.store``).
"""
