"""The text ``secmoe trace`` prints: the run's totals and its steps to a depth, with bytes,
rounds and what the client holds after each (types and shapes only)."""

from __future__ import annotations

from typing import Any

from secmoe.vectors.registry import Json


def holdings_text(value: Any) -> str:
    """A description (``record.describe``) as one line: ``MoeShares(y uint64[1, 64], ...)``."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "(" + ", ".join(holdings_text(v) for v in value) + ")"
    if isinstance(value, dict):
        body = ", ".join(f"{k} {holdings_text(v)}" for k, v in value.items() if k != "type")
        kind = value.get("type")
        return f"{kind}({body})" if kind else "{" + body + "}"
    return str(value)


def _clip(text: str, width: int = 72) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _rounds(step: Json) -> str:
    r = step["rounds"]
    if r is None:
        return "-"
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


def summary(data: Json, depth: int) -> str:
    """The totals, then one line per step down to ``depth`` (consecutive calls of the same
    algorithm under one parent are merged into one line with a count)."""
    cost, steps = data["cost"], data["steps"]
    lines = [
        f"{data['title']}: {cost['messages']} messages, {cost['rounds']} rounds, "
        f"{cost['bytes_c2s']:,} bytes client->server, {cost['bytes_s2c']:,} bytes server->client",
    ]
    source = data["source"]
    if source.get("matches_committed") is not None:
        same = "yes" if source["matches_committed"] else "NO"
        lines.append(f"this run equals the case in {source['file']}: {same}")
    rows = [("step", "messages", "bytes c->s", "bytes s->c", "rounds", "client holds after")]

    def walk(sid: int) -> None:
        kids = steps[sid]["children"]
        i = 0
        while i < len(kids):
            step = steps[kids[i]]
            j = i + 1
            while j < len(kids) and steps[kids[j]]["name"] == step["name"]:
                j += 1
            group = [steps[k] for k in kids[i:j]]
            name = "  " * (step["depth"] - 1) + step["name"] + (f" x{j - i}" if j - i > 1 else "")
            spans = [s["rounds"] for s in group if s["rounds"]]
            span = {
                "rounds": [min(r[0] for r in spans), max(r[1] for r in spans)] if spans else None
            }
            rows.append(
                (
                    name,
                    str(sum(s["messages"] for s in group)),
                    f"{sum(s['bytes_c2s'] for s in group):,}",
                    f"{sum(s['bytes_s2c'] for s in group):,}",
                    _rounds(span),
                    _clip(holdings_text(group[-1]["holds"]["client"])),
                )
            )
            if step["depth"] < depth and j - i == 1:
                walk(kids[i])
            i = j

    walk(0)
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[c].rjust(widths[c]) for c in range(1, 5)]
        lines.append("  ".join([*cells, r[5]]).rstrip())
    return "\n".join(lines)
