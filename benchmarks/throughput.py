"""Throughput of ``zcproxy score --proxies all`` on this machine, with the per-proxy time split.

Scores a seeded sample of unique NB201 architectures with every registered proxy in one ``score()``
call per architecture (so shared work -- one forward, one attack, one Jacobian per input set -- is
done once and charged to the first proxy that needs it). For the median architecture it also scores
each proxy alone, which shows how much the shared work saves.

    ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/throughput.py --archs 20 --seed 0 --batch 64

Writes ``results/perf/throughput.csv`` (one row per arch x proxy) and ``results/perf/throughput.md``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd
import torch
from tabulate import tabulate

from zcproxy import proxies, scoring
from zcproxy.cli.score import parse_archs
from zcproxy.data import proxy_batch
from zcproxy.errors import ProxyError

from _report import provenance, write_report  # benchmarks/_report.py

TARGET_SECONDS = 20.0


def _score_all(arch: int, names: list[str], batch, args) -> tuple[dict, dict[str, str], float]:
    """Score ``arch`` with ``names`` in one call, dropping (and reporting) proxies that fail."""
    remaining, failures = list(names), {}
    start = time.perf_counter()
    while remaining:
        try:
            results = scoring.score(arch, remaining, batch=batch, seed=args.seed, batch_size=args.batch,
                                    strict=True)
            return results, failures, time.perf_counter() - start
        except ProxyError as exc:
            failures[exc.proxy] = str(exc.cause)
            remaining.remove(exc.proxy)
    return {}, failures, time.perf_counter() - start


def _per_proxy(results: dict) -> dict[str, float]:
    """Seconds per proxy (a multi-output proxy reports the same seconds on each of its outputs)."""
    return {r.settings["proxy"]: r.seconds for r in results.values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20, help="number of seeded unique archs (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--proxies", default="all")
    parser.add_argument("--out", default="results/perf/throughput", help="output path without extension")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="stop sampling new archs after this long (the report says how many were measured)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    names = [s.name for s in scoring.resolve_proxies(args.proxies)]
    archs = parse_archs(f"sample:{args.archs}", seed=args.seed)
    load_before = os.getloadavg()

    start = time.perf_counter()
    batch = proxy_batch("cifar10", n=args.batch, seed=args.seed)
    batch_seconds = time.perf_counter() - start
    scoring.score(archs[0], names[:1], batch=batch, seed=args.seed, batch_size=args.batch)  # warm-up imports

    rows, totals, failures = [], {}, {}
    wall_start = time.perf_counter()
    for k, arch in enumerate(archs, 1):
        if args.budget_minutes is not None and time.perf_counter() - wall_start > 60 * args.budget_minutes:
            print(f"time budget of {args.budget_minutes} min reached after {k - 1} archs", flush=True)
            break
        results, failed, seconds = _score_all(arch, names, batch, args)
        totals[arch] = seconds
        failures.update({(arch, p): m for p, m in failed.items()})
        split = _per_proxy(results)
        for proxy, secs in split.items():
            rows.append({"arch": arch, "proxy": proxy, "cost": proxies.spec(proxy).cost, "seconds": secs,
                         "arch_seconds": seconds})
        slowest = ", ".join(f"{p} {t:.1f}" for p, t in sorted(split.items(), key=lambda kv: -kv[1])[:4])
        print(f"[{k}/{len(archs)}] arch {arch}: {seconds:.1f} s ({slowest}), {len(failed)} failed, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    wall = time.perf_counter() - wall_start

    median_arch = sorted(totals, key=totals.get)[len(totals) // 2]
    alone = {}
    for proxy in names:
        try:
            t0 = time.perf_counter()
            scoring.score(median_arch, [proxy], batch=batch, seed=args.seed, batch_size=args.batch, strict=True)
            alone[proxy] = time.perf_counter() - t0
        except ProxyError:
            alone[proxy] = float("nan")

    frame = pd.DataFrame(rows)
    settings = {"seed": args.seed, "batch": args.batch, "torch_threads": args.threads, "archs": len(totals),
                "torch": torch.__version__, "cpu_cores": len(os.sched_getaffinity(0))}
    for key, value in settings.items():
        frame[key] = value

    together = frame[frame["arch"] == median_arch].set_index("proxy")["seconds"]
    split = (frame.groupby(["proxy", "cost"])["seconds"].agg(["mean", "median", "max"]).reset_index()
             .sort_values("mean", ascending=False))
    split["share"] = split["mean"] / split["mean"].sum()
    per_arch = sorted(totals.values())
    median_seconds = statistics.median(per_arch)
    lines = [
        "# Throughput of `zcproxy score --proxies all`",
        "",
        provenance("ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/throughput.py "
                   f"--archs {args.archs} --seed {args.seed} --batch {args.batch} --threads {args.threads}"
                   + (f" --proxies {args.proxies}" if args.proxies != "all" else "")
                   + (f" --budget-minutes {args.budget_minutes:g}" if args.budget_minutes is not None else ""),
                   args.threads),
        f"CPU, batch {args.batch}, seed {args.seed}, seeded unique archs from `sample:{args.archs}`, "
        f"{len(names)} proxies. Load average at the start: {load_before[0]:.1f} "
        "(the machine was shared with other jobs, so times are upper bounds).",
        "",
        f"- Measured {len(totals)} of the {len(archs)} sampled archs"
        + (f" (stopped by the {args.budget_minutes} min budget)." if len(totals) < len(archs) else "."),
        f"- Throughput: **{3600 * len(totals) / wall:.0f} archs/hour** ({wall:.0f} s for {len(totals)} archs; "
        f"batch loading {batch_seconds:.2f} s once).",
        f"- Seconds per arch, all proxies: median **{median_seconds:.1f} s**, min {per_arch[0]:.1f}, "
        f"max {per_arch[-1]:.1f}. Target <= {TARGET_SECONDS:.0f} s for the median arch: "
        f"**{'met' if median_seconds <= TARGET_SECONDS else 'not met'}**.",
        f"- Failures: {len(failures)}" + ("" if not failures else " (" + "; ".join(
            f"arch {a} {p}: {m[:80]}" for (a, p), m in list(failures.items())[:5]) + ")"),
        "",
        "## Per-proxy time split (seconds per arch, shared work charged to the first proxy needing it)",
        "",
        tabulate(split.values.tolist(), headers=["proxy", "cost", "mean", "median", "max", "share"], floatfmt=".3f",
                 tablefmt="github"),
        "",
        f"## Shared work: median arch {median_arch}, every proxy in one call vs each proxy alone",
        "",
        tabulate([[p, together.get(p, float("nan")), alone[p]] for p in names],
                 headers=["proxy", "together (s)", "alone (s)"], floatfmt=".3f", tablefmt="github"),
        "",
        f"Sum: together {totals[median_arch]:.2f} s (whole call) vs alone {sum(v for v in alone.values() if v == v):.2f} s.",
        "",
    ]
    write_report(frame, args.out, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
