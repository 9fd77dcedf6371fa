"""Write the README proxy table: registry metadata beside measured seconds per NB201 arch.

Reads results/perf/proxy_seconds.csv (from benchmarks/proxy_seconds.py) and prints markdown; with --out
also writes it to a file.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from zcproxy.proxies import specs

ROOT = Path(__file__).resolve().parents[1]


def table(seconds_csv: Path) -> str:
    seconds: dict[str, float] = {}
    if seconds_csv.exists():
        frame = pd.read_csv(seconds_csv)
        seconds = frame.set_index("proxy")["median_seconds"].to_dict()
    rows = ["| proxy | needs | BN | orientation | outputs | cost | s / arch (batch 64) | reference |",
            "|---|---|---|---|---|---|---:|---|"]
    for name, s in specs().items():
        needs = ", ".join(sorted(s.needs)) or "-"
        orient = "higher" if s.higher_is_better else "lower"
        extra = ", ".join(o for o in s.outputs if o != name) or "-"
        sec = f"{seconds[name]:.2f}" if name in seconds else "n/a"
        rows.append(f"| `{name}` | {needs} | {s.bn} | {orient} | {extra} | {s.cost} | {sec} | {s.reference} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=Path, default=ROOT / "results/perf/proxy_seconds.csv")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = table(args.seconds)
    if args.out:
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
