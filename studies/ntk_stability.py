"""How far float noise moves the robust NTK scores: 1 vs 2 torch threads, float32 vs float64 attack.

FGSM steps by sign(grad_x CE(f(x), y)); an input-gradient component smaller than its own rounding error
takes a sign that depends on the floating-point kernel. For each architecture (the three of issue 22 and a
seeded sample of the 1,000-arch study, half stored on 2026-11-22 and half on 2026-12-02) this script, on the
study's batch (CIFAR-10, 64 images, seed 0) and network (seed 0):

- counts input-gradient sign flips between 1 and 2 torch threads (float32 and float64 gradients), between a
  float32 and a float64 gradient, and between the NCHW and the channels-last memory layout (another
  convolution kernel, standing in for another CPU or library version), and the smallest component relative
  to its sample's largest (how close a sign is to flipping);
- says whether A(X) and A(A(X)) change with the thread count or the layout, per attack precision;
- computes ntk_robust = lambda_min(K(A(X))) and ntk_joint_robust (beta 1) = lambda_min(K(A(A(X)))) with a
  float32 and a float64 attack (Jacobians in float32, frozen BN, as the proxies) and ntk_clean, and compares
  them with the values stored in results/correlation/stores/study_cifar10.sqlite.

    python studies/ntk_stability.py --out results/stability
    python studies/ntk_stability.py --noise-effect --out results/stability

``--noise-effect`` (no rescoring) asks how much of the paper's robust-minus-clean tau difference float noise
of the measured size could explain: on the 1,000-arch study (its stored float32-attack scores) each arch's
``ntk_robust`` and ``ntk_joint_robust`` are multiplied by (1 + r), r drawn with a random sign from the
measured float64-vs-float32 relative changes of ``ntk_attack_precision.csv``, 1,000 times; it reports how far
that moves their Kendall tau with PGD-8 and the paired differences from ``ntk_clean``
(``ntk_noise_effect.{csv,md}``).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from zcproxy import attacks as _attacks
from zcproxy import ntk as _ntk
from zcproxy.data import proxy_batch
from zcproxy.scoring import build_model
from zcproxy.store import load

CITED = (9747, 13417, 5127)
STORE = "results/correlation/stores/study_cifar10.sqlite"
OUTPUTS = ("ntk_clean", "ntk_robust", "ntk_joint_robust")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def choose_archs(stored: pd.DataFrame, extra: int, seed: int) -> list[int]:
    """The cited archs, then ``extra`` more: half of them stored on the first day, half on a later one."""
    days = stored.groupby("arch")["day"].first()
    rng = np.random.default_rng(seed)
    chosen = list(CITED)
    for day in sorted(days.unique()):
        pool = sorted(int(a) for a in days.index[days == day] if int(a) not in chosen)
        chosen += [int(a) for a in rng.choice(pool, size=min(extra // 2, len(pool)), replace=False)]
    return chosen


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype,
                   channels_last: bool = False) -> torch.Tensor:
    """grad_x CE(f(x), y) (summed over the batch) with train-mode BN on batch statistics, as the attack."""
    net = _attacks.copy.deepcopy(model).to(dtype)
    _attacks._without_running_statistics(net)
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    inputs = x.to(dtype)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    inputs = inputs.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(net(inputs), y, reduction="sum"), inputs)
    return g.contiguous()


def adversarial(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype,
                channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(A(X), A(A(X))) of FGSM 8/255 computed in ``dtype``."""
    start = x.to(dtype)
    if channels_last:
        start = start.contiguous(memory_format=torch.channels_last)
    once = _attacks.attack(model, start, y, dtype=dtype)
    if channels_last:
        once = once.contiguous(memory_format=torch.channels_last)
    twice = _attacks.attack(model, once, y, dtype=dtype)
    return once.contiguous(), twice.contiguous()


def lambda_min(model: torch.nn.Module, images: torch.Tensor) -> float:
    j = _ntk.jacobian(model, images.to(torch.float32), output="sum", bn="frozen", chunk_size=16)
    return _ntk.spectrum(_ntk.gram(j)).lambda_min


def flips(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.sign() != b.sign()).sum())


def measure(arch: int, x: torch.Tensor, y: torch.Tensor) -> dict:
    model = build_model(arch, "cifar10", 0)
    row: dict = {"arch": arch}
    grads = {}
    for name, dtype in DTYPES.items():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            grads[name, threads] = input_gradient(model, x, y, dtype)
        torch.set_num_threads(1)
        grads[name, "cl"] = input_gradient(model, x, y, dtype, channels_last=True)
        row[f"flips_threads_{name}"] = flips(grads[name, 1], grads[name, 2])
        row[f"flips_layout_{name}"] = flips(grads[name, 1], grads[name, "cl"])
    row["flips_f32_vs_f64"] = flips(grads["float32", 1], grads["float64", 1])
    g64 = grads["float64", 1].abs().flatten(1)
    row["min_rel_component_f64"] = float((g64 / g64.amax(1, keepdim=True)).min())
    row["components"] = int(g64.numel())
    for name, dtype in DTYPES.items():
        t0 = time.perf_counter()
        base = adversarial(model, x, y, dtype)
        row[f"attack_seconds_{name}"] = (time.perf_counter() - t0) / 2
        torch.set_num_threads(2)
        two = adversarial(model, x, y, dtype)
        torch.set_num_threads(1)
        layout = adversarial(model, x, y, dtype, channels_last=True)
        row[f"adv_same_threads_{name}"] = all(torch.equal(a, b) for a, b in zip(base, two))
        row[f"adv_same_layout_{name}"] = all(torch.equal(a, b) for a, b in zip(base, layout))
        row[f"adv_pixels_changed_layout_{name}"] = int(sum((a != b).sum() for a, b in zip(base, layout)))
        row[f"ntk_robust_{name}"] = lambda_min(model, base[0])
        row[f"ntk_joint_robust_{name}"] = lambda_min(model, base[1])
    row["ntk_clean"] = lambda_min(model, x)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/stability")
    parser.add_argument("--store", default=STORE)
    parser.add_argument("--extra", type=int, default=20, help="study archs besides the three cited (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--noise-effect", action="store_true",
                        help="from <out>/ntk_attack_precision.csv and --store: how far noise of that size moves tau")
    parser.add_argument("--draws", type=int, default=1000, help="--noise-effect: noise draws (default 1000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.noise_effect:
        return write_noise_effect(args, argv)
    long = load(args.store)
    long = long[long["proxy"].isin(OUTPUTS)].assign(day=lambda f: f["timestamp"].str[:10])
    stored = long.pivot_table(index="arch", columns="proxy", values="value", aggfunc="first")
    day = long.groupby("arch")["day"].first()
    archs = choose_archs(long, args.extra, args.seed)
    batch = proxy_batch("cifar10", n=64, seed=0, data_dir=args.data_dir)
    rows = []
    for i, arch in enumerate(archs):
        t0 = time.perf_counter()
        row = measure(arch, batch.x, batch.y)
        row["stored_day"] = day.get(arch)
        for name in OUTPUTS:
            row[f"stored_{name}"] = float(stored.loc[arch, name])
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"[{i + 1}/{len(archs)}] arch {arch} ({row['seconds']:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    for name in DTYPES:
        for out in ("ntk_robust", "ntk_joint_robust"):
            frame[f"rel_{out}_{name}_vs_stored"] = (frame[f"{out}_{name}"] / frame[f"stored_{out}"] - 1).abs()
        frame[f"rel_ntk_robust_float64_vs_{name}"] = (frame["ntk_robust_float64"] / frame[f"ntk_robust_{name}"] - 1).abs()
    frame["rel_ntk_joint_robust_float64_vs_float32"] = (frame["ntk_joint_robust_float64"]
                                                        / frame["ntk_joint_robust_float32"] - 1).abs()
    frame["rel_ntk_clean_vs_stored"] = (frame["ntk_clean"] / frame["stored_ntk_clean"] - 1).abs()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "ntk_attack_precision.csv", index=False)
    (out / "ntk_attack_precision.md").write_text(report(frame, argv))
    print(report(frame, argv))
    return 0


def noise_effect(measured: pd.DataFrame, scores: pd.DataFrame, target: pd.Series, *, draws: int,
                 seed: int) -> pd.DataFrame:
    """One row per noise draw: Kendall tau with ``target`` of ntk_robust and ntk_joint_robust after each arch's
    value is multiplied by (1 + r), r resampled with a random sign from the measured float64-vs-float32
    relative changes of that output, and their differences from ntk_clean's (unperturbed) tau."""
    import scipy.stats

    rng = np.random.default_rng(seed)
    rows = scores.index.intersection(target.dropna().index)
    y = target.loc[rows].to_numpy()
    clean = scipy.stats.kendalltau(scores.loc[rows, "ntk_clean"], y).statistic
    changes = {out: (measured[f"{out}_float64"] / measured[f"{out}_float32"] - 1).abs().to_numpy()
               for out in ("ntk_robust", "ntk_joint_robust")}
    out = []
    for draw in range(draws + 1):  # draw 0: the stored values themselves
        row = {"draw": draw, "ntk_clean": clean}
        for name, pool in changes.items():
            values = scores.loc[rows, name].to_numpy()
            if draw:
                values = values * (1 + rng.choice(pool, size=values.size) * rng.choice([-1.0, 1.0], size=values.size))
            row[name] = scipy.stats.kendalltau(values, y).statistic
            row[f"{name}_minus_clean"] = row[name] - clean
        out.append(row)
    return pd.DataFrame(out)


def write_noise_effect(args: argparse.Namespace, argv: list[str] | None) -> int:
    from zcproxy.store import pivot
    from zcproxy.truth import load_nasrobbench201

    out = Path(args.out)
    measured = pd.read_csv(out / "ntk_attack_precision.csv")
    scores = pivot(load(args.store))[["ntk_clean", "ntk_robust", "ntk_joint_robust"]].dropna()
    target = load_nasrobbench201(args.data_dir)[("cifar10", "pgd_8")]
    draws = noise_effect(measured, scores, target, draws=args.draws, seed=args.seed)
    draws.to_csv(out / "ntk_noise_effect.csv", index=False, float_format="%.6f")
    stored, noisy = draws.iloc[0], draws.iloc[1:]
    table = []
    for col in ("ntk_robust", "ntk_joint_robust", "ntk_robust_minus_clean", "ntk_joint_robust_minus_clean"):
        moved = noisy[col] - stored[col]
        table.append({"quantity (Kendall tau with PGD-8)": col, "stored": stored[col],
                      "noisy median": noisy[col].median(), "noisy 2.5 %": noisy[col].quantile(0.025),
                      "noisy 97.5 %": noisy[col].quantile(0.975), "median |shift|": moved.abs().median(),
                      "max |shift|": moved.abs().max()})
    command = "python studies/ntk_stability.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "# How much of the robust-minus-clean NTK tau can float noise explain? (issue 22)", "",
        f"Command: `{command.strip()}` (ZCPROXY_DATA set). {len(scores)} archs of `{args.store}` (float32 attacks, "
        f"as stored), PGD-8/255 CIFAR-10 accuracy; {args.draws} draws, seed {args.seed}. Each draw multiplies every "
        f"arch's ntk_robust and ntk_joint_robust by (1 + r), r resampled with a random sign from the "
        f"{len(measured)} measured float64-vs-float32 relative changes in `ntk_attack_precision.csv` "
        f"(ntk_robust median {measured.eval('abs(ntk_robust_float64 / ntk_robust_float32 - 1)').median():.1e}); "
        "ntk_clean does not depend on the attack and is left as stored. Raw draws: `ntk_noise_effect.csv`.", "",
        pd.DataFrame(table).to_markdown(index=False, floatfmt=".4f"), ""])
    (out / "ntk_noise_effect.md").write_text(text)
    print(text)
    return 0


def report(frame: pd.DataFrame, argv: list[str] | None) -> str:
    """Markdown summary: environment, per-day reproduction of the stored values, sign flips, precision effect."""
    command = "python studies/ntk_stability.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Float noise in the robust NTK scores (issue 22)", "",
        f"Command: `OMP_NUM_THREADS=1 {command.strip()}` (ZCPROXY_DATA set); torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, main thread count 1 (2 for the thread comparison); "
        f"{len(frame)} architectures, CIFAR-10 batch 64, seed 0, FGSM 8/255, frozen-BN float32 Jacobians. "
        "Raw numbers: `ntk_attack_precision.csv`.", "",
        "## Do today's float32 values reproduce the stored ones?", "",
    ]
    table = []
    for day, part in frame.groupby("stored_day"):
        table.append({"stored on": day, "archs": len(part),
                      "ntk_clean max rel diff": part["rel_ntk_clean_vs_stored"].max(),
                      "ntk_robust (f32 attack) max": part["rel_ntk_robust_float32_vs_stored"].max(),
                      "ntk_robust median": part["rel_ntk_robust_float32_vs_stored"].median(),
                      "ntk_joint_robust (f32) max": part["rel_ntk_joint_robust_float32_vs_stored"].max(),
                      "exact (robust and joint)": int(((part["rel_ntk_robust_float32_vs_stored"] == 0)
                                                       & (part["rel_ntk_joint_robust_float32_vs_stored"] == 0)).sum())})
    lines += [pd.DataFrame(table).to_markdown(index=False, floatfmt=".2e"), "",
              "## Sign flips of the input gradient (of 196,608 components per arch)", ""]
    flips = pd.DataFrame({
        "comparison": ["1 vs 2 threads, float32", "1 vs 2 threads, float64", "NCHW vs channels-last, float32",
                       "NCHW vs channels-last, float64", "float32 vs float64"],
        "archs with any flip": [int((frame[c] > 0).sum()) for c in
                                ("flips_threads_float32", "flips_threads_float64", "flips_layout_float32",
                                 "flips_layout_float64", "flips_f32_vs_f64")],
        "median flips": [frame[c].median() for c in
                         ("flips_threads_float32", "flips_threads_float64", "flips_layout_float32",
                          "flips_layout_float64", "flips_f32_vs_f64")],
        "max flips": [frame[c].max() for c in
                      ("flips_threads_float32", "flips_threads_float64", "flips_layout_float32",
                       "flips_layout_float64", "flips_f32_vs_f64")],
    })
    lines += [flips.to_markdown(index=False), "",
              f"Smallest input-gradient component relative to its sample's largest (float64): median "
              f"{frame['min_rel_component_f64'].median():.1e}, minimum {frame['min_rel_component_f64'].min():.1e} "
              "(float64 rounding is ~1e-16 relative).", "",
              "## A(X), A(A(X)) and the scores", ""]
    adv = []
    for name in DTYPES:
        adv.append({"attack": name,
                    "A unchanged by 2 threads": f"{int(frame[f'adv_same_threads_{name}'].sum())}/{len(frame)}",
                    "A unchanged by channels-last": f"{int(frame[f'adv_same_layout_{name}'].sum())}/{len(frame)}",
                    "attack seconds (median)": frame[f"attack_seconds_{name}"].median()})
    lines += [pd.DataFrame(adv).to_markdown(index=False, floatfmt=".2f"), "",
              f"float64 vs float32 attack, relative change of the value: ntk_robust median "
              f"{frame['rel_ntk_robust_float64_vs_float32'].median():.2e}, max "
              f"{frame['rel_ntk_robust_float64_vs_float32'].max():.2e}; ntk_joint_robust median "
              f"{frame['rel_ntk_joint_robust_float64_vs_float32'].median():.2e}, max "
              f"{frame['rel_ntk_joint_robust_float64_vs_float32'].max():.2e}.", ""]
    cols = ["arch", "stored_day", "flips_f32_vs_f64", "flips_layout_float32", "flips_layout_float64",
            "rel_ntk_clean_vs_stored", "rel_ntk_robust_float32_vs_stored", "rel_ntk_joint_robust_float32_vs_stored",
            "rel_ntk_robust_float64_vs_float32", "rel_ntk_joint_robust_float64_vs_float32"]
    lines += ["## Per architecture", "", frame[cols].to_markdown(index=False, floatfmt=".2e"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
