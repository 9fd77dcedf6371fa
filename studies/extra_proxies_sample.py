"""Time the TE-NAS / ZiCo / MeCo / CRoZe / AZ-NAS proxies on full-size NB201 networks and rank-correlate
them with NAS-RobBench-201 (adversarial training) and NAS-Bench-201 (clean) accuracies on a random sample
of non-isomorphic architectures. The AZ-NAS row ``az_nas_rank`` is the paper's population aggregate,
sum_k log(rank_k / M) over the four components, computed over the sample.

    ZCPROXY_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python studies/extra_proxies_sample.py \
        --archs 24 --seed 0 --proxies linear_regions,zico,meco,az_nas --out runs/extra_proxies_sample.csv
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau, spearmanr

from zcproxy.data import proxy_batch
from zcproxy.scoring import score
from zcproxy.space import NB201
from zcproxy.truth import load_nasrobbench201, load_nb201

PROXIES = ("linear_regions", "zico", "meco", "croze", "az_nas")
AZ_COMPONENTS = ("az_nas_expressivity", "az_nas_progressivity", "az_nas_trainability", "az_nas_complexity")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", type=int, default=40, help="number of random non-isomorphic architectures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--proxies", default=",".join(PROXIES), help="comma-separated subset of " + ",".join(PROXIES))
    p.add_argument("--out", type=Path, default=Path("runs/extra_proxies_sample.csv"))
    return p.parse_args()


def main() -> int:
    args = _parse()
    torch.set_num_threads(args.threads)
    archs = sorted(random.Random(args.seed).sample(NB201.unique(), args.archs))
    batch = proxy_batch("cifar10", n=args.batch_size, seed=args.seed)
    names = [p.strip() for p in args.proxies.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PROXIES))
    if unknown:
        raise SystemExit(f"unknown --proxies {unknown}; choose from {', '.join(PROXIES)}")
    rows, seconds = [], {p: [] for p in names}
    for i, arch in enumerate(archs):
        row = {"index": arch}
        for name in names:
            start = time.perf_counter()
            res = score(arch, name, batch=batch, seed=args.seed, strict=True)
            seconds[name].append(time.perf_counter() - start)
            row.update({k: r.value for k, r in res.items()})
        rows.append(row)
        print(f"[{i + 1}/{len(archs)}] {arch}", flush=True)
    frame = pd.DataFrame(rows).set_index("index")
    if "az_nas" in names:
        ranks = frame[list(AZ_COMPONENTS)].rank(method="average")  # ascending: best gets rank M
        frame["az_nas_rank"] = np.log(ranks / len(frame)).sum(axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out)

    robust, clean = load_nasrobbench201(), load_nb201()
    truths = {"robbench clean": robust[("cifar10", "clean")], "robbench pgd_8": robust[("cifar10", "pgd_8")],
              "nb201 clean": clean[("cifar10", "clean")]}
    table = []
    for col in frame.columns:
        entry = {"proxy": col}
        for label, truth in truths.items():
            t = truth.loc[frame.index]
            entry[f"{label} rho"] = spearmanr(frame[col], t).statistic
            entry[f"{label} tau"] = kendalltau(frame[col], t).statistic
        table.append(entry)
    print(pd.DataFrame(table).round(3).to_string(index=False))
    print("median seconds per arch:", {p: round(float(np.median(s)), 2) for p, s in seconds.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
