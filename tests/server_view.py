"""The server's received messages against spec §4.6 (spec/04-messages.md#46-what-the-server-receives).

The spec's table lists every label the server may receive, its sender, the runs it occurs in and
why it reveals nothing. ``assert_server_view`` checks a recorded run against it: a label the
table does not allow for that run (a new message to the server, a routing share sent to the
server, a renamed message) fails by name, and so does a message the table requires of the run
but the run never sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from secmoe.net.channel import TranscriptEntry

SPEC = Path(__file__).resolve().parents[1] / "spec" / "04-messages.md"
HEADING = "## 4.6 What the server receives"
ANY = "any"


@dataclass(frozen=True)
class Row:
    label: str
    sender: str
    runs: frozenset[str]  # {"any"} or algorithm names
    length: str
    reason: str


@cache
def server_table() -> dict[str, Row]:
    """The rows of spec §4.6's table, by label (a label listed twice is an error)."""
    text = SPEC.read_text(encoding="utf-8")
    assert HEADING in text, f"spec/04-messages.md lacks '{HEADING}'"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, Row] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, f"a row of §4.6 needs 5 cells: {line}"
        label, sender, runs, length, reason = cells
        name = label.strip("`")
        assert name not in rows, f"§4.6 lists {name!r} twice"
        names = frozenset(re.findall(r"`([a-z_0-9]+)`", runs)) if runs != ANY else frozenset({ANY})
        assert names, f"§4.6: {name!r} names no run"
        rows[name] = Row(name, sender, names, length, reason)
    assert rows, "§4.6's table is empty"
    return rows


def length_rule(row: Row) -> tuple[str, int] | None:
    """("exact", c) for a length `c`, ("multiple", c) for `c n` or `c padded(n)`; None for the
    other formulas (their bytes are checked by each protocol's exact cost test)."""
    if m := re.fullmatch(r"`(\d+)`", row.length):
        return "exact", int(m.group(1))
    if m := re.fullmatch(r"`(\d+) (?:n|padded\(n\))`", row.length):
        return "multiple", int(m.group(1))
    return None


def received_labels(transcript: list[TranscriptEntry]) -> set[str]:
    """The labels of every message the server received (the client sent) in a recorded run."""
    assert transcript, "the run must be recorded (record='hash', 'lengths' or 'full')"
    return {t.label for t in transcript if t.sender == "client"}


def assert_server_view(transcript: list[TranscriptEntry], *runs: str) -> None:
    """What the server received in a run of ``runs`` (spec algorithm names) is what §4.6 allows
    for them, and every message §4.6 lists for one of them is there."""
    table = server_table()
    got = received_labels(transcript)
    unlisted = sorted(got - set(table))
    assert not unlisted, f"the server receives {unlisted} in {runs}: not listed in spec §4.6"
    wrong = sorted(
        label for label in got if ANY not in table[label].runs and not table[label].runs & set(runs)
    )
    assert not wrong, (
        f"the server receives {wrong} in {runs}, which spec §4.6 allows only in "
        f"{[sorted(table[w].runs) for w in wrong]}"
    )
    for t in transcript:
        rule = length_rule(table[t.label]) if t.sender == "client" else None
        if rule is not None:
            kind, c = rule
            ok = t.length == c if kind == "exact" else t.length % c == 0 and t.length > 0
            assert ok, f"{t.label}: {t.length} bytes, spec §4.6 says {table[t.label].length}"
    missing = sorted(
        label for label, row in table.items() if row.runs & set(runs) and label not in got
    )
    assert not missing, f"spec §4.6 lists {missing} for {runs}, but the run sent none"
