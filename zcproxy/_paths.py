"""Data directory resolution: explicit argument > $ZCPROXY_DATA > ~/.cache/zcproxy."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import DataNotFoundError, ZcproxyError

ENV_VAR = "ZCPROXY_DATA"
DEFAULT_DIR = Path("~/.cache/zcproxy")


def expand(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` with a leading ``~`` / ``~user`` expanded; one that cannot be expanded raises naming it."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise ZcproxyError(f"{what} {str(path)!r}: cannot expand {Path(path).parts[0]!r} (no such user or no home "
                           "directory); pass an absolute path") from None


def data_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for data, in priority order."""
    dirs: list[Path] = []
    if explicit is not None:
        dirs.append(expand(explicit, "data directory"))
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(expand(env, f"${ENV_VAR}"))
    dirs.append(expand(DEFAULT_DIR, "default data directory"))
    return dirs


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The directory data is read from and fetched into."""
    return data_dirs(explicit)[0]


def find_data(relpath: str, explicit: str | os.PathLike | None = None, *, what: str | None = None) -> Path:
    """Return the first existing ``<dir>/relpath`` over :func:`data_dirs`.

    Raises :class:`DataNotFoundError` naming the file, every directory searched and the fetch command.
    """
    searched = data_dirs(explicit)
    for d in searched:
        p = d / relpath
        if p.exists():
            return p
    label = f"{what} ({relpath})" if what else relpath
    dirs = ", ".join(str(d) for d in searched)
    raise DataNotFoundError(
        f"{label} not found. Searched: {dirs}. "
        f"Run `zcproxy fetch` to download it into {searched[0]}, "
        f"or set {ENV_VAR} to the folder that holds it."
    )
