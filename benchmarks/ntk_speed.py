"""Speed and peak memory of the NTK engine against batched forward+backward and per-sample autograd loops.

Every configuration (architecture x batch size N x method) runs in its own subprocess, which

1. builds the network and a seeded batch, records ``ru_maxrss``,
2. runs the method once (cold: the peak-memory delta is ``ru_maxrss`` after minus before),
3. times the method and one batched forward+backward interleaved, ``--repeats`` times each, and reports
   medians, so the ratio method / fwd+bwd comes from the same process and the same machine load.

Methods: ``fwd_bwd`` (one batched forward+backward of the summed output, train mode), ``frozen`` /
``batch`` (:func:`zcproxy.ntk.jacobian` with that ``bn``; ``batch`` differentiates one output row per
backward pass), ``batch_vmap`` (``batch`` with all N rows vectorised in one pass, ``chunk_size=N``),
``loop_frozen`` (per-sample forward+backward with the batch statistics held fixed: the kernel ``frozen``
computes), ``loop_batch`` (the TE-NAS loop: one train-mode forward of the batch, one backward per sample:
the kernel ``batch`` computes), ``five``
(all five NTK scores with :func:`zcproxy.proxies.ntk.ntk_scores`: two FGSM passes, three frozen
Jacobians, Gram blocks, spectra) and ``five_loop`` (the same five scores with ``loop_frozen`` Jacobians).

    .venv/bin/python benchmarks/ntk_speed.py --threads 2 --repeats 2 --timeout 600 [--resume]
    .venv/bin/python benchmarks/ntk_speed.py --report-only      # rewrite the markdown from the csv

Configurations run in priority order (see :func:`plan`) and the csv / markdown are rewritten after each,
so an interrupted run keeps what it measured and ``--resume`` continues it.
Writes ``results/perf/ntk_speed.csv`` and ``results/perf/ntk_speed.md``.
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from tabulate import tabulate

from zcproxy import attacks, ntk
from zcproxy.proxies.ntk import ntk_scores
from zcproxy.space import NB201

from _report import provenance, write_markdown, write_report  # benchmarks/_report.py

# N backward passes of the batch (looped or vectorised) or a loop of N passes: one timed repeat
HEAVY = ("batch", "batch_vmap", "loop_batch", "five_loop")


# ------------------------------------------------------------------------------------------------ worker
def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def _fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> None:
    net = model.train()
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()


def _frozen_statistics_copy(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Eval-mode copy whose BatchNorm running stats are the batch mean / biased variance of x."""
    net = copy.deepcopy(model)
    sizes: dict[torch.nn.Module, int] = {}
    handles = []
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
            handles.append(m.register_forward_hook(
                lambda mod, inp, out: sizes.__setitem__(mod, inp[0].numel() // inp[0].shape[1])))
    net.train()
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    for m, n in sizes.items():
        m.running_var.mul_((n - 1) / n)
    return net.eval()


def _rows(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in net.parameters()])


def _loop_frozen(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    net = _frozen_statistics_copy(model, x)
    rows = []
    for i in range(x.shape[0]):
        net.zero_grad(set_to_none=True)
        net(x[i:i + 1]).sum().backward()
        rows.append(_rows(net))
    return torch.stack(rows)


def _loop_batch(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    net = copy.deepcopy(model).train()
    out = net(x)
    rows = []
    for i in range(x.shape[0]):
        net.zero_grad(set_to_none=True)
        out[i].sum().backward(retain_graph=True)
        rows.append(_rows(net))
    return torch.stack(rows)


def _five_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    once = attacks.fgsm(model, x, y)
    twice = attacks.fgsm(model, once, y)
    names = tuple(n for n, _ in model.named_parameters())
    sizes = tuple(p.numel() for p in model.parameters())
    j = [ntk.Jacobian(_loop_frozen(model, a), "sum", names, sizes) for a in (x, once, twice)]
    clean = ntk.spectrum(ntk.gram(j[0]))
    return {"clean": clean.lambda_min, "cond": clean.cond, "robust": ntk.spectrum(ntk.gram(j[1])).lambda_min,
            "joint_robust": ntk.spectrum(ntk.gram(j[2])).lambda_min}


def _method(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int | None):
    if name == "fwd_bwd":
        return lambda: _fwd_bwd(model, x)
    if name in ("frozen", "batch"):
        return lambda: ntk.jacobian(model, x, bn=name, chunk_size=chunk)
    if name == "batch_vmap":
        return lambda: ntk.jacobian(model, x, bn="batch", chunk_size=x.shape[0])
    if name == "loop_frozen":
        return lambda: _loop_frozen(model, x)
    if name == "loop_batch":
        return lambda: _loop_batch(model, x)
    if name == "five":
        return lambda: ntk_scores(model, x, y, betas=(1.0,))
    if name == "five_loop":
        return lambda: _five_loop(model, x, y)
    raise ValueError(f"unknown method {name!r}")


def worker(config: dict) -> dict:
    torch.set_num_threads(config["threads"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        model = NB201.build(config["arch"])
    g = torch.Generator().manual_seed(config["seed"])
    x = torch.rand(config["n"], 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (config["n"],), generator=g)
    baseline = copy.deepcopy(model)
    run = _method(config["method"], model, x, y, config["chunk"])
    reference = lambda: _fwd_bwd(baseline, x)  # noqa: E731
    before = _maxrss_mb()
    start = time.perf_counter()
    run()
    cold = time.perf_counter() - start
    peak = _maxrss_mb() - before
    repeats = 1 if config["method"] in HEAVY else config["repeats"]
    method_times, reference_times = [], []
    for r in range(max(repeats, config["repeats"])):
        t = time.perf_counter()
        reference()
        reference_times.append(time.perf_counter() - t)
        if r < repeats:
            t = time.perf_counter()
            run()
            method_times.append(time.perf_counter() - t)
    return {"seconds": statistics.median(method_times), "cold_seconds": cold,
            "fwd_bwd_seconds": statistics.median(reference_times), "repeats": repeats, "peak_mb": peak}


# ------------------------------------------------------------------------------------------------ driver
def _param_count(arch: int) -> int:
    return sum(p.numel() for p in NB201.build(arch).parameters())


def pick_archs() -> dict[str, int]:
    """Fewest-parameter, median and most-parameter non-degenerate representatives.

    NB201 parameter counts depend only on how many 3x3 and 1x1 convolutions the cell has, so one model
    per (n3x3, n1x1) signature gives every representative's count.
    """
    by_signature: dict[tuple[int, int], list[int]] = {}
    for i in NB201.unique():
        if NB201.is_zero_output(i):
            continue
        ops = NB201.genotype(i)
        by_signature.setdefault((ops.count("nor_conv_3x3"), ops.count("nor_conv_1x1")), []).append(i)
    counted = sorted((_param_count(members[0]), sig) for sig, members in by_signature.items())
    weighted = [(count, sig) for count, sig in counted for _ in by_signature[sig]]
    small, median, large = weighted[0], weighted[len(weighted) // 2], weighted[-1]
    return {"small": by_signature[small[1]][0], "median": by_signature[median[1]][0],
            "large": by_signature[large[1]][0]}


def plan(sizes: list[int], labels: list[str]) -> list[tuple[str, int, str, int | None]]:
    """(arch label, N, method, chunk_size) in priority order, sized for a shared 2-core machine.

    First the N = 64 comparisons behind the targets (the loops on the small arch only, where they finish
    in minutes), then peak memory at N = 128 with and without ``chunk_size``, then the scaling in N.
    The batch-statistics Jacobians (N backward passes of the whole batch) and the TE-NAS loop run on the
    small arch, and the two ``batch`` variants also on the median arch at N = 64.
    """
    configs: list[tuple[str, int, str, int | None]] = []
    for label in labels:
        configs += [(label, 64, "frozen", None), (label, 64, "five", None), (label, 64, "fwd_bwd", None)]
        if label == "small":
            configs += [(label, 64, m, None) for m in ("loop_frozen", "five_loop", "loop_batch")]
    for label in labels:
        configs.append((label, 64, "loop_frozen", None))
    if "large" in labels:
        configs += [("large", 128, "frozen", None), ("large", 128, "frozen", 32), ("large", 128, "fwd_bwd", None)]
    for n in (16, 32, 128):
        configs += [(label, n, "frozen", None) for label in labels]
    if "small" in labels:
        for n in (16, 32, 64):
            configs += [("small", n, m, None) for m in ("batch", "batch_vmap", "loop_batch")]
        configs.append(("small", 128, "batch", 16))
    if "median" in labels:
        configs += [("median", 64, "batch", None), ("median", 64, "batch_vmap", None)]
    return [c for c in dict.fromkeys(configs) if c[1] in sizes]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--archs", nargs="+", default=["small", "median", "large"],
                        choices=["small", "median", "large"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per configuration")
    parser.add_argument("--out", default="results/perf/ntk_speed", help="output path without extension")
    parser.add_argument("--resume", action="store_true", help="keep the finished rows of an earlier --out csv")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from the --out csv")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    earlier = Path(args.out).with_suffix(".csv")
    if args.report_only and not earlier.is_file():
        parser.error(f"--report-only rewrites the markdown from {earlier}, which does not exist; "
                     "run without --report-only first or pass the --out of an earlier run")
    started = time.perf_counter()
    archs = pick_archs()
    params = {label: _param_count(i) for label, i in archs.items()}
    if args.report_only:
        table = pd.read_csv(earlier)
        write_markdown(Path(args.out).with_suffix(".md"), _markdown(table, archs, params, args, float("nan")))
        return
    rows = _earlier_rows(earlier) if args.resume else []
    finished = {(r["arch_label"], r["n"], r["method"], r["chunk_size"]) for r in rows}
    for label, n, method, chunk in plan(args.sizes, args.archs):
        if (label, n, method, chunk) in finished:
            continue
        config = {"arch": archs[label], "n": n, "method": method, "chunk": chunk, "threads": args.threads,
                  "seed": args.seed, "repeats": args.repeats}
        row = {"arch_label": label, "arch": archs[label], "params": params[label], "n": n, "method": method,
               "chunk_size": chunk}
        try:
            done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(config)], capture_output=True,
                                  text=True, timeout=args.timeout, check=True)
            row.update(json.loads(done.stdout.strip().splitlines()[-1]), status="ok")
        except subprocess.TimeoutExpired:
            row.update(status=f"timeout>{args.timeout:.0f}s")
        except subprocess.CalledProcessError as exc:
            row.update(status="error: " + (exc.stderr.strip().splitlines() or ["?"])[-1][:120])
        if row["status"] == "ok":
            row["ratio_to_fwd_bwd"] = row["seconds"] / row["fwd_bwd_seconds"]
        rows.append(row)
        _write(rows, archs, params, args, time.perf_counter() - started)  # partial results survive an abort
        print(f"{label:6s} N={n:<3d} {method:11s} chunk={chunk} -> {row.get('seconds', float('nan')):.3f}s "
              f"ratio={row.get('ratio_to_fwd_bwd', float('nan')):.2f} peak={row.get('peak_mb', float('nan')):.0f}MB "
              f"{row['status']}", flush=True)
    print("wrote", *_write(rows, archs, params, args, time.perf_counter() - started))


def _earlier_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    table = pd.read_csv(path)
    table = table[table.status == "ok"].astype(object).where(table.notna(), None)
    rows = table.to_dict("records")
    for r in rows:
        r["n"] = int(r["n"])
        r["chunk_size"] = None if r["chunk_size"] is None else int(r["chunk_size"])
    return rows


def _write(rows: list[dict], archs: dict, params: dict, args, elapsed: float) -> tuple[Path, Path]:
    table = pd.DataFrame(rows)
    if "chunk_size" in table:
        table["chunk_size"] = table["chunk_size"].astype("float64")
    return write_report(table, args.out, _markdown(table, archs, params, args, elapsed))


def _lookup(table: pd.DataFrame, label: str, n: int, method: str, column: str) -> float | None:
    hit = table[(table.arch_label == label) & (table.n == n) & (table.method == method) & table.chunk_size.isna()]
    if hit.empty or column not in hit or hit.iloc[0]["status"] != "ok":
        return None
    return float(hit.iloc[0][column])


def _markdown(table: pd.DataFrame, archs: dict, params: dict, args, elapsed: float) -> list[str]:
    shown = table.copy()
    for col in ("seconds", "fwd_bwd_seconds", "ratio_to_fwd_bwd", "peak_mb", "cold_seconds"):
        if col in shown:
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    shown["chunk_size"] = shown["chunk_size"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    cols = [c for c in ("arch_label", "params", "n", "method", "chunk_size", "seconds", "fwd_bwd_seconds",
                        "ratio_to_fwd_bwd", "peak_mb", "repeats", "status") if c in shown]
    lines = [
        "# NTK engine speed and memory",
        "",
        provenance(f"benchmarks/ntk_speed.py --repeats {args.repeats} --threads {args.threads} --seed {args.seed}",
                   args.threads)
        + (f" The run took {elapsed:.0f} s." if elapsed == elapsed else " Markdown rewritten from the csv."),
        f"Repeats {args.repeats} (1 for {', '.join(HEAVY)}); medians; ratio = method / batched fwd+bwd timed "
        "interleaved in the same subprocess. Peak = ru_maxrss growth during the first (cold) run.",
        "Architectures (NB201 representatives by parameter count): "
        + ", ".join(f"{k} = {archs[k]} ({params[k]:,} params)" for k in args.archs) + ".",
        "The machine is shared with other jobs, so absolute times are noisy; ratios are more stable.",
        "",
        "## Targets at N = 64",
        "",
    ]
    checks = []
    for label in args.archs:
        frozen = _lookup(table, label, 64, "frozen", "ratio_to_fwd_bwd")
        five = _lookup(table, label, 64, "five", "ratio_to_fwd_bwd")
        loop = _lookup(table, label, 64, "five_loop", "ratio_to_fwd_bwd")
        tenas = _lookup(table, label, 64, "loop_batch", "ratio_to_fwd_bwd")
        checks.append({
            "arch": label,
            "frozen J / fwd+bwd (target <= 3)": _fmt(frozen),
            "five scores / fwd+bwd (target <= 12)": _fmt(five),
            "five_loop / five (target >= 10)": _fmt(loop / five if loop and five else None),
            "TE-NAS loop / frozen J": _fmt(tenas / frozen if tenas and frozen else None),
        })
    lines.append(tabulate(checks, headers="keys", tablefmt="github"))
    lines += ["", "Speed-ups between methods divide their ratios to fwd+bwd, which cancels the different machine "
              "load the two subprocesses saw."]
    everything = tabulate(shown[cols], headers="keys", tablefmt="github", showindex=False)
    lines += ["", "## All configurations", "", everything, ""]
    return lines


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    main()
