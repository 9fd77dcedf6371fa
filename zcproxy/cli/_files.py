"""File hygiene for commands that write: a failed command removes what it created, never what existed."""
from __future__ import annotations

import os
from contextlib import contextmanager, suppress
from typing import Iterator

from .._paths import expand


@contextmanager
def remove_if_failed(*paths: str | os.PathLike) -> Iterator[None]:
    """On an exception in the block, delete those of ``paths`` (files) and their parent folders that were
    absent when the block started; anything that existed before is left untouched."""
    files = [expand(p) for p in paths]
    new_files = [p for p in files if not p.exists() and not p.is_symlink()]
    new_dirs = sorted({d for p in files for d in (p.parent, *p.parent.parents) if not d.exists()},
                      key=lambda d: len(d.parts), reverse=True)
    try:
        yield
    except BaseException:
        for path in new_files:
            with suppress(OSError):
                path.unlink(missing_ok=True)
        for folder in new_dirs:
            with suppress(OSError):
                folder.rmdir()
        raise
