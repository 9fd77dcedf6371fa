"""PNG figures of validation results (matplotlib Figure + Agg canvas; pyplot's global state is untouched)."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..truth import REPRESENTATIVE
from .correlation import dedupe_isomorphs, orientations

SWEEP_COLUMNS = ("eps", "beta", "attack", "bn", "kendall", "lo", "hi")


def plot_heatmap(table: pd.DataFrame, path: str | os.PathLike, *, stat: str = "kendall") -> Path:
    """Heatmap of ``stat`` (a column of :func:`zcproxy.validate.correlate` output), proxies x metrics,
    one panel per dataset; proxies sorted by their mean over the panel, best on top."""
    needed = ["proxy", "dataset", "metric", stat]
    _require(table, needed, "correlation table")
    datasets = list(dict.fromkeys(table["dataset"]))
    panels = []
    for dataset in datasets:
        grid = table[table["dataset"] == dataset].pivot_table(index="proxy", columns="metric", values=stat,
                                                             aggfunc="first", sort=False)
        grid = grid.loc[grid.mean(axis=1).sort_values(ascending=False).index]
        panels.append((dataset, grid))
    rows = max(g.shape[0] for _, g in panels)
    fig = Figure(figsize=(2.2 + 1.0 * sum(g.shape[1] for _, g in panels) + 1.5 * len(panels), 1.2 + 0.32 * rows))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, (dataset, grid) in zip(axes, panels):
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right")
        ax.set_yticks(range(grid.shape[0]), grid.index)
        ax.set_title(dataset)
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(value) > 0.6 else "black")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=stat)
    return _save(fig, path)


def plot_scatter(scores: pd.DataFrame, truth: pd.DataFrame, proxies: Sequence[str], path: str | os.PathLike, *,
                 dataset: str = "cifar10", metric: str = "pgd_8", orientation: Mapping[str, bool] | None = None,
                 representatives_only: bool = True) -> Path:
    """One panel per proxy: oriented proxy percentile (right = better) against the true accuracy."""
    proxies = list(proxies)
    if not proxies:
        raise ValueError("plot_scatter needs at least one proxy column")
    _require(scores, proxies, "scores")
    if (dataset, metric) not in truth.columns:
        raise ValueError(f"truth has no column ({dataset!r}, {metric!r})")
    orient = orientations(proxies, orientation)
    target = truth[(dataset, metric)]
    cols = min(3, len(proxies))
    rows = math.ceil(len(proxies) / cols)
    fig = Figure(figsize=(3.6 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, proxies):
        values = scores[name].astype(float)
        values = values[np.isfinite(values)]
        archs = (dedupe_isomorphs(values.index, truth[REPRESENTATIVE]) if representatives_only
                 else np.asarray(values.index))
        archs = archs[np.isin(archs, target.index)]
        if archs.size == 0:
            raise ValueError(f"proxy {name!r} has no finite score on an architecture with ground truth")
        oriented = values.loc[archs] * (1.0 if orient[name] else -1.0)
        percentile = oriented.rank(pct=True).to_numpy()
        accuracy = target.loc[archs].to_numpy(dtype=float)
        ax.scatter(percentile, accuracy, s=float(np.clip(3000 / archs.size, 2, 16)), alpha=0.5, linewidths=0)
        tau = pd.Series(percentile).corr(pd.Series(accuracy), method="kendall")
        ax.set_title(f"{name}  (tau={tau:.3f}, n={archs.size})", fontsize=9)
        ax.set_xlabel("proxy percentile (oriented)")
        ax.set_ylabel(f"{dataset} {metric} accuracy")
    for ax in axes[len(proxies):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def plot_sweep(frame: pd.DataFrame, path: str | os.PathLike, *, ylabel: str = "Kendall tau",
               zero_line: bool = False) -> Path:
    """NTK hyper-parameter sweep: the ``kendall`` column (a tau, or a paired tau difference with
    ``ylabel`` saying so) against beta, one panel per eps, one line per (attack, bn), with the CI [lo, hi]
    shaded; ``zero_line`` marks 0 (no difference)."""
    _require(frame, list(SWEEP_COLUMNS), "sweep frame")
    eps_values = sorted(frame["eps"].unique())
    fig = Figure(figsize=(4.0 * len(eps_values), 3.4))
    axes = fig.subplots(1, len(eps_values), squeeze=False, sharey=True)[0]
    for ax, eps in zip(axes, eps_values):
        panel = frame[frame["eps"] == eps]
        for (attack, bn), line in panel.groupby(["attack", "bn"], sort=True):
            line = line.sort_values("beta")
            ax.plot(line["beta"], line["kendall"], marker="o", label=f"{attack}, bn={bn}")
            ax.fill_between(line["beta"].to_numpy(float), line["lo"].to_numpy(float), line["hi"].to_numpy(float),
                            alpha=0.2)
        if zero_line:
            ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"eps = {_eps_label(eps)}")
        ax.set_xlabel("beta")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _eps_label(eps: float) -> str:
    ticks = float(eps) * 255
    return f"{ticks:g}/255" if abs(ticks - round(ticks)) < 1e-6 else f"{float(eps):g}"


def _require(frame: object, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{what} is empty; nothing to plot")


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png", dpi=120, bbox_inches="tight")
    return out
