"""Download the public data files zcproxy reads, verify their checksums and put them in place atomically.

Each :class:`Resource` is one download: a plain file saved at ``target`` (relative to the data directory)
or a ``.tar.gz`` / ``.zip`` archive whose ``member`` (a file or folder inside it) is moved to ``target``.
Downloads go to a temporary file beside the destination; a checksum mismatch deletes it and raises.

Checksums: CIFAR archives carry their widely published sha256 (and the md5 of the CIFAR page). The
NAS-RobBench-201 table, its id list and the NAS-Bench-201 CSV are pinned to a commit of their public
repositories; their sha256 is that of the copies this project was validated against (same byte size as
the stored upstream files). ``meta.json`` comes inside ``meta.zip`` of the robustness dataset of Jung et al.
(ICLR 2023), which publishes no checksum for the archive: the extracted ``meta.json`` is pinned instead
(``member_sha256``, the sha256 of the copy this project was validated against).

:func:`ensure` fetches only what a command needs and is missing from every data directory; offline it
stops at once with the command to run.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ._paths import data_dir
from .errors import DataFormatError, DataNotFoundError, FetchError

__all__ = ["Resource", "FetchResult", "MANIFEST", "DEFAULT", "fetch", "missing", "ensure"]

_CHUNK = 1 << 20
_TIMEOUT = 60.0
_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Resource:
    """One downloadable file: where it comes from, where it goes and how to check it."""

    name: str
    url: str
    target: str
    description: str
    sha256: str | None = None
    md5: str | None = None
    member: str | None = None  # for archives: the file or folder inside the archive that becomes ``target``
    size: int | None = None
    member_sha256: str | None = None  # for archives: sha256 of the extracted ``member`` file

    @property
    def checksum(self) -> str:
        """What the download is checked against, for listings."""
        kinds = [k for k in ("sha256", "md5") if getattr(self, k)]
        if self.member_sha256:
            kinds.append(f"sha256 of {self.target.rsplit('/', 1)[-1]}")
        return ", ".join(kinds) or "none"

    @property
    def archive(self) -> str | None:
        filename = self.url.rsplit("/", 1)[-1]
        if filename.endswith((".tar.gz", ".tgz")):
            return "tar.gz"
        if filename.endswith(".zip"):
            return "zip"
        return None


@dataclass(frozen=True)
class FetchResult:
    """Outcome for one resource: ``status`` is ``"downloaded"`` or ``"present"`` (skipped)."""

    name: str
    path: Path
    status: str
    sha256: str | None = None


_ROBBENCH_PAGE = "https://raw.githubusercontent.com/TT2408/nasrobbench201hp/68e9c6fd0df10df3ac6c3e9f88123d09367f4120"
_ROBBENCH_CODE = "https://raw.githubusercontent.com/TT2408/nasrobbench201/04e52181d504e82627b0c340ea33bdb888c73bcf"
_NB201_CSV = ("https://raw.githubusercontent.com/v-tao/nats-bench-landscape/"
              "312680307c44fd111146b2be0d0148194fbb2ca8/nats_bench.csv")

MANIFEST: dict[str, Resource] = {r.name: r for r in (
    Resource("nasrobbench201", f"{_ROBBENCH_PAGE}/files/NAS-RobBench-201_html.json",
             "nasrobbench201/NAS-RobBench-201_html.json",
             "NAS-RobBench-201 results table of the project page (tt2408.github.io/nasrobbench201hp)",
             sha256="b3dc99b96324de07b1dd9f3c39830fe0f82aae7fbd1b20eb0a6885cabd4f2388", size=2_580_686),
    Resource("nasrobbench201-ids", f"{_ROBBENCH_CODE}/NasBenchID_6466_idx.txt",
             "nasrobbench201/NasBenchID_6466_idx.txt", "the 6,466 non-isomorphic NAS-Bench-201 ids",
             sha256="c81d27dee9b4775b58c0fba966ce8a0feeea6fade5395426c49db7241f1244ae", size=33_514),
    Resource("nasrobbench201-meta", "http://data.robustness.vision/meta.zip", "nasrobbench201/meta.json",
             "arch string and isomorph of every id (meta.json of Jung et al. 2023, used by NAS-RobBench-201)",
             member="meta.json",
             member_sha256="54b6d2c2780cfb63de98e9d67e72db9cb0c02be426191d429dbe02c898d4577e"),
    Resource("nb201", _NB201_CSV, "nasbench201/nb201_200ep_test_accuracy.csv",
             "NAS-Bench-201 200-epoch test accuracies (NATS-Bench topology space), all 15,625 indices",
             sha256="cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e", size=3_024_008),
    Resource("cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-batches-py",
             "CIFAR-10 python version (Krizhevsky 2009)",
             sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
             md5="c58f30108f718f92721af3b95e74349a", member="cifar-10-batches-py", size=170_498_071),
    Resource("cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python",
             "CIFAR-100 python version (Krizhevsky 2009)",
             sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
             md5="eb9058c3a382ffc7106e4002c42a8d85", member="cifar-100-python", size=169_001_437),
)}

# Fetched when no names are given: everything but CIFAR-100 (scores fall back to CIFAR-10 stand-ins).
DEFAULT: tuple[str, ...] = ("nasrobbench201", "nasrobbench201-ids", "nasrobbench201-meta", "nb201", "cifar10")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def fetch(names: Iterable[str] | None = None, dest: str | os.PathLike | None = None, base_url: str | None = None,
          force: bool = False, *, manifest: Mapping[str, Resource] | None = None,
          log: Callable[[str], None] | None = _stderr, progress: bool = False) -> list[FetchResult]:
    """Download ``names`` (default :data:`DEFAULT`) into ``dest`` (default: the data directory).

    ``base_url`` replaces every URL's folder (``<base_url>/<file name>``), e.g. for a mirror. Present
    targets are skipped unless ``force``. ``progress`` draws a progress bar per download on stderr.
    Raises :class:`DataNotFoundError` when a download fails and :class:`DataFormatError` on a checksum
    mismatch or a broken archive, naming the file and the fix.
    """
    table = MANIFEST if manifest is None else manifest
    wanted = _known(DEFAULT if names is None else names, table)
    _check_base_url(base_url)
    root = data_dir(dest)
    say = log or (lambda _message: None)
    results = []
    for name in wanted:
        resource = table[name]
        target = root / resource.target
        if target.exists() and not force:
            say(f"{name}: present at {target} (use --force to download again)")
            results.append(FetchResult(name, target, "present"))
            continue
        digest = _install(resource, _url(resource, base_url), target, say, progress)
        results.append(FetchResult(name, target, "downloaded", digest))
    return results


def _known(names: Iterable[str], table: Mapping[str, Resource]) -> list[str]:
    """``names`` as a list, or a FetchError naming the unknown ones and the valid ones."""
    if isinstance(names, str):
        raise FetchError(f"data names must be a list such as ['cifar10'], got the string {names!r}")
    wanted = list(names)
    unknown = [n for n in wanted if not isinstance(n, str) or n not in table]
    if unknown:
        raise FetchError(f"unknown data name(s) {unknown}; available: {', '.join(table)} (see `zcproxy fetch --list`)")
    return wanted


def _check_base_url(base_url: str | None) -> None:
    if base_url is None:
        return
    if not isinstance(base_url, str) or not base_url.lower().startswith(("http://", "https://")) \
            or any(c.isspace() or ord(c) < 32 for c in base_url) or len(base_url.split("://", 1)[1].strip("/")) == 0:
        raise FetchError(f"--base-url {base_url!r} is not an http(s) address; pass e.g. https://mirror.example/zcproxy")


def _url(resource: Resource, base_url: str | None) -> str:
    return resource.url if base_url is None else f"{base_url.rstrip('/')}/{resource.url.rsplit('/', 1)[-1]}"


def missing(names: Iterable[str], data_dir: str | os.PathLike | None = None, *,
            manifest: Mapping[str, Resource] | None = None) -> list[str]:
    """Those of ``names`` whose target is in none of the data directories searched (see ``_paths``)."""
    from ._paths import data_dirs

    table = MANIFEST if manifest is None else manifest
    wanted = _known(names, table)
    dirs = data_dirs(data_dir)
    return [n for n in wanted if not any((d / table[n].target).exists() for d in dirs)]


def ensure(names: Iterable[str], dest: str | os.PathLike | None = None, base_url: str | None = None, *,
           manifest: Mapping[str, Resource] | None = None, log: Callable[[str], None] | None = _stderr,
           progress: bool = True, probe_timeout: float = _PROBE_TIMEOUT) -> list[FetchResult]:
    """Fetch those of ``names`` missing from every data directory into ``dest`` (default: the data directory).

    Says what it fetches and why. When a source cannot be reached within ``probe_timeout`` seconds
    (offline), raises :class:`DataNotFoundError` at once, naming the missing files and the one
    ``zcproxy fetch`` command to run; nothing is written. Returns one result per fetched name.
    """
    table = MANIFEST if manifest is None else manifest
    wanted = list(dict.fromkeys(_known(names, table)))
    _check_base_url(base_url)
    todo = missing(wanted, dest, manifest=table)
    if not todo:
        return []
    root = data_dir(dest)
    command = "zcproxy fetch --only " + ",".join(todo) + (f" --dest {dest}" if dest is not None else "") \
        + (f" --base-url {base_url}" if base_url else "")
    for name in todo:
        url = _url(table[name], base_url)
        problem = _unreachable(url, probe_timeout)
        if problem:
            raise DataNotFoundError(
                f"{', '.join(todo)} {'is' if len(todo) == 1 else 'are'} missing from the data directory {root} and "
                f"{url} cannot be reached ({problem}). When online, run: {command}  (or set ZCPROXY_DATA to a "
                "folder that holds the files)"
            )
    say = log or (lambda _message: None)
    size = sum(table[n].size or 0 for n in todo)
    say(f"{', '.join(todo)} not found in {root}: fetching {'them' if len(todo) > 1 else 'it'} now"
        + (f" ({size / 1e6:.0f} MB, sha256-checked)" if size else " (checksummed)") + f"; the same as `{command}`")
    return fetch(todo, dest=dest, base_url=base_url, manifest=table, log=log, progress=progress)


def _unreachable(url: str, timeout: float) -> str | None:
    """Why ``url``'s server cannot be reached within ``timeout`` seconds, or None when it answers at all."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "zcproxy-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # the server answered; the download reports what is wrong
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def _install(resource: Resource, url: str, target: Path, say: Callable[[str], None], progress: bool = False) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{resource.name}-", suffix=".part", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            sha256, md5 = _download(url, out, resource, say, progress)
        _verify(resource, url, sha256, md5, say)
        if resource.archive is None:
            os.replace(temp, target)
        else:
            _extract(resource, temp, target)
        say(f"{resource.name}: saved {target}")
        return sha256
    finally:
        temp.unlink(missing_ok=True)


def _download(url: str, out, resource: Resource, say: Callable[[str], None],
              progress: bool = False) -> tuple[str, str]:
    from tqdm import tqdm

    say(f"{resource.name}: downloading {url}")
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "zcproxy-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else resource.size
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=resource.name,
                      disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
                while chunk := response.read(_CHUNK):
                    sha256.update(chunk)
                    md5.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DataNotFoundError(
            f"could not download {resource.name} from {url}: HTTP {exc.code} {exc.reason}. Check the URL "
            "(--base-url) or download the file by hand into the data directory"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataNotFoundError(
            f"could not download {resource.name} from {url}: {reason}. Check the network connection or use "
            "--base-url to point at a mirror"
        ) from None
    return sha256.hexdigest(), md5.hexdigest()


def _verify(resource: Resource, url: str, sha256: str, md5: str, say: Callable[[str], None]) -> None:
    checks = [("sha256", resource.sha256, sha256), ("md5", resource.md5, md5)]
    for kind, expected, got in checks:
        if expected is not None and expected.lower() != got:
            raise DataFormatError(
                f"checksum mismatch for {resource.name} ({url}): expected {kind} {expected}, got {got}. The "
                "download was deleted; retry, or check that the mirror serves the original file"
            )
    if resource.sha256 is None and resource.md5 is None and resource.member_sha256 is None:
        say(f"warning: {resource.name} has no published checksum; recording the sha256 we got: {sha256}")


def _extract(resource: Resource, archive: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{resource.name}-", dir=target.parent))
    try:
        try:
            if resource.archive == "tar.gz":
                with tarfile.open(archive, "r:gz") as tar:
                    tar.extractall(staging, filter="data")
            else:
                with zipfile.ZipFile(archive) as zf:
                    for info in zf.infolist():
                        path = Path(info.filename)
                        if path.is_absolute() or ".." in path.parts:
                            raise DataFormatError(f"{resource.name}: archive member {info.filename!r} is unsafe")
                    zf.extractall(staging)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise DataFormatError(f"{resource.name}: the downloaded archive is broken ({exc}); retry") from None
        source = _find_member(resource, staging)
        if resource.member_sha256 is not None:
            got = _file_sha256(source) if source.is_file() else "a folder"
            if got != resource.member_sha256.lower():
                raise DataFormatError(
                    f"checksum mismatch for {resource.name}: {source.name} in the archive should have sha256 "
                    f"{resource.member_sha256}, got {got}. The download was deleted; retry, or check that the "
                    "source serves the original archive"
                )
        if target.exists():
            old = staging / ".replaced"
            os.replace(target, old)
        os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _find_member(resource: Resource, staging: Path) -> Path:
    member = resource.member or resource.target.rsplit("/", 1)[-1]
    exact = staging / member
    if exact.exists():
        return exact
    matches = sorted(p for p in staging.rglob(Path(member).name))
    if len(matches) == 1:
        return matches[0]
    raise DataFormatError(
        f"{resource.name}: the archive has {'no' if not matches else len(matches)} entries named {member!r}; "
        "it is not the expected archive"
    )
