"""Time against peak memory for glibc's mmap threshold: scoring the 23 proxies of ``perf_ratios.PROXIES`` on
one NB201 arch in a fresh one-thread process per configuration, configurations interleaved round by round.

Each process brackets the scoring call with one train-mode float32 forward+backward of the same network and
batch before and after it (``perf_ratios._bracketed``; their mean is ``fb_seconds``) and records the call's
time (``seconds``) and the process's peak resident memory (VmHWM). Configurations: ``glibc default`` (the dynamic threshold, what zcproxy runs with), ``low
memory`` (``mallopt(M_MMAP_THRESHOLD, 131072)``, the CLI's ``--low-memory``) and two fixed thresholds in
between, set through ``MALLOC_MMAP_THRESHOLD_``.

    OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/allocator.py

Writes ``results/perf/allocator.csv`` (one row per configuration x round) and ``results/perf/allocator.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from _report import provenance, write_report  # benchmarks/_report.py
from perf_ratios import PROXIES

CONFIGS = {  # name: (MALLOC_MMAP_THRESHOLD_ or None, call zcproxy._malloc.release_large_frees)
    "glibc default": (None, False),
    "low memory (128 KiB)": (None, True),
    "2 MiB": ("2097152", False),
    "4 MiB": ("4194304", False),
}
DEFAULT, LOW = "glibc default", "low memory (128 KiB)"

_CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from zcproxy import _malloc, scoring
from zcproxy.data import proxy_batch
arch, batch_size, low, proxies = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4].split(",")
if low:
    assert _malloc.release_large_frees()
sys.path.insert(0, sys.argv[5])
from perf_ratios import _bracketed, _fwd_bwd
b = proxy_batch("cifar10", n=batch_size, seed=0)
model = scoring.build_model(arch, "cifar10", 0)
_fwd_bwd(model, b.x, b.y)  # warm-up
seconds, fb_seconds, _ = _bracketed(model, b.x, b.y, lambda: scoring.score(model, proxies, batch=b, seed=0))
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
print(json.dumps({"seconds": seconds, "fb_seconds": fb_seconds, "peak_mb": peak}))
"""


def measure(config: str, arch: int, batch: int) -> dict:
    threshold, low = CONFIGS[config]
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    env["OMP_NUM_THREADS"] = "1"
    if threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = threshold
    out = subprocess.run([sys.executable, "-c", _CHILD, str(arch), str(batch), "1" if low else "0", ",".join(PROXIES),
                          str(Path(__file__).resolve().parent)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(frame: pd.DataFrame, command: str) -> list[str]:
    g = frame.groupby("config", sort=False).median(numeric_only=True)
    base, low = g.loc[DEFAULT], g.loc[LOW]
    table = pd.DataFrame({
        "configuration": g.index,
        "all 23 (s)": g["seconds"].round(1).to_numpy(),
        "fwd+bwd (s)": g["fb_seconds"].round(3).to_numpy(),
        "all / fwd+bwd": (g["seconds"] / g["fb_seconds"]).round(1).to_numpy(),
        "time vs default": (g["seconds"] / base["seconds"]).round(2).to_numpy(),
        "peak RSS (MB)": g["peak_mb"].round(0).astype(int).to_numpy(),
    })
    arch, rounds = int(frame["arch"].iloc[0]), int(frame["round"].max()) + 1
    loads = frame["load1"]
    return ["# glibc's mmap threshold: time against peak memory", "",
            provenance(command, 1), "",
            f"NB201 arch {arch}, C=16 N=5, CIFAR-10 proxy batch of {int(frame['batch'].iloc[0])}, seed 0: the 23 proxies "
            f"of `benchmarks/perf_ratios.py` in one `zcproxy.score` call, one fresh one-thread process per "
            f"configuration and round, {rounds} rounds interleaved; medians over rounds. `fwd+bwd` = one train-mode "
            "float32 forward+backward of the same network and batch in the same process (mean of one before and "
            f"one after the call). 1-min load average during the runs: {loads.min():.1f}-{loads.max():.1f} on 2 cores.",
            "",
            tabulate(table, headers="keys", tablefmt="github", showindex=False), "",
            "A fixed threshold makes every block above it a fresh `mmap` (page faults and zeroing on each "
            f"allocation). At 128 KiB that slows the forward+backward itself "
            f"{low['fb_seconds'] / base['fb_seconds']:.1f}× and the 23 proxies {low['seconds'] / base['seconds']:.1f}×, "
            "so ratios to a forward+backward measured under the same setting hide the cost; compare seconds. "
            "zcproxy leaves "
            "the allocator at glibc's default; `zcproxy --low-memory ...` or `MALLOC_MMAP_THRESHOLD_=131072` "
            "trade the time above for the lower peak.", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=13714)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="results/perf/allocator")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from <out>.csv")
    args = parser.parse_args(argv)
    command = "OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/allocator.py"
    if args.report_only:
        frame = pd.read_csv(f"{args.out}.csv")
        write_report(frame, args.out, report(frame, command))
        return 0
    if not os.environ.get("ZCPROXY_DATA"):
        parser.error("set ZCPROXY_DATA to the data folder (real CIFAR-10 images are needed)")
    rows = []
    for r in range(args.rounds):
        for config in CONFIGS:
            m = measure(config, args.arch, args.batch)
            rows.append({"round": r, "config": config, "arch": args.arch, "batch": args.batch,
                         "load1": os.getloadavg()[0], **m})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    write_report(frame, args.out, report(frame, command))
    print("\n".join(report(frame, command)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
