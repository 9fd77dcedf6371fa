"""Search study: how good is the architecture a zero-cost-proxy-guided search finds on NAS-RobBench-201?

CIFAR-10, objective PGD-8/255 accuracy. For each strategy (random, REA, prune) x objective (stored proxy
outputs, an ensemble, and the oracle = the benchmark's true PGD-8 accuracy), ``--seeds`` runs with a
budget of ``--budget`` proxy evaluations; the found architecture is judged by its true accuracies, its
percentile among the 6,466 representatives and its regret against the benchmark's best (48.11 %).

Proxy values come only from score stores (``--store``, repeatable: SQLite stores or their long CSV
exports, merged); a proxy searches only the architectures scored for it. To keep the ensemble and the
choice of proxies free of selection bias, the 6,466 representatives are split in two seeded halves:
proxies are ranked and ensembles fitted on the *fit* half, and every search runs on the *search* half,
restricted to the architectures scored there. Proxies scored on different subsets get different pools;
each pool has its own oracle row (the same search driven by true PGD-8 on that pool), so every proxy
row has a like-for-like reference. Without a store, only the oracle (over all representatives) and the
exact parameter-count proxy (``--params``, computed for every representative from per-op counts checked
against built models) run.

With a store, two more kinds of rows (issue 22's search targets): a *zero-shot* objective, the equal-weight
AZ-NAS mean of log ranks of 1-3 widely scored outputs chosen on the fit half by the REA outcome there
(label-free: no label enters the objective, fit-half labels only choose it), searched like every proxy; and
*few-shot predictor search* (strategy ``predictor``) on the search half, whose evaluations are true PGD-8
labels counted in the same budget, with the stored outputs + NB201 graph features as free features
(``--predictor-grid`` configurations).

    ZCPROXY_DATA=../shared/data .venv/bin/python studies/search_study.py \
        [--store results/correlation/all_representatives/stores/leaders_cifar10.sqlite \
         --store results/correlation/stores/study_cifar10.sqlite] [--params] \
        [--seeds 20] [--budget 100] [--zero-shot-members 3] [--predictor-grid 20x10,50x10,20x5] \
        [--out results/search]

Writes ``runs.csv`` (every run at every budget), ``summary.csv``/``summary.md`` (at ``--budget``) and
``budget_curve.png`` (mean true PGD-8 of the found architecture vs budget), and with a store
``zero_shot_candidates.csv`` (every zero-shot candidate with its fit-half criterion).
"""
from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import matplotlib
import scipy.stats
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from zcproxy.cli._args import assignment
from zcproxy.search import (Budget, Objective, TableSource, assess, ensemble_source, oracle_source, read_scores,
                            run, stored_table)
from zcproxy.search.sources import orientation_of
from zcproxy.space import NB201, OPS
from zcproxy.truth import load_nasrobbench201

DATASET, TARGET = "cifar10", "pgd_8"
NTK_OUTPUTS = ("ntk_robust", "ntk_joint_robust", "ntk_joint_clean", "ntk_clean")
CURVE_BUDGETS = (10, 20, 50, 100, 200, 300)
STRATEGY_OPTIONS = {"random": {}, "rea": {"population": 20, "sample_size": 5}, "prune": {}}


def exact_params() -> pd.Series:
    """Parameter count (M) of every representative: all-none network plus one count per (edge, op).

    Each edge op owns its parameters, so the count is additive over edges; the per-op counts are read
    from built networks and the sum is checked against 12 more built networks.
    """
    def count(arch: str) -> int:
        return sum(p.numel() for p in NB201.build(arch).parameters())

    def arch_of(ops: list[str]) -> str:
        return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)

    base = count(arch_of(["none"] * 6))
    per_op = {op: count(arch_of([op] + ["none"] * 5)) - base for op in OPS}
    reps = NB201.unique()
    total = pd.Series({r: base + sum(per_op[op] for op in NB201.genotype(r)) for r in reps}, dtype=np.float64)
    for r in np.random.default_rng(0).choice(reps, 12, replace=False):
        if count(NB201.arch(int(r))) != total[r]:
            raise AssertionError(f"additive parameter count is wrong for architecture {r}")
    return total / 1e6


def halves(split_seed: int) -> tuple[set, set]:
    """(fit half, search half) of the 6,466 representatives, split by ``split_seed``."""
    order = np.random.default_rng(split_seed).permutation(np.asarray(NB201.unique()))
    return set(order[: len(order) // 2].tolist()), set(order[len(order) // 2:].tolist())


def fit_half_tau(values: pd.Series, target: pd.Series, higher_is_better: bool) -> float:
    tau = scipy.stats.kendalltau(values if higher_is_better else -values, target.reindex(values.index)).statistic
    return float(tau)


def build_objectives(args: argparse.Namespace, truth: pd.DataFrame,
                     log: list[str]) -> dict[str, tuple[TableSource, str]]:
    """name -> (source, pool label). Sources are restricted to their pool."""
    target = truth[(DATASET, TARGET)]
    objectives: dict[str, tuple[TableSource, str]] = {}
    objectives["oracle [all 6466]"] = (oracle_source(truth, dataset=DATASET, metric=TARGET), "all 6466")
    if args.params:
        objectives["params (exact)"] = (TableSource("params", exact_params(), higher_is_better=True), "all 6466")
    if not args.store:
        log.append("No --store given: no stored proxy scores; oracle and exact params only.")
        return objectives
    missing = [s for s in args.store if not Path(s).exists()]
    if missing:
        log.append(f"Store(s) {', '.join(missing)} do not exist yet: oracle and exact params only.")
        return objectives
    values, degenerate = stored_values(args)
    reps = np.asarray(NB201.unique())
    values = values[values.index.isin(set(reps.tolist()))]
    counts = values.notna().sum()
    keep = [o for o in values.columns if counts[o] >= args.min_scored]
    dropped = [o for o in values.columns if o not in keep]
    if dropped:
        log.append(f"Outputs with fewer than {args.min_scored} scored archs left out: {', '.join(dropped)}.")
    fit_half, search_half = halves(args.split_seed)
    log.append(f"Representatives split (seed {args.split_seed}) into a fit half of {len(fit_half)} (proxy "
               f"choice, ensemble fit) and a search half of {len(search_half)} (every search below); each output "
               "searches the part of the search half where it is scored, and its oracle row runs on that same pool.")
    scored = {o: values[o].dropna().index for o in keep}
    fit = {o: scored[o][scored[o].isin(fit_half)] for o in keep}
    search = {o: scored[o][scored[o].isin(search_half)] for o in keep}
    keep = [o for o in keep if len(search[o]) >= 2 * args.budget]
    if not keep:
        log.append(f"No output is scored on 2 x budget = {2 * args.budget} search-half archs: proxy rows skipped.")
        return objectives
    orient = {o: orientation_of(o) for o in keep}
    taus = {o: fit_half_tau(values.loc[fit[o], o], target, orient[o]) for o in keep}
    ranked = sorted(taus, key=taus.get, reverse=True)
    log.append("Fit-half Kendall tau vs CIFAR-10 PGD-8 (archs): "
               + ", ".join(f"{o} {taus[o]:+.3f} ({len(fit[o])})" for o in ranked))
    chosen = list(dict.fromkeys(ranked[: args.top] + [o for o in NTK_OUTPUTS if o in keep]))
    pools: dict[frozenset, str] = {}

    def pool_label(domain: pd.Index) -> str:
        key = frozenset(domain.tolist())
        if key not in pools:
            label = "search half" if len(key) == len(search_half) else f"search half, {len(key)} scored"
            pools[key] = label
            objectives[f"oracle [{label}]"] = (oracle_source(truth, dataset=DATASET, metric=TARGET,
                                                             domain=sorted(key)), label)
        return pools[key]

    for o in chosen:
        column = values.loc[search[o], o]
        flags = degenerate.reindex(index=column.index)[o].fillna(False).to_numpy(bool)
        objectives[o] = (TableSource(o, column, higher_is_better=orient[o], degenerate=column.index[flags]),
                         pool_label(column.index))
    widest = max(len(scored[o]) for o in keep)
    groups = {"wide": [o for o in keep if len(scored[o]) >= 0.9 * widest], "all": keep}
    if groups["all"] == groups["wide"]:
        del groups["all"]
    from zcproxy.validate.ensemble import fit_ensemble

    for group, members in groups.items():
        table = values[members].dropna()
        fit_rows = table.index[table.index.isin(fit_half)]
        search_rows = table.index[table.index.isin(search_half)]
        if len(search_rows) < 2 * args.budget:
            log.append(f"Ensembles over {group} outputs skipped: {len(search_rows)} search-half archs have all "
                       f"{len(members)} scored (< 2 x budget).")
            continue
        for method in ("logrank", "nnls"):
            ensemble = fit_ensemble(table.loc[fit_rows], target.reindex(fit_rows), method=method, max_members=5,
                                    orientation=orient)
            name = f"ensemble ({method}): {'+'.join(ensemble.members)}" + (" [all outputs]" if group == "all" else "")
            log.append(f"{name}: fitted on the {len(fit_rows)} fit-half archs with all {len(members)} "
                       f"{'' if group == 'all' else 'widely scored '}outputs, weights "
                       + ", ".join(f"{w:.3g}" for w in ensemble.weights) + ".")
            source = ensemble_source(table.loc[search_rows], ensemble,
                                     degenerate=degenerate.reindex(index=search_rows))
            objectives[name] = (source, pool_label(search_rows))
    return objectives


def stored_values(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide (values, degenerate) over every --store; a score stored twice under the same settings keeps the
    first store's (different settings stay apart for the --setting filter and its ambiguity check)."""
    long = pd.concat([read_scores(s) for s in args.store], ignore_index=True)
    key = ["arch", "proxy"] + (["settings_hash"] if "settings_hash" in long.columns else [])
    long = long.drop_duplicates(subset=key, keep="first")
    settings = dict(assignment(kv) for kv in args.setting) if args.setting else None
    outputs = sorted(set(long["proxy"]))
    if args.proxies:
        outputs = [o for o in args.proxies.split(",") if o]
    return stored_table(long, outputs, settings=settings)


def wide_table(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(values, degenerate) of the widely scored outputs (scored on at least 90 % as many archs as the widest
    one) on the representatives that have all of them; None without a usable store."""
    if not args.store or any(not Path(s).exists() for s in args.store):
        return None
    values, degenerate = stored_values(args)
    values = values[values.index.isin(set(NB201.unique()))]
    counts = values.notna().sum()
    keep = [o for o in values.columns if counts[o] >= args.min_scored]
    if not keep:
        return None
    members = [o for o in keep if counts[o] >= 0.9 * counts[keep].max()]
    table = values[members].dropna()
    return table, degenerate.reindex(index=table.index, columns=members).fillna(False).astype(bool)


def within_percentile(found: list, target: pd.Series) -> np.ndarray:
    """Percentile of each found arch among the archs of ``target`` (share with a value <= its value)."""
    values = target.to_numpy()
    return np.array([100.0 * float((values <= target[a]).mean()) for a in found])


def choose_zero_shot(table: pd.DataFrame, degenerate: pd.DataFrame, fit_half: set, target: pd.Series,
                     args: argparse.Namespace) -> pd.DataFrame:
    """Rank every label-free candidate objective on the fit half only; best first.

    Candidates: the AZ-NAS mean of log ranks with equal weights (``ensemble_source`` with weights 1) of every
    set of 1..``--zero-shot-members`` outputs of ``table``. Criterion (the search target measured on the fit
    half): REA (``--seeds`` seeds, ``--budget``) on the fit half driven by the candidate; the found arch's
    percentile among the fit half by true PGD-8; candidates ordered by the median, then the mean of those
    percentiles, then fewer members. ``top5`` (the mean fit-half percentile of the candidate's five
    best-ranked fit-half archs) is reported, not used.
    """
    fit_rows = table.index[table.index.isin(fit_half)]
    target_fit = target.reindex(fit_rows)
    rows = []
    for size in range(1, args.zero_shot_members + 1):
        for members in itertools.combinations(table.columns, size):
            source = ensemble_source(table.loc[fit_rows, list(members)], dict.fromkeys(members, 1.0),
                                     degenerate=degenerate.loc[fit_rows])
            found = [run("rea", Objective(source, Budget(args.budget)), seed=seed, **STRATEGY_OPTIONS["rea"]).chosen
                     for seed in range(args.seeds)]
            percentile = within_percentile(found, target_fit)
            top5 = sorted(source.values, key=lambda a: (-source.values[a], a))[:5]
            rows.append({"members": "+".join(members), "size": size,
                         "fit_rea_median": float(np.median(percentile)), "fit_rea_mean": float(percentile.mean()),
                         "fit_top5_mean": float(within_percentile(top5, target_fit).mean())})
    ranked = pd.DataFrame(rows).sort_values(["fit_rea_median", "fit_rea_mean", "size"],
                                            ascending=[False, False, True], kind="stable")
    return ranked.reset_index(drop=True)


def add_zero_shot(objectives: dict, table: pd.DataFrame, degenerate: pd.DataFrame, truth: pd.DataFrame,
                  args: argparse.Namespace, log: list[str]) -> tuple[str, pd.DataFrame]:
    """Choose the label-free objective on the fit half (:func:`choose_zero_shot`) and add it, restricted to
    the search half, to ``objectives``; returns its name and the ranked candidates."""
    fit_half, search_half = halves(args.split_seed)
    ranked = choose_zero_shot(table, degenerate, fit_half, truth[(DATASET, TARGET)], args)
    members = ranked.loc[0, "members"].split("+")
    search_rows = table.index[table.index.isin(search_half)]
    source = ensemble_source(table.loc[search_rows, members], dict.fromkeys(members, 1.0),
                             degenerate=degenerate.loc[search_rows])
    pool = "search half" if len(search_rows) == len(search_half) else f"search half, {len(search_rows)} scored"
    if f"oracle [{pool}]" not in objectives:
        objectives[f"oracle [{pool}]"] = (oracle_source(truth, dataset=DATASET, metric=TARGET,
                                                        domain=search_rows), pool)
    name = f"ensemble (zero-shot log-rank): {'+'.join(members)}"
    objectives[name] = (source, pool)
    best = ", ".join(f"{r.members} {r.fit_rea_median:.2f}/{r.fit_rea_mean:.2f}" for r in ranked.head(5).itertuples())
    log.append(f"Zero-shot (label-free) objective: the equal-weight AZ-NAS mean of log ranks of 1-"
               f"{args.zero_shot_members} of the {table.shape[1]} widely scored outputs ({len(ranked)} candidates), "
               f"chosen on the fit half only by REA there ({args.seeds} seeds, budget {args.budget}; median, then "
               f"mean, fit-half percentile of the found arch). Best five (median/mean): {best}. Chosen: "
               f"{'+'.join(members)}, searched on the {len(search_rows)} search-half archs.")
    return name, ranked


def parse_grid(text: str) -> list[tuple[int, int, str]]:
    """``INITIALxBATCH[:MODEL],...`` -> [(initial, batch, model)]; model defaults to random_forest."""
    from zcproxy.validate.predictor import MODELS

    grid = []
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        shape, _, model = entry.partition(":")
        try:
            initial, batch = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise ValueError(f"--predictor-grid entry {entry!r} is not INITIALxBATCH[:MODEL]") from None
        model = model or "random_forest"
        if model not in MODELS:
            raise ValueError(f"--predictor-grid entry {entry!r}: model must be one of {MODELS}")
        grid.append((initial, batch, model))
    return grid


def predictor_runs(table: pd.DataFrame, truth: pd.DataFrame, args: argparse.Namespace,
                   log: list[str]) -> pd.DataFrame:
    """Few-shot predictor search (strategy ``predictor``) on the search half, one configuration per
    ``--predictor-grid`` entry: the true PGD-8 is the label source (each label one unit of ``--budget``);
    features = the stored outputs of ``table`` + the NB201 graph features, free. Rows at the curve budgets up
    to ``--budget`` (the prefix of a run is the run with the smaller budget)."""
    from zcproxy.validate.predictor import with_graph_features

    _, search_half = halves(args.split_seed)
    search_rows = table.index[table.index.isin(search_half)]
    pool = "search half" if len(search_rows) == len(search_half) else f"search half, {len(search_rows)} scored"
    features = with_graph_features(table.loc[search_rows], "nb201")
    budgets = [b for b in sorted(set(CURVE_BUDGETS) | {args.budget}) if b <= args.budget]
    rows = []
    for initial, batch, model in parse_grid(args.predictor_grid):
        name = f"few-shot {model} (initial {initial}, batch {batch})"
        for seed in range(args.seeds):
            objective = Objective(oracle_source(truth, dataset=DATASET, metric=TARGET, domain=search_rows),
                                  Budget(args.budget))
            result = run("predictor", objective, seed=seed, features=features, initial=initial, batch=batch,
                         model=model)
            picks = {b: (result.best_after(min(b, result.evaluations)), min(b, result.evaluations), 0.0)
                     for b in budgets}
            rows += verdict_rows("predictor", name, pool, seed, picks, truth)
    graph = features.shape[1] - table.shape[1]
    log.append(f"Few-shot predictor search (strategy predictor) on the {len(search_rows)} search-half archs: labels "
               f"= true PGD-8, each one unit of the budget of {args.budget}, the initial random ones included; "
               f"features = {table.shape[1]} stored outputs ({', '.join(table.columns)}) + {graph} NB201 graph "
               f"features, free; configurations run: {args.predictor_grid}.")
    return pd.DataFrame(rows)


def verdict_rows(strategy: str, name: str, pool: str, seed: int, picks: dict, truth: pd.DataFrame) -> list[dict]:
    """One row per budget of ``picks`` ({budget: (arch, evaluations, seconds)}) with the benchmark's verdict."""
    verdict = assess([p[0] for p in picks.values()], truth, dataset=DATASET, target=TARGET)
    return [{"strategy": strategy, "objective": name, "pool": pool, "budget": b, "seed": seed, "arch": arch,
             "evaluations": evaluations, "compute_seconds": seconds, "clean": v["clean"], "pgd_8": v["pgd_8"],
             "autoattack": v["autoattack"], "percentile": v["percentile"], "regret": v["regret"]}
            for (b, (arch, evaluations, seconds)), (_, v) in zip(picks.items(), verdict.iterrows())]


def run_all(objectives, truth, args) -> pd.DataFrame:
    budgets = sorted(set(CURVE_BUDGETS) | {args.budget})
    rows = []
    for strategy, options in STRATEGY_OPTIONS.items():
        for name, (source, pool) in objectives.items():
            for seed in range(args.seeds):
                if strategy == "prune":
                    results = {b: run(strategy, Objective(source, Budget(b)), seed=seed, **options) for b in budgets}
                    picks = {b: (r.chosen, r.evaluations, r.compute_seconds) for b, r in results.items()}
                else:  # a prefix of one long run is exactly the run with the smaller budget
                    long = run(strategy, Objective(source, Budget(max(budgets))), seed=seed, **options)
                    picks = {b: (long.best_after(min(b, long.evaluations)), min(b, long.evaluations), 0.0)
                             for b in budgets}
                rows += verdict_rows(strategy, name, pool, seed, picks, truth)
    return pd.DataFrame(rows)


@functools.cache
def _measured_seconds() -> pd.Series | None:
    path = Path(__file__).resolve().parents[1] / "results" / "perf" / "proxy_seconds.csv"
    return pd.read_csv(path).set_index("proxy")["median_seconds"] if path.exists() else None


def live_cost(objective: str) -> float:
    """Estimated seconds per live evaluation: the measured median of ``results/perf/proxy_seconds.csv``
    (one thread, batch 64) of the objective's proxy, summed over an ensemble's distinct proxies; NaN for
    the oracle and the few-shot predictor (its evaluations are labels, i.e. trained networks)."""
    from zcproxy.proxies import outputs

    seconds = _measured_seconds()
    if objective.startswith(("oracle", "few-shot")) or seconds is None:
        return float("nan")
    if objective.startswith("ensemble"):
        names = objective.split(": ", 1)[1].split(" [")[0].split("+")
    else:
        names = [objective.split(" ")[0]]
    owner = outputs()
    proxies = {owner[n][0] if n in owner else n for n in names}
    return float(sum(seconds.get(p, float("nan")) for p in proxies))


def summarise(runs: pd.DataFrame, budget: int, best_arch: int | None = None) -> pd.DataFrame:
    """Per (strategy, objective, pool) at ``budget``; ``found_best`` = share of runs returning ``best_arch``."""
    at = runs[runs["budget"] == budget]
    groups = at.groupby(["strategy", "objective", "pool"], sort=False)
    table = groups.agg(runs=("seed", "size"), evaluations=("evaluations", "mean"),
                       pgd_8_mean=("pgd_8", "mean"), pgd_8_std=("pgd_8", "std"),
                       clean_mean=("clean", "mean"), autoattack_mean=("autoattack", "mean"),
                       percentile_median=("percentile", "median"), percentile_mean=("percentile", "mean"),
                       percentile_std=("percentile", "std"), regret_mean=("regret", "mean"),
                       top1_share=("percentile", lambda p: float((p >= 99.0).mean())),
                       found_best=("arch", lambda a: float((a == best_arch).mean())))
    table = table.reset_index()
    table["live_seconds"] = [e * live_cost(o) for e, o in zip(table["evaluations"], table["objective"])]
    return table


def target_lines(summary: pd.DataFrame, zero_shot: str | None, best_arch: int) -> list[str]:
    """Issue 22's search targets, each marked met or not met from the summary at the study budget."""
    def found(r) -> int:
        return int(round(r.found_best * r.runs))

    lines = []
    for r in summary[(summary["strategy"] == "rea") & (summary["objective"] == zero_shot)].itertuples():
        verdict = "met" if r.percentile_median >= 99.8 else "not met"
        lines.append(f"Zero-shot target (REA with the best label-free objective, median percentile >= 99.8): "
                     f"**{verdict}**. {r.objective}: median {r.percentile_median:.2f}, mean {r.percentile_mean:.2f}, "
                     f"arch {best_arch} found in {found(r)} of {r.runs} seeds.")
    for r in summary[summary["strategy"] == "predictor"].itertuples():
        verdict = "met" if r.percentile_median >= 99.9 and found(r) >= r.runs / 4 else "not met"
        lines.append(f"Few-shot target (labels in the budget; median percentile >= 99.9 and arch {best_arch} in "
                     f">= 5 of 20 seeds): **{verdict}** by {r.objective}: median {r.percentile_median:.2f}, mean "
                     f"{r.percentile_mean:.2f}, arch {best_arch} found in {found(r)} of {r.runs} seeds.")
    return lines


def markdown(summary: pd.DataFrame, best: float, random_mean: float, args, log: list[str],
             best_arch: int | None = None, targets: list[str] = ()) -> str:
    rows = []
    for _, r in summary.iterrows():
        rows.append([r["strategy"], r["objective"], r["pool"], int(r["runs"]), f"{r['evaluations']:.0f}",
                     f"{100 * r['pgd_8_mean']:.2f} ± {100 * r['pgd_8_std']:.2f}", f"{100 * r['clean_mean']:.2f}",
                     f"{100 * r['autoattack_mean']:.2f}", f"{r['percentile_median']:.2f}",
                     f"{r['percentile_mean']:.2f} ± {r['percentile_std']:.2f}", f"{100 * r['top1_share']:.0f} %",
                     f"{100 * r['regret_mean']:.2f}",
                     "–" if np.isnan(r["live_seconds"]) else f"{r['live_seconds']:.0f}",
                     f"{round(r['found_best'] * r['runs']):.0f}/{int(r['runs'])}"])
    headers = ["strategy", "objective", "pool", "runs", "evals", "PGD-8 % (mean ± std)", "clean %", "AA %",
               "percentile (median)", "percentile (mean ± std)", "in top 1 %", "regret (pts)",
               "live s (est.)", f"found {best_arch}"]
    lines = [f"# Proxy-guided search on NAS-RobBench-201 ({DATASET}, objective PGD-8/255)", "",
             f"Budget {args.budget} proxy evaluations, seeds 0..{args.seeds - 1}. Benchmark optimum "
             f"{100 * best:.2f} % PGD-8 (three-seed mean); a uniformly random representative averages "
             f"{100 * random_mean:.2f} %. Percentile: share of the 6,466 representatives with PGD-8 ≤ the found "
             "one (100 = best). Oracle = the same search driven by the true PGD-8 values. Proxy values are read "
             "from the stores (0 s each here); live s (est.) = evaluations x the proxy's median seconds per "
             "architecture in results/perf/proxy_seconds.csv (1 thread, batch 64), what the run would cost "
             "scoring live. Strategy predictor: few-shot predictor search, its evaluations are labels (true "
             f"PGD-8 values, i.e. trained networks) and count in the same budget; found {best_arch} = runs "
             "returning the benchmark's best architecture.", ""]
    lines += [f"- {line}" for line in log] + [""]
    if targets:
        lines += ["## Targets (issue 22)", ""] + [f"- {line}" for line in targets] + ["", "## All rows", ""]
    lines.append(tabulate(rows, headers=headers, tablefmt="github"))
    return "\n".join(lines) + "\n"


def plotted(objectives: list[str]) -> list[str]:
    """The curves worth a line: drop exact duplicates of another curve (flops = params up to a constant
    factor here; ntk_joint_clean = ntk_robust at beta 1), the stored params when the exact one is there,
    and the log-rank ensembles and narrow-pool ensembles when a wide NNLS ensemble exists."""
    names = list(objectives)
    drop = {"flops", "ntk_joint_clean"}
    if "params (exact)" in names:
        drop.add("params")
    if any(n.startswith("ensemble (nnls)") and not n.endswith("]") for n in names):
        drop |= {n for n in names if n.startswith("ensemble") and (n.endswith("]") or "(logrank)" in n)}
    return [n for n in names if n not in drop]


def plot(runs: pd.DataFrame, best: float, path: Path) -> None:
    """Mean true PGD-8 of the found architecture vs budget: one panel per strategy, one line per objective."""
    curves = runs.groupby(["strategy", "objective", "budget"], sort=False)["pgd_8"].mean().reset_index()
    names = plotted(list(dict.fromkeys(curves["objective"])))
    palette = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
    colours = {o: palette(k % palette.N) for k, o in enumerate(names)}
    strategies = list(dict.fromkeys(curves["strategy"]))
    fig = Figure(figsize=(4 * len(strategies), 5.2))
    axes = fig.subplots(1, len(strategies), sharey=True, squeeze=False)[0]
    for ax, strategy in zip(axes, strategies):
        for objective in names:
            group = curves[(curves["strategy"] == strategy) & (curves["objective"] == objective)]
            style = "--" if objective.startswith("oracle") else "-"
            ax.plot(group["budget"], 100 * group["pgd_8"], style, color=colours[objective], marker="o",
                    markersize=3, label=objective)
        ax.axhline(100 * best, color="black", linewidth=0.8, label=f"benchmark best {100 * best:.2f} %")
        ax.set_xscale("log")
        ax.set_title(strategy)
        ax.set_xlabel("budget (labels)" if strategy == "predictor" else "budget (proxy evaluations)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("true PGD-8/255 of found arch (%, seed mean)")
    axes[0].set_ylim(top=100 * best + 0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(labels) + 2) // 3), 1, 1))
    FigureCanvasAgg(fig).print_png(str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", action="append", help="score store (.sqlite) or its long CSV export; "
                        "repeatable (stores are merged)")
    parser.add_argument("--proxies", help="comma list of stored outputs to consider (default: all stored)")
    parser.add_argument("--setting", action="append", help="key=value filter on stored settings (strings)")
    parser.add_argument("--params", action="store_true", help="add the exact parameter-count proxy (all reps)")
    parser.add_argument("--top", type=int, default=3, help="best proxies by fit-half tau to search with")
    parser.add_argument("--min-scored", type=int, default=200, help="drop outputs with fewer scored archs")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--zero-shot-members", type=int, default=3, help="label-free objective: equal-weight "
                        "log-rank ensembles of up to this many widely scored outputs, chosen on the fit half "
                        "(0: skip)")
    parser.add_argument("--predictor-grid", default="20x10,50x10,20x5",
                        help="few-shot predictor search configurations INITIALxBATCH[:MODEL], comma-separated "
                             "(model random_forest unless given; empty: skip)")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="results/search")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    truth = load_nasrobbench201(args.data_dir)
    pgd = truth[(DATASET, TARGET)].reindex(NB201.unique())
    log: list[str] = []
    best_arch = int(pgd.idxmax())
    _, search_half = halves(args.split_seed)
    objectives = build_objectives(args, truth, log)
    wide = wide_table(args) if args.zero_shot_members > 0 or parse_grid(args.predictor_grid) else None
    if wide is not None and wide[0].index.isin(search_half).sum() < 2 * args.budget:
        log.append("Zero-shot and few-shot rows skipped: fewer than 2 x budget search-half archs have every widely "
                   "scored output.")
        wide = None
    if wide is not None:
        log.append(f"The benchmark's best architecture {best_arch} ({100 * pgd.max():.2f} % PGD-8) is in the "
                   + ("search half: a search can find it." if best_arch in search_half else
                      f"fit half: no search can find it; the search half's best is "
                      f"{int(pgd[sorted(search_half)].idxmax())}."))
    zero_shot, ranked = add_zero_shot(objectives, *wide, truth, args, log) \
        if wide is not None and args.zero_shot_members > 0 else (None, None)
    runs = run_all(objectives, truth, args)
    if wide is not None and parse_grid(args.predictor_grid):
        runs = pd.concat([runs, predictor_runs(wide[0], truth, args, log)], ignore_index=True)
    summary = summarise(runs, args.budget, best_arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False, float_format="%.6g")
    summary.to_csv(out / "summary.csv", index=False, float_format="%.6g")
    if ranked is not None:
        ranked.to_csv(out / "zero_shot_candidates.csv", index=False, float_format="%.6g")
    text = markdown(summary, float(pgd.max()), float(pgd.mean()), args, log, best_arch,
                    target_lines(summary, zero_shot, best_arch))
    (out / "summary.md").write_text(text)
    plot(runs, float(pgd.max()), out / "budget_curve.png")
    print(text)
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {out}/runs.csv, summary.csv, summary.md, "
          "budget_curve.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
