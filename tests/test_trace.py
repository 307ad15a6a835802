"""`secmoe trace`: the label -> section table, the page's embedded data against the vectors and
the demo's own transcript, and the page as a real browser renders it.

The browser test drives Debian's Chromium (``/usr/bin/chromium``) through Playwright; where
either is missing it is skipped with the reason, and the page's HTML and data are still checked
by the other tests. Screenshots go to ``build/trace/`` (git-ignored).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from secmoe.cli import main
from secmoe.errors import SpecError
from secmoe.model.default import default_config, default_inputs, default_weights
from secmoe.moe.demo import DEMO_SEED, demo_run
from secmoe.trace.page import read_data
from secmoe.trace.sections import LABEL_SECTIONS, section_of
from secmoe.vectors.build import transcript_json

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors"
SPEC = ROOT / "spec"
ARTIFACTS = ROOT / "build" / "trace"  # git-ignored: pages and screenshots of the last run
MUL_CASE = "protocols.mul/l64/0"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
]


def _cases(path: Path) -> list[dict[str, Any]]:
    obj = json.loads(path.read_text())
    return [c for g in obj["testGroups"] for c in g["tests"]]


def _vector_case(case_id: str) -> dict[str, Any]:
    for path in VECTORS.rglob("*.json"):
        for case in _cases(path):
            if case["id"] == case_id:
                return case
    raise AssertionError(f"no committed case {case_id}")


def _slug(heading: str) -> str:
    text = re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors() -> dict[str, set[str]]:
    """Every heading anchor of every spec file."""
    out: dict[str, set[str]] = {}
    for path in SPEC.glob("*.md"):
        heads = re.findall(r"^#{1,6} (.*)$", path.read_text(encoding="utf-8"), re.MULTILINE)
        out[f"spec/{path.name}"] = {_slug(h) for h in heads}
    return out


# --- the label -> section table ----------------------------------------------------------------


def test_every_vector_label_resolves_to_an_algorithm_heading() -> None:
    anchors = _anchors()
    labels = {
        m["label"]
        for path in VECTORS.rglob("*.json")
        for case in _cases(path)
        for m in case.get("transcript", [])
    }
    assert len(labels) > 10
    for label in sorted(labels):
        section = section_of(label)
        assert section is not None and "#" in section, f"{label}: add it to LABEL_SECTIONS"
        file, anchor = section.split("#")
        assert anchor in anchors[file], f"{label}: {section} is not a heading of the spec"


def test_every_table_entry_exists_in_the_spec() -> None:
    anchors = _anchors()
    for key, section in LABEL_SECTIONS.items():
        file, _, anchor = section.partition("#")
        assert file in anchors, f"{key}: {file} is not a spec file"
        assert not anchor or anchor in anchors[file], f"{key}: {section} has no heading"
    assert section_of("ot/some/new/label") == "spec/10-ot.md"  # the family fallback
    assert section_of("he/keys/pk2") == "spec/20-he.md#he_setup"  # a prefix entry
    assert section_of("unknown/label") is None


# --- the pages' data ---------------------------------------------------------------------------

LEAF = re.compile(r"(\d+ x )?[A-Za-z_][A-Za-z0-9_]*(\[[0-9, ]*\])?|\.\.\. \d+ more")


def _leaves(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    assert isinstance(value, dict)
    return [x for v in value.values() for x in _leaves(v)]


def _check_consistent(data: dict[str, Any]) -> None:
    """Steps nest, cover their messages and add up; holdings are types and shapes only."""
    steps, tr = data["steps"], data["transcript"]
    assert data["schema"] == "secmoe-trace-v1"
    assert len(data["messages"]) == len(tr)
    root = steps[0]
    assert (root["first"], root["end"], root["parent"]) == (0, len(tr), -1)
    assert (
        root["bytes_c2s"]
        == data["cost"]["bytes_c2s"]
        == sum(m["len"] for m in tr if m["from"] == "client")
    )
    assert root["bytes_s2c"] == data["cost"]["bytes_s2c"]
    for step in steps:
        kids = [steps[c] for c in step["children"]]
        edges = [step["first"]] + [x for k in kids for x in (k["first"], k["end"])] + [step["end"]]
        assert edges == sorted(edges), f"children of {step['name']} out of order"
        for k in kids:
            assert k["parent"] == step["id"] and k["depth"] == step["depth"] + 1
        for party in ("client", "server"):
            for leaf in _leaves(step["holds"][party]):
                assert LEAF.fullmatch(leaf), f"{step['name']} holds {leaf!r}: not a type or shape"
    for i, m in enumerate(data["messages"]):
        step = steps[m["step"]]
        assert step["first"] <= i < step["end"]
        assert all(not (c["first"] <= i < c["end"]) for c in (steps[k] for k in step["children"]))
        assert m["section"] == section_of(tr[i]["label"])


def _trace(tmp: Path, name: str, *args: str) -> tuple[str, dict[str, Any]]:
    out = tmp / name
    assert main(["trace", *args, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    return page, read_data(page)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The mul case's and the demo's pages, written once for this module."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name, args in (("mul.html", ["--case", MUL_CASE]), ("moe.html", ["--demo"])):
        assert main(["trace", *args, "--out", str(ARTIFACTS / name)]) == 0
        out[name] = ARTIFACTS / name
    return out


def test_mul_page_embeds_the_vector_transcript(pages: dict[str, Path]) -> None:
    page = pages["mul.html"].read_text(encoding="utf-8")
    data = read_data(page)
    case = _vector_case(MUL_CASE)
    assert data["transcript"] == case["transcript"]
    assert data["source"]["matches_committed"] is True
    cost = data["cost"]
    assert (cost["bytes_c2s"], cost["bytes_s2c"], cost["rounds"]) == (
        case["cost"]["bytes"]["c2s"],
        case["cost"]["bytes"]["s2c"],
        case["cost"]["rounds"],
    )
    _check_consistent(data)
    top = data["steps"][data["steps"][0]["children"][0]]
    assert (top["name"], top["anchor"]) == ("mul", "spec/30-protocols.md#mul")
    # Self-contained: no script, style or image from anywhere else.
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page)
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["http://www.w3.org/2000/svg"]


def test_demo_page_embeds_the_demo_transcript(pages: dict[str, Path]) -> None:
    data = read_data(pages["moe.html"].read_text(encoding="utf-8"))
    config = default_config()
    weights = default_weights(config)
    run = demo_run(config, weights, default_inputs(config, 1), DEMO_SEED, record="full")
    assert data["transcript"] == transcript_json(run.transcript)
    total = run.cost.total()
    assert (data["cost"]["bytes_c2s"], data["cost"]["bytes_s2c"], data["cost"]["rounds"]) == (
        total.bytes_c2s,
        total.bytes_s2c,
        run.cost.rounds,
    )
    _check_consistent(data)
    steps = data["steps"]
    moe = next(s for s in steps if s["name"] == "moe")
    assert moe["anchor"] == "spec/40-moe.md#moe"
    kids = [steps[c]["name"] for c in moe["children"]]
    for name in ("route", "b2a", "select_experts", "expert_matmul", "piecewise", "trunc"):
        assert name in kids
    assert kids.index("route") < kids.index("select_experts") < kids.index("expert_matmul")
    # The server's steps line up with the client's, and it holds shares of the same shape.
    assert moe["holds"]["client"] == moe["holds"]["server"]
    assert {m["phase"] for m in data["messages"]} >= {"input", "offline", "online", "output"}


def test_transformer_page(tmp_path: Path) -> None:
    _, data = _trace(tmp_path, "tiny.html", "--transformer", "--tokens", "1")
    _check_consistent(data)
    names = [s["name"] for s in data["steps"]]
    assert names.count("transformer_block") == 2  # the tiny model's two blocks
    for name in ("embed", "attention", "moe", "route", "layernorm", "select_experts"):
        assert name in names
    assert data["transcript"][-1]["label"] == "transformer/output"
    assert all(m["section"] is not None for m in data["messages"])


def test_case_addressing_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SpecError, match="starts with its file's protocol name"):
        main_raw(["trace", "--case", "nothing.here/0", "--out", str(tmp_path / "x.html")])
    with pytest.raises(SpecError, match=r"has no case 'protocols.mul/l64/9'.*protocols.mul/l64/0"):
        main_raw(["trace", "--case", "protocols.mul/l64/9", "--out", str(tmp_path / "x.html")])
    with pytest.raises(SpecError, match="trace draws two-party cases"):
        main_raw(["trace", "--case", "encoding.bit_vec/n8", "--out", str(tmp_path / "x.html")])
    with pytest.raises(SpecError, match=r"\.html"):
        main_raw(["trace", "--case", MUL_CASE, "--out", str(tmp_path / "x.txt")])
    assert main(["trace", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert MUL_CASE in listed and "moe.moe/geglu-top1" in listed
    assert "encoding.bit_vec/n8" not in listed


def main_raw(argv: list[str]) -> int:
    """The command without the CLI's error handling (so a test sees the exception)."""
    from secmoe.cli import build_parser

    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


# --- a real browser ----------------------------------------------------------------------------


def _browser() -> Any:
    """Playwright's Chromium on Debian's binary, or a skip that says what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


def test_pages_render_in_chromium(pages: dict[str, Path]) -> None:
    sync_playwright = _browser()
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # the binary is there but cannot start here
            pytest.skip(f"Chromium at {CHROMIUM} does not launch: {exc}")
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            fetched: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: fetched.append(r.url))

            # The mul case: every message is one arrow once everything is unfolded.
            data = read_data(pages["mul.html"].read_text(encoding="utf-8"))
            page.goto(pages["mul.html"].as_uri())
            page.wait_for_selector("body[data-ready='1']")
            assert MUL_CASE in page.inner_text("#title")
            page.click("#expand-all")
            assert page.locator("#seq line.arrow").count() == len(data["transcript"])
            labels = page.eval_on_selector_all(
                "#seq .row.msg svg text", "els => els.map(e => e.textContent)"
            )
            assert labels == [m["label"] for m in data["transcript"]]
            assert page.locator("#seq .row.step").count() == len(data["steps"]) - 1
            page.screenshot(path=str(ARTIFACTS / "mul.png"), full_page=True)
            page.click("#collapse-all")
            assert page.locator("#seq line.arrow").count() == 0
            assert page.locator("#seq .row.step").count() == len(data["steps"][0]["children"])
            page.click("#seq .row.step[data-id='1']")  # unfold `mul` by clicking it
            assert page.locator("#seq .row.step.open[data-id='1']").count() == 1
            assert page.locator("#seq .row.step").count() > 1
            # The bar chart has a bar per step of the focused algorithm.
            assert page.locator("#chart g.bar").count() >= 1
            # Each message links to the section that sends it, relative to the page.
            links = page.eval_on_selector_all(
                "#seq .row.msg",
                "rows => rows.map(r => [+r.dataset.index, r.querySelector('a').getAttribute('href')])",
            )
            assert links
            for i, href in links:
                assert href == data["link_base"] + data["messages"][i]["section"]
            assert (pages["mul.html"].parent / links[0][1].split("#")[0]).is_file()

            # The demo: `moe` unfolds into its steps; clicking `route` unfolds it too.
            data = read_data(pages["moe.html"].read_text(encoding="utf-8"))
            steps = data["steps"]
            page.goto(pages["moe.html"].as_uri())
            page.wait_for_selector("body[data-ready='1']")
            moe = next(s for s in steps if s["name"] == "moe")
            route = next(steps[c] for c in moe["children"] if steps[c]["name"] == "route")
            assert page.locator(f"#seq .row.step.open[data-id='{moe['id']}']").count() == 1
            bars = page.eval_on_selector_all(
                "#chart g.bar text:not(.num)", "els => els.map(e => e.textContent)"
            )
            assert any("route" in b for b in bars) and any("select_experts" in b for b in bars)
            topk = next(steps[c] for c in route["children"] if steps[c]["name"] == "topk")
            for step in (route, topk):  # a click folds an unfolded step and unfolds a folded one
                opened = f"#seq .row.step.open[data-id='{step['id']}']"
                was_open, before = page.locator(opened).count(), page.locator("#seq .row").count()
                page.click(f"#seq .row.step[data-id='{step['id']}']")
                assert page.locator(opened).count() == 1 - was_open
                rows = page.locator("#seq .row").count()
                assert rows < before if was_open else rows > before
                page.click(f"#seq .row.step[data-id='{step['id']}']")
                assert page.locator("#seq .row").count() == before
            page.click("#expand-all")
            assert page.locator("#seq line.arrow").count() == len(data["transcript"])
            page.goto(pages["moe.html"].as_uri())
            page.wait_for_selector("body[data-ready='1']")
            page.screenshot(path=str(ARTIFACTS / "moe.png"), full_page=True)
            assert errors == []
            assert all(u.startswith("file://") for u in fetched), fetched
        finally:
            browser.close()
