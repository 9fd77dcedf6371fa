"""README claims that code can check: the score() signature, the data layout, the measured demo time."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import zcproxy
from zcproxy.fetch import MANIFEST

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_shows_the_real_score_signature():
    match = re.search(r"`zcproxy\.score\(([^`]*)\)`", README)
    assert match, "README lost the zcproxy.score(...) signature line"
    shown = [p.strip() for p in match.group(1).replace("\n", " ").split(",") if p.strip()]
    real = []
    for p in inspect.signature(zcproxy.score).parameters.values():
        if p.kind is p.KEYWORD_ONLY and "*" not in real:
            real.append("*")
        if p.kind is p.VAR_KEYWORD:
            real.append(f"**{p.name}")
        elif p.default is p.empty:
            real.append(p.name)
        else:
            real.append(p.name + "=" + repr(p.default))
    normalised = [s if "=" not in s else s.split("=", 1)[0] + "=" + repr(ast.literal_eval(s.split("=", 1)[1]))
                  for s in shown]
    assert normalised == real


def test_readme_data_layout_lists_every_fetched_file():
    layout = README[README.index("## Data"):README.index("## Scoring at scale")]
    for resource in MANIFEST.values():
        assert resource.target.rsplit("/", 1)[-1] in layout, resource.target
    assert "NasBenchID_6466_idx.txt" in layout


def test_readme_demo_time_is_the_committed_measurement():
    report = (ROOT / "results" / "perf" / "demo_time.md").read_text()
    measured = re.search(r"Measured wall time: \*\*(\d+) s\*\*", report).group(1)
    idle = re.search(r"two idle cores.*?\*\*(\d+) s\*\*", report).group(1)
    demo = README[README.index("## Two commands"):README.index("## Ten lines of Python")]
    assert f"{idle} s" in demo and f"{measured} s" in demo
    assert "results/perf/demo_time.md" in demo
