"""glibc malloc tuning, opt-in: give freed large blocks back to the system at once.

glibc raises its mmap threshold each time a large mmap'd block is freed (up to 32 MiB on 64-bit), so after
the first few passes a network's activations, gradients and Jacobians are carved from the heap, whose freed
space stays resident. ``mallopt(M_MMAP_THRESHOLD, 131072)`` (the same as the environment variable
``MALLOC_MMAP_THRESHOLD_=131072``) fixes the threshold for the whole process: every block above 128 KiB is
then a fresh mapping, returned on free. The peak memory of scoring many proxies drops, but each such
allocation costs page faults and zeroing, which slows every pass, a plain forward+backward included
(results/perf/allocator.md gives both). So zcproxy never sets it by itself (it would slow the user's whole
process); the CLI's ``--low-memory`` calls :func:`release_large_frees`.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD_BYTES = 131072
ENV_VAR = "MALLOC_MMAP_THRESHOLD_"

_state: dict[str, bool] = {}


def release_large_frees() -> bool:
    """Fix glibc's mmap threshold at 128 KiB for this process (once; later calls return the first answer).

    Returns True when the threshold is fixed (by this call or an earlier one), False where it is left
    alone: not Linux with glibc, ``mallopt`` unavailable or refusing, or ``MALLOC_MMAP_THRESHOLD_`` set in
    the environment (the user's own setting wins).
    """
    if "applied" not in _state:
        _state["applied"] = _apply()
    return _state["applied"]


def _apply() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc" or ENV_VAR in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD_BYTES)) == 1
    except (OSError, AttributeError):
        return False
