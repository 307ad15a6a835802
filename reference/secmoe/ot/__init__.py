"""Oblivious transfer and OT-based correlations (spec/10-ot.md).

Public API, each function run by one party on its own context (import from the submodule):

- ``secmoe.ot.flavours``:
  ``rot_send(ctx, n) -> (m0, m1)`` / ``rot_recv(ctx, choices) -> m_c``: random OT, 16-byte
  messages; ``cot_send(ctx, delta, l) -> x0`` / ``cot_recv(ctx, choices, l) -> x0 + c * delta``:
  correlated OT over Z_2^l (``cot_recv_start`` / ``cot_recv_finish`` split the receiver so both
  directions can share rounds); ``ot_send(ctx, m0, m1)`` / ``ot_recv(ctx, choices, length)``:
  chosen-message 1-of-2 OT; ``one_of_n_send(ctx, messages)`` /
  ``one_of_n_recv(ctx, choices, n_msgs, length)``: 1-of-N OT.
- ``secmoe.ot.triples``: ``beaver_triples(ctx, n, l) -> (a, b, c)`` and
  ``and_triples(ctx, n) -> (a, b, c)``: the party's shares of multiplication triples, generated
  in phase ``offline``; ``dealer_triples(seed, party, n, l)`` (``l = 1``: AND triples) is the
  labelled dealer mode for teaching and tests only.
- ``secmoe.ot.pool``: the per-direction pools of random COTs every flavour takes from (§10.4):
  ``ot_setup(ctx)`` sets up both directions' engines; ``refill``, ``take_send`` /
  ``take_recv`` / ``take_both``; the engine is a session choice (``set_engine``; default
  ``"ferret"`` at the 128-bit set, ``"iknp"``, ``"ferret-toy-INSECURE"``; ``default_engine`` /
  ``SECMOE_OT_ENGINE`` for a process).
- ``secmoe.ot.cost``: the flavours' message patterns and cost formulas (§10.7).
- ``secmoe.ot.ferret`` (spec §11): the silent COT engine. ``ferret_setup(ctx, sender, params)``
  bootstraps one direction (IKNP, then a pre-iteration) and returns a ``FerretSender`` (with
  ``delta``) or ``FerretReceiver``; ``ferret_extend_send(ctx, st) -> q`` /
  ``ferret_extend_recv(ctx, st) -> (t, r)`` run one iteration (``t = q XOR r delta``);
  ``FERRET_128`` is the default set, ``FERRET_TOY`` the INSECURE one for vectors and tests;
  ``ferret_setup_cost`` / ``ferret_extend_cost`` list the messages. ``secmoe.ot.ggm`` and
  ``secmoe.ot.lpn`` hold the GGM trees and the LPN encoding.

The first OT in each direction runs the base OTs (spec §10.2) and caches the extension session
on the context (``ctx.store``).
"""
