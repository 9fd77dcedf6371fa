"""Verification study: adversarially train a quantile-spread subset of NB201 on this CPU, compare with
NAS-RobBench-201 and with how zero-cost proxies rank the same subset.

Resumable: training checkpoints live in --run-dir and finished archs are skipped; proxy scores are cached
in <out>/proxies.json. Committed runs and their reading: results/verify/README.md, e.g.

    ZCPROXY_DATA=/path/to/data nohup .venv/bin/python studies/verify_subset.py --archs quantiles:6 \
        --method fgsm-rs --epochs 3 --train-size 10000 --eval-size 2000 --C 8 --N 1 --threads 1 \
        --out results/verify/fgsm-rs_3epochs > runs/verify_subset_e3.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from zcproxy.cli import main as cli_main
from zcproxy.cli.verify import CSV_NAME

DEFAULT_PROXIES = ("ntk_clean", "ntk_robust", "ntk_joint_robust", "synflow", "nwot", "params", "meco", "zico", "croze")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="quantiles:6")
    p.add_argument("--method", default="fgsm-rs")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--eval-size", type=int, default=2000)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/verify")
    p.add_argument("--run-dir", default="runs/verify")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--proxies", default=",".join(DEFAULT_PROXIES),
                   help="proxies to score the subset with (those not installed are skipped)")
    p.add_argument("--skip-training", action="store_true", help="only score proxies on the --archs selection")
    p.add_argument("--skip-proxies", action="store_true")
    return p.parse_args()


def _train(args: argparse.Namespace) -> int:
    argv = ["verify", "--archs", args.archs, "--method", args.method, "--epochs", str(args.epochs),
            "--train-size", str(args.train_size), "--eval-size", str(args.eval_size), "--C", str(args.C),
            "--N", str(args.N), "--seed", str(args.seed), "--threads", str(args.threads), "--out", args.out,
            "--run-dir", args.run_dir]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    return cli_main(argv)


def _score_proxies(args: argparse.Namespace, indices: list[int]) -> dict[str, dict[str, float]]:
    """Proxy values per arch (full-size C=16, N=5 networks as the benchmark), cached in proxies.json."""
    import zcproxy
    from zcproxy import proxies as registry

    cache_path = Path(args.out) / "proxies.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    wanted = [p for p in args.proxies.split(",") if p in registry.available()]
    missing = sorted(set(args.proxies.split(",")) - set(wanted))
    if missing:
        print(f"proxies not installed, skipped: {missing}", file=sys.stderr)
    for index in indices:
        done = cache.setdefault(str(index), {})
        todo = [p for p in wanted if not set(registry.spec(p).outputs) <= set(done)]
        if todo:
            results = zcproxy.score(index, todo, seed=args.seed, data_dir=args.data_dir, strict=True)
            done.update({name: r.value for name, r in results.items()})
            cache_path.write_text(json.dumps(cache, indent=1))
            print(f"proxies for {index}: " + ", ".join(f"{k}={v:.4g}" for k, v in done.items()), file=sys.stderr)
    return {k: v for k, v in cache.items() if int(k) in indices}


def _proxy_table(args: argparse.Namespace, frame: pd.DataFrame, scores: dict[str, dict[str, float]]) -> str:
    from scipy.stats import kendalltau
    from zcproxy import proxies as registry

    orientation = registry.outputs()
    names = sorted({n for v in scores.values() for n in v})
    rows = []
    for column, label in (("bench_pgd_8", "benchmark PGD-8"), ("bench_clean", "benchmark clean"),
                          ("ours_pgd_8", "our PGD-8"), ("ours_clean", "our clean")):
        row = {"target": label}
        for name in names:
            values = [scores[str(i)].get(name, math.nan) for i in frame["index"]]
            sign = 1.0 if orientation.get(name, (None, True))[1] else -1.0
            row[name] = float(kendalltau([sign * v for v in values], frame[column]).statistic)
        rows.append(row)
    values = pd.DataFrame({"index": [str(i) for i in frame["index"]],
                           **{n: [f"{scores[str(i)].get(n, math.nan):.4g}" for i in frame["index"]] for n in names}})
    return ("## Zero-cost proxies on the same subset (C=16, N=5 networks, seed %d)\n\n" % args.seed
            + values.to_markdown(index=False, disable_numparse=True)
            + "\n\nKendall tau-b of each proxy (oriented so higher predicts better) with each accuracy:\n\n"
            + pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f") + "\n")


def main() -> int:
    args = _parse()
    status = 0 if args.skip_training else _train(args)
    if args.skip_proxies:
        return status
    import torch
    from zcproxy.truth import load_nasrobbench201
    from zcproxy.validate.train import select_archs

    torch.set_num_threads(args.threads)
    indices = select_archs(args.archs, load_nasrobbench201(args.data_dir), data_dir=args.data_dir)
    scores = _score_proxies(args, indices)
    csv = Path(args.out) / CSV_NAME
    if csv.is_file():
        frame = pd.read_csv(csv)
        frame = frame[frame["index"].astype(str).isin(scores)]
        (Path(args.out) / "proxies.md").write_text(_proxy_table(args, frame, scores))
    return status


if __name__ == "__main__":
    sys.exit(main())
