"""Exception types raised by zcproxy. Every message names the input, the problem and the fix."""
from __future__ import annotations


class ZcproxyError(Exception):
    """Base class of all zcproxy errors."""


class DataNotFoundError(ZcproxyError, FileNotFoundError):
    """A data file is missing from every directory searched."""


class DataFormatError(ZcproxyError, ValueError):
    """A data file exists but is truncated, malformed or has the wrong shape."""


class ProxyError(ZcproxyError, RuntimeError):
    """A proxy failed on one architecture."""

    def __init__(self, proxy: str, arch: object, cause: BaseException | str, *, model: str | None = None):
        self.proxy = proxy
        self.arch = arch
        self.cause = cause
        self.model = model
        subject = f"model {model}" if arch is None and model else f"architecture {arch!r}"
        super().__init__(f"proxy {proxy!r} failed on {subject}: {cause}")


class StoreError(ZcproxyError):
    """A score store is corrupt, foreign or unusable."""


class SpaceError(ZcproxyError, ValueError):
    """An architecture, key or space object is not valid for the search space it is used with."""


class TruthError(ZcproxyError, ValueError):
    """A ground-truth table is malformed: a missing column, an unknown architecture or a non-numeric value."""


class FetchError(ZcproxyError, ValueError):
    """A download request names unknown data or a URL that is not an http(s) address."""
