"""NTK sweep study: attack x eps x beta x BatchNorm mode, resumable through the score store.

For every architecture of a seeded sample of representatives and every (attack, eps, bn) configuration,
the Jacobians J(X), J(A(X)), J(A(A(X))) are computed once (``zcproxy.proxies.ntk.ntk_scores_over_eps``) and
every beta is read off them. Each value is stored under exactly the settings ``zcproxy.score`` would record
for that proxy and options, so sweep values and ordinary scores are interchangeable in the store.

    python studies/ntk_sweep.py run --store runs/ntk_sweep.sqlite --archs 300 --batch-archs 100
    python studies/ntk_sweep.py run ... --shard 0/2 & python studies/ntk_sweep.py run ... --shard 1/2 &
    python studies/ntk_sweep.py report --store runs/ntk_sweep.sqlite --out results/correlation

``run`` scores every architecture with ``bn="frozen"`` (FGSM first, then PGD-10), then the first
``--batch-archs`` with ``bn="batch"`` (FGSM, then PGD-10); each item computes all eps and beta of one
(arch, attack, bn) from one clean Jacobian plus two per eps, so a partial run holds paired comparisons.
``--shard K/N`` takes every N-th work item starting at K, so N single-thread processes can share one store
without computing the same item twice (the store's busy timeout serialises their writes).
``report`` correlates every configuration with the benchmark (Kendall tau-b with bootstrap CIs) and writes
``ntk_sweep.csv``, ``ntk_sweep.md`` and ``ntk_sweep.png``, plus ``ntk_sweep_vs_clean.{csv,md,png}``: each robust
or joint score's tau minus the clean NTK's on the same archs, with a paired bootstrap CI (the paper's claim is
that this difference is positive for robust accuracy; the figure plots it for the joint robust kernel), and
``ntk_sweep_bn.{csv,md}``: each score's tau with batch-statistics BN minus its tau with frozen BN on the same
archs (paired CI).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from zcproxy.runner import shard_spec
from zcproxy.data import proxy_batch
from zcproxy.proxies.ntk import ntk_scores_over_eps
from zcproxy.scoring import ProxyResult, build_model, planned_settings
from zcproxy.space import NB201
from zcproxy.store import Store, load, settings_hash

ATTACKS = ("fgsm", "pgd")
EPS_TICKS = (1, 2, 3, 4, 8)
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
BN_MODES = ("frozen", "batch")
BASE_OUTPUTS = ("ntk_clean", "ntk_robust", "ntk_cond")
JOINT_OUTPUTS = ("ntk_joint_clean", "ntk_joint_robust")
ATTACK_FREE = ("ntk_clean", "ntk_cond")  # outputs that do not depend on the attack, eps or beta
# The committed sweep store was computed with float32 attacks (before the proxies' float64 default); the grid
# keeps them so the store resumes and reports unchanged (results/stability/ntk_attack_precision.md).
ATTACK_DTYPE = "float32"


def beta_of(label: str) -> float:
    """The beta of a joint output label such as ``ntk_joint_robust@0.25``; NaN for outputs without one."""
    return float(label.split("@")[1]) if "@" in label else np.nan


def higher_is_better(label: str) -> bool:
    """Orientation of a sweep output: lambda_min scores rise with trainability, the condition number falls."""
    return not label.startswith("ntk_cond")


def sample_archs(count: int, seed: int) -> list[int]:
    """A seeded uniform sample of representatives, in a seeded random order (prefixes are uniform too)."""
    unique = np.asarray(NB201.unique())
    order = np.random.default_rng(seed).permutation(len(unique))[:count]
    return [int(unique[i]) for i in order]


def configurations(bn_modes: tuple[str, ...]) -> list[tuple[str, int, str]]:
    return [(a, e, b) for b in bn_modes for a in ATTACKS for e in EPS_TICKS]


def planned(config: tuple[str, int, str], *, seed: int, batch_size: int) -> dict[str, dict]:
    """Output label -> settings that ``zcproxy.score`` records for it under this configuration."""
    attack, ticks, bn = config
    options = {"attack": attack, "eps": ticks / 255, "ntk_bn": bn, "attack_dtype": ATTACK_DTYPE}
    plan: dict[str, dict] = {}
    for name in BASE_OUTPUTS:
        plan[name] = planned_settings(name, seed=seed, batch_size=batch_size, **options)
    for name, beta in itertools.product(JOINT_OUTPUTS, BETAS):
        plan[f"{name}@{beta:g}"] = planned_settings(name, seed=seed, batch_size=batch_size, beta=beta, **options)
    return plan


def phases(archs: list[int], batch_archs: int) -> list[tuple[int, str, str]]:
    """Work items (arch, attack, bn): every arch with frozen BN, FGSM then PGD-10 (3-4x the cost in this
    sweep), then the BN-batch subset the same way. Batch-mode Jacobians cost 12-15x frozen ones (N backward
    passes of the batch, results/perf/ntk_batch_rows.md), so they come last; a partial run already answers
    the attack/eps/beta questions on paired archs."""
    items = [(arch, attack, "frozen") for attack in ATTACKS for arch in archs]
    items += [(arch, attack, "batch") for attack in ATTACKS for arch in archs[:batch_archs]]
    return items


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    archs = sample_archs(args.archs, args.seed)
    batch = proxy_batch("cifar10", n=args.batch, seed=args.seed, data_dir=args.data_dir)
    started = time.perf_counter()
    shard, shards = args.shard
    with Store(args.store) as store:
        work = phases(archs, args.batch_archs)[shard::shards]
        for position, (arch, attack, bn) in enumerate(work):
            plans = {ticks: planned((attack, ticks, bn), seed=args.seed, batch_size=args.batch)
                     for ticks in EPS_TICKS}
            todo = [ticks for ticks, plan in plans.items()
                    if not all(store.done(arch, label.split("@")[0], settings_hash(s)) for label, s in plan.items())]
            if not todo:
                continue
            model = build_model(arch, "cifar10", args.seed)
            t0 = time.perf_counter()
            grid = ntk_scores_over_eps(model, batch.x, batch.y, eps_values=[t / 255 for t in todo], attack=attack,
                                       betas=BETAS, bn=bn, seed=args.seed, attack_dtype=ATTACK_DTYPE)
            seconds = (time.perf_counter() - t0) / len(todo)
            flags = frozenset({"degenerate"}) if NB201.is_zero_output(arch) else frozenset()
            for ticks, values in zip(todo, grid):
                # The store keys results by output name, so each beta is its own write; an item interrupted
                # midway is simply recomputed on the next run.
                for label, settings in plans[ticks].items():
                    name = label.split("@")[0]
                    result = ProxyResult(float(values[label]), seconds, settings, flags, higher_is_better(name))
                    store.put(arch, {name: result}, device="cpu")
            elapsed = time.perf_counter() - started
            print(f"[{position + 1}/{len(work)}] arch {arch} {attack} bn={bn} done ({elapsed / 60:.1f} min)",
                  flush=True)
    return 0


def report(args: argparse.Namespace) -> int:
    from zcproxy.truth import load_nasrobbench201
    from zcproxy.validate import compare, correlate
    from zcproxy.validate.plots import plot_sweep

    long = load(args.store)
    if long.empty:
        print(f"{args.store} holds no scores yet; run `ntk_sweep.py run` first", file=sys.stderr)
        return 1
    truth = load_nasrobbench201(args.data_dir)
    rows, paired, skipped, frames = [], [], [], {}
    for (attack, ticks, bn) in configurations(BN_MODES):
        plan = planned((attack, ticks, bn), seed=args.seed, batch_size=args.batch)
        columns = {}
        for label, settings in plan.items():
            h = settings_hash(settings)
            part = long[long["settings_hash"] == h]
            if len(part):
                columns[label] = part.set_index("arch")["value"]
        if not columns:
            continue
        scores = pd.DataFrame(columns)
        counts = scores.notna().sum()
        scores = scores.loc[:, counts >= args.min_archs]
        if not any(c not in ATTACK_FREE for c in scores.columns):
            attacked = [c for c in counts.index if c not in ATTACK_FREE]
            if attacked:
                skipped.append(f"{attack} {ticks}/255 {bn} ({int(counts[attacked].max())} archs)")
            continue
        frames[(attack, ticks, bn)] = scores
        orientation = {label: higher_is_better(label) for label in scores.columns}
        table = correlate(scores, truth, datasets=["cifar10"], metrics=["clean", "pgd_8", "autoattack"],
                          orientation=orientation, bootstrap=args.bootstrap, seed=args.seed)
        table.insert(0, "attack", attack)
        table.insert(1, "eps", ticks / 255)
        table.insert(2, "bn", bn)
        rows.append(table)
        if "ntk_clean" in scores.columns:
            for label in (c for c in scores.columns if c not in ATTACK_FREE):
                for metric in ("pgd_8", "autoattack"):
                    diff = compare(scores, truth, "ntk_clean", label, dataset="cifar10", metric=metric,
                                   orientation=orientation, bootstrap=args.bootstrap, seed=args.seed)
                    paired.append({"attack": attack, "eps": ticks / 255, "bn": bn, "score": label,
                                   "beta": beta_of(label),
                                   "metric": metric, **diff})
    if not rows:
        print(f"{args.store}: no configuration has {args.min_archs} scored archs yet (--min-archs)", file=sys.stderr)
        return 1
    out = pd.concat(rows, ignore_index=True)
    out["beta"] = [beta_of(p) for p in out["proxy"]]
    out["kind"] = [p.split("@")[0] for p in out["proxy"]]
    target = Path(args.out)
    target.mkdir(parents=True, exist_ok=True)
    out.to_csv(target / "ntk_sweep.csv", index=False)
    keep = ["attack", "eps", "bn", "proxy", "metric", "n", "kendall", "kendall_lo", "kendall_hi", "spearman"]
    md = out[keep].copy()
    md["eps"] = [f"{e * 255:g}/255" for e in md["eps"]]
    header = (f"NTK sweep (CIFAR-10 batch {args.batch}, seed {args.seed}, {args.bootstrap} bootstrap resamples); "
              f"Kendall tau-b vs NAS-RobBench-201 CIFAR-10 accuracy over the scored representatives.\n\n")
    if skipped:
        header += (f"Left out (fewer than {args.min_archs} scored archs so far): {', '.join(skipped)}.\n\n")
    (target / "ntk_sweep.md").write_text(header + md.to_markdown(index=False, floatfmt=".3f") + "\n")
    if paired:
        vs_clean = pd.DataFrame(paired)
        joint = vs_clean[(vs_clean["metric"] == "pgd_8") & vs_clean["score"].str.startswith("ntk_joint_robust@")]
        if len(joint):
            plot_sweep(joint.rename(columns={"delta": "kendall", "delta_lo": "lo", "delta_hi": "hi"}),
                       target / "ntk_sweep_vs_clean.png", ylabel="tau(joint robust) - tau(clean NTK), PGD-8",
                       zero_line=True)
        vs_clean.to_csv(target / "ntk_sweep_vs_clean.csv", index=False)
        (target / "ntk_sweep_vs_clean.md").write_text(
            "Robust / joint NTK scores against the clean NTK on the same architectures: delta = Kendall tau-b(score) "
            "- tau-b(ntk_clean) with CIFAR-10 accuracy, paired percentile bootstrap CI "
            f"({args.bootstrap} resamples, seed {args.seed}); p_not_better = share of resamples with delta <= 0.\n\n"
            + vs_clean.assign(eps=[f"{e * 255:g}/255" for e in vs_clean["eps"]]).drop(columns="beta")
            .to_markdown(index=False, floatfmt=".3f") + "\n")
    by_bn = bn_effect(frames, truth, min_archs=args.min_archs, bootstrap=args.bootstrap, seed=args.seed)
    if by_bn:
        pd.DataFrame(by_bn).to_csv(target / "ntk_sweep_bn.csv", index=False)
        (target / "ntk_sweep_bn.md").write_text(
            "Batch-statistics BN against frozen BN for the same score on the same architectures: delta = Kendall "
            "tau-b(bn=batch) - tau-b(bn=frozen) with CIFAR-10 accuracy, paired percentile bootstrap CI "
            f"({args.bootstrap} resamples, seed {args.seed}); p_not_better = share of resamples with delta <= 0. "
            "ntk_clean and ntk_cond do not depend on the attack (one row each).\n\n"
            + pd.DataFrame(by_bn).to_markdown(index=False, floatfmt=".3f") + "\n")
    curves = out[(out["metric"] == "pgd_8") & out["kind"].eq("ntk_joint_robust")]
    if len(curves):
        frame = curves.rename(columns={"kendall_lo": "lo", "kendall_hi": "hi"})
        plot_sweep(frame[["eps", "beta", "attack", "bn", "kendall", "lo", "hi"]], target / "ntk_sweep.png")
    print(md.to_markdown(index=False, floatfmt=".3f"))
    return 0


def bn_effect(frames: dict[tuple[str, int, str], pd.DataFrame], truth: pd.DataFrame, *, min_archs: int,
              bootstrap: int, seed: int) -> list[dict]:
    """Paired tau(bn="batch") - tau(bn="frozen") of every score scored both ways on at least ``min_archs``."""
    from zcproxy.validate import compare

    rows, attack_free_done = [], set()
    for (attack, ticks, bn), frozen in frames.items():
        batch = frames.get((attack, ticks, "batch"))
        if bn != "frozen" or batch is None:
            continue
        for label in frozen.columns.intersection(batch.columns):
            free = label in ATTACK_FREE
            if free and label in attack_free_done:
                continue
            higher = higher_is_better(label)
            pair = pd.DataFrame({"frozen": frozen[label], "batch": batch[label]})
            for metric in ("pgd_8", "autoattack"):
                diff = compare(pair, truth, "frozen", "batch", dataset="cifar10", metric=metric,
                               orientation={"frozen": higher, "batch": higher}, bootstrap=bootstrap, seed=seed)
                if diff["n"] < min_archs:
                    break
                rows.append({"attack": "-" if free else attack, "eps": "-" if free else f"{ticks}/255",
                             "score": label, "metric": metric, **diff})
            else:
                if free:
                    attack_free_done.add(label)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--store", default="runs/ntk_sweep.sqlite")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--data-dir", default=None)
    run_p, report_p = sub.choices["run"], sub.choices["report"]
    run_p.add_argument("--archs", type=int, default=300)
    run_p.add_argument("--batch-archs", type=int, default=100)
    run_p.add_argument("--threads", type=int, default=1)
    run_p.add_argument("--shard", type=shard_spec, default=(0, 1),
                       help="K/N: run every N-th work item from the K-th (N processes share one store)")
    report_p.add_argument("--out", default="results/correlation")
    report_p.add_argument("--bootstrap", type=int, default=1000)
    report_p.add_argument("--min-archs", type=int, default=30,
                          help="leave out configurations scored on fewer archs (default 30)")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
