"""Resumable score store: one SQLite file holding every proxy value ever computed.

One row per (search space, architecture key, proxy output, settings hash) with the value, seconds, flags,
the full settings, library version, device and timestamp. Keys are the space's canonical strings
(:mod:`zcproxy.space`); frames show them as labels (``space.label``: decimal keys such as NB201 indices as
ints). Stores written before spaces existed (schema 1, integer NB201 indices) are read as they are when
opened read-only and migrated to schema 2 (space ``nb201``) when opened for writing. Failures are kept in their own table so they can be
listed and retried. The file is opened in WAL mode with a busy timeout, and each architecture's results
are written in a single transaction, so killing a run loses at most the architectures in flight.

>>> with Store("runs/scores.sqlite") as s:          # doctest: +SKIP
...     s.put(13714, zcproxy.score(13714, "params"), device="cpu")
>>> pivot(load("runs/scores.sqlite"))               # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from . import __version__
from .errors import StoreError
from .space._protocol import DEFAULT_SPACE, labels

__all__ = ["SCHEMA_VERSION", "settings_hash", "Store", "load", "pivot", "export", "merge", "MergeReport"]

SCHEMA_VERSION = 4
UNHASHED_SETTINGS = ("torch_threads",)
"""Settings recorded with each result but not part of its key: the torch thread count changes float rounding
only, so results of another thread count are not "missing"."""
_FORMAT = "zcproxy-store"
_SQLITE_HEADER = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 60_000
COLUMNS = ("arch", "proxy", "value", "seconds", "flags", "settings_hash", "settings", "version", "device",
           "timestamp", "space")
_V1_SPACE = DEFAULT_SPACE  # schema-1 stores predate search spaces: every row is of the default space

_META = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCORES = """CREATE TABLE scores (
    space TEXT NOT NULL, arch TEXT NOT NULL, proxy TEXT NOT NULL, settings_hash TEXT NOT NULL,
    value REAL NOT NULL, seconds REAL NOT NULL, flags TEXT NOT NULL, settings TEXT NOT NULL,
    version TEXT NOT NULL, device TEXT NOT NULL, timestamp TEXT NOT NULL,
    PRIMARY KEY (space, arch, proxy, settings_hash)
) WITHOUT ROWID"""
_FAILURES = """CREATE TABLE failures (
    space TEXT NOT NULL, arch TEXT NOT NULL, proxy TEXT NOT NULL, settings_hash TEXT NOT NULL,
    message TEXT NOT NULL, timestamp TEXT NOT NULL,
    PRIMARY KEY (space, arch, proxy, settings_hash)
) WITHOUT ROWID"""
_LEASES = """CREATE TABLE leases (
    space TEXT NOT NULL, arch TEXT NOT NULL, plan TEXT NOT NULL, owner TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (space, arch, plan)
) WITHOUT ROWID"""
_TABLES = (_META, _SCORES, _FAILURES, _LEASES)
# Schema 1 -> 2: keys become (space, text key); v1 rows are NB201 indices.
_MIGRATE_V1 = """
ALTER TABLE scores RENAME TO scores_v1;
ALTER TABLE failures RENAME TO failures_v1;
{schema}
INSERT INTO scores SELECT '{space}', CAST(arch AS TEXT), proxy, settings_hash, value, seconds, flags, settings,
    version, device, timestamp FROM scores_v1;
INSERT INTO failures SELECT '{space}', CAST(arch AS TEXT), proxy, settings_hash, message, timestamp FROM failures_v1;
DROP TABLE scores_v1;
DROP TABLE failures_v1;
UPDATE meta SET value = '2' WHERE key = 'schema_version'
"""


class _StoreBusy(Exception):
    """Another process kept the store locked past the busy timeout."""


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


# ------------------------------------------------------------------------------------------ settings hash


def _canonical(value: Any, where: str) -> Any:
    """JSON-ready copy of a settings value; floats stay floats so their repr is exact."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"setting {where} is {value!r}; settings must be finite numbers")
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _canonical(item(), where)
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return str(value).replace("torch.", "")
    raise TypeError(f"setting {where} has type {type(value).__name__}; use numbers, strings, bools, lists or dicts")


def _settings_json(settings: Mapping[str, Any]) -> str:
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    return json.dumps(_canonical(settings, "settings"), sort_keys=True, separators=(",", ":"), allow_nan=False)


def settings_hash(settings: Mapping[str, Any]) -> str:
    """First 16 hex digits of sha256 over the settings as JSON with sorted keys (floats in exact repr).

    Equal settings always hash equally across runs and machines; any changed value (seed, eps, batch
    size, dataset, ...) gives a different hash. ``1`` and ``1.0`` are different settings. Keys of
    ``UNHASHED_SETTINGS`` (the torch thread count) are recorded but left out of the hash.
    """
    if isinstance(settings, Mapping):
        settings = {k: v for k, v in settings.items() if k not in UNHASHED_SETTINGS}
    return hashlib.sha256(_settings_json(settings).encode("utf-8")).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ----------------------------------------------------------------------------------------------- store


class Store:
    """A zcproxy score store (SQLite). Use as a context manager; ``readonly=True`` never writes.

    Opening a file that is not a SQLite database, a database that is not a zcproxy store, or a corrupt
    file raises :class:`StoreError`; such files are never modified.
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False):
        self.path = Path(path).expanduser()
        self.readonly = readonly
        self._conn = self._open()

    # -- opening ---------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path.is_dir():
            raise StoreError(f"store path {path} is a directory; pass a file name such as {path / 'scores.sqlite'}")
        exists = path.exists() and path.stat().st_size > 0
        if not exists and self.readonly:
            raise StoreError(f"store {path} does not exist; run `zcproxy score --store {path} ...` first")
        if exists:
            with open(path, "rb") as handle:
                header = handle.read(len(_SQLITE_HEADER))
            if header != _SQLITE_HEADER:
                raise StoreError(f"{path} is not a SQLite file, so it is not a zcproxy store; it was left "
                                 "untouched - pass another --store path")
        else:
            blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise StoreError(f"store path {path}: {blocker} is a file, not a folder, so the store cannot be "
                                 "created there; pass a --store path inside a folder")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.readonly:
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                       timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            else:
                conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}; check the path and its permissions") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._prepare_retrying_locks(conn, exists)
        except _StoreBusy as exc:
            conn.close()
            raise StoreError(f"store {path} stayed locked by another process for {_BUSY_TIMEOUT_MS / 1000:g} s "
                             f"({exc.__cause__}); it was left untouched - wait for that process or stop it, "
                             "then rerun") from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"store {path} is corrupt ({exc}); it was left untouched - restore it from a "
                             "copy, or move it away and rerun to start a new store") from None
        except StoreError:
            conn.close()
            raise
        return conn

    def _prepare_retrying_locks(self, conn: sqlite3.Connection, exists: bool) -> None:
        """Check (or create) the schema and switch to WAL, retrying while another process holds a lock.

        SQLite skips the busy handler when waiting could deadlock - e.g. two processes opening a
        rollback-journal store at once, both converting it to WAL - and reports "database is locked"
        at once; those attempts are retried here until the busy timeout.
        """
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        delay = 0.01
        while True:
            try:
                self._check_or_create(conn, exists)
                if not self.readonly:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("PRAGMA synchronous = NORMAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc):
                    raise
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if time.monotonic() + delay > deadline:
                    raise _StoreBusy() from exc
                time.sleep(delay)
                delay = min(2 * delay, 0.5)

    def _check_or_create(self, conn: sqlite3.Connection, exists: bool) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            if self.readonly:
                raise StoreError(f"store {self.path} is an empty SQLite file; run `zcproxy score` to fill it")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
                    for statement in _TABLES:
                        conn.execute(statement)
                    conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format", _FORMAT), ("schema_version", str(SCHEMA_VERSION)),
                        ("created", _now()), ("created_by", f"zcproxy {__version__}"),
                    ])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return
        marker = {}
        if "meta" in tables:
            marker = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('format', 'schema_version')"))
        if marker.get("format") != _FORMAT:
            raise StoreError(f"{self.path} is a SQLite database but not a zcproxy store (no zcproxy marker in "
                             "its meta table); it was left untouched - pass another --store path")
        version = marker.get("schema_version", "")
        if not version.isdigit() or int(version) > SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema version {version!r}, this zcproxy {__version__} "
                             f"reads up to {SCHEMA_VERSION}; upgrade zcproxy to read it")
        missing = {"scores", "failures"} - tables
        if missing:
            raise StoreError(f"store {self.path} lacks the table(s) {sorted(missing)}; it is damaged - restore it "
                             "from a copy or start a new store")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        if int(version) < SCHEMA_VERSION:
            self._upgrade(conn, int(version))
        elif "leases" not in tables and not self.readonly:
            conn.execute(_LEASES)

    def _upgrade(self, conn: sqlite3.Connection, version: int) -> None:
        """Older schemas: read through temporary views (read-only) or migrate in place (writable).

        1 -> 2: integer NB201 indices become (space ``nb201``, text key). 2 -> 3: retired proxy option names
        in stored settings get their new names (``proxies.RENAMED_OPTIONS``) and the settings hash is
        recomputed, so results keep matching the settings ``zcproxy.score`` now records. 3 -> 4: options
        added since a row was stored get the value it was computed with (``proxies.ADDED_OPTIONS``: NTK
        attacks were float32) and the hash is recomputed; rows of every other proxy keep their hash.
        """
        conn.create_function("zc_settings", 1, _renamed_settings, deterministic=True)
        conn.create_function("zc_hash", 2, _renamed_hash, deterministic=True)
        if self.readonly:
            space, arch = (f"'{_V1_SPACE}'", "CAST(arch AS TEXT)") if version == 1 else ("space", "arch")
            conn.execute(f"CREATE TEMP VIEW scores AS SELECT {space} AS space, {arch} AS arch, proxy, "
                         "zc_hash(settings, settings_hash) AS settings_hash, value, seconds, flags, "
                         "zc_settings(settings) AS settings, version, device, timestamp FROM main.scores")
            conn.execute(f"CREATE TEMP VIEW failures AS SELECT {space} AS space, {arch} AS arch, proxy, settings_hash, "
                         "message, timestamp FROM main.failures")
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            if current == 1:
                script = _MIGRATE_V1.format(schema=";\n".join((_SCORES, _FAILURES, _LEASES)) + ";", space=_V1_SPACE)
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if current < SCHEMA_VERSION:
                conn.execute("UPDATE OR REPLACE scores SET settings_hash = zc_hash(settings, settings_hash), "
                             "settings = zc_settings(settings) WHERE zc_settings(settings) != settings")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, readonly={self.readonly})"

    def _write(self):
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only; open it with readonly=False to write")
        return _Transaction(self._conn)

    # -- writing ---------------------------------------------------------------------------------------

    def put(self, arch: int | str, results: Mapping[str, Any], *, device: str, space: str = DEFAULT_SPACE) -> None:
        """Write all of ``arch``'s results (``{output: ProxyResult}``) in one transaction.

        ``arch`` is the canonical key in ``space`` (an int is taken as its decimal key). Results flagged
        ``failed`` are recorded as failures instead. A result replaces an earlier one with the same key
        and clears that proxy's recorded failure.
        """
        key, space = _check_key(arch), _check_space_name(space)
        stamp = _now()
        rows, cleared, failed = [], [], []
        for output, r in results.items():
            settings = dict(r.settings)
            text = _settings_json(settings)
            digest = settings_hash(settings)
            proxy = str(settings.get("proxy", output))
            if "failed" in getattr(r, "flags", ()):
                failed.append((space, key, proxy, digest, str(getattr(r, "error", "") or "failed"), stamp))
                continue
            value = float(r.value)
            if math.isnan(value):
                raise ValueError(f"result {output!r} of architecture {key} is NaN; NaN is never stored")
            rows.append((space, key, str(output), digest, value, float(r.seconds), json.dumps(sorted(r.flags)), text,
                         __version__, str(device), stamp))
            cleared.append((space, key, proxy, digest))
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("DELETE FROM failures WHERE space = ? AND arch = ? AND proxy = ? AND settings_hash = ?",
                             cleared)
            conn.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)", list(dict.fromkeys(failed)))

    def put_failure(self, arch: int | str, proxy: str, settings_hash: str, message: str, *,
                    space: str = DEFAULT_SPACE) -> None:
        """Record that ``proxy`` failed on ``arch`` (kept until a later run succeeds)."""
        key, space = _check_key(arch), _check_space_name(space)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                         (space, key, str(proxy), str(settings_hash), str(message), _now()))

    # -- leases ------------------------------------------------------------------------------------------

    def claim(self, archs: Iterable[int | str], plan: str, owner: str, *, seconds: float,
              space: str = DEFAULT_SPACE, limit: int | None = None) -> list[str]:
        """Lease up to ``limit`` of ``archs`` (in order) for ``owner`` under the plan id ``plan``.

        An arch is claimable when no live lease of another owner holds it; a lease expires ``seconds``
        after it was taken, and at once when ``owner`` (``host:pid:...``) names a process of this host that
        is gone (killed with -9), so concurrent runs on one store split the work and none is lost.
        Returns the claimed keys.
        """
        space = _check_space_name(space)
        now = time.time()
        claimed: list[str] = []
        with self._write() as conn:
            held = {a for a, other in conn.execute("SELECT arch, owner FROM leases WHERE space = ? AND plan = ? AND "
                                                   "owner != ? AND expires > ?", (space, plan, owner, now))
                    if _owner_alive(other)}
            for arch in archs:
                key = _check_key(arch)
                if key in held or key in claimed:
                    continue
                conn.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                             (space, key, plan, owner, now + float(seconds)))
                claimed.append(key)
                if limit is not None and len(claimed) >= limit:
                    break
        return claimed

    def release(self, archs: Iterable[int | str], plan: str, owner: str, *, space: str = DEFAULT_SPACE) -> None:
        """Drop ``owner``'s leases on ``archs``."""
        keys = [(_check_space_name(space), _check_key(a), plan, owner) for a in archs]
        with self._write() as conn:
            conn.executemany("DELETE FROM leases WHERE space = ? AND arch = ? AND plan = ? AND owner = ?", keys)

    # -- reading ---------------------------------------------------------------------------------------

    def done(self, arch: int | str, proxy_output: str, settings_hash: str, *, space: str = DEFAULT_SPACE) -> bool:
        """True when a value for this key is stored."""
        return self.get(arch, proxy_output, settings_hash, space=space) is not None

    def get(self, arch: int | str, proxy_output: str, settings_hash: str, *,
            space: str = DEFAULT_SPACE) -> float | None:
        """The stored value for this key, or None."""
        row = self._conn.execute("SELECT value FROM scores WHERE space = ? AND arch = ? AND proxy = ? AND "
                                 "settings_hash = ?", (space, _check_key(arch), proxy_output, settings_hash)).fetchone()
        return None if row is None else float(row[0])

    def missing(self, archs: Iterable[int | str], plan: Mapping[str, str], *,
                space: str = DEFAULT_SPACE) -> dict[str, list[str]]:
        """For each arch key lacking any planned ``{output: settings_hash}``, the outputs it lacks."""
        have: set[tuple[str, str]] = set()
        for output, digest in plan.items():
            have.update((a, output) for (a,) in self._conn.execute(
                "SELECT arch FROM scores WHERE space = ? AND proxy = ? AND settings_hash = ?", (space, output, digest)))
        out: dict[str, list[str]] = {}
        for a in dict.fromkeys(_check_key(x) for x in archs):
            lacking = [o for o in plan if (a, o) not in have]
            if lacking:
                out[a] = lacking
        return out

    def pending(self, archs: Iterable[int | str], plan: Mapping[str, str], *,
                space: str = DEFAULT_SPACE) -> list[str]:
        """Arch keys (in the given order, deduplicated) that lack at least one planned output."""
        return list(self.missing(archs, plan, space=space))

    def failures(self) -> pd.DataFrame:
        """Recorded failures: columns arch (label), proxy, settings_hash, message, timestamp, space."""
        rows = self._conn.execute("SELECT arch, proxy, settings_hash, message, timestamp, space FROM failures "
                                  "ORDER BY space, arch, proxy").fetchall()
        frame = pd.DataFrame(rows, columns=["arch", "proxy", "settings_hash", "message", "timestamp", "space"])
        frame["arch"] = _labels(frame)
        return frame

    def frame(self) -> pd.DataFrame:
        """All scores, long format (see :func:`load`); ``torch_threads`` is the recorded torch thread count
        (<NA> for rows stored before it was recorded)."""
        rows = self._conn.execute("SELECT arch, proxy, value, seconds, flags, settings_hash, settings, version, "
                                  "device, timestamp, space FROM scores").fetchall()
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["arch"] = _labels(frame)
        frame = frame.sort_values(["space", "arch", "proxy", "settings_hash"], kind="stable").reset_index(drop=True)
        frame["value"] = frame["value"].astype("float64")
        frame["seconds"] = frame["seconds"].astype("float64")
        frame["flags"] = [tuple(json.loads(f)) for f in frame["flags"]]
        frame["settings"] = [json.loads(s) for s in frame["settings"]]
        frame["torch_threads"] = pd.array([s.get("torch_threads") if isinstance(s, dict) else None
                                           for s in frame["settings"]], dtype="Int64")
        return frame

    def _rows(self, table: str) -> list[tuple]:
        columns = {"scores": "space, arch, proxy, settings_hash, value, seconds, flags, settings, version, device, "
                             "timestamp", "failures": "space, arch, proxy, settings_hash, message, timestamp"}[table]
        return self._conn.execute(f"SELECT {columns} FROM {table}").fetchall()  # noqa: S608 - fixed names


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, exc, tb) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


def _check_key(arch: object) -> str:
    """A canonical architecture key: a non-empty string, or a non-negative int (its decimal key)."""
    if isinstance(arch, str):
        if arch and arch == arch.strip():
            return arch
    elif not isinstance(arch, bool):
        try:
            index = operator.index(arch)  # int and numpy integers; not floats
        except TypeError:
            index = -1
        if index >= 0:
            return str(index)
    raise ValueError(f"arch must be a canonical architecture key (a non-empty string without surrounding "
                     f"spaces, or a non-negative int), got {arch!r}; resolve user forms with space.key(...)")


def _renamed_settings(text: str) -> str:
    """Stored settings JSON with retired option names of its proxy renamed and options added since it was
    stored set to the value it was computed with (unchanged text otherwise)."""
    from .proxies import ADDED_OPTIONS, RENAMED_OPTIONS

    settings = json.loads(text)
    if not isinstance(settings, dict):
        return text
    table = RENAMED_OPTIONS.get(settings.get("proxy"), {})
    added = {k: v for k, v in ADDED_OPTIONS.get(settings.get("proxy"), {}).items() if k not in settings}
    if not added and not any(old in settings for old in table):
        return text
    return _settings_json({**{table.get(k, k): v for k, v in settings.items()}, **added})


def _renamed_hash(text: str, digest: str) -> str:
    """The settings hash after :func:`_renamed_settings` (the stored one when nothing was renamed)."""
    renamed = _renamed_settings(text)
    return digest if renamed == text else settings_hash(json.loads(renamed))


def _owner_alive(owner: str) -> bool:
    """False only when ``owner`` (``host:pid:...``) names a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_space_name(space: object) -> str:
    if not isinstance(space, str) or not space:
        raise ValueError(f"space must be a search-space name such as {DEFAULT_SPACE!r}, got {space!r}")
    return space


def _labels(frame: pd.DataFrame) -> pd.Series:
    """The ``arch`` column as labels: one space's decimal keys as int64, else strings."""
    keys = frame["arch"].astype(str).tolist()
    values = labels(keys)
    if values and all(isinstance(v, int) for v in values):
        return pd.Series(values, index=frame.index, dtype="int64")
    return pd.Series(values, index=frame.index, dtype=object)


# ------------------------------------------------------------------------------------------- functions


def load(path: str | os.PathLike) -> pd.DataFrame:
    """All scores of a store, long format with columns
    ``arch, proxy, value, seconds, flags, settings_hash, settings, version, device, timestamp, space,
    torch_threads`` (``flags`` a tuple of strings, ``settings`` a dict, ``torch_threads`` nullable int)."""
    with Store(path, readonly=True) as store:
        return store.frame()


def _matches(settings: Mapping[str, Any], selection: Mapping[str, Any]) -> bool:
    return all(settings[k] == v for k, v in selection.items() if k in settings)


def pivot(long_df: pd.DataFrame, *, settings: Mapping[str, Any] | None = None,
          space: str | None = None) -> pd.DataFrame:
    """Wide table: index ``arch``, one column per proxy output, for one search space.

    ``space`` keeps that space's rows (needed when the frame holds several). ``settings`` (e.g.
    ``{"seed": 0, "eps": 8/255}``) keeps rows whose settings agree on every listed key they have (a key a
    proxy does not take does not exclude it). Raises ValueError naming the output when one output still
    has several settings hashes.
    """
    missing = [c for c in ("arch", "proxy", "value", "settings_hash", "settings") if c not in long_df.columns]
    if missing:
        raise ValueError(f"pivot needs a long score frame from zcproxy.store.load(); it lacks columns {missing}")
    frame = long_df
    if "space" in frame.columns:
        spaces = sorted(frame["space"].unique())
        if space is not None:
            frame = frame[frame["space"] == space]
            if frame.empty and spaces:
                raise ValueError(f"no scores of search space {space!r} here; the frame holds {spaces}")
        elif len(spaces) > 1:
            raise ValueError(f"the scores come from several search spaces {spaces}; pass space=... "
                             "(CLI: --space) to choose one")
        if len(frame):
            frame = frame.assign(arch=labels(frame["arch"].astype(str).tolist()))
    if settings:
        known = set().union(*(s.keys() for s in frame["settings"])) if len(frame) else set()
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"settings filter key(s) {unknown} appear in no stored settings; "
                             f"known keys: {sorted(known)}")
        frame = frame[[_matches(s, settings) for s in frame["settings"]]]
    if frame.empty:
        return pd.DataFrame(index=pd.Index([], name="arch", dtype="int64"))
    for output, group in frame.groupby("proxy"):
        hashes = group["settings_hash"].unique()
        if len(hashes) > 1:
            variants = [dict(s) for s in group.drop_duplicates("settings_hash")["settings"]]
            differing = sorted(k for k in set().union(*variants) if len({json.dumps(v.get(k)) for v in variants}) > 1)
            raise ValueError(f"proxy output {output!r} was stored with {len(hashes)} different settings (they differ "
                             f"in {differing}); pass settings={{...}} (CLI: --setting key=value) to choose one")
    wide = frame.pivot(index="arch", columns="proxy", values="value").sort_index()
    wide.columns.name = None
    return wide[sorted(wide.columns)]


def export(path: str | os.PathLike, out_csv: str | os.PathLike, *, wide: bool = False,
           settings: Mapping[str, Any] | None = None) -> int:
    """Write a store to CSV (long by default, ``wide=True`` for :func:`pivot`); returns the row count."""
    frame = load(path)
    if wide:
        table = pivot(frame, settings=settings)
    else:
        if settings:
            frame = frame[[_matches(s, settings) for s in frame["settings"]]]
        table = frame.assign(flags=[json.dumps(list(f)) for f in frame["flags"]],
                             settings=[_settings_json(s) for s in frame["settings"]])
    out = Path(out_csv).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=wide, float_format=lambda v: repr(float(v)))  # shortest exact repr
    return len(table)


@dataclass
class MergeReport:
    """What :func:`merge` did: rows added, identical duplicates skipped, conflicting values kept out."""

    added: int = 0
    duplicates: int = 0
    failures_added: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def merge(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> MergeReport:
    """Merge score stores into ``out`` (created if absent).

    A key (arch, proxy output, settings hash) already present with the same value is a duplicate and is
    skipped; with a different value it is a conflict: the value already in ``out`` is kept and the
    conflict reported. Failures are copied for keys that have no score.
    """
    report = MergeReport()
    out_path = Path(out).expanduser().resolve()
    sources = [Path(p).expanduser() for p in inputs]
    if not sources:
        raise ValueError("merge needs at least one input store")
    for src in sources:
        if src.resolve() == out_path:
            raise ValueError(f"input store {src} is the output store; pass a different OUT path")
    with Store(out) as target:
        for src in sources:
            with Store(src, readonly=True) as source:
                rows, failures = source._rows("scores"), source._rows("failures")
            with target._write() as conn:
                for row in rows:
                    space, arch, proxy, digest, value = row[:5]
                    existing = conn.execute("SELECT value FROM scores WHERE space = ? AND arch = ? AND proxy = ? AND "
                                            "settings_hash = ?", (space, arch, proxy, digest)).fetchone()
                    if existing is None:
                        conn.execute("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                        conn.execute("DELETE FROM failures WHERE space = ? AND arch = ? AND settings_hash = ?",
                                     (space, arch, digest))
                        report.added += 1
                    elif existing[0] == value:
                        report.duplicates += 1
                    else:
                        report.conflicts.append({"space": space, "arch": labels([arch])[0], "proxy": proxy,
                                                 "settings_hash": digest, "kept": existing[0], "other": value,
                                                 "source": str(src)})
                for space, arch, proxy, digest, message, stamp in failures:
                    scored = conn.execute("SELECT 1 FROM scores WHERE space = ? AND arch = ? AND settings_hash = ? "
                                          "LIMIT 1", (space, arch, digest)).fetchone()
                    if scored is None:
                        conn.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                                     (space, arch, proxy, digest, message, stamp))
                        report.failures_added += 1
    return report
