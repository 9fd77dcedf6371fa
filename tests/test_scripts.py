"""Every study and benchmark script runs as a script (``python studies/x.py --help``), not only when imported."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for folder in ("studies", "benchmarks") for p in (ROOT / folder).glob("*.py")
                 if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_runs_with_help(script):
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_nothing_is_defined_below_the_main_guard(script):
    """A function defined after ``if __name__ == "__main__": main()`` does not exist yet when main runs."""
    lines = script.read_text().splitlines()
    guard = next((i for i, line in enumerate(lines) if line.startswith("if __name__ ==")), None)
    if guard is None:
        return
    late = [line for line in lines[guard + 1:] if line.startswith(("def ", "class ", "async def "))]
    assert not late, f"{script.name} defines {late} below its __main__ guard; move them above it"
