"""Write a trace as one self-contained HTML page (inline CSS, JavaScript and SVG; no network).

The page's data is one ``<script type="application/json" id="trace-data">`` block (the
``secmoe-trace-v1`` object of ``runs.trace_data``), which the page's script draws and a test
reads back.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path

from secmoe.errors import SpecError
from secmoe.trace.runs import Trace, repo_root, trace_data
from secmoe.vectors.registry import Json

DATA_BLOCK = re.compile(
    r'<script type="application/json" id="trace-data">(.*?)</script>', re.DOTALL
)


def link_base(out: Path) -> str:
    """The relative path from the page's directory to the checkout that holds ``spec/``, so
    that ``link_base + "spec/30-protocols.md#mul"`` opens the spec next to the page; empty
    when the page is written in the checkout's root or there is no checkout."""
    root = repo_root()
    if root is None:
        return ""
    rel = os.path.relpath(root, out.resolve().parent)
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def render(data: Json) -> str:
    """The page for ``data``; ``</`` in the JSON is escaped so the block cannot end early."""
    template = resources.files("secmoe.trace").joinpath("page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("</", "<\\/")
    return template.replace("__TITLE__", html.escape(f"secmoe trace: {data['title']}")).replace(
        "__TRACE_DATA__", payload
    )


def write_page(trace: Trace, out: Path) -> Json:
    """Write the page for ``trace`` to ``out`` (a ``.html`` file); return its data."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise SpecError(f"--out must name an .html file, got {out}")
    data = trace_data(trace, link_base(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return data


def read_data(page: str) -> Json:
    """The data embedded in a page written by :func:`write_page`."""
    m = DATA_BLOCK.search(page)
    if m is None:
        raise SpecError("no trace-data block in the page")
    data: Json = json.loads(m.group(1))
    return data
