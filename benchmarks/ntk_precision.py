"""How far float32 NTK Jacobians are from float64 ones, in the rows and in the scores built on them.

zcproxy computes Jacobians in float32 by default and accumulates every Gram product in float64. This script
measures, for a few NB201 architectures and both BatchNorm modes, the float32 error against a float64
computation of the same Jacobian: the largest row-entry error relative to the largest entry (and the
parameter it sits in), the kernel's relative Frobenius error, and the relative error of lambda_min and of
the condition number - the quantities the NTK proxies rank by.

    .venv/bin/python benchmarks/ntk_precision.py --threads 1 --out results/perf/ntk_precision

Writes ``<out>.csv`` and ``<out>.md``.
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch
from tabulate import tabulate

from zcproxy import ntk
from zcproxy.data import proxy_batch
from zcproxy.scoring import build_model

from _report import provenance, write_report  # benchmarks/_report.py

ARCHS = (3, 102, 13714)  # fewest parameters, median representative, a large one (see ntk_batch_rows.py)


def measure(arch: int, bn: str, n: int, seed: int) -> dict:
    batch = proxy_batch("cifar10", n=n, seed=seed)
    model = build_model(arch, "cifar10", seed)
    single = ntk.jacobian(model, batch.x, bn=bn, dtype=torch.float32)
    double = ntk.jacobian(model, batch.x, bn=bn, dtype=torch.float64)
    error = (single.rows.double() - double.rows).abs()
    per_param = error.amax(dim=0).split(list(double.sizes))
    worst = max(range(len(per_param)), key=lambda i: float(per_param[i].max()))
    k32, k64 = ntk.gram(single), ntk.gram(double)
    s32, s64 = ntk.spectrum(k32), ntk.spectrum(k64)
    return {"arch": arch, "bn": bn, "n": n, "params": sum(double.sizes),
            "row_err_max_rel": float(error.max() / double.rows.abs().max()),
            "worst_param": double.names[worst],
            "kernel_err_frobenius_rel": float(torch.linalg.matrix_norm(k32 - k64) / torch.linalg.matrix_norm(k64)),
            "lambda_min_f64": s64.lambda_min, "lambda_min_err_rel": abs(s32.lambda_min - s64.lambda_min) / s64.lambda_min,
            "cond_err_rel": abs(s32.cond - s64.cond) / s64.cond}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/perf/ntk_precision")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for arch in ARCHS:
        for bn in ntk.BN_MODES:
            rows.append(measure(arch, bn, args.n, args.seed))
            print(f"arch {arch} bn={bn} done", flush=True)
    table = pd.DataFrame(rows)
    command = f"benchmarks/ntk_precision.py --threads {args.threads} --n {args.n} --seed {args.seed}"
    markdown = [
        "# float32 against float64 NTK Jacobians",
        "",
        provenance(command, args.threads),
        "CIFAR-10 proxy batch, NB201 C=16 N=5 at seed-0 initialisation, summed output, all parameters. "
        "`row_err_max_rel`: largest |J32 - J64| entry over the largest |J64| entry (`worst_param` holds it); "
        "`kernel_err_frobenius_rel`: ||K32 - K64||_F / ||K64||_F with both Grams accumulated in float64; "
        "then the relative error of lambda_min and of the condition number.",
        "",
        tabulate(table, headers="keys", tablefmt="github", showindex=False, floatfmt=".3g"),
    ]
    written = write_report(table, args.out, markdown)
    print("wrote", *written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
