"""Seconds per proxy on real NB201 networks (C=16, N=5) and real CIFAR-10 images.

Scores each architecture with every registered proxy, one proxy per ``zcproxy.score`` call (so no proxy
profits from work memoised by another), and writes the median over architectures to
``results/perf/proxy_seconds.csv`` and ``.md`` together with the settings.

    ZCPROXY_DATA=../shared/data python benchmarks/proxy_seconds.py [--batch-size 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import zcproxy
from zcproxy import proxies
from zcproxy.data import proxy_batch
from zcproxy.errors import ProxyError
from zcproxy.space import NB201

ARCHS = (
    13714,  # |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|
    NB201.index("|avg_pool_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|nor_conv_3x3~2|"),
    NB201.index("|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/perf/proxy_seconds")
    parser.add_argument("--proxies", default="all", help="comma-separated names (default: all registered)")
    args = parser.parse_args(argv)
    if not os.environ.get("ZCPROXY_DATA"):
        parser.error("set ZCPROXY_DATA to the data folder (real CIFAR-10 images are needed)")
    torch.set_num_threads(args.threads)
    names = proxies.available() if args.proxies == "all" else [n.strip() for n in args.proxies.split(",")]
    batch = proxy_batch("cifar10", n=args.batch_size, seed=args.seed)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    failures: dict[str, str] = {}
    for arch in ARCHS:
        for name in names:
            if name in failures:
                continue
            start = time.perf_counter()
            try:
                zcproxy.score(arch, [name], batch=batch, seed=args.seed, strict=True)
            except ProxyError as exc:
                failures[name] = str(exc)
                print(f"arch {arch:5d}  {name:16s} FAILED: {exc}", flush=True)
                continue
            seconds[name].append(time.perf_counter() - start)
            print(f"arch {arch:5d}  {name:16s} {seconds[name][-1]:8.3f} s", flush=True)
    rows = [(n, statistics.median(s), min(s), max(s)) for n, s in seconds.items() if n not in failures]
    rows.sort(key=lambda r: r[1])
    settings = (f"NB201 C=16 N=5, CIFAR-10 train images, batch {args.batch_size}, seed {args.seed}, "
                f"archs {list(ARCHS)}, torch {torch.__version__} CPU, {args.threads} thread(s), "
                f"{platform.processor() or platform.machine()}. Each time is one zcproxy.score call for one "
                f"proxy (no work shared between proxies), including building the network from its index.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w") as f:
        f.write("proxy,median_seconds,min_seconds,max_seconds,batch_size,threads,archs\n")
        for n, med, lo, hi in rows:
            f.write(f"{n},{med:.4f},{lo:.4f},{hi:.4f},{args.batch_size},{args.threads},"
                    f"{' '.join(map(str, ARCHS))}\n")
    with open(out.with_suffix(".md"), "w") as f:
        f.write("# Seconds per proxy\n\n" + settings + "\n\n")
        f.write("| proxy | median s | min s | max s |\n|---|---:|---:|---:|\n")
        for n, med, lo, hi in rows:
            f.write(f"| {n} | {med:.3f} | {lo:.3f} | {hi:.3f} |\n")
        for n, message in failures.items():
            f.write(f"\nNot timed: {message}\n")
    print(open(out.with_suffix(".md")).read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
