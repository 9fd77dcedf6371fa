"""Download the public data files zcproxy reads, verify their checksums and put them in place atomically.

Each :class:`Resource` is one download: a plain file saved at ``target`` (relative to the data directory)
or a ``.tar.gz`` / ``.zip`` archive whose ``member`` (a file or folder inside it) is moved to ``target``.
Downloads go to a temporary file beside the destination; a checksum mismatch deletes it and raises.

Checksums: CIFAR archives carry their widely published sha256 (and the md5 of the CIFAR page). The
NAS-RobBench-201 table, its id list and the NAS-Bench-201 CSV are pinned to a commit of their public
repositories; their sha256 is that of the copies this project was validated against (same byte size as
the stored upstream files). ``meta.json`` comes inside ``meta.zip`` of the robustness dataset of Jung et al.
(ICLR 2023), which publishes no checksum: we warn and report the sha256 we got.
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
from .errors import DataFormatError, DataNotFoundError

__all__ = ["Resource", "FetchResult", "MANIFEST", "DEFAULT", "fetch"]

_CHUNK = 1 << 20
_TIMEOUT = 60.0


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
             member="meta.json"),
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
          log: Callable[[str], None] | None = _stderr) -> list[FetchResult]:
    """Download ``names`` (default :data:`DEFAULT`) into ``dest`` (default: the data directory).

    ``base_url`` replaces every URL's folder (``<base_url>/<file name>``), e.g. for a mirror. Present
    targets are skipped unless ``force``. Raises :class:`DataNotFoundError` when a download fails and
    :class:`DataFormatError` on a checksum mismatch or a broken archive, naming the file and the fix.
    """
    table = MANIFEST if manifest is None else manifest
    wanted = list(DEFAULT if names is None else names)
    unknown = [n for n in wanted if n not in table]
    if unknown:
        raise ValueError(f"unknown data name(s) {unknown}; available: {', '.join(table)}")
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
        url = resource.url if base_url is None else f"{base_url.rstrip('/')}/{resource.url.rsplit('/', 1)[-1]}"
        digest = _install(resource, url, target, say)
        results.append(FetchResult(name, target, "downloaded", digest))
    return results


def _install(resource: Resource, url: str, target: Path, say: Callable[[str], None]) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{resource.name}-", suffix=".part", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            sha256, md5 = _download(url, out, resource, say)
        _verify(resource, url, sha256, md5, say)
        if resource.archive is None:
            os.replace(temp, target)
        else:
            _extract(resource, temp, target)
        say(f"{resource.name}: saved {target}")
        return sha256
    finally:
        temp.unlink(missing_ok=True)


def _download(url: str, out, resource: Resource, say: Callable[[str], None]) -> tuple[str, str]:
    say(f"{resource.name}: downloading {url}")
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "zcproxy-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            while chunk := response.read(_CHUNK):
                sha256.update(chunk)
                md5.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise DataNotFoundError(
            f"could not download {resource.name} from {url}: HTTP {exc.code} {exc.reason}. Check the URL "
            "(--base-url) or download the file by hand into the data directory"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
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
    if resource.sha256 is None and resource.md5 is None:
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
        if target.exists():
            old = staging / ".replaced"
            os.replace(target, old)
        os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
