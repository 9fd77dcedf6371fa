"""What every speed/precision benchmark writes: ``<out>.csv`` with the measurements beside ``<out>.md``, whose
first lines say when, by which command and on which machine they were measured (the machine is shared, so
the load average goes with the numbers)."""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch


def provenance(command: str, threads: int) -> str:
    """One sentence: time (UTC), the command, torch version, threads, CPU and the load average now."""
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{command}`; torch {torch.__version__}, "
            f"{threads} thread{'s' if threads != 1 else ''}, {platform.processor() or platform.machine()} "
            f"({len(os.sched_getaffinity(0))} CPU cores), 1/5/15-min load average {load} when written.")


def write_report(table: pd.DataFrame, out: str | Path, markdown: list[str]) -> tuple[Path, Path]:
    """Write ``table`` to ``<out>.csv`` (all columns, full precision) and ``markdown`` lines to ``<out>.md``,
    creating the folder; returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out.with_suffix(".csv"), out.with_suffix(".md")
    table.to_csv(csv_path, index=False)
    return csv_path, write_markdown(md_path, markdown)


def write_markdown(path: Path, markdown: list[str]) -> Path:
    """Write ``markdown`` lines to ``path``, ending in exactly one newline; returns ``path``."""
    path.write_text("\n".join(markdown).rstrip("\n") + "\n")
    return path
