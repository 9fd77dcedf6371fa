"""The SQLite score store: settings hashing, round trips, WAL, atomic writes, bad files, pivot, export, merge."""
from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zcproxy
from zcproxy.errors import StoreError
from zcproxy.scoring import ProxyResult
from zcproxy import store as store_module
from zcproxy.proxies import ADDED_OPTIONS
from zcproxy.store import Store, export, load, merge, pivot, settings_hash


def _settings(proxy="p", **extra):
    base = {"proxy": proxy, "dataset": "cifar10", "seed": 0, "batch_size": 64, "stand_in": False, "bn": "train",
            "dtype": "float32"}
    base.update(extra)
    return base


def _result(value, proxy="p", flags=(), seconds=0.25, **extra):
    return ProxyResult(value, seconds, _settings(proxy, **extra), frozenset(flags), True)


# ------------------------------------------------------------------------------------------- hashing


def test_settings_hash_is_sha256_of_sorted_compact_json():
    expected = hashlib.sha256(b'{"a":1,"b":0.1,"c":[true,null,"x"]}').hexdigest()[:16]
    assert settings_hash({"c": [True, None, "x"], "b": 0.1, "a": 1}) == expected
    assert settings_hash({"a": 1, "b": 0.1, "c": (True, None, "x")}) == expected


def test_settings_hash_is_order_independent_and_stable_across_processes():
    import subprocess
    import sys

    s = _settings(eps=8 / 255, alpha=2 / 255)
    reordered = dict(reversed(list(s.items())))
    assert settings_hash(s) == settings_hash(reordered)
    code = ("from zcproxy.store import settings_hash; "
            f"print(settings_hash({s!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=str(_repo_root()))
    assert out.stdout.strip() == settings_hash(s)


def _repo_root():
    from pathlib import Path

    return Path(zcproxy.__file__).resolve().parent.parent


@pytest.mark.parametrize("change", [{"eps": 4 / 255}, {"seed": 1}, {"batch_size": 32}, {"dataset": "cifar100"},
                                    {"stand_in": True}, {"eps": math.nextafter(8 / 255, 1.0)}])
def test_settings_hash_changes_with_any_setting(change):
    base = _settings(eps=8 / 255)
    assert settings_hash({**base, **change}) != settings_hash(base)


def test_settings_hash_keeps_exact_float_and_type():
    assert settings_hash({"eps": 8 / 255}) == settings_hash({"eps": 0.03137254901960784})
    assert settings_hash({"eps": 8 / 255}) != settings_hash({"eps": 0.0313725490196078})
    assert settings_hash({"x": 1}) != settings_hash({"x": 1.0})
    assert settings_hash({"x": 1}) != settings_hash({"x": True})


def test_settings_hash_rejects_nan_and_unknown_types():
    with pytest.raises(ValueError, match="settings.eps"):
        settings_hash({"eps": float("nan")})
    with pytest.raises(TypeError, match="settings.f"):
        settings_hash({"f": object()})


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_put_get_frame_load(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.put(5, {"p": _result(1.5, flags=("degenerate",)), "q": _result(-2.25, proxy="q", seconds=1.0)},
              device="cpu")
        s.put(7, {"p": _result(3.0)}, device="cuda:0")
        h = settings_hash(_settings("p"))
        assert s.get(5, "p", h) == 1.5 and s.done(5, "p", h)
        assert s.get(7, "p", h) == 3.0
        assert s.get(6, "p", h) is None and not s.done(6, "p", h)
        assert s.get(5, "p", "0" * 16) is None
    frame = load(path)
    assert list(frame.columns) == ["arch", "proxy", "value", "seconds", "flags", "settings_hash", "settings",
                                   "version", "device", "timestamp", "space", "torch_threads"]
    assert frame[["arch", "proxy", "value"]].values.tolist() == [[5, "p", 1.5], [5, "q", -2.25], [7, "p", 3.0]]
    row = frame.iloc[0]
    assert row["flags"] == ("degenerate",) and row["settings"] == _settings("p")
    assert row["settings_hash"] == settings_hash(_settings("p")) and row["version"] == zcproxy.__version__
    assert frame.iloc[2]["device"] == "cuda:0" and frame.iloc[1]["seconds"] == 1.0


def test_put_is_all_or_nothing_per_arch(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        with pytest.raises(ValueError, match="NaN"):
            s.put(3, {"p": _result(1.0), "q": _result(float("nan"), proxy="q")}, device="cpu")
        assert s.frame().empty
        with pytest.raises(ValueError, match="arch"):
            s.put(-1, {"p": _result(1.0)}, device="cpu")


def test_put_replaces_and_clears_failure(tmp_path):
    h = settings_hash(_settings("p"))
    with Store(tmp_path / "s.sqlite") as s:
        s.put_failure(4, "p", h, "ProxyError: boom")
        assert s.failures()[["arch", "proxy", "message"]].values.tolist() == [[4, "p", "ProxyError: boom"]]
        s.put(4, {"p": _result(2.0)}, device="cpu")
        assert s.failures().empty
        s.put(4, {"p": _result(9.0)}, device="cpu")
        assert s.get(4, "p", h) == 9.0 and len(s.frame()) == 1


def test_pending_and_missing_follow_the_plan(tmp_path):
    plan = {"p": settings_hash(_settings("p")), "q": settings_hash(_settings("q"))}
    with Store(tmp_path / "s.sqlite") as s:
        s.put(1, {"p": _result(1.0), "q": _result(1.0, proxy="q")}, device="cpu")
        s.put(2, {"p": _result(1.0)}, device="cpu")
        s.put(3, {"p": _result(1.0, seed=1), "q": _result(1.0, proxy="q")}, device="cpu")  # p with other seed
        assert s.pending([3, 2, 1, 4, 2], plan) == ["3", "2", "4"]  # canonical keys
        assert s.missing([1, 2, 3, 4], plan) == {"2": ["q"], "3": ["p"], "4": ["p", "q"]}


def test_readonly_store_refuses_writes_and_missing_file(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.put(1, {"p": _result(1.0)}, device="cpu")
    with Store(path, readonly=True) as s:
        assert len(s.frame()) == 1
        with pytest.raises(StoreError, match="read-only"):
            s.put(2, {"p": _result(1.0)}, device="cpu")
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "absent.sqlite", readonly=True)
    with pytest.raises(StoreError, match="directory"):
        Store(tmp_path)


# ---------------------------------------------------------------------------------------------- WAL


def test_wal_mode_lets_readers_see_committed_rows_during_a_write(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.put(1, {"p": _result(1.0)}, device="cpu")
        raw = sqlite3.connect(path)
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        raw.close()
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO scores SELECT space, '2', proxy, settings_hash, value, seconds, flags, settings, "
                       "version, device, timestamp FROM scores WHERE arch = '1'")
        seen = []
        reader = threading.Thread(target=lambda: seen.append(load(path)["arch"].tolist()))
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "reader blocked by an open write transaction (not WAL?)"
        assert seen == [[1]]  # uncommitted arch 2 invisible, committed arch 1 visible
        writer.execute("COMMIT")
        writer.close()
    assert load(path)["arch"].tolist() == [1, 2]


# ----------------------------------------------------------------------------------------- bad files


def test_non_sqlite_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"my precious notes\n" * 100)
    with pytest.raises(StoreError, match="not a SQLite file") as err:
        Store(path)
    assert str(path) in str(err.value) and "another" in str(err.value)
    assert path.read_bytes() == b"my precious notes\n" * 100


def test_foreign_sqlite_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE scores (x INTEGER)")
    conn.execute("INSERT INTO scores VALUES (42)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(StoreError, match="not a zcproxy store") as err:
            Store(path, readonly=readonly)
        assert str(path) in str(err.value)
    assert path.read_bytes() == before


def test_corrupt_store_is_refused_and_untouched(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        for arch in range(400):
            s.put(arch, {"p": _result(float(arch), note="x" * 200)}, device="cpu")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[4096 * 3:4096 * 6] = b"\xa5" * (4096 * 3)  # clobber b-tree pages in the middle
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt") as err:
        Store(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == bytes(data)


def _rollback_journal_store(path):
    with Store(path) as s:
        s.put(1, {"p": _result(1.0)}, device="cpu")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"  # as committed exports are
    conn.close()


def test_store_held_locked_past_the_timeout_is_reported_busy_not_corrupt(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    _rollback_journal_store(path)
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_MS", 300)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    before = path.read_bytes()
    try:
        with pytest.raises(StoreError, match="locked by another process") as err:
            Store(path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(path) in str(err.value) and "corrupt" not in str(err.value) and "rerun" in str(err.value)
    assert path.read_bytes() == before
    with Store(path, readonly=True) as s:
        assert s.frame()["arch"].tolist() == [1]


def test_lock_reported_without_waiting_is_retried_until_it_clears(tmp_path, monkeypatch):
    """SQLite reports "database is locked" at once (no busy handler) when two processes convert a
    rollback-journal store to WAL together; opening must retry instead of calling the store corrupt."""
    path = tmp_path / "s.sqlite"
    _rollback_journal_store(path)
    original = Store._check_or_create
    calls = []

    def locked_twice(self, conn, exists):
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return original(self, conn, exists)

    monkeypatch.setattr(Store, "_check_or_create", locked_twice)
    with Store(path) as s:
        assert s.frame()["arch"].tolist() == [1]
    assert len(calls) == 3
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_exclusive_lock_released_soon_lets_the_store_open(tmp_path):
    path = tmp_path / "s.sqlite"
    _rollback_journal_store(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, lambda: (holder.execute("ROLLBACK"), holder.close()))
    release.start()
    with Store(path) as s:
        s.put(2, {"p": _result(2.0)}, device="cpu")
    release.join()
    assert load(path)["arch"].tolist() == [1, 2]


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version '99'.*upgrade"):
        Store(path)


# --------------------------------------------------------------------------------------- pivot / export


def _two_seed_store(path):
    with Store(path) as s:
        for arch in (3, 1, 2):
            s.put(arch, {"p": _result(arch * 1.5), "q": _result(-arch, proxy="q", eps=8 / 255)}, device="cpu")
            s.put(arch, {"p": _result(arch * 10.0, seed=1)}, device="cpu")
    return load(path)


def test_pivot_requires_a_choice_between_settings_and_filters(tmp_path):
    frame = _two_seed_store(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match=r"'p'.*2 different settings.*\['seed'\]"):
        pivot(frame)
    wide = pivot(frame, settings={"seed": 0})
    expected = pd.DataFrame({"p": [1.5, 3.0, 4.5], "q": [-1.0, -2.0, -3.0]}, index=pd.Index([1, 2, 3], name="arch"))
    pd.testing.assert_frame_equal(wide, expected)
    wide1 = pivot(frame, settings={"seed": 1, "eps": 8 / 255})  # eps does not exclude p, which has none
    assert wide1.columns.tolist() == ["p"] and wide1["p"].tolist() == [10.0, 20.0, 30.0]
    assert pivot(frame, settings={"seed": 0, "eps": 4 / 255}).columns.tolist() == ["p"]
    with pytest.raises(ValueError, match="epsilon"):
        pivot(frame, settings={"epsilon": 1})


def test_export_long_and_wide_csv_round_trip_exactly(tmp_path):
    path = tmp_path / "s.sqlite"
    frame = _two_seed_store(path)
    assert export(path, tmp_path / "long.csv") == len(frame) == 9
    long = pd.read_csv(tmp_path / "long.csv")
    assert long["value"].tolist() == frame["value"].tolist()
    assert [json.loads(s) for s in long["settings"]] == frame["settings"].tolist()
    assert export(path, tmp_path / "wide.csv", wide=True, settings={"seed": 0}) == 3
    wide = pd.read_csv(tmp_path / "wide.csv", index_col="arch")
    pd.testing.assert_frame_equal(wide, pivot(frame, settings={"seed": 0}))


# --------------------------------------------------------------------------------------------- merge


def test_merge_dedupes_identical_rows_and_reports_conflicts(tmp_path):
    a, b, out = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "out.sqlite"
    h = settings_hash(_settings("p"))
    with Store(a) as s:
        s.put(1, {"p": _result(1.0)}, device="cpu")
        s.put(2, {"p": _result(2.0)}, device="cpu")
        s.put_failure(9, "p", h, "boom")
    with Store(b) as s:
        s.put(2, {"p": _result(2.0)}, device="cpu")      # identical
        s.put(3, {"p": _result(3.0)}, device="cpu")      # new
        s.put(1, {"p": _result(1.5)}, device="cpu")      # conflict
    report = merge(out, [a, b])
    assert (report.added, report.duplicates, report.failures_added) == (3, 1, 1)
    assert [(c["arch"], c["kept"], c["other"]) for c in report.conflicts] == [(1, 1.0, 1.5)]
    merged = load(out)
    assert merged[["arch", "value"]].values.tolist() == [[1, 1.0], [2, 2.0], [3, 3.0]]
    with Store(out, readonly=True) as s:
        assert s.failures()["arch"].tolist() == [9]
    again = merge(out, [a, b])
    assert again.added == 0 and again.duplicates == 4 and len(again.conflicts) == 1
    with pytest.raises(ValueError, match="output store"):
        merge(out, [out])


# ------------------------------------------------------------------------------------- schema 2: spaces


def _v1_copy(tmp_path, name="study_cifar100.sqlite"):
    """A schema-1 store committed under results/, copied with sqlite's backup API."""
    source = Path(__file__).resolve().parents[1] / "results" / "correlation" / "stores" / name
    target = tmp_path / name
    src, dst = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True), sqlite3.connect(target)
    src.backup(dst)
    src.close(), dst.close()
    return target


def test_committed_schema1_store_reads_the_same_readonly_and_after_migration(tmp_path):
    path = _v1_copy(tmp_path)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    old = raw.execute("SELECT arch, proxy, settings_hash, value FROM scores ORDER BY arch, proxy, settings_hash").fetchall()
    raw.close()
    before = load(path)  # read-only: temporary views, the file is not migrated
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    assert before["arch"].dtype == "int64" and set(before["space"]) == {"nb201"}
    assert sorted(zip(before["arch"], before["proxy"], before["value"])) == [(a, p, v) for a, p, _, v in old]
    moved = {"croze", *ADDED_OPTIONS}  # CRoZe's eps is now croze_eps; NTK attacks gained attack_dtype
    unchanged = ~before["proxy"].isin(moved)
    assert sorted(zip(before["arch"][unchanged], before["proxy"][unchanged], before["settings_hash"][unchanged])) == \
        sorted((a, p, h) for a, p, h, _ in old if p not in moved)
    attacked = before[before["proxy"].isin(list(ADDED_OPTIONS))]
    assert len(attacked) and all(st["attack_dtype"] == "float32" for st in attacked["settings"])
    assert all(settings_hash(st) == h for st, h in zip(attacked["settings"], attacked["settings_hash"]))
    assert attacked["torch_threads"].isna().all()  # not recorded then, and not invented now
    croze = before[before["proxy"] == "croze"]
    assert len(croze) and all("croze_eps" in st and "eps" not in st for st in croze["settings"])
    assert all(settings_hash(st) == h for st, h in zip(croze["settings"], croze["settings_hash"]))
    from zcproxy import runner

    planned = runner.plan(["croze"], dataset="cifar100", seed=0, batch_size=64, stand_in=True)["croze"]
    assert planned in set(croze["settings_hash"])  # a resumed run finds the migrated results
    old_ntk = runner.plan(["ntk_robust"], dataset="cifar100", seed=0, batch_size=64, stand_in=True,
                          options={"attack_dtype": "float32"})["ntk_robust"]
    new_ntk = runner.plan(["ntk_robust"], dataset="cifar100", seed=0, batch_size=64, stand_in=True)["ntk_robust"]
    assert old_ntk in set(attacked["settings_hash"])  # float32 results are found under float32 settings ...
    assert new_ntk not in set(before["settings_hash"])  # ... and never mix with the float64 default
    with Store(path) as s:  # writable: migrated in place
        assert s.get(old[0][0], old[0][1], old[0][2]) == old[0][3]
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("4",)
        assert raw.execute("SELECT typeof(arch), space FROM scores LIMIT 1").fetchone() == ("text", "nb201")
    after = load(path)
    pd.testing.assert_frame_equal(before.drop(columns=["settings"]), after.drop(columns=["settings"]))
    pd.testing.assert_frame_equal(pivot(before, settings={"seed": 0}), pivot(after, settings={"seed": 0}))


def test_string_keys_of_two_spaces_are_kept_apart(tmp_path):
    path = tmp_path / "s.sqlite"
    genotype = "Genotype(normal=[('none', 0)])"
    with Store(path) as s:
        s.put(genotype, {"p": _result(1.0)}, device="cpu", space="darts")
        s.put(5, {"p": _result(2.0)}, device="cpu")
        s.put("5", {"p": _result(3.0)}, device="cpu", space="mine")
        assert s.get(genotype, "p", settings_hash(_result(1.0).settings), space="darts") == 1.0
        assert s.get(genotype, "p", settings_hash(_result(1.0).settings)) is None  # not in nb201
        assert s.missing([genotype, "other"], {"p": settings_hash(_result(1.0).settings)}, space="darts") == \
            {"other": ["p"]}
        with pytest.raises(ValueError, match="canonical architecture key"):
            s.put(" padded ", {"p": _result(1.0)}, device="cpu", space="darts")
    frame = load(path)
    with pytest.raises(ValueError, match="several search spaces"):
        pivot(frame)
    assert pivot(frame, space="darts").index.tolist() == [genotype]
    assert pivot(frame, space="nb201")["p"].to_dict() == {5: 2.0}
    assert pivot(frame, space="mine")["p"].to_dict() == {5: 3.0}
    with pytest.raises(ValueError, match="no scores of search space 'nope'"):
        pivot(frame, space="nope")


def test_leases_split_work_and_expire(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as a, Store(path) as b:
        assert a.claim([1, 2, 3, 4], "plan", "A", seconds=60, limit=2) == ["1", "2"]
        assert b.claim([1, 2, 3, 4], "plan", "B", seconds=60) == ["3", "4"]
        assert b.claim([1, 2], "other-plan", "B", seconds=60) == ["1", "2"]  # leases are per plan
        a.release(["1"], "plan", "A")
        assert b.claim([1, 2], "plan", "B", seconds=60) == ["1"]
        assert a.claim([5], "plan", "A", seconds=-1) == ["5"]  # already expired: anyone may take it
        assert b.claim([5], "plan", "B", seconds=60) == ["5"]


def test_store_under_a_file_is_refused_with_a_clear_error(tmp_path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    with pytest.raises(StoreError, match="results.txt is a file, not a folder"):
        Store(blocker / "sub" / "scores.sqlite")
    assert blocker.read_text() == "keep me"


def test_lease_of_a_dead_process_on_this_host_is_void(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid now names no process
    dead = f"{socket.gethostname()}:{child.pid}:x"
    alive = f"{socket.gethostname()}:{os.getpid()}:y"
    with Store(tmp_path / "s.sqlite") as s:
        assert s.claim([1], "plan", dead, seconds=3600) == ["1"]
        assert s.claim([2], "plan", alive, seconds=3600) == ["2"]
        assert s.claim([1, 2], "plan", "other-host:1:z", seconds=60) == ["1"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.one_of(st.text(max_size=60), st.integers(-5, 10**12), st.floats(allow_nan=True), st.booleans()))
def test_any_store_key_round_trips_or_is_refused(tmp_path, key):
    """Keys are non-empty strings without surrounding blanks, or non-negative ints; anything else is a
    ValueError naming the key, and nothing is written."""
    path = tmp_path / f"k{abs(hash(repr(key))) % 10**9}.sqlite"
    with Store(path) as s:
        try:
            s.put(key, {"p": _result(1.0)}, device="cpu", space="anything")
        except ValueError as exc:
            assert "canonical architecture key" in str(exc)
            assert s.frame().empty
            return
        stored = s.frame()
    assert len(stored) == 1 and str(stored["arch"].iloc[0]) == str(key)


# ------------------------------------------------------------------------- schema 4: recorded, unhashed


def test_torch_threads_is_recorded_but_not_hashed(tmp_path):
    one, two = _settings("p", torch_threads=1), _settings("p", torch_threads=2)
    assert settings_hash(one) == settings_hash(two) == settings_hash(_settings("p"))
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.put(5, {"p": ProxyResult(1.0, 0.1, one, frozenset(), True)}, device="cpu")
        s.put(6, {"p": ProxyResult(2.0, 0.1, two, frozenset(), True)}, device="cpu")
        s.put(7, {"p": _result(3.0)}, device="cpu")
        assert s.missing([5, 6, 7], {"p": settings_hash(_settings("p"))}) == {}  # another thread count is not missing
    frame = load(path)
    assert frame["torch_threads"].tolist()[:2] == [1, 2] and pd.isna(frame["torch_threads"].iloc[2])
    assert len(pivot(frame)) == 3  # one settings hash, so one column


def test_schema3_store_gets_the_old_attack_precision_and_other_hashes_stay(tmp_path):
    """A schema-3 store (before attack_dtype): NTK attack rows are migrated to float32, the rest keep their key."""
    from zcproxy.scoring import planned_settings

    legacy = {name: {k: v for k, v in planned_settings(name).items() if k not in ("attack_dtype", "torch_threads")}
              for name in ("ntk_robust", "ntk_clean", "gradsign")}
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.put(5, {n: ProxyResult(float(i + 1), 0.1, st, frozenset(), True) for i, (n, st) in enumerate(legacy.items())},
              device="cpu")
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    readonly = load(path)
    with Store(path) as s:
        assert s.get(5, "gradsign", settings_hash(legacy["gradsign"])) == 3.0
        assert s.get(5, "ntk_clean", settings_hash(legacy["ntk_clean"])) == 2.0
        assert s.get(5, "ntk_robust", settings_hash(legacy["ntk_robust"])) is None
        assert s.get(5, "ntk_robust", settings_hash({**legacy["ntk_robust"], "attack_dtype": "float32"})) == 1.0
        assert s.get(5, "ntk_robust", settings_hash(planned_settings("ntk_robust"))) is None
    after = load(path)
    pd.testing.assert_frame_equal(readonly, after)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("4",)
