"""The score / rank / merge / export / demo subcommands: results, exit codes and error messages."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import zcproxy
import zcproxy.proxies as proxies
from zcproxy.cli import main
from zcproxy.cli.score import parse_archs, parse_value
from zcproxy.proxies import proxy
from zcproxy.space import NB201
from zcproxy.store import load, pivot
from cli_helper import run_cli as _cli

REPO = Path(zcproxy.__file__).resolve().parent.parent


def _params(arch: int) -> float:
    return sum(p.numel() for p in NB201.build(arch).parameters()) / 1e6




@pytest.fixture(scope="module")
def _scored_master(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("master") / "s.sqlite"
    assert main(["score", "--archs", "13714,0,5,1234,7", "--proxies", "params", "--store", str(store), "--quiet"]) == 0
    return store


@pytest.fixture
def scored(_scored_master, tmp_path) -> Path:
    """A private copy of a store holding params of archs 0, 5, 7, 1234, 13714."""
    copy = tmp_path / "s.sqlite"
    copy.write_bytes(_scored_master.read_bytes())
    return copy


# --------------------------------------------------------------------------------------------- score


def test_score_writes_store_prints_summary_and_resumes(scored, capsys):
    wide = pivot(load(scored))
    assert wide.index.tolist() == [0, 5, 7, 1234, 13714]
    assert wide["params"].tolist() == [_params(a) for a in wide.index]
    code, out, _ = _cli(capsys, "score", "--archs", "0,5,6", "--proxies", "params", "--store", scored, "--quiet")
    assert code == 0
    assert "params" in out and "mean s/arch" in out
    assert "3 archs: 1 scored now, 2 already in the store, 0 with failures" in out
    assert len(load(scored)) == 6


def test_score_reads_arch_files_with_indices_strings_and_comments(tmp_path, capsys):
    listing = tmp_path / "archs.txt"
    listing.write_text(f"# picked by hand\n12\n{NB201.arch(99)}  # the best\n\n12, 40\n")
    assert parse_archs(str(listing)) == [12, 99, 40]
    code, _, _ = _cli(capsys, "score", "--archs", listing, "--proxies", "params", "--store", tmp_path / "s.sqlite",
                      "--quiet")
    assert code == 0 and sorted(load(tmp_path / "s.sqlite")["arch"]) == [12, 40, 99]


def test_sample_is_seeded_uniform_over_unique_representatives():
    unique = set(NB201.unique())
    a, b, c = parse_archs("sample:40", seed=0), parse_archs("sample:40", seed=0), parse_archs("sample:40", seed=1)
    assert a == b != c and len(set(a)) == 40 and set(a) <= unique and a == sorted(a)
    assert len(parse_archs("unique")) == 6466 and parse_archs("all") == list(range(15625))


def test_option_values_parse_to_exact_numbers():
    assert parse_value("8/255") == 8 / 255 and parse_value("3") == 3 and parse_value("0.5") == 0.5
    assert parse_value("true") is True and parse_value("kaiming") == "kaiming"


@pytest.mark.parametrize("argv, needle", [
    (["--archs", "sample:0"], "--archs sample:0: sample size must be an int in 1..6466"),
    (["--archs", "sample:x"], "expected sample:N with N a positive integer"),
    (["--archs", "15625"], "'15625' is not an architecture of search space 'nb201'"),
    (["--archs", "1,|bogus~0|"], "'|bogus~0|'"),
    (["--archs", "missing/file.txt"], "file missing/file.txt does not exist"),
    (["--archs", "truth"], "needs ground truth; pass --truth"),
    (["--archs", "1", "--proxies", "params,nope"], "unknown proxy name(s) ['nope']; available: "),
    (["--archs", "1", "--option", "epss=1"], "unknown option(s) ['epss']"),
    (["--archs", "1", "--device", "tpu"], "device must be 'cpu' or 'cuda"),
])
def test_score_usage_errors_name_the_argument_and_exit_2(tmp_path, capsys, argv, needle):
    store = tmp_path / "s.sqlite"
    code, _, err = _cli(capsys, "score", "--proxies", "params", "--store", store, "--quiet", *argv)
    assert code == 2
    assert needle in err and err.startswith("zcproxy score: error:")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [
    (["--shard", "2/2"], "argument --shard: expected i/n with 0 <= i < n"),
    (["--batch", "0"], "argument --batch: expected a positive integer"),
    (["--workers", "two"], "argument --workers: expected a positive integer"),
    (["--dataset", "mnist"], "argument --dataset: unknown dataset 'mnist'; use one of cifar10, cifar100, ImageNet16-120"),
    (["--backend", "dask"], "argument --backend: invalid choice: 'dask'"),
    (["--option", "eps"], "argument --option: expected key=value"),
])
def test_score_argparse_errors_exit_2(tmp_path, capsys, argv, needle):
    code, _, err = _cli(capsys, "score", "--archs", "1", "--store", tmp_path / "s.sqlite", *argv)
    assert code == 2 and needle in err


def test_dataset_names_are_case_insensitive(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    code, _, _ = _cli(capsys, "score", "--archs", "1", "--proxies", "params", "--dataset", "imagenet16-120",
                      "--store", store, "--quiet")
    assert code == 0
    from zcproxy.store import load

    assert load(store)["settings"].iloc[0]["dataset"] == "ImageNet16-120"


def test_score_refuses_a_foreign_store_without_touching_it(tmp_path, capsys):
    path = tmp_path / "results.csv"
    path.write_text("arch,value\n1,2\n")
    code, _, err = _cli(capsys, "score", "--archs", "1", "--proxies", "params", "--store", path, "--quiet")
    assert code == 2 and str(path) in err and "not a SQLite file" in err
    assert path.read_text() == "arch,value\n1,2\n"


@proxy("boom_big", reference="test", cost="static")
def _boom_big(ctx):
    if ctx.arch > 100:
        raise RuntimeError("too big")
    return 1.0


def test_score_exit_1_lists_failed_archs(tmp_path, capsys, monkeypatch):
    table = {"boom_big": _boom_big.__proxy_spec__, "params": proxies.spec("params")}
    monkeypatch.setattr(proxies, "_specs", lambda: table)
    code, out, _ = _cli(capsys, "score", "--archs", "3,500,7,900", "--proxies", "all", "--store",
                        tmp_path / "s.sqlite", "--quiet")
    assert code == 1
    assert "arch 500 boom_big:" in out and "arch 900 boom_big:" in out and "too big" in out
    assert "arch 3 " not in out
    assert sorted(load(tmp_path / "s.sqlite").query("proxy == 'params'")["arch"]) == [3, 7, 500, 900]


def test_module_entry_point_runs_in_a_subprocess(tmp_path):
    store = tmp_path / "s.sqlite"
    done = subprocess.run([sys.executable, "-m", "zcproxy", "score", "--archs", "2", "--proxies", "params",
                           "--store", str(store), "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 archs: 1 scored now" in done.stdout and load(store)["arch"].tolist() == [2]


# ---------------------------------------------------------------------------------------------- rank


def test_rank_orders_by_orientation_with_arch_strings(scored, capsys):
    code, out, _ = _cli(capsys, "rank", "--store", scored, "--proxy", "params", "--top", "3")
    assert code == 0
    expected = sorted([13714, 0, 5, 1234, 7], key=lambda a: (-_params(a), a))[:3]
    lines = [l.split() for l in out.splitlines() if l.strip()[:1].isdigit()]
    assert [int(l[1]) for l in lines] == expected
    assert [l[3] for l in lines] == [NB201.arch(a) for a in expected]
    assert "higher is better" in out


def test_rank_errors(scored, capsys):
    code, _, err = _cli(capsys, "rank", "--store", scored, "--proxy", "synflow")
    assert code == 2 and "--proxy 'synflow' is not in store" in err and "params" in err
    code, _, err = _cli(capsys, "rank", "--store", scored, "--proxy", "params", "--top", "0")
    assert code == 2 and "--top" in err
    code, _, err = _cli(capsys, "rank", "--store", scored.parent / "none.sqlite", "--proxy", "params")
    assert code == 2 and "does not exist" in err


# ------------------------------------------------------------------------------------ export / merge


def test_export_long_and_wide(scored, tmp_path, capsys):
    code, out, _ = _cli(capsys, "export", "--store", scored, "--out", tmp_path / "w.csv", "--wide")
    assert code == 0 and "wrote 5 rows" in out
    wide = pd.read_csv(tmp_path / "w.csv", index_col="arch")
    assert wide["params"].to_dict() == {a: _params(a) for a in (0, 5, 7, 1234, 13714)}
    code, _, _ = _cli(capsys, "export", "--store", scored, "--out", tmp_path / "l.csv")
    long = pd.read_csv(tmp_path / "l.csv")
    assert code == 0 and list(long.columns)[:3] == ["arch", "proxy", "value"] and len(long) == 5
    code, _, err = _cli(capsys, "export", "--store", scored, "--out", tmp_path / "w.xlsx")
    assert code == 2 and "--out" in err and ".csv" in err


def test_merge_cli_reports_duplicates_and_conflicts(scored, tmp_path, capsys):
    other = tmp_path / "other.sqlite"
    assert _cli(capsys, "score", "--archs", "5,8", "--proxies", "params", "--store", other, "--quiet")[0] == 0
    out_store = tmp_path / "merged.sqlite"
    code, out, _ = _cli(capsys, "merge", out_store, scored, other)
    assert code == 0 and "6 rows added, 1 identical duplicates skipped" in out and "0 conflicts" in out
    assert sorted(load(out_store)["arch"]) == [0, 5, 7, 8, 1234, 13714]
    import sqlite3

    conn = sqlite3.connect(other)
    conn.execute("UPDATE scores SET value = value + 1 WHERE arch = 8")
    conn.commit()
    conn.close()
    code, out, _ = _cli(capsys, "merge", out_store, other)
    assert code == 1 and "1 conflicts" in out and "conflict arch 8 params" in out


# ---------------------------------------------------------------------------------------------- demo


@pytest.mark.data
def test_demo_scores_sample_and_prints_a_table(tmp_path, capsys, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "demo", "--archs", "sample:6", "--proxies", "params", "--quiet",
                          "--data-dir", data_dir)
    assert code == 0, err
    store = tmp_path / "runs" / "demo.sqlite"
    assert sorted(load(store)["arch"]) == parse_archs("sample:6")
    assert "params" in out
    code, out, _ = _cli(capsys, "demo", "--archs", "sample:6", "--proxies", "params", "--quiet",
                        "--data-dir", data_dir)
    assert code == 0 and "6 already in the store" in out


def test_ray_backend_without_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    code, _, err = _cli(capsys, "score", "--archs", "1", "--proxies", "params", "--store", tmp_path / "s.sqlite",
                        "--backend", "ray", "--quiet")
    assert code == 2 and "pip install 'zcproxy[ray]'" in err


def test_unknown_space_is_a_usage_error_naming_the_forms(tmp_path, capsys):
    code, _, err = _cli(capsys, "score", "--archs", "1", "--space", "nope", "--store", tmp_path / "s.sqlite")
    assert code == 2 and "argument --space: unknown search space 'nope'; use one of nb201, darts" in err
    assert not (tmp_path / "s.sqlite").exists()


def test_a_failed_correlate_removes_only_what_it_created(scored, tmp_path, capsys):
    fresh = tmp_path / "new" / "deeper"
    code, _, err = _cli(capsys, "correlate", "--store", scored, "--proxies", "nope", "--out", fresh)
    assert code == 2 and "['nope'] are not in the store" in err
    assert not (tmp_path / "new").exists()  # the folders it made are gone
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("mine")
    code, _, _ = _cli(capsys, "correlate", "--store", scored, "--proxies", "nope", "--out", kept)
    assert code == 2 and [p.name for p in kept.iterdir()] == ["mine.txt"]


def test_predict_fits_on_labelled_archs_and_applies_to_a_store(scored, tmp_path, capsys):
    from zcproxy.space import NB201

    more = tmp_path / "more.sqlite"
    assert main(["score", "--archs", "sample:12", "--proxies", "params,synflow", "--store", str(more), "--quiet"]) == 0
    archs = [int(a) for a in load(more)["arch"].unique()]
    truth = tmp_path / "t.csv"
    truth.write_text("arch,acc\n" + "".join(f"{NB201.arch(a)},{i}\n" for i, a in enumerate(sorted(archs))))
    model = tmp_path / "m.json"
    code, out, err = _cli(capsys, "predict", "fit", "--store", more, "--truth", truth, "--labels", "8",
                          "--model", model)
    assert code == 0, err
    assert "fitted on 8 labelled architectures, 2 features" in out and model.read_text().lstrip().startswith("{")
    code, _, err = _cli(capsys, "predict", "fit", "--store", more, "--truth", truth, "--model", model)
    assert code == 2 and "exists; pass --force" in err
    code, out, err = _cli(capsys, "predict", "apply", "--store", more, "--model", model, "--out", tmp_path / "p.csv")
    assert code == 0, err
    predicted = pd.read_csv(tmp_path / "p.csv", index_col=0)
    assert sorted(predicted.index) == sorted(archs) and predicted.columns.tolist() == ["predicted_cifar10_acc"]


def test_predict_with_graph_features_fits_and_applies_them(scored, tmp_path, capsys):
    from zcproxy.space import NB201, graph_features

    more = tmp_path / "more.sqlite"
    assert main(["score", "--archs", "sample:12", "--proxies", "params", "--store", str(more), "--quiet"]) == 0
    archs = sorted(int(a) for a in load(more)["arch"].unique())
    truth = tmp_path / "t.csv"
    truth.write_text("arch,acc\n" + "".join(f"{NB201.arch(a)},{i}\n" for i, a in enumerate(archs)))
    model = tmp_path / "m.json"
    code, out, err = _cli(capsys, "predict", "fit", "--store", more, "--truth", truth, "--graph-features",
                          "--learner", "extra_trees", "--model", model)
    width = graph_features([archs[0]]).shape[1]
    assert code == 0, err
    assert f"fitted on 12 labelled architectures, {1 + width} features" in out
    assert '"model": "extra_trees"' in model.read_text().replace("'", '"')
    code, _, err = _cli(capsys, "predict", "apply", "--store", more, "--model", model, "--out", tmp_path / "p.csv")
    assert code == 0, err  # the graph columns are added again because the predictor uses them
    assert sorted(pd.read_csv(tmp_path / "p.csv", index_col=0).index) == archs


def test_predict_learner_choices_are_the_predictor_models():
    from zcproxy.cli.predict import LEARNERS
    from zcproxy.validate.predictor import MODELS

    assert LEARNERS == MODELS


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch, capsys):
    from zcproxy.cli import main

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("zcproxy.cli.arch.run", closed)
    assert main(["arch", "13714"]) == 141
    assert capsys.readouterr().err == ""
