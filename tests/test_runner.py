"""The batch runner: planning, resume, failure isolation, shards, process workers, Ray, and SIGKILL recovery."""
from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import zcproxy
import zcproxy.proxies as proxies
from zcproxy import runner
from zcproxy.proxies import proxy
from zcproxy.space import NB201
from zcproxy.store import Store, load, pivot

REPO = Path(zcproxy.__file__).resolve().parent.parent


def _param_millions(arch: int) -> float:
    """Independent oracle for the params proxy: count parameters of a freshly built network."""
    return sum(p.numel() for p in NB201.build(arch).parameters()) / 1e6


@pytest.fixture
def fake_data(tmp_path):
    """A data folder holding a 200-image CIFAR-10 ``data_batch_1`` in the official pickle layout."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    content = {b"data": rng.integers(0, 256, (200, 3072), dtype=np.uint8),
               b"labels": [int(v) for v in rng.integers(0, 10, 200)]}
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump(content, handle)
    return tmp_path / "data"


def _install(monkeypatch, *fns):
    """Replace the proxy registry by ``fns`` plus the real params proxy (in-process only)."""
    table = {f.__proxy_spec__.name: f.__proxy_spec__ for f in fns}
    table["params"] = proxies.spec("params")
    monkeypatch.setattr(proxies, "_specs", lambda: dict(sorted(table.items())))


@proxy("boom_odd", reference="test", cost="static")
def _boom_odd(ctx):
    if ctx.arch % 2:
        raise RuntimeError("odd architecture")
    return float(ctx.arch)


@proxy("pair", reference="test", cost="static", outputs=("pair_a", "pair_b"), defaults={"k": 2},
       orientation={"pair_b": False})
def _pair(ctx):
    return {"pair_a": float(ctx.arch * ctx.options["k"]), "pair_b": -float(ctx.arch)}


# ----------------------------------------------------------------------------------------------- shards


def test_shards_partition_the_sorted_archs_exactly_once():
    archs = [50, 3, 17, 3, 999, 0, 42, 7, 8, 15624]
    shards = [runner.shard_archs(archs, i, 3) for i in range(3)]
    flat = sorted(a for s in shards for a in s)
    assert flat == sorted(set(archs))
    # sorted distinct: 0 3 7 8 17 42 50 999 15624 -> positions mod 3
    assert shards[0] == [0, 8, 50] and shards[1] == [3, 17, 999] and shards[2] == [7, 42, 15624]
    assert [runner.shard_archs(list(reversed(archs)), i, 3) for i in range(3)] == shards
    for bad in ((3, 3), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="0 <= i < n"):
            runner.shard_archs(archs, *bad)


def test_sharded_runs_together_equal_one_run(tmp_path):
    archs = [11, 5, 300, 7, 2, 9000, 64]
    for i in range(3):
        s = runner.run(archs, "params", store=tmp_path / f"shard{i}.sqlite", shard=(i, 3), progress=False)
        assert s.archs == len(runner.shard_archs(archs, i, 3))
    from zcproxy.store import merge

    merge(tmp_path / "all.sqlite", [tmp_path / f"shard{i}.sqlite" for i in range(3)])
    runner.run(archs, "params", store=tmp_path / "one.sqlite", progress=False)
    merged, single = load(tmp_path / "all.sqlite"), load(tmp_path / "one.sqlite")
    assert merged[["arch", "proxy", "value", "settings_hash"]].equals(single[["arch", "proxy", "value", "settings_hash"]])


# ----------------------------------------------------------------------------------------- run / resume


def test_run_scores_resumes_and_matches_an_independent_oracle(tmp_path):
    store = tmp_path / "s.sqlite"
    archs = [0, 13714, 5, 1234, 13714]
    first = runner.run(archs, "params", store=store, progress=False)
    assert (first.archs, first.scored, first.skipped, first.ok) == (4, 4, 0, True)
    wide = pivot(load(store))
    assert wide.index.tolist() == sorted(set(archs))
    for arch in set(archs):
        assert wide.loc[arch, "params"] == _param_millions(arch)
    assert wide.loc[13714, "params"] == 1.073466
    again = runner.run(archs + [77], "params", store=store, progress=False)
    assert (again.archs, again.scored, again.skipped) == (5, 1, 4)
    assert len(load(store)) == 5


def test_a_changed_setting_is_scored_again_not_skipped(tmp_path):
    store = tmp_path / "s.sqlite"
    runner.run([1, 2], "params", store=store, seed=0, progress=False)
    s = runner.run([1, 2], "params", store=store, seed=1, progress=False)
    assert s.scored == 2 and s.skipped == 0
    assert load(store)["settings_hash"].nunique() == 2


def test_failing_proxy_keeps_other_results_and_is_retried(tmp_path, monkeypatch):
    _install(monkeypatch, _boom_odd, _pair)
    store = tmp_path / "s.sqlite"
    archs = [2, 3, 4, 5]
    s = runner.run(archs, ["params", "boom_odd", "pair"], store=store, options={"k": 3}, progress=False)
    assert sorted(s.failed) == [3, 5] and s.scored == 2 and not s.ok
    assert all(set(v) == {"boom_odd"} and "odd architecture" in v["boom_odd"] for v in s.failed.values())
    wide = pivot(load(store))
    assert wide["params"].tolist() == [_param_millions(a) for a in archs]
    assert wide["pair_a"].tolist() == [6.0, 9.0, 12.0, 15.0] and wide["pair_b"].tolist() == [-2.0, -3.0, -4.0, -5.0]
    assert wide["boom_odd"].dropna().to_dict() == {2: 2.0, 4: 4.0}
    with Store(store, readonly=True) as db:
        assert db.failures()[["arch", "proxy"]].values.tolist() == [[3, "boom_odd"], [5, "boom_odd"]]
        assert db.pending(archs, runner.plan(["params", "boom_odd", "pair"], options={"k": 3})) == ["3", "5"]

    @proxy("boom_odd", reference="test", cost="static")
    def fixed(ctx):
        return float(ctx.arch)

    _install(monkeypatch, fixed, _pair)
    calls = []
    original = runner._score_arch
    monkeypatch.setattr(runner, "_score_arch", lambda job, a, names: calls.append((a, list(names))) or original(job, a, names))
    retry = runner.run(archs, ["params", "boom_odd", "pair"], store=store, options={"k": 3}, progress=False)
    assert calls == [("3", ["boom_odd"]), ("5", ["boom_odd"])]  # only the missing proxy of the failed archs
    assert retry.ok and retry.scored == 2 and retry.skipped == 2
    with Store(store, readonly=True) as db:
        assert db.failures().empty
    assert pivot(load(store))["boom_odd"].to_dict() == {2: 2.0, 3: 3.0, 4: 4.0, 5: 5.0}


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "spark"}, "backend must be one of"),
    ({"workers": 0}, "workers must be a positive int"),
    ({"batch_size": -4}, "batch_size must be a positive int"),
    ({"seed": -1}, "seed must be"),
    ({"options": {"epss": 0.1}}, r"unknown option\(s\) \['epss'\]"),
    ({"shard": (2, 2)}, "0 <= i < n"),
    ({"device": "tpu"}, "device must be"),
])
def test_run_rejects_bad_arguments_by_name(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        runner.run([1], "params", store=tmp_path / "s.sqlite", progress=False, **kwargs)
    assert not (tmp_path / "s.sqlite").exists()


def test_run_rejects_unknown_archs_and_proxies(tmp_path):
    with pytest.raises(ValueError, match="archs: 15625"):
        runner.run([15625], "params", store=tmp_path / "s.sqlite", progress=False)
    with pytest.raises(KeyError, match="unknown proxy 'nope'"):
        runner.run([1], ["nope"], store=tmp_path / "s.sqlite", progress=False)


# ------------------------------------------------------------------------------------------ parallelism


def _cheap(names=("params", "nwot", "grad_norm")) -> list[str]:
    return [n for n in names if n in proxies.available()]


def test_two_workers_equal_one_worker_bit_for_bit(tmp_path, fake_data):
    archs = [0, 17, 1462]
    names = _cheap()
    kwargs = dict(batch_size=4, data_dir=fake_data, progress=False, threads=1)
    torch_threads = torch.get_num_threads()
    one = runner.run(archs, names, store=tmp_path / "one.sqlite", workers=1, **kwargs)
    assert torch.get_num_threads() == torch_threads  # the inline run restores the caller's thread count
    two = runner.run(archs, names, store=tmp_path / "two.sqlite", workers=2, **kwargs)
    assert one.ok and two.ok and one.scored == two.scored == len(archs)
    a, b = load(tmp_path / "one.sqlite"), load(tmp_path / "two.sqlite")
    assert len(a) == len(archs) * len(names)
    cols = ["arch", "proxy", "settings_hash", "flags"]
    assert a[cols].equals(b[cols])
    assert a["value"].to_numpy().tobytes() == b["value"].to_numpy().tobytes()


def test_ray_backend_matches_local(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'zcproxy[ray]'")
    archs = [3, 9, 200, 4000, 13714]
    local = runner.run(archs, "params", store=tmp_path / "local.sqlite", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        remote = runner.run(archs, "params", store=tmp_path / "ray.sqlite", backend="ray", chunk_size=2,
                            progress=False)
    finally:
        ray.shutdown()
    assert local.scored == remote.scored == 5 and remote.ok
    a, b = load(tmp_path / "local.sqlite"), load(tmp_path / "ray.sqlite")
    assert a[["arch", "proxy", "value", "settings_hash"]].equals(b[["arch", "proxy", "value", "settings_hash"]])


# -------------------------------------------------------------------------------------------- SIGKILL


_SLOW_RUN = textwrap.dedent("""
    import sys, time
    from zcproxy import runner
    original = runner._score_arch
    def slow(job, arch, names):
        time.sleep(0.2)
        return original(job, arch, names)
    runner._score_arch = slow
    runner.run(list(range(int(sys.argv[2]))), "params", store=sys.argv[1], progress=False)
""")


def _rows(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_resume_after_sigkill_completes_every_arch_exactly_once(tmp_path):
    store, total = tmp_path / "s.sqlite", 36
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(store), str(total)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _rows(store) < 6 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert child.poll() is None, f"child ended early: {child.communicate()[1].decode()[-2000:]}"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    written = _rows(store)
    assert 6 <= written < total
    resumed = runner.run(list(range(total)), "params", store=store, progress=False)
    assert resumed.skipped == written and resumed.scored == total - written
    conn = sqlite3.connect(store)
    counts = conn.execute("SELECT CAST(arch AS INTEGER), COUNT(*) FROM scores GROUP BY arch "
                          "ORDER BY CAST(arch AS INTEGER)").fetchall()
    conn.close()
    assert counts == [(a, 1) for a in range(total)]
    wide = pivot(load(store))
    for arch in (0, 1, written - 1, written, total - 1):
        assert wide.loc[arch, "params"] == _param_millions(arch)


@proxy("slow_index", reference="test", cost="static")
def _slow_index(ctx):
    import time

    time.sleep(0.05)
    return float(ctx.arch)


def test_two_runs_on_one_store_split_the_work_through_leases(monkeypatch, tmp_path):
    import threading

    _install(monkeypatch, _slow_index)
    store = tmp_path / "s.sqlite"
    archs = list(range(24))
    summaries = []

    def work():
        summaries.append(runner.run(archs, ["slow_index"], store=store, progress=False))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    scored = [s.scored for s in summaries]
    assert sum(scored) == len(archs) and min(scored) > 0  # every arch scored once, by one run or the other
    frame = load(store)
    assert sorted(frame["arch"]) == archs and frame["value"].tolist() == [float(a) for a in frame["arch"]]
    with Store(store, readonly=True) as db:
        assert db._conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # every lease released
