"""NTK variants study (issue 22 part 4): how robust is the paper's answer to its own implementation choices?

The base is the paper's setting as the NTK sweep scores it: FGSM 8/255, frozen-BN Jacobians of the summed
output, seed 0 (network init and proxy batch), beta = 1, on the sweep's 300 seeded representatives in the
sweep's order (``ntk_sweep.sample_archs(300, 0)``, so any prefix is a uniform sample). Each variant changes
one thing:

1. ``float64_attack``   ntk_robust, ntk_joint_robust with the float64 attack (the sweep store's are float32)
2. ``eps16``            eps = 16/255
3. ``attack_bn_eval``   attack_bn = "eval" (BatchNorm in eval mode during the attack, as the benchmark's own
                        attacks were made)
4. ``trace_normalised`` normalize = "trace" (lambda_min / trace) for ntk_clean, ntk_robust, ntk_joint_robust
5. ``seed1``, ``seed2`` network init and proxy batch from seed 1 / 2: ntk_clean, ntk_robust,
                        ntk_joint_robust, ntk_cond
6. ``per_class_trace``, ``per_class_full``: ntk_output = "trace" (per-class kernels summed) / "full" (the
                        NC x NC kernel); about 10x the cost (one Jacobian row per class), so they run last.

Variants 2-6 use the float64 attack (the proxies' default). Every value is what ``zcproxy.score`` returns for
the variant's options and is stored under exactly the settings it records, so the store resumes, and its
values are interchangeable with any other store's.

    python studies/ntk_variants.py run --store runs/ntk_variants.sqlite --archs 300
    python studies/ntk_variants.py report --store runs/ntk_variants.sqlite --out results/correlation

``run`` works arch by arch through variants 1-5 (all of them for arch i before arch i+1), then arch by arch
through the per-class variants, skipping what the store already holds; a partial run therefore answers
1-5 on paired archs. ``report`` writes ``ntk_variants.csv`` and ``ntk_variants.md``: per variant and output
the Kendall tau-b with CIFAR-10 PGD-8, clean and AutoAttack accuracy (bootstrap CIs), the paired difference
with the base on the same archs (the sweep's float32 values for variant 1, the float64 base for 2-6; the
attack-free ntk_clean and ntk_cond of seed 0 come from the sweep store), robust - clean tau differences,
and seed-to-seed Kendall tau of each score. Variants with fewer than ``--min-archs`` scored archs are left
out and named.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import zcproxy
from zcproxy.data import proxy_batch
from zcproxy.proxies import spec as proxy_spec
from zcproxy.scoring import build_model, planned_settings
from zcproxy.store import Store, load, settings_hash

if str(Path(__file__).resolve().parent) not in sys.path:  # as a script: import the sibling study
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from ntk_sweep import higher_is_better, sample_archs  # noqa: E402  (the sweep's sample and orientation)

SAMPLE_SEED = 0  # the NTK sweep's sample of representatives
DATASET = "cifar10"
CLEAN, ROBUST, JOINT, COND = "ntk_clean", "ntk_robust", "ntk_joint_robust", "ntk_cond"
ALL_OUTPUTS = (CLEAN, ROBUST, JOINT, COND)
# The paper's setting (FGSM 8/255, frozen BN, beta 1) with the float64 attack: the base of variants 2-6.
BASE_OPTIONS: dict[str, Any] = {"attack": "fgsm", "eps": 8 / 255, "ntk_bn": "frozen", "beta": 1.0,
                                "attack_dtype": "float64"}
SWEEP_ATTACK_DTYPE = "float32"  # what results/correlation/stores/ntk_sweep.sqlite holds
METRICS = ("pgd_8", "clean", "autoattack")


@dataclass(frozen=True)
class Variant:
    name: str
    outputs: tuple[str, ...]
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    per_class: bool = False

    @property
    def all_options(self) -> dict[str, Any]:
        return {**BASE_OPTIONS, **self.options}


VARIANTS: tuple[Variant, ...] = (
    Variant("float64_attack", (ROBUST, JOINT)),
    Variant("eps16", (ROBUST, JOINT), options={"eps": 16 / 255}),
    Variant("attack_bn_eval", (ROBUST, JOINT), options={"attack_bn": "eval"}),
    Variant("trace_normalised", (CLEAN, ROBUST, JOINT), options={"normalize": "trace"}),
    Variant("seed1", ALL_OUTPUTS, seed=1),
    Variant("seed2", ALL_OUTPUTS, seed=2),
    Variant("per_class_trace", ALL_OUTPUTS, options={"ntk_output": "trace"}, per_class=True),
    Variant("per_class_full", ALL_OUTPUTS, options={"ntk_output": "full"}, per_class=True),
)
BY_NAME = {v.name: v for v in VARIANTS}


def options_for(names: tuple[str, ...] | list[str], options: dict[str, Any]) -> dict[str, Any]:
    """The options some proxy of ``names`` takes (score() refuses options no selected proxy knows)."""
    known = {k for n in names for k in proxy_spec(n).defaults}
    return {k: v for k, v in options.items() if k in known}


def calls(variant: Variant) -> list[tuple[str, ...]]:
    """The proxy groups scored together in one ``score()`` call (sharing Jacobians and attacks).

    Per-class Jacobians are N x C x P (up to ~4 GB at N = 64 on the largest NB201 networks) and one call
    keeps every Jacobian it computed until it returns, so per-class variants score one kernel per call:
    ntk_clean with ntk_cond (same kernel), ntk_robust (J(A(X))), ntk_joint_robust (beta 1: J(A(A(X))))."""
    if not variant.per_class:
        return [variant.outputs]
    groups = [(CLEAN, COND), (ROBUST,), (JOINT,)]
    return [tuple(n for n in g if n in variant.outputs) for g in groups if any(n in variant.outputs for n in g)]


def planned(variant: Variant, *, batch_size: int) -> dict[str, dict]:
    """Output -> the settings ``zcproxy.score`` records for it under this variant."""
    return {name: planned_settings(name, dataset=DATASET, seed=variant.seed, batch_size=batch_size,
                                   **options_for([name], variant.all_options))
            for name in variant.outputs}


def base_settings(name: str, *, attack_dtype: str, batch_size: int) -> dict:
    """Settings of output ``name`` in the base setting (seed 0) with the given attack precision."""
    return planned_settings(name, dataset=DATASET, seed=0, batch_size=batch_size,
                            **options_for([name], {**BASE_OPTIONS, "attack_dtype": attack_dtype}))


def work_items(archs: list[int], variants: tuple[Variant, ...] = VARIANTS) -> list[tuple[int, tuple[Variant, ...]]]:
    """(arch, variants) in work order: every arch with variants 1-5, then every arch with the per-class ones."""
    cheap = tuple(v for v in variants if not v.per_class)
    costly = tuple(v for v in variants if v.per_class)
    return [(arch, cheap) for arch in archs if cheap] + [(arch, costly) for arch in archs if costly]


def variant_list(text: str) -> tuple[Variant, ...]:
    """``all`` or comma-separated variant names -> variants in study order."""
    if text == "all":
        return VARIANTS
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown or text!r}; choose from {list(BY_NAME)}")
    return tuple(v for v in VARIANTS if v.name in names)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    archs = sample_archs(args.archs, SAMPLE_SEED)
    batches: dict[int, Any] = {}

    def batch_of(seed: int):
        if seed not in batches:
            batches[seed] = proxy_batch(DATASET, n=args.batch, seed=seed, data_dir=args.data_dir)
        return batches[seed]

    hashes = {v.name: {o: settings_hash(s) for o, s in planned(v, batch_size=args.batch).items()}
              for v in args.variants}
    work = work_items(archs, args.variants)
    started = time.perf_counter()
    print(f"ntk_variants run: {len(archs)} archs, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), store {args.store}", flush=True)
    with Store(args.store) as store:
        for position, (arch, variants) in enumerate(work):
            done_now = []
            t0 = time.perf_counter()
            models: dict[int, torch.nn.Module] = {}
            for variant in variants:
                computed = False
                for group in calls(variant):
                    if all(store.done(arch, o, hashes[variant.name][o]) for o in group):
                        continue
                    if variant.seed not in models:
                        models[variant.seed] = build_model(arch, DATASET, variant.seed)
                    b = batch_of(variant.seed)
                    results = zcproxy.score(models[variant.seed], list(group), batch=(b.x, b.y), dataset=DATASET,
                                            seed=variant.seed, **options_for(group, variant.all_options))
                    for o, r in results.items():  # a plan/score mismatch would make the store never resume
                        if settings_hash(r.settings) != hashes[variant.name][o]:
                            raise RuntimeError(f"{variant.name} {o}: score() recorded other settings than planned")
                    store.put(arch, results, device="cpu")
                    computed = True
                if computed:
                    done_now.append(variant.name)
            if done_now:
                elapsed = time.perf_counter() - started
                print(f"[{position + 1}/{len(work)}] arch {arch}: {', '.join(done_now)} "
                      f"{time.perf_counter() - t0:.1f} s ({elapsed / 60:.1f} min)", flush=True)
    print(f"done ({(time.perf_counter() - started) / 60:.1f} min)", flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ report
def _column(frames: list[pd.DataFrame], settings: dict) -> pd.Series:
    """Values stored under ``settings`` (indexed by arch), the first frame's where several hold one."""
    h = settings_hash(settings)
    out = pd.Series(dtype=np.float64)
    for frame in frames:
        part = frame[frame["settings_hash"] == h]
        if len(part):
            out = out.combine_first(part.groupby("arch")["value"].first().astype(np.float64))
    return out


def seed_tau(a: pd.Series, b: pd.Series, *, bootstrap: int, seed: int) -> dict[str, float]:
    """Kendall tau-b between two score columns on the archs where both are finite, with a percentile
    bootstrap CI (arch resamples seeded by ``seed`` and n, as in ``zcproxy.validate.correlate``)."""
    from zcproxy.validate import _stats

    both = pd.DataFrame({"a": a, "b": b}).astype(np.float64)
    both = both[np.isfinite(both.to_numpy()).all(axis=1)]
    n = len(both)
    if n < 3:
        return {"n": n, "kendall": np.nan, "kendall_lo": np.nan, "kendall_hi": np.nan}
    rng = np.random.default_rng([seed, n])
    drawn = _stats.resample_counts(n, bootstrap, rng) if bootstrap else np.zeros((n, 0), np.int32)
    counts = np.concatenate([np.ones((n, 1), np.int32), drawn], axis=1)
    taus = _stats.kendall_tau_b(both["a"].to_numpy(), both["b"].to_numpy(), counts)
    boot = taus[1:][np.isfinite(taus[1:])]
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if boot.size else (np.nan, np.nan))
    return {"n": n, "kendall": float(taus[0]), "kendall_lo": float(lo), "kendall_hi": float(hi)}


def report(args: argparse.Namespace) -> int:
    from zcproxy.truth import load_nasrobbench201
    from zcproxy.validate import compare, correlate

    if not Path(args.store).exists():
        print(f"{args.store} does not exist; run `ntk_variants.py run` first", file=sys.stderr)
        return 1
    ours = load(args.store)
    sweep = load(args.sweep_store) if args.sweep_store and Path(args.sweep_store).exists() else ours.iloc[:0]
    frames = [ours, sweep]
    truth = load_nasrobbench201(args.data_dir)
    bs = args.batch
    boot = dict(bootstrap=args.bootstrap, seed=args.seed)

    columns = {v.name: {o: _column(frames, s) for o, s in planned(v, batch_size=bs).items()} for v in VARIANTS}
    counts = {name: int(pd.DataFrame(cols).notna().all(axis=1).sum()) for name, cols in columns.items()}
    reported = [v for v in VARIANTS if counts[v.name] >= args.min_archs]
    skipped = [f"{v.name} ({counts[v.name]} archs)" for v in VARIANTS if counts[v.name] < args.min_archs]
    if not reported:
        print(f"{args.store}: no variant has {args.min_archs} scored archs yet (--min-archs); "
              f"{', '.join(skipped)}", file=sys.stderr)
        return 1
    # bases: the sweep's float32 values (variant 1) and the float64 base (2-6); ntk_clean and ntk_cond
    # take no attack, so both bases hold the sweep's seed-0 values for them.
    f32 = {o: _column(frames, base_settings(o, attack_dtype=SWEEP_ATTACK_DTYPE, batch_size=bs)) for o in ALL_OUTPUTS}
    f64 = {o: _column(frames, base_settings(o, attack_dtype="float64", batch_size=bs)) for o in ALL_OUTPUTS}
    orient = {o: higher_is_better(o) for o in ALL_OUTPUTS}

    rows: list[dict] = []

    def accuracy_rows(label: str, cols: dict[str, pd.Series], base: dict[str, pd.Series] | None, base_label: str):
        scores = pd.DataFrame(cols)
        table = correlate(scores, truth, datasets=[DATASET], metrics=list(METRICS), orientation=orient,
                          topk=(), **boot)
        for _, t in table.iterrows():
            o, metric = t["proxy"], t["metric"]
            row = {"section": "accuracy", "variant": label, "score": o, "against": metric, "n": int(t["n"]),
                   "kendall": t["kendall"], "kendall_lo": t["kendall_lo"], "kendall_hi": t["kendall_hi"]}
            if base is not None and o in base and base[o].notna().any():
                pair = pd.DataFrame({"base": base[o], "variant": cols[o]})
                d = compare(pair, truth, "base", "variant", dataset=DATASET, metric=metric,
                            orientation={"base": orient[o], "variant": orient[o]}, **boot)
                row.update({"base": base_label, "n_paired": d["n"], "kendall_base": d["kendall_first"],
                            "delta": d["delta"], "delta_lo": d["delta_lo"], "delta_hi": d["delta_hi"],
                            "p_not_better": d["p_not_better"]})
            rows.append(row)

    def robust_minus_clean(label: str, clean: pd.Series, cols: dict[str, pd.Series]):
        for o in (ROBUST, JOINT):
            if o not in cols:
                continue
            pair = pd.DataFrame({CLEAN: clean, o: cols[o]})
            for metric in METRICS:
                d = compare(pair, truth, CLEAN, o, dataset=DATASET, metric=metric, orientation=orient, **boot)
                rows.append({"section": "robust_minus_clean", "variant": label, "score": o, "against": metric,
                             "n": d["n"], "kendall": d["kendall_second"], "base": f"{CLEAN} ({label})",
                             "n_paired": d["n"], "kendall_base": d["kendall_first"], "delta": d["delta"],
                             "delta_lo": d["delta_lo"], "delta_hi": d["delta_hi"],
                             "p_not_better": d["p_not_better"]})

    for v in reported:
        cols = columns[v.name]
        if v.name == "float64_attack":
            # the sweep's float32 values on the same archs: the reference for variant 1
            archs = pd.DataFrame(cols).dropna().index
            ref = {o: f32[o].reindex(archs) for o in ALL_OUTPUTS}
            accuracy_rows("sweep_float32", ref, None, "")
            robust_minus_clean("sweep_float32", ref[CLEAN], ref)
            accuracy_rows(v.name, cols, f32, "sweep_float32")
            robust_minus_clean(v.name, f32[CLEAN].reindex(archs), cols)
        else:
            accuracy_rows(v.name, cols, f64, "float64_base")
            clean = cols[CLEAN] if CLEAN in cols else f64[CLEAN].reindex(pd.DataFrame(cols).dropna().index)
            robust_minus_clean(v.name, clean, cols)

    # seed-to-seed agreement: seed 0 = the float64 base (its ntk_clean / ntk_cond are the sweep's)
    seeds = {0: f64} | {v.seed: columns[v.name] for v in reported if v.name in ("seed1", "seed2")}
    if len(seeds) > 1:
        for o in ALL_OUTPUTS:
            for first, second in ((0, 1), (0, 2), (1, 2)):
                if first in seeds and second in seeds:
                    t = seed_tau(seeds[first][o], seeds[second][o], bootstrap=args.bootstrap, seed=args.seed)
                    rows.append({"section": "seed_to_seed", "variant": f"seed{first}~seed{second}", "score": o,
                                 "against": f"seed{first}", **t})

    out = pd.DataFrame(rows)
    target = Path(args.out)
    target.mkdir(parents=True, exist_ok=True)
    out.to_csv(target / "ntk_variants.csv", index=False)
    text = _markdown(out, args, counts, skipped, ours)
    (target / "ntk_variants.md").write_text(text)
    print(text)
    return 0


def _ci(value: float, lo: float, hi: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:+.3f} [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) else f"{value:+.3f}"


def _markdown(out: pd.DataFrame, args: argparse.Namespace, counts: dict[str, int], skipped: list[str],
              ours: pd.DataFrame) -> str:
    threads = sorted({int(t) for t in ours.get("torch_threads", pd.Series(dtype=float)).dropna()})
    command = "python studies/ntk_variants.py " + " ".join(shlex.quote(a) for a in args.argv)
    lines = [
        "# NTK variants: the paper's FGSM 8/255 frozen-BN NTK scores under one change at a time",
        "",
        f"Command: `{command}`. Scores: store `{args.store}`, computed with "
        f"{', '.join(map(str, threads)) or '?'} torch thread(s) (the store's torch_threads); torch "
        f"{torch.__version__} (the report's; the run prints its own version first in its log); "
        f"seed-0 ntk_clean / ntk_cond and the float32-attack values from `{args.sweep_store}`.",
        "",
        "Archs scored per variant (the NTK sweep's seeded sample of representatives, in its order, so each is "
        "a uniform sample): " + ", ".join(f"{k} {n}" for k, n in counts.items()) + ".",
        "",
        f"Kendall tau-b with NAS-RobBench-201 CIFAR-10 accuracy, 95 % percentile bootstrap CI over archs "
        f"({args.bootstrap} resamples, seed {args.seed}). Delta = tau(variant) - tau(base) on the archs scored "
        "by both (paired bootstrap). Base: same output, FGSM 8/255, frozen BN, beta 1, seed 0, with the "
        "float64 attack (`float64_base`) for variants 2-6 and the sweep store's float32 attack "
        "(`sweep_float32`) for `float64_attack`; ntk_clean and ntk_cond take no attack, so their base is the "
        "sweep's seed-0 value either way. Degenerate (constant-output) archs score lambda_min = 0 and count, "
        "as in ntk_sweep.md; ntk_cond = inf is left out.",
        "",
    ]
    if skipped:
        lines += [f"Left out (fewer than {args.min_archs} scored archs): {', '.join(skipped)}.", ""]
    acc = out[out["section"] == "accuracy"]
    if len(acc):
        wide = []
        for (variant, score), part in acc.groupby(["variant", "score"], sort=False):
            r = {"variant": variant, "score": score}
            for metric, short in (("pgd_8", "PGD-8"), ("clean", "clean"), ("autoattack", "AA")):
                m = part[part["against"] == metric]
                if not len(m):
                    continue
                m = m.iloc[0]
                r["n"] = int(m["n"])
                r[f"tau {short}"] = _ci(m["kendall"], m["kendall_lo"], m["kendall_hi"])
                r[f"delta {short}"] = _ci(m.get("delta", np.nan), m.get("delta_lo", np.nan), m.get("delta_hi", np.nan))
            wide.append(r)
        lines += ["## Kendall tau with accuracy, and the paired change against the base", "",
                  pd.DataFrame(wide).to_markdown(index=False), ""]
    rmc = out[(out["section"] == "robust_minus_clean") & out["against"].isin(["pgd_8", "autoattack"])]
    if len(rmc):
        table = pd.DataFrame({
            "variant": rmc["variant"], "score": rmc["score"], "accuracy": rmc["against"], "n": rmc["n"],
            "tau clean": rmc["kendall_base"].map(lambda x: f"{x:+.3f}"), "tau score": rmc["kendall"].map(
                lambda x: f"{x:+.3f}"),
            "score - clean": [_ci(d, lo, hi) for d, lo, hi in zip(rmc["delta"], rmc["delta_lo"], rmc["delta_hi"])],
            "p_not_better": rmc["p_not_better"].map(lambda x: f"{x:.3f}")})
        lines += ["## Robust / joint score against the clean NTK on the same archs (the paper's question)", "",
                  "tau(score) - tau(ntk_clean) of the same variant (its own ntk_clean where it has one, else the "
                  "seed-0 one); p_not_better = share of resamples with a difference <= 0. Under `float64_attack` "
                  "the change from `sweep_float32` is exactly the float64 - float32 delta of the table above "
                  "(ntk_clean is the same). Robust accuracies only here; ntk_variants.csv also has clean accuracy.", "",
                  table.to_markdown(index=False), ""]
    sts = out[out["section"] == "seed_to_seed"]
    if len(sts):
        table = pd.DataFrame({"seeds": sts["variant"], "score": sts["score"], "n": sts["n"],
                              "tau between seeds": [_ci(t, lo, hi) for t, lo, hi in
                                                    zip(sts["kendall"], sts["kendall_lo"], sts["kendall_hi"])]})
        lines += ["## Seed-to-seed Kendall tau of each score (network init and proxy batch both change)", "",
                  "Seed 0 = the base (float64 attack; the sweep's ntk_clean / ntk_cond). Archs where both "
                  "values are finite.", "", table.to_markdown(index=False), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--store", default="runs/ntk_variants.sqlite")
        p.add_argument("--batch", type=int, default=64, help="proxy batch size (64 in the study)")
        p.add_argument("--data-dir", default=None)
    run_p, report_p = sub.choices["run"], sub.choices["report"]
    run_p.add_argument("--archs", type=int, default=300)
    run_p.add_argument("--threads", type=int, default=1)
    run_p.add_argument("--variants", type=variant_list, default=VARIANTS,
                       help=f"'all' (default) or a comma-separated subset of {', '.join(BY_NAME)}")
    report_p.add_argument("--sweep-store", default="results/correlation/stores/ntk_sweep.sqlite",
                          help="the NTK sweep's store: float32-attack base and seed-0 ntk_clean / ntk_cond")
    report_p.add_argument("--out", default="results/correlation")
    report_p.add_argument("--bootstrap", type=int, default=1000)
    report_p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    report_p.add_argument("--min-archs", type=int, default=30,
                          help="leave out variants scored on fewer archs (default 30)")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
