"""Batch scoring into a resumable store: local processes, SLURM-style shards, or a Ray cluster.

:func:`run` plans the settings of every requested proxy, skips architectures whose results are already
stored under those settings, scores the rest with :func:`zcproxy.score` and writes each architecture's
results in one transaction. Only the calling process writes the store; workers return results.
A proxy that fails on an architecture is recorded as a failure (and retried on the next run) without
losing the other proxies' results for that architecture. Architectures are claimed in the store before
they are scored (a lease per architecture and plan, released when done, void once it expires or its
process is gone), so several runs on one store split the work instead of repeating it.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import proxies as _proxies
from . import scoring
from .errors import SpaceError
from .space import DEFAULT_SPACE, SearchSpace, get_space, label, label_order
from .store import Store, settings_hash

__all__ = ["run", "RunSummary", "shard_archs", "plan", "BACKENDS"]

BACKENDS = ("local", "ray")


@dataclass
class RunSummary:
    """Outcome of :func:`run`. ``failed`` maps arch -> {proxy: error message}; ``elsewhere`` counts archs
    another live run held (it scores them)."""

    store: str
    archs: int = 0
    skipped: int = 0
    scored: int = 0
    elsewhere: int = 0
    failed: dict[int, dict[str, str]] = field(default_factory=dict)
    proxy_seconds: dict[str, list[float]] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self) -> list[dict[str, Any]]:
        """Per proxy: archs scored, mean seconds per arch, failures."""
        names = sorted(set(self.proxy_seconds) | {p for f in self.failed.values() for p in f})
        rows = []
        for name in names:
            secs = self.proxy_seconds.get(name, [])
            rows.append({"proxy": name, "scored": len(secs),
                         "mean_seconds": sum(secs) / len(secs) if secs else float("nan"),
                         "failures": sum(name in f for f in self.failed.values())})
        return rows


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to score one architecture (picklable)."""

    space: SearchSpace
    dataset: str
    seed: int
    batch_size: int
    stand_in: bool
    device: str
    data_dir: str | None
    options: Mapping[str, Any]
    proxy_hash: Mapping[str, str]  # proxy name -> settings hash (for failure records)
    threads: int | None = None


@dataclass(frozen=True)
class _Outcome:
    arch: str
    results: dict[str, scoring.ProxyResult]
    failures: dict[str, str]  # proxy -> message


# ------------------------------------------------------------------------------------------- planning


def shard_spec(text: str) -> tuple[int, int]:
    """Parse ``i/n`` with 0 <= i < n (0-based, like ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``)."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"expected i/n with 0 <= i < n (0-based), e.g. 0/4, got {text!r}")
    return int(match[1]), int(match[2])


def shard_archs(archs: Iterable, index: int, count: int) -> list:
    """Shard ``index`` of ``count`` (0-based): the sorted distinct archs at positions ``p % count == index``.

    The shards of one arch list are disjoint and together cover it, whatever machine computes them.
    (Keys are sorted by :func:`zcproxy.space.label`: decimal keys numerically.)
    """
    for name, value in (("shard index", index), ("shard count", count)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be i/n with 0 <= i < n (0-based, e.g. $SLURM_ARRAY_TASK_ID/{max(count, 1)}), "
                         f"got {index}/{count}")
    return sorted(set(archs), key=label_order)[index::count]


def plan(proxies: str | Sequence[str], *, dataset: str = "cifar10", seed: int = 0, batch_size: int = 64,
         stand_in: bool = False, options: Mapping[str, Any] | None = None,
         space: str | SearchSpace = DEFAULT_SPACE) -> dict[str, str]:
    """``{proxy output: settings hash}`` that scoring with these arguments will store.

    ``stand_in`` must be the effective value (whether stand-in images were really used).
    """
    space_settings = get_space(space).settings()
    out: dict[str, str] = {}
    for s in scoring.resolve_proxies(proxies):
        digest = settings_hash(scoring.planned_settings(s.name, dataset=dataset, seed=seed, batch_size=batch_size,
                                                        stand_in=stand_in, space_settings=space_settings,
                                                        **dict(options or {})))
        out.update({o: digest for o in s.outputs})
    return out


def _check_options(specs: Sequence[_proxies.ProxySpec], options: Mapping[str, Any]) -> None:
    _proxies.check_options(list(specs), options)


def _resolve_archs(archs: Iterable[Any], space: SearchSpace) -> list[str]:
    if isinstance(archs, (str, int)):
        raise ValueError(f"archs must be a list of architectures of search space {space.name!r}, got {archs!r}")
    keys = []
    for a in archs:
        try:
            keys.append(space.key(a))
        except ValueError as exc:
            raise SpaceError(f"archs: {exc}") from None
    return list(dict.fromkeys(keys))


# ------------------------------------------------------------------------------------------- scoring


@lru_cache(maxsize=4)
def _proxy_batch(dataset: str, n: int, seed: int, stand_in: bool, data_dir: str | None):
    """The seeded proxy batch, loaded once per process."""
    from .data import proxy_batch

    return proxy_batch(dataset, n=n, seed=seed, stand_in=stand_in, data_dir=data_dir)


def _score_arch(job: _Job, arch: str, proxy_names: Sequence[str]) -> _Outcome:
    """Score ``arch`` with ``proxy_names``; failed proxies are returned as failures, the rest as results."""
    specs = {n: _proxies.spec(n) for n in proxy_names}
    batch = None
    if any(s.needs for s in specs.values()):
        batch = _proxy_batch(job.dataset, job.batch_size, job.seed, job.stand_in, job.data_dir)
    options = {k: v for k, v in job.options.items() if any(k in s.defaults for s in specs.values())}
    results = scoring.score(arch, list(proxy_names), batch=batch, dataset=job.dataset, seed=job.seed,
                            device=job.device, batch_size=job.batch_size, stand_in=job.stand_in,
                            data_dir=job.data_dir, space=job.space, **options)
    failures = {r.settings["proxy"]: r.error or "failed" for r in results.values() if r.failed}
    return _Outcome(arch, {o: r for o, r in results.items() if not r.failed}, failures)


def _score_chunk(job: _Job, work: Sequence[tuple[int, Sequence[str]]]) -> list[_Outcome]:
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    return [_score_arch(job, arch, names) for arch, names in work]


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------ executors


def _run_inline(job: _Job, work: Iterable[tuple[str, list[str]]], sink: Callable[[_Outcome], None]) -> None:
    import torch

    before = torch.get_num_threads()
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    try:
        for arch, names in work:
            sink(_score_arch(job, arch, names))
    finally:
        torch.set_num_threads(before)


def _run_processes(job: _Job, work: Iterable[tuple[str, list[str]]], workers: int,
                   sink: Callable[[_Outcome], None]) -> None:
    threads = job.threads or max(1, _cores() // workers)
    context = multiprocessing.get_context("spawn")
    queue = iter(work)
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                initargs=(threads,)) as pool:
        in_flight: set[cf.Future] = set()
        try:
            while True:
                while len(in_flight) < 2 * workers:
                    item = next(queue, None)
                    if item is None:
                        break
                    in_flight.add(pool.submit(_score_arch, job, item[0], item[1]))
                if not in_flight:
                    return
                finished, in_flight = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    sink(future.result())
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise


def _run_ray(job: _Job, work: list[tuple[str, list[str]]], chunk_size: int,
             sink: Callable[[_Outcome], None]) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray; install it with: pip install 'zcproxy[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(log_to_driver=False)
    try:
        cuda = job.device.startswith("cuda")
        threads = job.threads or 1
        task = ray.remote(_score_chunk).options(num_cpus=threads, num_gpus=1 if cuda else 0)
        ray_job = _Job(**{**job.__dict__, "threads": threads})
        job_ref = ray.put(ray_job)
        chunks = [work[i:i + chunk_size] for i in range(0, len(work), chunk_size)]
        width = max(1, int(ray.available_resources().get("GPU", 1) if cuda
                           else ray.available_resources().get("CPU", 1) // threads))
        queue = iter(chunks)
        refs: list = []
        try:
            while True:
                while len(refs) < 2 * width:
                    chunk = next(queue, None)
                    if chunk is None:
                        break
                    refs.append(task.remote(job_ref, chunk))
                if not refs:
                    return
                ready, refs = ray.wait(refs, num_returns=1)
                for outcome in ray.get(ready[0]):
                    sink(outcome)
        except BaseException:
            for ref in refs:
                ray.cancel(ref)
            raise
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------------------------- run


def run(archs: Sequence[int | str], proxies: str | Sequence[str] = "all", *, store: str | os.PathLike,
        dataset: str = "cifar10", seed: int = 0, batch_size: int = 64, stand_in: bool = False,
        device: str = "cpu", workers: int = 1, shard: tuple[int, int] | None = None, backend: str = "local",
        data_dir: str | os.PathLike | None = None, options: Mapping[str, Any] | None = None,
        progress: bool = True, chunk_size: int = 8, threads: int | None = None,
        space: str | SearchSpace = DEFAULT_SPACE, lease_seconds: float = 3600.0) -> RunSummary:
    """Score ``archs`` with ``proxies`` into the SQLite ``store``, resuming where an earlier run stopped.

    ``workers`` local processes (spawned; each with ``threads`` torch threads, default
    ``cores // workers``; ``workers=1`` scores in this process, with its thread count unless ``threads``
    is given) or ``backend="ray"`` (one task of ``threads`` (default 1) CPUs, and one GPU when ``device``
    is cuda, per ``chunk_size`` archs); ``shard=(i, n)``
    scores only the i-th of n disjoint parts (see :func:`shard_archs`). At equal ``threads`` the values
    are bit-identical whatever ``workers``, ``shard`` or backend; a different torch thread count may change
    the last bits of backward-pass proxies (floating-point reduction order).
    ``space`` names the search space of ``archs`` (any form it resolves); its ``settings()`` are part of
    every stored result. Each architecture is leased in the store while it is scored (``lease_seconds``;
    a lease of a process gone from this host is void at once), so concurrent runs split the work.
    Returns a :class:`RunSummary`; failed proxies are listed there and in the store's failures table.
    """
    start = time.perf_counter()
    options = dict(options or {})
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    for name, value in (("workers", workers), ("batch_size", batch_size), ("chunk_size", chunk_size),
                        ("threads", 1 if threads is None else threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    device = str(device)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use device='cpu'")
    elif device != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    specs = scoring.resolve_proxies(proxies)
    _check_options(specs, options)
    sp = get_space(space)
    selected = _resolve_archs(archs, sp)
    if shard is not None:
        if not isinstance(shard, (tuple, list)) or len(shard) != 2:
            raise ValueError(f"shard must be a pair (i, n), got {shard!r}")
        selected = shard_archs(selected, shard[0], shard[1])

    data_path = None if data_dir is None else str(data_dir)
    effective_stand_in = bool(stand_in)
    if any(s.needs for s in specs):
        batch = _proxy_batch(dataset, batch_size, seed, bool(stand_in), data_path)
        effective_stand_in = bool(batch.meta.get("stand_in", stand_in))
    names = [s.name for s in specs]
    output_hash = plan(names, dataset=dataset, seed=seed, batch_size=batch_size, stand_in=effective_stand_in,
                       options=options, space=sp)
    proxy_hash = {s.name: output_hash[s.outputs[0]] for s in specs}
    owner = {o: s.name for s in specs for o in s.outputs}
    job = _Job(space=sp, dataset=dataset, seed=seed, batch_size=batch_size, stand_in=bool(stand_in), device=device,
               data_dir=data_path, options=options, proxy_hash=proxy_hash, threads=threads)

    summary = RunSummary(store=str(store), archs=len(selected))
    plan_id = hashlib.sha256(repr((sp.name, sorted(output_hash.items()))).encode()).hexdigest()[:16]
    me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with Store(store) as db:
        missing = db.missing(selected, output_hash, space=sp.name)
        summary.skipped = len(selected) - len(missing)
        work = [(a, [n for n in names if any(owner[o] == n for o in outs)]) for a, outs in missing.items()]
        bar = _progress(len(work), progress)
        held: list[tuple[str, list[str]]] = []
        leased: set[str] = set()

        def claimed(items: Iterable[tuple[str, list[str]]]):
            """Yield the items this run could lease; keep the others in ``held``."""
            for arch, arch_names in items:
                if not db.claim([arch], plan_id, me, seconds=lease_seconds, space=sp.name):
                    held.append((arch, arch_names))
                elif arch not in db.missing([arch], output_hash, space=sp.name):  # another run finished it
                    db.release([arch], plan_id, me, space=sp.name)
                    summary.skipped += 1
                    bar.update(1)
                else:
                    leased.add(arch)
                    yield arch, arch_names

        def sink(outcome: _Outcome) -> None:
            for output, result in outcome.results.items():
                if settings_hash(result.settings) != output_hash[output]:
                    raise RuntimeError(f"internal error: {output!r} on arch {outcome.arch} was scored with settings "
                                       f"{result.settings}, which differ from the planned ones")
            db.put(outcome.arch, outcome.results, device=device, space=sp.name)
            for proxy, message in outcome.failures.items():
                db.put_failure(outcome.arch, proxy, proxy_hash[proxy], message, space=sp.name)
            db.release([outcome.arch], plan_id, me, space=sp.name)
            leased.discard(outcome.arch)
            seen = set()
            for result in outcome.results.values():
                name = result.settings.get("proxy")
                if name not in seen:
                    seen.add(name)
                    summary.proxy_seconds.setdefault(name, []).append(result.seconds)
            if outcome.failures:
                summary.failed[label(outcome.arch)] = dict(outcome.failures)
            else:
                summary.scored += 1
            if progress:
                elapsed = max(bar.format_dict.get("elapsed", 0.0), 1e-9)
                bar.set_postfix_str(f"{60.0 * (bar.n + 1) / elapsed:.1f} archs/min, {len(summary.failed)} failed",
                                    refresh=False)
                bar.update(1)

        try:
            pending = work
            while pending:
                held = []
                if backend == "ray":
                    _run_ray(job, list(claimed(pending)), chunk_size, sink)
                elif workers == 1:
                    _run_inline(job, claimed(pending), sink)
                else:
                    _run_processes(job, claimed(pending), workers, sink)
                # archs another run held: done by now, still held (left to it), or free again (its process died)
                lacking = db.missing([a for a, _ in held], output_hash, space=sp.name)
                pending = [(a, n) for a, n in held if a in lacking]
                before = len(pending)
                pending = [(a, n) for a, n in pending
                           if db.claim([a], plan_id, me, seconds=0.0, space=sp.name)]  # probe: claimable now?
                summary.elsewhere = before - len(pending)
                bar.update(len(held) - before)
        finally:
            if leased:
                db.release(sorted(leased), plan_id, me, space=sp.name)
            bar.close()
    summary.wall_seconds = time.perf_counter() - start
    return summary


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="arch", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} archs [{elapsed}<{remaining}{postfix}]")
