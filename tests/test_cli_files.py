"""export never overwrites without --force; a failed merge or export leaves no file it created behind."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from zcproxy.cli import main
from cli_helper import run_cli as _cli




@pytest.fixture(scope="module")
def _master(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("master") / "s.sqlite"
    assert main(["score", "--archs", "0,5", "--proxies", "params", "--store", str(store), "--quiet"]) == 0
    return store


@pytest.fixture
def scored(_master, tmp_path) -> Path:
    copy = tmp_path / "s.sqlite"
    copy.write_bytes(_master.read_bytes())
    return copy


def test_export_refuses_to_overwrite_without_force(scored, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    out.write_text("precious\n")
    code, _, err = _cli(capsys, "export", "--store", scored, "--out", out)
    assert code == 2 and "already exists" in err and "--force" in err and str(out) in err
    assert out.read_text() == "precious\n"
    code, stdout, _ = _cli(capsys, "export", "--store", scored, "--out", out, "--force")
    assert code == 0 and "wrote 2 rows" in stdout
    assert len(pd.read_csv(out)) == 2
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]  # no temporary left


def test_failed_export_creates_nothing(tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "x.csv"
    code, _, err = _cli(capsys, "export", "--store", tmp_path / "absent.sqlite", "--out", out)
    assert code == 2 and "absent.sqlite" in err
    assert not (tmp_path / "new").exists() and not (tmp_path / "absent.sqlite").exists()


def test_failed_merge_removes_the_out_store_it_created(scored, tmp_path, capsys):
    out = tmp_path / "sub" / "merged.sqlite"
    code, _, err = _cli(capsys, "merge", out, scored, tmp_path / "missing.sqlite")
    assert code == 2 and "missing.sqlite" in err
    assert not out.exists() and not (tmp_path / "sub").exists()
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not sqlite at all" * 100)
    code, _, err = _cli(capsys, "merge", out, scored, broken)
    assert code == 2 and "broken.sqlite" in err
    assert not (tmp_path / "sub").exists()
    assert not any(p.name.startswith("merged.sqlite") for p in tmp_path.rglob("*"))


def test_failed_merge_keeps_an_existing_out_store(scored, tmp_path, capsys):
    out = tmp_path / "merged.sqlite"
    assert _cli(capsys, "merge", out, scored)[0] == 0
    rows = len(_load(out))
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"garbage" * 500)
    code, _, _ = _cli(capsys, "merge", out, broken)
    assert code == 2 and out.is_file() and len(_load(out)) == rows == 2


def _load(path: Path):
    from zcproxy.store import load

    return load(path)
