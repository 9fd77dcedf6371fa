"""VKDNW's population rankings (Tybl & Neumann, CVPR 2025) beside the per-architecture proxy, on the archs
where every input is scored.

``zcproxy.proxies.vkdnw.vkdnw_ranks`` turns a score table into ``vkdnw_single`` (the dense lexicographic rank
of (number of parameter tensors, VKDNW entropy)) and ``vkdnw_agg`` (``vkdnw_single`` + log ranks of AZ-NAS
expressivity and trainability, FLOPs and jacob_cov, the paper's aggregate). Both are relative to the scored
population, so each set is ranked on exactly the archs where every column is present:

* ``darts1000``: the 1,000 DARTS architectures of SWAP-NAS (every output scored), CIFAR-10 clean accuracy
  after 200 epochs of standard training;
* ``nb201_sample``: NB201 representatives of the correlation study's seeded 1,000-arch sample that also have
  VKDNW in the all-representatives store (AZ-NAS comes from the sample store; jacob_cov and FLOPs are equal
  in both), against NAS-RobBench-201 CIFAR-10 clean / PGD-8/255 / AutoAttack accuracy and NAS-Bench-201
  CIFAR-10 standard-training accuracy.

Writes ``results/correlation/vkdnw_rankings.{csv,md}``: Kendall tau-b with 95 % bootstrap CIs (1,000
resamples) for vkdnw, vkdnw_dim, vkdnw_single, vkdnw_agg and the parameter count on the same archs.

    OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python studies/vkdnw_rankings.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies import ROOT, wide_scores  # noqa: E402

OUT = ROOT / "results" / "correlation" / "vkdnw_rankings"
DARTS_STORE = ROOT / "results" / "correlation" / "darts" / "stores" / "darts1000.sqlite"
COLUMNS = ["vkdnw", "vkdnw_dim", "vkdnw_single", "vkdnw_agg", "params"]
INPUTS = ["vkdnw", "vkdnw_dim", "az_nas_expressivity", "az_nas_trainability", "flops", "jacov", "params"]
NB201_TARGETS = [("nasrobbench201", "pgd_8"), ("nasrobbench201", "clean"), ("nasrobbench201", "autoattack"),
                 ("nb201", "clean")]


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` with every input scored, and the paper's two population rankings added."""
    from zcproxy.proxies.vkdnw import vkdnw_ranks

    missing = [c for c in INPUTS if c not in table.columns]
    if missing:
        raise SystemExit(f"the score table lacks {missing}; score them first")
    complete = table.loc[table[INPUTS].notna().all(axis=1), INPUTS]
    return complete.join(vkdnw_ranks(complete))


def _rows(set_name: str, scores: pd.DataFrame, truth: pd.DataFrame, source: str, metric: str,
          bootstrap: int) -> list[dict]:
    from zcproxy.validate import correlate

    orientation = {"vkdnw_single": True, "vkdnw_agg": True}
    table = correlate(scores[COLUMNS], truth, datasets=["cifar10"], metrics=[metric], orientation=orientation,
                      bootstrap=bootstrap)
    return [{"set": set_name, "truth": f"{source} {metric}", "output": r["proxy"], "n": int(r["n"]),
             "kendall": r["kendall"], "kendall_lo": r["kendall_lo"], "kendall_hi": r["kendall_hi"]}
            for _, r in table.iterrows()]


def run(bootstrap: int, vkdnw_store: Path | None = None) -> pd.DataFrame:
    import zcproxy.store
    from zcproxy.truth import load_nasrobbench201, load_nb201, load_truth

    rows: list[dict] = []
    darts = ranked(zcproxy.store.pivot(zcproxy.store.load(DARTS_STORE)))
    rows += _rows("darts1000", darts, load_truth("darts1000", "darts"), "darts1000", "clean", bootstrap)
    sample, _ = wide_scores("sample_1000")
    everything = (wide_scores("all_representatives")[0] if vkdnw_store is None
                  else zcproxy.store.pivot(zcproxy.store.load(vkdnw_store)))
    nb201 = sample.drop(columns=[c for c in ("vkdnw", "vkdnw_dim") if c in sample.columns]).join(
        everything[[c for c in ("vkdnw", "vkdnw_dim") if c in everything.columns]], how="inner")
    nb201 = ranked(nb201)
    truths = {"nasrobbench201": load_nasrobbench201(), "nb201": load_nb201()}
    for source, metric in NB201_TARGETS:
        rows += _rows("nb201_sample", nb201, truths[source], source, metric, bootstrap)
    return pd.DataFrame(rows)


def report(frame: pd.DataFrame) -> list[str]:
    lines = ["# VKDNW's population rankings", "",
             "Command: `OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python studies/vkdnw_rankings.py` "
             "(definitions in its docstring and in `zcproxy.proxies.vkdnw.vkdnw_ranks`). Kendall tau-b, 95 % "
             "bootstrap CI; `vkdnw_single` and `vkdnw_agg` rank the archs of each set among themselves.", ""]
    for (set_name, truth), group in frame.groupby(["set", "truth"], sort=False):
        lines += [f"## {set_name}: {truth} ({int(group['n'].max())} archs)", "",
                  "| output | n | Kendall tau [95 % CI] |", "|---|---:|---|"]
        for _, r in group.iterrows():
            lines.append(f"| {r['output']} | {r['n']} | {r['kendall']:.3f} [{r['kendall_lo']:.3f}, {r['kendall_hi']:.3f}] |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--vkdnw-store", type=Path, default=None,
                        help="NB201 store holding vkdnw (default: the committed all-representatives store)")
    args = parser.parse_args(argv)
    frame = run(args.bootstrap, args.vkdnw_store)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT.with_suffix(".csv"), index=False, float_format="%.6g")
    OUT.with_suffix(".md").write_text("\n".join(report(frame)).rstrip("\n") + "\n")
    print("\n".join(report(frame)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
