"""The DARTS study: zero-cost proxies on the 1,000 DARTS architectures of SWAP-NAS (``darts1000``).

Two steps, both resumable and safe to repeat::

    ZCPROXY_DATA=../shared/data python studies/darts_study.py score --proxies all --workers 2
    ZCPROXY_DATA=../shared/data python studies/darts_study.py report

``score`` scores every architecture of the built-in ``darts1000`` truth table in the default DARTS space
(SWAP-NAS's scoring network: C=3, one cell, no stem; see :mod:`zcproxy.space.darts`) on a seeded CIFAR-10
batch of 16 images (SWAP-NAS's batch), weights seeded 0, into ``runs/darts1000.sqlite``.
``report`` produces ``results/correlation/darts/``:

- ``stores/darts1000.sqlite``: a copy of the store (continue it with ``score --store``);
- ``scores_darts1000.csv``: the wide table (one row per architecture, one column per proxy output);
- ``correlation_darts1000_cifar10.{csv,md}``, ``..._heatmap.png``, ``..._scatter_cifar10_clean.png``:
  Kendall tau-b, Spearman rho, Pearson r and top-1/5/10 % precision with 95 % bootstrap CIs (1,000
  resamples, seed 0), one architecture per isomorphism class;
- ``correlation_darts1000_cifar10_ensemble_cifar10_clean.{csv,md}``: rank ensembles chosen on one half of
  the architectures and judged on the other;
- ``versus_params.{csv,md}``: each proxy's paired Kendall tau difference over the parameter count;
- ``README.md``: settings, status, the comparison with SWAP-NAS's published number and the findings.
"""
from __future__ import annotations

import argparse
import math
import os
import sqlite3
import sys
from pathlib import Path

import pandas as pd

from zcproxy import proxies, runner
from zcproxy.space import get_space
from zcproxy.truth import DARTS1000_FILE, load_truth
from zcproxy.validate import compare, report

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "runs" / "darts1000.sqlite"
OUT = ROOT / "results" / "correlation" / "darts"
BATCH, SEED, BOOTSTRAP = 16, 0, 1000
SWAP_PUBLISHED = {"swap": 0.93}  # Spearman rho on these 1,000 archs (Peng et al., ICLR 2024; data README)


def score(proxy_names: list[str], store: Path, workers: int, threads: int) -> None:
    """Score every darts1000 architecture with ``proxy_names`` into ``store`` (resumes)."""
    space = get_space("darts")
    keys = list(load_truth("darts1000", space).index)
    summary = runner.run(keys, proxy_names, store=store, space=space, dataset="cifar10", seed=SEED,
                         batch_size=BATCH, workers=workers, threads=threads)
    print(f"{summary.scored} scored, {summary.skipped} already stored, {len(summary.failed)} with failures, "
          f"{summary.elsewhere} left to another run; {summary.wall_seconds:.0f} s")


def export(store: Path, out: Path) -> None:
    """Write every file of ``results/correlation/darts/`` from ``store``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "stores").mkdir(exist_ok=True)
    copy = out / "stores" / "darts1000.sqlite"
    with sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with sqlite3.connect(copy) as db:
        db.execute("VACUUM")
    truth = load_truth("darts1000", "darts")
    scores, degenerate, long = report.load_scores([copy], space="darts")
    scores.to_csv(out / "scores_darts1000.csv", float_format="%.9g")
    table, text, _ = report.write_correlations(
        scores, truth, out, stem="correlation_darts1000_cifar10", truth_name="darts1000 (CIFAR-10, 200 epochs)",
        degenerate=degenerate, datasets=["cifar10"], bootstrap=BOOTSTRAP, seed=SEED,
        sources=[os.path.relpath(copy, ROOT)], ensemble="clean")
    versus = pd.DataFrame([{"proxy": name, **compare(scores, truth, "params", name, dataset="cifar10", metric="clean",
                                                     bootstrap=BOOTSTRAP, seed=SEED, flags=degenerate)}
                           for name in scores.columns if name != "params"])
    versus = versus.sort_values("delta", ascending=False)
    versus.to_csv(out / "versus_params.csv", index=False, float_format="%.6f")
    (out / "versus_params.md").write_text(
        "Paired Kendall tau-b difference of each proxy over the parameter count (tau(proxy) - tau(params)) with "
        f"darts1000 CIFAR-10 accuracy, on the architectures both scored; 95 % paired bootstrap CI, {BOOTSTRAP} "
        f"resamples, seed {SEED}.\n\n" + report.markdown(versus, floatfmt=".3f") + "\n")
    folds = pd.read_csv(out / "correlation_darts1000_cifar10_ensemble_cifar10_clean.csv")
    (out / "README.md").write_text(_page(table, versus, folds, long, scores))
    print(text)


def _page(table: pd.DataFrame, versus: pd.DataFrame, folds: pd.DataFrame, long: pd.DataFrame,
          scores: pd.DataFrame) -> str:
    settings = long["settings"].iloc[0]
    ranked = table.sort_values("kendall", ascending=False).reset_index(drop=True)
    rows = []
    for i, r in ranked.iterrows():
        published = SWAP_PUBLISHED.get(r["proxy"])
        rows.append({"rank": i + 1, "proxy": r["proxy"], "n": int(r["n"]),
                     "Kendall tau [95% CI]": report.summary(ranked.iloc[[i]])["kendall"].iloc[0],
                     "Spearman rho [95% CI]": report.summary(ranked.iloc[[i]])["spearman"].iloc[0],
                     "top-10% precision": f"{r['top10']:.2f}" if math.isfinite(r["top10"]) else "n/a",
                     "published Spearman (SWAP-NAS)": f"{published:.2f}" if published else ""})
    beats = versus[versus["delta_lo"] > 0]["proxy"].tolist()
    held = folds.groupby("method")["test_kendall"].mean().sort_values(ascending=False)
    lines = [
        "# DARTS: zero-cost proxies on the 1,000 architectures of SWAP-NAS",
        "",
        f"Ground truth: `darts1000` = `{DARTS1000_FILE}` (CIFAR-10 validation accuracy after 200 epochs of standard "
        "training, published with SWAP-NAS, Peng et al., ICLR 2024). Space: built-in DARTS "
        f"(`{ {k: settings[k] for k in ('space', 'C', 'layers', 'stem', 'tied')} }`), SWAP-NAS's scoring network. "
        f"Batch: {BATCH} seeded CIFAR-10 training images, seed {SEED} for weights and batch; every proxy default.",
        "",
        f"Status: {scores.notna().sum().min()}-{scores.notna().sum().max()} of 1,000 architectures scored per proxy "
        f"output ({scores.shape[1]} outputs). Regenerate with `python studies/darts_study.py report`; continue "
        "scoring with `python studies/darts_study.py score --proxies all`.",
        "",
        report.markdown(pd.DataFrame(rows), floatfmt=".3f"),
        "",
        "Files: [correlation table](correlation_darts1000_cifar10.md) (Pearson, top-1/5 % too), "
        "[heatmap](correlation_darts1000_cifar10_heatmap.png), "
        "[scatter](correlation_darts1000_cifar10_scatter_cifar10_clean.png), "
        "[paired difference over params](versus_params.md), "
        "[held-out ensembles](correlation_darts1000_cifar10_ensemble_cifar10_clean.md), "
        "[wide scores](scores_darts1000.csv), [store](stores/darts1000.sqlite).",
        "",
        "## Measured facts (generated)",
        f"- Best single proxy: `{ranked['proxy'].iloc[0]}` (tau {ranked['kendall'].iloc[0]:.3f}); parameter count "
        f"tau {float(table.loc[table['proxy'] == 'params', 'kendall'].iloc[0]):.3f}.",
        f"- Proxies whose paired tau difference over params has a 95 % CI above 0: "
        f"{', '.join(f'`{p}`' for p in beats) or 'none'}.",
        "- Held-out ensembles (mean test tau over the two folds): "
        + ", ".join(f"{m} {v:.3f}" for m, v in held.items()) + ".",
    ]
    if "swap" in set(table["proxy"]):
        rho = float(table.loc[table["proxy"] == "swap", "spearman"].iloc[0])
        lines.append(f"- SWAP: Spearman {rho:.3f} here vs {SWAP_PUBLISHED['swap']:.2f} published on the same 1,000 "
                     "architectures.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    run = sub.add_parser("score", help="score the 1,000 architectures into the store (resumes)")
    run.add_argument("--proxies", default="all", help="all, or comma-separated proxy names")
    run.add_argument("--store", type=Path, default=STORE)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--threads", type=int, default=1)
    out = sub.add_parser("report", help="write results/correlation/darts/ from the store")
    out.add_argument("--store", type=Path, default=STORE)
    out.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.step == "score":
        names = proxies.available() if args.proxies == "all" else [p.strip() for p in args.proxies.split(",")]
        score(names, args.store, args.workers, args.threads)
    else:
        if not args.store.exists():
            print(f"no store at {args.store}; run `python studies/darts_study.py score` first", file=sys.stderr)
            return 2
        export(args.store, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
