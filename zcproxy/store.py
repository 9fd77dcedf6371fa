"""Resumable score store: one SQLite file holding every proxy value ever computed.

One row per (architecture index, proxy output, settings hash) with the value, seconds, flags, the full
settings, library version, device and timestamp. Failures are kept in their own table so they can be
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
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from . import __version__
from .errors import StoreError

__all__ = ["SCHEMA_VERSION", "settings_hash", "Store", "load", "pivot", "export", "merge", "MergeReport"]

SCHEMA_VERSION = 1
_FORMAT = "zcproxy-store"
_SQLITE_HEADER = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 60_000
COLUMNS = ("arch", "proxy", "value", "seconds", "flags", "settings_hash", "settings", "version", "device",
           "timestamp")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE scores (
    arch INTEGER NOT NULL, proxy TEXT NOT NULL, settings_hash TEXT NOT NULL,
    value REAL NOT NULL, seconds REAL NOT NULL, flags TEXT NOT NULL, settings TEXT NOT NULL,
    version TEXT NOT NULL, device TEXT NOT NULL, timestamp TEXT NOT NULL,
    PRIMARY KEY (arch, proxy, settings_hash)
) WITHOUT ROWID;
CREATE TABLE failures (
    arch INTEGER NOT NULL, proxy TEXT NOT NULL, settings_hash TEXT NOT NULL,
    message TEXT NOT NULL, timestamp TEXT NOT NULL,
    PRIMARY KEY (arch, proxy, settings_hash)
) WITHOUT ROWID;
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
    size, dataset, ...) gives a different hash. ``1`` and ``1.0`` are different settings.
    """
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
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
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

    def put(self, arch: int, results: Mapping[str, Any], *, device: str) -> None:
        """Write all of ``arch``'s results (``{output: ProxyResult}``) in one transaction.

        A result replaces an earlier one with the same key and clears that proxy's recorded failure.
        """
        arch = _check_arch(arch)
        stamp = _now()
        rows, cleared = [], []
        for output, r in results.items():
            value = float(r.value)
            if math.isnan(value):
                raise ValueError(f"result {output!r} of architecture {arch} is NaN; NaN is never stored")
            settings = dict(r.settings)
            text = _settings_json(settings)
            digest = settings_hash(settings)
            rows.append((arch, str(output), digest, value, float(r.seconds), json.dumps(sorted(r.flags)), text,
                         __version__, str(device), stamp))
            cleared.append((arch, str(settings.get("proxy", output)), digest))
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("DELETE FROM failures WHERE arch = ? AND proxy = ? AND settings_hash = ?", cleared)

    def put_failure(self, arch: int, proxy: str, settings_hash: str, message: str) -> None:
        """Record that ``proxy`` failed on ``arch`` (kept until a later run succeeds)."""
        arch = _check_arch(arch)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                         (arch, str(proxy), str(settings_hash), str(message), _now()))

    # -- reading ---------------------------------------------------------------------------------------

    def done(self, arch: int, proxy_output: str, settings_hash: str) -> bool:
        """True when a value for this key is stored."""
        return self.get(arch, proxy_output, settings_hash) is not None

    def get(self, arch: int, proxy_output: str, settings_hash: str) -> float | None:
        """The stored value for this key, or None."""
        row = self._conn.execute("SELECT value FROM scores WHERE arch = ? AND proxy = ? AND settings_hash = ?",
                                 (int(arch), proxy_output, settings_hash)).fetchone()
        return None if row is None else float(row[0])

    def missing(self, archs: Iterable[int], plan: Mapping[str, str]) -> dict[int, list[str]]:
        """For each arch lacking any planned ``{output: settings_hash}``, the outputs it lacks."""
        have: set[tuple[int, str]] = set()
        for output, digest in plan.items():
            have.update((a, output) for (a,) in self._conn.execute(
                "SELECT arch FROM scores WHERE proxy = ? AND settings_hash = ?", (output, digest)))
        out: dict[int, list[str]] = {}
        for a in dict.fromkeys(int(x) for x in archs):
            lacking = [o for o in plan if (a, o) not in have]
            if lacking:
                out[a] = lacking
        return out

    def pending(self, archs: Iterable[int], plan: Mapping[str, str]) -> list[int]:
        """Archs (in the given order, deduplicated) that lack at least one planned output."""
        return list(self.missing(archs, plan))

    def failures(self) -> pd.DataFrame:
        """Recorded failures: columns arch, proxy, settings_hash, message, timestamp."""
        rows = self._conn.execute("SELECT arch, proxy, settings_hash, message, timestamp FROM failures "
                                  "ORDER BY arch, proxy").fetchall()
        return pd.DataFrame(rows, columns=["arch", "proxy", "settings_hash", "message", "timestamp"])

    def frame(self) -> pd.DataFrame:
        """All scores, long format (see :func:`load`)."""
        rows = self._conn.execute("SELECT arch, proxy, value, seconds, flags, settings_hash, settings, version, "
                                  "device, timestamp FROM scores ORDER BY arch, proxy, settings_hash").fetchall()
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["arch"] = frame["arch"].astype("int64")
        frame["value"] = frame["value"].astype("float64")
        frame["seconds"] = frame["seconds"].astype("float64")
        frame["flags"] = [tuple(json.loads(f)) for f in frame["flags"]]
        frame["settings"] = [json.loads(s) for s in frame["settings"]]
        return frame

    def _rows(self, table: str) -> list[tuple]:
        return self._conn.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 - fixed table names


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, exc, tb) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


def _check_arch(arch: object) -> int:
    try:
        index = operator.index(arch)  # int and numpy integers; not floats or strings
    except TypeError:
        index = -1
    if isinstance(arch, bool) or index < 0:
        raise ValueError(f"arch must be a non-negative NB201 index (int), got {arch!r}")
    return index


# ------------------------------------------------------------------------------------------- functions


def load(path: str | os.PathLike) -> pd.DataFrame:
    """All scores of a store, long format with columns
    ``arch, proxy, value, seconds, flags, settings_hash, settings, version, device, timestamp``
    (``flags`` a tuple of strings, ``settings`` a dict)."""
    with Store(path, readonly=True) as store:
        return store.frame()


def _matches(settings: Mapping[str, Any], selection: Mapping[str, Any]) -> bool:
    return all(settings[k] == v for k, v in selection.items() if k in settings)


def pivot(long_df: pd.DataFrame, *, settings: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Wide table: index ``arch``, one column per proxy output.

    ``settings`` (e.g. ``{"seed": 0, "eps": 8/255}``) keeps rows whose settings agree on every listed key
    they have (a key a proxy does not take does not exclude it). Raises ValueError naming the output when
    one output still has several settings hashes.
    """
    missing = [c for c in ("arch", "proxy", "value", "settings_hash", "settings") if c not in long_df.columns]
    if missing:
        raise ValueError(f"pivot needs a long score frame from zcproxy.store.load(); it lacks columns {missing}")
    frame = long_df
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
                    arch, proxy, digest, value = row[:4]
                    existing = conn.execute("SELECT value FROM scores WHERE arch = ? AND proxy = ? AND "
                                            "settings_hash = ?", (arch, proxy, digest)).fetchone()
                    if existing is None:
                        conn.execute("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                        conn.execute("DELETE FROM failures WHERE arch = ? AND settings_hash = ?", (arch, digest))
                        report.added += 1
                    elif existing[0] == value:
                        report.duplicates += 1
                    else:
                        report.conflicts.append({"arch": arch, "proxy": proxy, "settings_hash": digest,
                                                 "kept": existing[0], "other": value, "source": str(src)})
                for arch, proxy, digest, message, stamp in failures:
                    scored = conn.execute("SELECT 1 FROM scores WHERE arch = ? AND settings_hash = ? LIMIT 1",
                                          (arch, digest)).fetchone()
                    if scored is None:
                        conn.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                                     (arch, proxy, digest, message, stamp))
                        report.failures_added += 1
    return report
