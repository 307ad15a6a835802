"""Run something under the step recorder and turn it into the page's data.

Three sources: a two-party vector case (``--case``: the case id, which starts with its file's
protocol name, e.g. ``protocols.mul/l64/0`` in ``vectors/protocols/mul.json``), the demo layer
(``--demo``: ``demo_run`` of spec §40.5 on the default model) and the tiny transformer
(``--transformer``: ``model_run`` of spec §50.4). A case is run by its file's generator (which
runs every case of the file with the vectors' seeds); the run whose transcript is the case's is
the one drawn, so the page shows exactly the vector's messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from secmoe.errors import SpecError
from secmoe.net.channel import CostRecord, TranscriptEntry
from secmoe.trace.record import PartyRecord, Recorder, Step
from secmoe.trace.sections import section_of
from secmoe.vectors.build import transcript_json
from secmoe.vectors.registry import Json, Registered

SCHEMA = "secmoe-trace-v1"


def repo_root() -> Path | None:
    """The checkout this package runs from (the directory holding ``spec/``), if any."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "spec").is_dir() else None


@dataclass
class Trace:
    """A recorded run: what ran, the client's and the server's steps, the client's transcript."""

    title: str
    kind: str  # "case", "demo" or "transformer"
    source: Json
    client: PartyRecord
    server: PartyRecord | None

    @property
    def transcript(self) -> list[TranscriptEntry]:
        return self.client.channel.transcript

    @property
    def cost(self) -> CostRecord:
        return self.client.channel.cost


# --- what runs ------------------------------------------------------------------------------


def vector_file(case_id: str) -> Registered:
    """The registered vector file that holds ``case_id`` (its protocol name is the id's prefix
    up to a ``/``; the longest such name wins)."""
    from secmoe.vectors.registry import registered

    files = registered()
    matches = [r for r in files if case_id.startswith(r.spec.protocol + "/")]
    if not matches:
        names = ", ".join(r.spec.protocol for r in files if r.spec.mode == "real")
        raise SpecError(
            f"no vector file holds case {case_id!r}: a case id starts with its file's protocol "
            f"name and a '/' (two-party files: {names})"
        )
    return max(matches, key=lambda r: len(r.spec.protocol))


def _cases(obj: Json) -> list[Json]:
    return [c for g in obj["testGroups"] for c in g["tests"]]


def _same_messages(a: list[TranscriptEntry], b: list[TranscriptEntry]) -> bool:
    """Both parties saw the same messages (each in its own order)."""

    def key(e: TranscriptEntry) -> tuple[str, str, int, int, str]:
        return (e.sender, e.label, e.round, e.length, e.sha256)

    return sorted(map(key, a)) == sorted(map(key, b))


def _server_of(client: PartyRecord, parties: list[PartyRecord]) -> PartyRecord | None:
    for rec in parties:
        if rec.party == "server" and _same_messages(
            rec.channel.transcript, client.channel.transcript
        ):
            return rec
    return None


def trace_case(case_id: str) -> Trace:
    """Run the vector file of ``case_id`` under the recorder and keep that case's run."""
    reg = vector_file(case_id)
    with Recorder() as recorder:
        obj = reg.build()
    cases = _cases(obj)
    case = next((c for c in cases if c["id"] == case_id), None)
    if case is None:
        ids = ", ".join(c["id"] for c in cases)
        raise SpecError(f"{reg.spec.path} has no case {case_id!r}; its cases: {ids}")
    if "transcript" not in case:
        raise SpecError(
            f"{case_id} is a {reg.spec.mode} case without messages ({case['result']}); "
            "trace draws two-party cases"
        )
    client = next(
        (
            rec
            for rec in recorder.parties
            if rec.party == "client"
            and transcript_json(rec.channel.transcript) == case["transcript"]
        ),
        None,
    )
    if client is None:
        raise SpecError(f"{case_id}: no recorded run has the case's transcript")
    source: Json = {
        "case": case_id,
        "file": f"vectors/{reg.spec.path}",
        "protocol": reg.spec.protocol,
        "comment": case.get("comment", ""),
        "spec": reg.spec.anchor,
        "cost": case.get("cost"),
        "matches_committed": _matches_committed(reg, case),
    }
    return Trace(case_id, "case", source, client, _server_of(client, recorder.parties))


def _matches_committed(reg: Registered, case: Json) -> bool | None:
    """Whether the committed vector file holds the same case (None: no checkout or no file)."""
    root = repo_root()
    path = None if root is None else root / "vectors" / reg.spec.path
    if path is None or not path.is_file():
        return None
    committed = next(
        (c for c in _cases(json.loads(path.read_text())) if c["id"] == case["id"]), None
    )
    return committed == case


def _pick(
    recorder: Recorder, transcript: list[TranscriptEntry]
) -> tuple[PartyRecord, PartyRecord | None]:
    client = next(
        (r for r in recorder.parties if r.party == "client" and r.channel.transcript is transcript),
        None,
    )
    if client is None:
        raise SpecError("the run's client took no recorded step")
    return client, _server_of(client, recorder.parties)


def trace_demo(tokens: int = 1) -> Trace:
    """The demo layer (``secmoe demo``'s run, spec §40.5) on ``tokens`` default tokens."""
    from secmoe.model.default import default_config, default_inputs, default_weights
    from secmoe.moe.demo import DEMO_SEED, MAX_TOKENS, demo_run

    if not 1 <= tokens <= MAX_TOKENS:
        raise SpecError(f"--tokens must be in 1..{MAX_TOKENS}, got {tokens}")
    config = default_config()
    weights = default_weights(config)
    x = default_inputs(config, tokens)
    with Recorder() as recorder:
        run = demo_run(config, weights, x, DEMO_SEED, record="full")
    client, server = _pick(recorder, run.transcript)
    source: Json = {
        "demo": "moe",
        "tokens": tokens,
        "config": config.as_dict(),
        "seed": "DEMO_SEED (sha256 of 'secmoe/v1/demo')",
        "spec": "spec/40-moe.md#demo_client",
    }
    return Trace(
        f"secmoe demo: the secure MoE layer, {tokens} token(s)", "demo", source, client, server
    )


def trace_transformer(tokens: int = 2) -> Trace:
    """The tiny secure MoE transformer (``secmoe demo --model tiny``'s run, spec §50.4)."""
    from secmoe.model.transformer import TINY_SEED
    from secmoe.moe.demo import DEMO_SEED
    from secmoe.transformer.demo import load_model, model_inputs, model_run

    model = load_model("tiny")
    ids = model_inputs(model.config, 1, tokens, TINY_SEED)[0]
    with Recorder() as recorder:
        run = model_run(model, ids, DEMO_SEED, record="full")
    client, server = _pick(recorder, run.transcript)
    source: Json = {
        "demo": "transformer",
        "model": "tiny",
        "tokens": tokens,
        "spec": "spec/50-transformer.md#transformer_client",
    }
    return Trace(
        f"secmoe demo --model tiny: the secure MoE transformer, {tokens} token(s)",
        "transformer",
        source,
        client,
        server,
    )


# --- the page's data -------------------------------------------------------------------------


def _flatten(
    client: Step,
    server: Step | None,
    parent: int,
    depth: int,
    out: list[tuple[Step, Step | None, int, int]],
) -> None:
    """Pre-order list of (client step, the server's step at the same position, parent, depth)."""
    out.append((client, server, parent, depth))
    me = len(out) - 1
    theirs = server.children if server is not None else []
    for i, child in enumerate(client.children):
        _flatten(child, theirs[i] if i < len(theirs) else None, me, depth + 1, out)


def trace_data(trace: Trace, link_base: str = "") -> Json:
    """The JSON embedded in the page: the transcript exactly as a vector records it, and per
    message its deepest step, its sending section and its phase; the steps with their message
    range, bytes each way, rounds and what each party holds after them."""
    entries = trace.transcript
    transcript = transcript_json(entries)
    flat: list[tuple[Step, Step | None, int, int]] = []
    _flatten(trace.client.root, trace.server.root if trace.server else None, -1, 0, flat)
    msg_step = [0] * len(entries)
    steps: list[Json] = []
    for sid, (step, sstep, parent, depth) in enumerate(flat):
        lo, hi = step.start, step.end
        for i in range(lo, hi):
            msg_step[i] = sid
        mine = entries[lo:hi]
        rounds = [e.round for e in mine]
        name = trace.title if sid == 0 else step.algorithm.name
        item: Json = {
            "id": sid,
            "parent": parent,
            "depth": depth,
            "name": name,
            "section": step.algorithm.section,
            "anchor": step.algorithm.anchor,
            "first": lo,
            "end": hi,
            "children": [],
            "messages": hi - lo,
            "bytes_c2s": sum(e.length for e in mine if e.sender == "client"),
            "bytes_s2c": sum(e.length for e in mine if e.sender == "server"),
            "rounds": [min(rounds), max(rounds)] if rounds else None,
            "holds": {
                "client": step.holds,
                "server": sstep.holds if sstep is not None else None,
            },
            "state": {
                "client": step.state,
                "server": sstep.state if sstep is not None else [],
            },
        }
        if sstep is not None and sstep.algorithm.name != step.algorithm.name:
            item["server_name"] = sstep.algorithm.name
        if parent >= 0:
            steps[parent]["children"].append(sid)
        steps.append(item)
    cost = trace.cost
    total = cost.total()
    return {
        "schema": SCHEMA,
        "title": trace.title,
        "kind": trace.kind,
        "source": trace.source,
        "link_base": link_base,
        "transcript": transcript,
        "messages": [
            {"step": msg_step[i], "section": section_of(e.label), "phase": e.phase}
            for i, e in enumerate(entries)
        ],
        "steps": steps,
        "cost": {
            "bytes_c2s": total.bytes_c2s,
            "bytes_s2c": total.bytes_s2c,
            "messages": total.messages_c2s + total.messages_s2c,
            "rounds": cost.rounds,
            "phases": {
                k: {"bytes_c2s": v.bytes_c2s, "bytes_s2c": v.bytes_s2c, "rounds": v.rounds}
                for k, v in cost.phases.items()
                if v.messages_c2s + v.messages_s2c
            },
        },
    }
