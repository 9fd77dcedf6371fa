"""Every speed and precision figure the README states is re-derived here from the committed measurements
(results/perf/*.csv, results/correlation/ntk_sweep_bn.csv and the NTK sweep store), so the README cannot
drift from them: re-running a benchmark and committing its csv makes these tests say which sentence to
update. (The proxy table's seconds are checked by tests/test_docs.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PERF = ROOT / "results" / "perf"


def _readme() -> str:
    return " ".join((ROOT / "README.md").read_text().split())  # sentences wrap across lines


def _range(values, digits: int = 1) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}–{hi:.{digits}f}×"


def _perf_ratios() -> pd.DataFrame:
    path = PERF / "perf_ratios.csv"
    if not path.exists():
        pytest.fail("results/perf/perf_ratios.csv is missing; run benchmarks/perf_ratios.py")
    return pd.read_csv(path)


def _item(frame: pd.DataFrame, kind: str, item: str) -> pd.Series:
    part = frame[(frame["kind"] == kind) & (frame["item"] == item)].set_index("arch")
    return part["ratio"]


def claims() -> dict[str, str]:
    """README phrase -> where it comes from."""
    out: dict[str, str] = {}
    frame = _perf_ratios()
    frozen = _item(frame, "ntk", "frozen_jacobian")
    five = _item(frame, "ntk", "five_ntk_scores")
    batch = _item(frame, "ntk", "batch_jacobian")
    archs = ", ".join(str(a) for a in frozen.index)
    out[f"one frozen Jacobian costs {_range(frozen)} a forward+backward"] = "perf_ratios frozen_jacobian"
    out[f"all five NTK scores (two attacks, three Jacobians) {_range(five)}"] = "perf_ratios five_ntk_scores"
    out[f"{_range(batch / frozen)} a frozen Jacobian at N = 64"] = "perf_ratios batch / frozen"
    out[f"archs {archs}"] = "perf_ratios archs"
    everything = _item(frame, "all", "all")
    out[f"every proxy in one call costs {_range(everything)} a forward+backward"] = "perf_ratios all"
    one_call = frame[(frame["kind"] == "all") & (frame["item"] == "all")].set_index("arch")["seconds"]
    out[f"({one_call.loc[13714]:.0f} s on arch 13714)"] = "perf_ratios all seconds"
    rss = frame[frame["kind"] == "peak_rss_mb"].set_index("item")
    arch = int(rss.loc["default", "arch"])
    out[f"scoring every proxy on arch {arch} peaks at {rss.loc['default', 'peak_mb']:.0f} MB resident "
        f"({rss.loc['low_memory', 'peak_mb']:.0f} MB with `--low-memory`"] = "perf_ratios peak_rss_mb"
    allocator = pd.read_csv(PERF / "allocator.csv").groupby("config").median(numeric_only=True)
    slower = allocator.loc["low memory (128 KiB)", "seconds"] / allocator.loc["glibc default", "seconds"]
    out[f"at {slower:.1f}× the time"] = "allocator"

    rows = pd.read_csv(PERF / "ntk_batch_rows.csv")
    rows = rows[rows["n"] == 64].set_index(["arch", "method"])["seconds"]
    per_pass = [rows[(a, m)] / rows[(a, "batch rows/pass=1")] for a, m in rows.index
                if m in ("batch rows/pass=8", "batch rows/pass=64")]
    layout = [rows[(a, "batch rows/pass=1, NCHW")] / rows[(a, "batch rows/pass=1")] for a, m in rows.index
              if m == "batch rows/pass=1, NCHW"]
    out[f"one row per pass is {_range(per_pass)} faster on CPU than vectorising 8 or all 64 rows"] = "ntk_batch_rows"
    out[f"the channels-last layout used on CPU {_range(layout)} faster than NCHW"] = "ntk_batch_rows"

    croze = pd.read_csv(PERF / "croze_precision.csv").dropna(subset=["float64_seconds"])
    out[f"its convolutions now run in float32, {(croze['float64_seconds'] / croze['seconds']).median():.1f}× "
        "faster"] = "croze_precision"

    precision = pd.read_csv(PERF / "ntk_precision.csv")
    out[f"within {100 * precision['kernel_err_frobenius_rel'].max():.1f} % (Frobenius)"] = "ntk_precision"
    out[f"λ_min within {100 * precision['lambda_min_err_rel'].max():.2f} %"] = "ntk_precision"

    bn = pd.read_csv(ROOT / "results" / "correlation" / "ntk_sweep_bn.csv")
    cond = bn[(bn["score"] == "ntk_cond") & (bn["metric"] == "pgd_8")].iloc[0]
    out[f"τ with CIFAR-10 PGD-8 accuracy {cond['kendall_first']:.3f} (frozen) against {cond['kendall_second']:.3f} "
        f"(batch)"] = "ntk_sweep_bn"
    return out


def _cond_ratio_phrase() -> str:
    from zcproxy import store

    frame = store.load(ROOT / "results" / "correlation" / "stores" / "ntk_sweep.sqlite")
    frame = frame[frame["proxy"] == "ntk_cond"].copy()
    frame["bn"] = frame["settings"].map(lambda s: (json.loads(s) if isinstance(s, str) else s)["ntk_bn"])
    table = frame.pivot_table(index="arch", columns="bn", values="value", aggfunc="first")
    ratio = (table["frozen"] / table["batch"]).dropna()
    q1, median, q3 = ratio.quantile([0.25, 0.5, 0.75])
    return (f"on the {len(ratio)} architectures of the NTK sweep the frozen-BN condition number is a median "
            f"{median:.1f}× TE-NAS's (interquartile {q1:.1f}–{q3:.1f}×, range {_range(ratio)})")


def test_every_readme_speed_figure_is_the_committed_measurement():
    readme = _readme()
    missing = [f"{phrase!r} ({source})" for phrase, source in claims().items() if phrase not in readme]
    assert not missing, "README.md disagrees with the committed measurements; expected:\n" + "\n".join(missing)


def test_readme_ntk_cond_ratio_is_the_sweep_store():
    phrase = _cond_ratio_phrase()
    assert phrase.lower() in _readme().lower(), f"README.md should say: {phrase!r}"


def test_the_perf_report_names_its_command_threads_and_load():
    text = (PERF / "perf_ratios.md").read_text()
    assert "benchmarks/perf_ratios.py" in text and "1 thread" in text and "load average" in text
    frame = _perf_ratios()
    assert set(frame["threads"]) == {1} and frame["load1"].notna().all()
