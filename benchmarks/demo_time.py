"""Time `zcproxy demo` end to end: wall and CPU seconds per stage, with the machine's load beside them.

Runs the demo command (as `make demo` does once .venv exists) in a fresh folder, so nothing is resumed,
against the real data in $ZCPROXY_DATA. Per stage it records the wall and CPU seconds the demo prints
(CPU of the demo process plus its finished worker processes), and the load average sampled every 2 s.
Because the development machine is shared, it also states the CPU-bound estimate for two idle cores:
the serial stages' CPU seconds plus the scoring stage's CPU seconds divided by its worker processes.

    ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/demo_time.py
    ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/demo_time.py --out /tmp/full -- --full
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from _report import provenance, write_report

STAGE = re.compile(r"(\w+) ([\d.]+) s \(CPU ([\d.]+) s\)")
WORKERS = re.compile(r"in (\d+) process\(es\)")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sample_load(stop: threading.Event, samples: list[float]) -> None:
    while not stop.wait(2.0):
        samples.append(os.getloadavg()[0])


def run_once(demo_args: list[str]) -> dict:
    """One fresh demo run; its stages, totals and the load during it."""
    with tempfile.TemporaryDirectory(prefix="zcproxy-demo-time-") as folder:
        command = [sys.executable, "-m", "zcproxy", "demo", "--quiet", "--store", str(Path(folder) / "demo.sqlite"),
                   *demo_args]
        samples: list[float] = [os.getloadavg()[0]]
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_load, args=(stop, samples), daemon=True)
        cpu, start = _children_cpu(), time.perf_counter()
        sampler.start()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
        stop.set()
        sampler.join()
    if done.returncode != 0:
        raise SystemExit(f"demo exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    stage_line = next((line for line in done.stdout.splitlines() if line.startswith("stages:")), "")
    stages = {name: (float(w), float(c)) for name, w, c in STAGE.findall(stage_line)}
    workers = int(WORKERS.search(done.stdout).group(1)) if WORKERS.search(done.stdout) else 1
    return {"command": shlex.join(["zcproxy", "demo", *demo_args]), "stdout": done.stdout, "wall": wall, "cpu": cpu,
            "stages": stages, "workers": workers, "load_mean": sum(samples) / len(samples), "load_max": max(samples)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/perf/demo_time", help="output stem (.csv and .md)")
    parser.add_argument("demo_args", nargs="*", help="extra arguments for `zcproxy demo` (after --)")
    args = parser.parse_args(argv)
    if not os.environ.get("ZCPROXY_DATA"):
        parser.error("set ZCPROXY_DATA to the data folder (the demo scores real CIFAR-10 images)")
    result = run_once(args.demo_args)
    stages = result["stages"]
    staged_wall = sum(w for w, _ in stages.values())
    rows = [{"stage": name, "wall_seconds": w, "cpu_seconds": c} for name, (w, c) in stages.items()]
    rows.append({"stage": "startup (interpreter, imports)", "wall_seconds": result["wall"] - staged_wall,
                 "cpu_seconds": max(0.0, result["cpu"] - sum(c for _, c in stages.values()))})
    rows.append({"stage": "total", "wall_seconds": result["wall"], "cpu_seconds": result["cpu"]})
    table = pd.DataFrame(rows)
    idle = sum(c for name, (_, c) in stages.items() if name != "scoring") + rows[-2]["cpu_seconds"] \
        + stages.get("scoring", (0.0, 0.0))[1] / result["workers"]
    table["idle_two_core_estimate_seconds"] = float("nan")
    table.loc[table["stage"] == "total", "idle_two_core_estimate_seconds"] = idle
    threads = 1
    markdown = [
        "# `zcproxy demo` time per stage",
        "",
        provenance(f"python benchmarks/demo_time.py {shlex.join(args.demo_args)}".strip(), threads),
        "",
        f"Demo command: `{result['command']}` in a fresh folder (nothing resumed), {result['workers']} worker "
        f"process(es) of {threads} torch thread. 1-min load average during the run: mean {result['load_mean']:.1f}, "
        f"max {result['load_max']:.1f} (on {len(os.sched_getaffinity(0))} cores; other work was running).",
        "",
        table.drop(columns="idle_two_core_estimate_seconds").to_markdown(index=False, floatfmt=".1f"),
        "",
        f"Measured wall time: **{result['wall']:.0f} s**. CPU-bound estimate for two idle cores (serial stages' CPU "
        f"seconds + scoring CPU seconds / {result['workers']} workers): **{idle:.0f} s**.",
        "",
        "Demo output:",
        "",
        "```",
        result["stdout"].rstrip(),
        "```",
    ]
    write_report(table, args.out, markdown)
    print("\n".join(markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
