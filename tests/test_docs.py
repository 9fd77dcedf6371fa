"""The README stays true: its proxy table is the registry's metadata, and every relative link in it and in
the committed results resolves."""
from __future__ import annotations

import re

import pandas as pd
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_proxy_table_is_the_registry_metadata(benchmark_script):
    expected = benchmark_script("proxy_table").table(ROOT / "results" / "perf" / "proxy_seconds.csv")
    readme = (ROOT / "README.md").read_text()
    assert expected in readme, ("README.md's proxy table differs from the registry; regenerate it with "
                                "`python benchmarks/proxy_table.py` and paste the output")


def test_every_relative_link_in_the_readme_and_results_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "results").rglob("*.md"))]
    broken = [f"{page.relative_to(ROOT)} -> {link}" for page in pages
              for link in _LINK.findall(page.read_text()) if "://" not in link
              and not link.startswith("mailto:") and not (page.parent / link).exists()]
    assert len(pages) > 10 and not broken, broken


def test_the_link_pattern_finds_links_and_skips_anchors():
    assert _LINK.findall("see [a](results/x.md), [b](https://e.org/y) and [c](z.md#part)") == [
        "results/x.md", "https://e.org/y", "z.md"]


def test_readme_darts_figures_are_the_committed_table():
    table = pd.read_csv(ROOT / "results" / "correlation" / "darts" / "correlation_darts1000_cifar10.csv")
    tau = dict(zip(table["proxy"], table["kendall"]))
    rho = dict(zip(table["proxy"], table["spearman"]))
    readme = (ROOT / "README.md").read_text()
    bullet = readme[readme.index("[results/correlation/darts/]"):readme.index("[results/correlation/size_blind.md]")]
    expected = [f"logsynflow leads (Kendall τ {tau['logsynflow']:.3f})", f"synflow\n  {tau['synflow']:.3f}",
                f"SWAP {tau['swap']:.3f} (Spearman {rho['swap']:.3f}", f"MeCo {tau['meco']:.3f}",
                f"Zen {tau['zen']:.3f}", f"parameter count ({tau['params']:.3f})"]
    missing = [e for e in expected if e not in bullet]
    assert not missing, f"README DARTS bullet disagrees with the committed table: expected {missing}"
