"""``zcproxy verify``: adversarially train a few architectures for real and compare with the benchmark."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataFormatError, DataNotFoundError, ZcproxyError

HELP = ("adversarially train a few NB201 architectures (resumable), evaluate clean/FGSM/PGD accuracy and "
        "compare their ranking with NAS-RobBench-201")

CSV_NAME = "verify.csv"
MARKDOWN_NAME = "verify.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archs", default="quantiles:6",
                        help="quantiles:K (K archs at evenly spaced quantiles of the benchmark's CIFAR-10 PGD-8 "
                             "accuracy) and/or NB201 indices, comma separated (default: quantiles:6)")
    parser.add_argument("--method", choices=("pgd", "fgsm-rs"), default="pgd",
                        help="pgd: PGD-7 adversarial training (the benchmark's); fgsm-rs: fast FGSM with random "
                             "start (Wong et al. 2020), about 4x cheaper")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs (benchmark: 50)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images (a fixed subset; default: all present)")
    parser.add_argument("--eval-size", type=int, default=2000, help="held-out test images evaluated (default 2000)")
    parser.add_argument("--batch", type=int, default=256, help="training batch size (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, data order and attacks (default 0)")
    parser.add_argument("--C", type=int, default=16, help="network width (benchmark: 16)")
    parser.add_argument("--N", type=int, default=5, help="cells per stage (benchmark: 5)")
    parser.add_argument("--pgd-steps", type=int, default=20, help="PGD steps of the evaluation (default 20)")
    parser.add_argument("--out", default="results/verify", help="folder of verify.csv, verify.md and json/")
    parser.add_argument("--run-dir", default="runs/verify", help="checkpoints; re-running resumes from them")
    parser.add_argument("--store", default=None,
                        help="score store that receives each arch's accuracies as outputs trained_<metric> "
                             "(default: <run-dir>/verify.sqlite)")
    parser.add_argument("--data-dir", default=None, help="data folder (default: $ZCPROXY_DATA, ~/.cache/zcproxy)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..truth import load_nasrobbench201
    from ..validate.train import EvalConfig, TrainConfig, select_archs, verify_arch

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    config = TrainConfig(method=args.method, epochs=args.epochs, train_size=args.train_size,
                         batch_size=args.batch, seed=args.seed, C=args.C, N=args.N)
    eval_config = EvalConfig(eval_size=args.eval_size, pgd_steps=args.pgd_steps, seed=args.seed)
    truth = load_nasrobbench201(args.data_dir)
    archs = select_archs(args.archs, truth, data_dir=args.data_dir)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(args.out)
    store_path = Path(args.store) if args.store else Path(args.run_dir) / "verify.sqlite"
    records: list[dict[str, Any]] = []
    failed: list[str] = []
    for arch in archs:
        try:
            record = verify_arch(arch, config, eval_config, run_dir=args.run_dir, data_dir=args.data_dir, log=log)
        except (DataNotFoundError, DataFormatError):
            raise
        except ZcproxyError as exc:
            failed.append(f"arch {arch}: {exc}")
            print(f"zcproxy verify: arch {arch} failed: {exc}", file=sys.stderr)
            continue
        records.append(record)
        store_record(store_path, record)
        write_reports(records, truth, out)
    if failed:
        print("failed:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print(f"{len(records)} architectures verified; see {out / MARKDOWN_NAME}")
    return 0


def store_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write one verified arch into the score store: output ``trained_<metric>`` = its accuracy, with the
    full training and evaluation settings (so different budgets never mix) and train + eval seconds."""
    from ..scoring import ProxyResult
    from ..store import Store

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    seconds = float(record["train_seconds"]) + float(record["eval_seconds"])
    results = {}
    for metric, value in record["metrics"].items():
        name = f"trained_{metric}"
        settings = {"proxy": name, "dataset": record["settings"]["train"].get("dataset", "cifar10"),
                    **{f"train_{k}": v for k, v in record["settings"]["train"].items()},
                    **{f"eval_{k}": v for k, v in record["settings"]["eval"].items()}}
        results[name] = ProxyResult(float(value), seconds, settings, frozenset(), True)
    with Store(path) as store:
        store.put(record["index"], results, device="cpu")


def _benchmark_metrics() -> tuple[str, ...]:
    from ..validate.train import METRICS

    return METRICS


def results_frame(records: list[dict[str, Any]], truth: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture: our accuracies (``ours_<metric>``) beside the benchmark's (``bench_<metric>``)."""
    rows = []
    for r in records:
        row: dict[str, Any] = {"index": r["index"], "arch": r["arch"]}
        for m in _benchmark_metrics():
            row[f"ours_{m}"] = r["metrics"].get(m, math.nan)
        for m in _benchmark_metrics():
            row[f"bench_{m}"] = float(truth.loc[r["index"], ("cifar10", m)])
        t = r["settings"]["train"]
        row.update({"params": r["params"], "train_seconds": round(r["train_seconds"], 1),
                    "eval_seconds": round(r["eval_seconds"], 1), "method": t["method"], "epochs": t["epochs"],
                    "train_size": t["train_size"], "eval_size": r["settings"]["eval"]["eval_size"],
                    "C": t["C"], "N": t["N"], "batch_size": t["batch_size"], "seed": t["seed"]})
        rows.append(row)
    return pd.DataFrame(rows)


def kendall_by_metric(frame: pd.DataFrame) -> dict[str, float]:
    """Kendall tau-b between our and the benchmark's accuracy, per metric (NaN with fewer than 2 archs)."""
    from scipy.stats import kendalltau

    taus = {}
    for m in _benchmark_metrics():
        if len(frame) < 2:
            taus[m] = math.nan
            continue
        tau = kendalltau(frame[f"ours_{m}"], frame[f"bench_{m}"]).statistic
        taus[m] = float(tau)
    return taus


def write_reports(records: list[dict[str, Any]], truth: pd.DataFrame, out: str | os.PathLike) -> pd.DataFrame:
    """Write ``verify.csv``, ``verify.md`` and ``json/<index>.json`` under ``out``; return the table."""
    out = Path(out)
    (out / "json").mkdir(parents=True, exist_ok=True)
    for r in records:
        (out / "json" / f"{r['index']}.json").write_text(json.dumps(r, indent=1))
    frame = results_frame(records, truth).sort_values("bench_pgd_8", kind="mergesort")
    frame.to_csv(out / CSV_NAME, index=False)
    (out / MARKDOWN_NAME).write_text(_markdown(frame, records))
    return frame


def _markdown(frame: pd.DataFrame, records: list[dict[str, Any]]) -> str:
    settings = records[0]["settings"] if records else {}
    t, e = settings.get("train", {}), settings.get("eval", {})
    lines = ["# Verification subset: our adversarial training vs NAS-RobBench-201 (CIFAR-10)", "",
             f"Training: {t.get('method')}, {t.get('epochs')} epoch(s) on {t.get('train_size') or 'all'} training "
             f"images, batch {t.get('batch_size')}, C={t.get('C')}, N={t.get('N')}, seed {t.get('seed')}, "
             f"eps {t.get('eps', 0) * 255:.0f}/255. Evaluation: {e.get('eval_size')} test images, FGSM and "
             f"PGD-{e.get('pgd_steps')} at eps 3/255 and 8/255. Benchmark: PGD-7 training, 50 epochs, 50k images, "
             "C=16, N=5 (three-seed means).", ""]
    show = frame[["index"] + [c for c in frame.columns if c.startswith(("ours_", "bench_"))]
                 + ["params", "train_seconds", "eval_seconds"]].copy()
    for column in show.columns:
        if column.startswith(("ours_", "bench_")):
            show[column] = show[column].map(lambda v: f"{v:.3f}")
        else:
            show[column] = show[column].map(lambda v: f"{v:g}")
    lines.append(show.to_markdown(index=False, disable_numparse=True))
    lines += ["", "Kendall tau-b between our ranking and the benchmark's, per metric:", ""]
    taus = kendall_by_metric(frame)
    lines.append(pd.DataFrame([taus]).to_markdown(index=False, floatfmt=".3f"))
    lines.append("")
    return "\n".join(lines)
