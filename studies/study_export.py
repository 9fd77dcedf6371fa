"""Export a running correlation study into results/correlation/ (safe while runs continue).

Copies the score stores into one store with SQLite's online backup and a merge (a consistent single file,
resumable later with ``zcproxy score --store <copy>``), keeping only the study's seeded sample
``sample:<planned>`` (a wider store, e.g. one proxy scored on all representatives, adds just its sample
rows), exports the scores as CSV, correlates them with NAS-RobBench-201 and with
NAS-Bench-201 standard training, fits held-out rank ensembles, and writes ``study_<dataset>.md`` with the
counts, settings and the command that resumes the run.

    python studies/study_export.py --dataset cifar10 --store runs/study_cifar10.sqlite [--store runs/more.sqlite]
    python studies/study_export.py --dataset cifar100 --stand-in --planned 300 --store runs/study_cifar100.sqlite
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys
from pathlib import Path

import pandas as pd

from zcproxy import proxies
from zcproxy._datasets import dataset_info
from zcproxy.space import NB201
from zcproxy.space.selection import select_archs
from zcproxy.store import load, merge, pivot
from zcproxy.truth import load_truth
from zcproxy.validate import report

ROOT = Path(__file__).resolve().parents[1]


def backup(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    with sqlite3.connect(src) as source, sqlite3.connect(dest) as target:
        source.backup(target)
    with sqlite3.connect(dest) as target:
        target.execute("PRAGMA journal_mode=DELETE")


def keep_only(path: Path, archs: list[int]) -> int:
    """Delete every score and failure of an architecture not in ``archs``; returns the scores deleted."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TEMP TABLE keep (arch INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO keep VALUES (?)", [(int(a),) for a in archs])
        deleted = conn.execute("DELETE FROM scores WHERE arch NOT IN (SELECT arch FROM keep)").rowcount
        conn.execute("DELETE FROM failures WHERE arch NOT IN (SELECT arch FROM keep)")
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    return deleted


def conflict_size(conflicts: list[dict]) -> str:
    """How far apart the two values of merge conflicts are (largest relative difference), or ''."""
    if not conflicts:
        return ""
    worst = max(abs(c["kept"] - c["other"]) / max(abs(c["kept"]), abs(c["other"]), 1e-300) for c in conflicts)
    return f", at most {worst:.1e} apart relative to their size"


def stored_proxies(outputs) -> str:
    """``all`` when every registered proxy has an output among ``outputs``, else their comma list."""
    owner = proxies.outputs()
    names = sorted({owner[o][0] for o in outputs if o in owner})
    return "all" if names == sorted(proxies.available()) else ",".join(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", action="append", required=True, type=Path)
    parser.add_argument("--dataset", default="cifar10", type=lambda text: dataset_info(text).name,
                        help="cifar10, cifar100 or ImageNet16-120 (any letter case)")
    parser.add_argument("--stand-in", action="store_true",
                        help="the scores were computed on CIFAR-10 images standing in for the dataset's own")
    parser.add_argument("--planned", type=int, default=1000, help="size of the seeded sample being scored")
    parser.add_argument("--out", type=Path, default=ROOT / "results/correlation")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--note", default="", help="a sentence added after the status (e.g. how a proxy added "
                                                   "later is being scored)")
    parser.add_argument("--order", type=Path,
                        help="arch file the run scores from: the same sample in a seeded random order, so a "
                             "partial run is a uniform subsample; the resume command names it")
    args = parser.parse_args(argv)

    out = args.out
    sample = _archs(f"sample:{args.planned}")
    archs_arg = f"sample:{args.planned}"
    if args.order is not None:
        try:
            ordered = _archs(str(args.order))
        except ValueError as exc:
            parser.error(f"--order {args.order}: {exc}")
        if sorted(ordered) != sample:
            parser.error(f"--order {args.order} lists {len(ordered):,} archs that are not the {args.planned:,} of "
                         f"sample:{args.planned} --seed 0; write that sample in any order, or drop --order")
        archs_arg = os.path.relpath(args.order, out)
    copy = out / "stores" / args.store[0].name
    backup(args.store[0], copy)
    merged = merge(copy, args.store[1:]) if len(args.store) > 1 else None
    outside = keep_only(copy, sample)
    long = load(copy)
    long.drop(columns=["settings"]).assign(settings=[str(s) for s in long["settings"]]).to_csv(
        out / f"scores_{args.dataset}.csv", index=False)
    wide = pivot(long)
    per_proxy = wide.notna().sum().sort_values(ascending=False)

    source = os.path.relpath(copy) if copy.resolve().is_relative_to(Path.cwd()) else str(copy)
    for truth in ("nasrobbench201", "nb201"):
        _correlate(copy, source, truth, args.dataset, out, args.bootstrap)
    if not args.stand_in:
        # transfer: the same scores against every dataset's accuracies (free; not a substitute for
        # scoring networks with the other datasets' heads)
        _correlate(copy, source, "nasrobbench201", "all", out / "transfer", args.bootstrap,
                   metrics=["clean", "pgd_8", "autoattack"])
    ensemble_dir = out / "ensemble"
    _correlate(copy, source, "nasrobbench201", args.dataset, ensemble_dir, args.bootstrap, metrics=["pgd_8"],
               ensemble="pgd_8")
    d = args.dataset
    from zcproxy.truth import load_nasrobbench201
    from zcproxy.validate import compare

    truth = load_nasrobbench201()
    paired = pd.DataFrame([
        {"score": name, "metric": metric, **compare(wide, truth, "ntk_clean", name, dataset=d, metric=metric,
                                                     bootstrap=args.bootstrap)}
        for name in ("ntk_robust", "ntk_joint_clean", "ntk_joint_robust") if {name, "ntk_clean"} <= set(wide.columns)
        for metric in ("clean", "pgd_8", "autoattack")])
    folds = pd.read_csv(ensemble_dir / f"correlation_nasrobbench201_{d}_ensemble_{d}_pgd_8.csv")
    table = pd.read_csv(out / f"correlation_nasrobbench201_{d}.csv")
    pgd = table[table["metric"] == "pgd_8"].sort_values("kendall", ascending=False)
    images = ("CIFAR-10 train images standing in for the dataset's own (labelled stand-in; the network has "
              f"the {d} head)" if args.stand_in else f"{d} train images")
    stand = " --stand-in" if args.stand_in else ""
    complete = int(wide.notna().all(axis=1).sum())
    status = ("complete" if complete >= args.planned else
              f"**in progress**: {complete} of the planned {args.planned:,} seeded representatives have every "
              "proxy scored so far (per-proxy counts below), so treat the ranking of proxies as preliminary"
              + (f"; archs are scored in the seeded random order of `{archs_arg}`, so the scored part is a "
                 "uniform subsample" if args.order is not None else ""))
    provenance = [f"Stores: {', '.join(str(s) for s in args.store)}, merged into `stores/{copy.name}`"
                  + (f" ({merged.added:,} rows added; {len(merged.conflicts)} values stored twice with different "
                     f"results kept from the first store{conflict_size(merged.conflicts)})" if merged else "")
                  + (f"; {outside:,} scores of architectures outside the sample left out." if outside else "."), ""]
    lines = [
        f"# {d} correlation study{' (CIFAR-10 stand-in inputs)' if args.stand_in else ''}",
        "",
        f"Exported {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `studies/study_export.py`. "
        f"Sample `--archs sample:{args.planned} --seed 0`"
        + (" (every representative)" if args.planned == len(NB201.unique()) else "") + f"; status: {status}."
        + (f" {args.note.strip()}" if args.note.strip() else ""),
        "",
        *provenance,
        f"Settings: {images}, batch 64, seed 0 (weights, batch and sample), NB201 C=16 N=5, all proxy defaults "
        "(NTK: FGSM eps 8/255, beta 1, frozen BN, summed output), one torch thread. Statistics over isomorphism "
        f"representatives only, {args.bootstrap:,} seeded bootstrap resamples, signed by each proxy's orientation.",
        "",
        "Resume (the store copy in `stores/` continues where this export stopped) and re-export:",
        "",
        f"    zcproxy score --dataset {d}{stand} --archs {archs_arg} --seed 0 --batch 64 --threads 1 \\",
        f"        --proxies {stored_proxies(per_proxy.index)} --store stores/{copy.name}",
        f"    python studies/study_export.py --dataset {d}{stand} --planned {args.planned} "
        f"--store stores/{copy.name}" + (f" --order {archs_arg}" if args.order is not None else ""),
        "",
        "Architectures scored per proxy output: "
        + ", ".join(f"{k} {v}" for k, v in per_proxy.items()) + ".",
        "",
        f"## Kendall tau-b with {d} PGD-8/255 accuracy (NAS-RobBench-201)",
        "",
        pgd[["proxy", "n", "kendall", "kendall_lo", "kendall_hi", "spearman", "top10"]]
        .to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Robust and joint NTK against the clean NTK (paired, same archs)",
        "",
        "delta = tau-b(score) - tau-b(ntk_clean); paired percentile bootstrap CI; p_not_better = share of "
        "resamples with delta <= 0. The paper's claim is delta > 0 for robust accuracy (PGD, AutoAttack); the "
        "clean-accuracy rows show whether a gain is specific to robustness.",
        "",
        paired.to_markdown(index=False, floatfmt=".3f") if len(paired) else "(no NTK scores in this store)",
        "",
        "## Rank ensembles, held out (members and weights chosen on one half, scored on the other)",
        "",
        folds.to_markdown(index=False, floatfmt=".3f"),
        "",
        f"Full tables: `correlation_nasrobbench201_{d}.{{csv,md}}` (all six metrics) and "
        f"`correlation_nb201_{d}.{{csv,md}}` (NAS-Bench-201 standard training), heatmaps and scatter plots "
        f"beside them; raw scores in `scores_{d}.csv`."
        + ("" if args.stand_in else f" `transfer/` correlates the same {d} scores with every dataset's clean, "
           "PGD-8 and AutoAttack accuracy."),
        "",
    ]
    (out / f"study_{d}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0



def _correlate(store: Path, source: str, truth_name: str, dataset: str, out: Path, bootstrap: int, *,
               metrics: list[str] | None = None, ensemble: str | None = None) -> None:
    """What ``zcproxy correlate --store SOURCE --truth TRUTH --dataset DATASET`` writes, through the library."""
    scores, degenerate, _ = report.load_scores([store])
    out.mkdir(parents=True, exist_ok=True)
    report.write_correlations(scores, load_truth(truth_name, "nb201"), out, stem=f"correlation_{truth_name}_{dataset}",
                              truth_name=truth_name, degenerate=degenerate,
                              datasets=None if dataset == "all" else [dataset], metrics=metrics, bootstrap=bootstrap,
                              seed=0, sources=[source], ensemble=ensemble)


def _archs(spec: str) -> list[int]:
    """NB201 indices of an ``--archs`` selection (seed 0)."""
    return [int(k) for k in select_archs(spec, NB201, seed=0)]

if __name__ == "__main__":
    sys.exit(main())
