"""CRoZe with float32 convolutions (power-of-two rescaled, zcproxy/proxies/_rescaled_conv.py) against the
all-float64 computation it replaced: value change and Kendall tau with CIFAR-10 PGD-8/255 accuracy.

The architectures are the 1,000-sample study's (results/correlation/stores/study_cifar10.sqlite, whose
CRoZe values the all-float64 code computed), in a seeded random order. The first ``--both`` of them are
scored both ways in one process (the float64 way by switching the rescaled convolutions and the
channels-last layout off), which checks that the store holds this float64 code's values; every arch is
scored with the new code and compared with its stored float64 value.

    OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/croze_precision.py

Writes ``results/perf/croze_precision.csv`` (rewritten after every architecture, so a stopped run keeps its
rows) and ``results/perf/croze_precision.md`` (``--report-only`` rebuilds it from the csv).
"""
from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
import pandas as pd
import scipy.stats
import torch
from tabulate import tabulate

from zcproxy import scoring, store
from zcproxy.data import proxy_batch
from zcproxy.proxies import croze as croze_mod
from zcproxy.truth import load_truth

from _report import provenance, write_report  # benchmarks/_report.py

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "results" / "correlation" / "stores" / "study_cifar10.sqlite"
COMMAND = "OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/croze_precision.py"
METRIC = ("cifar10", "pgd_8")


@contextmanager
def all_float64() -> Iterator[None]:
    """CRoZe as before the change: float64 convolutions (im2col path), NCHW layout."""
    with mock.patch.object(croze_mod, "float32_convolutions", lambda model: 0), \
            mock.patch.object(croze_mod, "_channels_last", lambda model, x: (model, x)):
        yield


def _croze(arch: int, batch) -> tuple[float, float]:
    start = time.perf_counter()
    value = scoring.score(arch, ["croze"], batch=batch, seed=0)["croze"].value
    return value, time.perf_counter() - start


def stored_values() -> pd.Series:
    """CRoZe values of the study store (seed 0, batch 64, default options), by integer arch."""
    frame = store.load(STORE)
    frame = frame[frame["proxy"] == "croze"]
    return pd.Series(frame["value"].to_numpy(), index=frame["arch"].astype(int)).sort_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--both", type=int, default=3, help="archs scored both ways (the first in the order)")
    parser.add_argument("--limit", type=int, default=1000, help="archs scored in all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture order")
    parser.add_argument("--out", default="results/perf/croze_precision")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from <out>.csv")
    args = parser.parse_args(argv)
    if args.report_only:
        frame = pd.read_csv(f"{args.out}.csv")
        write_report(frame, args.out, report(frame))
        return 0
    if not os.environ.get("ZCPROXY_DATA"):
        parser.error("set ZCPROXY_DATA to the data folder (real CIFAR-10 images are needed)")
    torch.set_num_threads(1)
    stored = stored_values()
    order = np.random.default_rng(args.seed).permutation(stored.index.to_numpy())[: args.limit]
    batch = proxy_batch("cifar10", n=64, seed=0)
    rows: list[dict] = []
    for i, arch in enumerate(order):
        row = {"order": i, "arch": int(arch), "store_value": stored[arch]}
        row["value"], row["seconds"] = _croze(int(arch), batch)
        if i < args.both:
            with all_float64():
                row["float64_value"], row["float64_seconds"] = _croze(int(arch), batch)
        row["load1"] = os.getloadavg()[0]
        rows.append(row)
        frame = pd.DataFrame(rows)
        frame["threads"], frame["torch"], frame["command"] = 1, torch.__version__, COMMAND
        frame.to_csv(f"{args.out}.csv", index=False)
        print(f"{i:4d} arch {arch:5d}  {row['value']:.6g}  {row['seconds']:.1f} s  load {row['load1']:.1f}", flush=True)
    frame = pd.read_csv(f"{args.out}.csv")
    lines = report(frame)
    write_report(frame, args.out, lines)
    print("\n".join(lines))
    return 0


def _rel(a: pd.Series, b: pd.Series) -> pd.Series:
    return ((a - b).abs() / b.abs()).where(b != 0, (a - b).abs())


def report(frame: pd.DataFrame) -> list[str]:
    """The markdown page: value change on the archs scored both ways, tau on every arch scored."""
    truth = load_truth("nasrobbench201")
    pgd8 = pd.Series(truth[METRIC].to_numpy(), index=truth.index.astype(int))
    both = frame.dropna(subset=["float64_value"]) if "float64_value" in frame else frame.iloc[:0]
    rel_new = _rel(both["value"], both["float64_value"])
    rel_store = _rel(both["float64_value"], both["store_value"])
    rel_all = _rel(frame["value"], frame["store_value"])
    speed = both["float64_seconds"] / both["seconds"]
    ok = frame[np.isfinite(frame["value"]) & np.isfinite(frame["store_value"])]
    acc = pgd8.reindex(ok["arch"]).to_numpy()
    keep = np.isfinite(acc)
    tau_new = scipy.stats.kendalltau(ok["value"].to_numpy()[keep], acc[keep]).statistic
    tau_old = scipy.stats.kendalltau(ok["store_value"].to_numpy()[keep], acc[keep]).statistic
    tau_between = scipy.stats.kendalltau(ok["value"], ok["store_value"]).statistic
    load = frame["load1"]
    summary = pd.DataFrame([
        {"quantity": "archs scored both ways", "value": f"{len(both)}"},
        {"quantity": "abs(float64 now - store) / abs(store), max (the store holds this float64 code's values)",
         "value": f"{rel_store.max():.2e}"},
        {"quantity": "abs(new - float64 now) / abs(float64 now), max", "value": f"{rel_new.max():.2e}"},
        {"quantity": f"abs(new - store) / abs(store) on all {len(frame)} archs scored, median", "value": f"{rel_all.median():.2e}"},
        {"quantity": f"abs(new - store) / abs(store) on all {len(frame)} archs scored, max", "value": f"{rel_all.max():.2e}"},
        {"quantity": "float64 seconds / new seconds (score(arch, ['croze'])), median", "value": f"{speed.median():.2f}"},
        {"quantity": "float64 seconds / new seconds, range", "value": f"{speed.min():.2f}-{speed.max():.2f}"},
        {"quantity": "archs with the new value and a PGD-8 accuracy", "value": f"{int(keep.sum())}"},
        {"quantity": "Kendall tau, new CRoZe vs PGD-8/255 accuracy", "value": f"{tau_new:.4f}"},
        {"quantity": "Kendall tau, float64 CRoZe (store) vs PGD-8/255 accuracy", "value": f"{tau_old:.4f}"},
        {"quantity": "Kendall tau, new vs float64 (store) CRoZe", "value": f"{tau_between:.4f}"},
    ])
    lines = ["# CRoZe: float32 convolutions against all-float64", "",
             provenance(frame["command"].iloc[0], 1).replace(" when written.", " when this page was written."), "",
             f"NB201 archs of the 1,000-sample CIFAR-10 study, seeded random order; batch of 64 CIFAR-10 images, "
             f"seed 0, one torch thread, torch {frame['torch'].iloc[0]}. 1-min load average during the run "
             f"{load.min():.1f}-{load.max():.1f} on 2 cores (a shared machine; seconds are a same-process "
             f"side-by-side ratio). {len(frame)} of the 1,000 archs scored with the new code.", "",
             tabulate(summary, headers="keys", tablefmt="github", showindex=False), ""]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
