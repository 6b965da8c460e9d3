"""glibc's malloc held to its heap while a computation frees and re-allocates the same large tensors.

Torch takes every CPU tensor from malloc. glibc serves a block larger than its mmap threshold
(at most 32 MB) with a fresh `mmap` and unmaps it on `free`, so each layer output of a large
network is page-faulted and zeroed by the kernel anew, tile after tile: BLAST-CT's network on
CT-ICH patient 81 took 2.5 million page faults and 4 s of system time per scan, a fifth of its
CPU time (bench/segment_bench.py --real-ct). Inside `reused_heap()` large blocks come from the heap
instead (`M_MMAP_MAX` 0) and freed ones stay there (`M_TRIM_THRESHOLD` raised), so later tiles
reuse the memory the first one faulted in; on leaving, the defaults are set again and
`malloc_trim` hands the free memory back to the kernel. Elsewhere than glibc it changes nothing.

The settings are process-wide: memory other threads allocate meanwhile comes from the heap too,
and is given back at the end the same way. Setting either parameter turns off glibc's dynamic
mmap threshold for the rest of the process (large blocks then always get their own mmap, which
is the behaviour this module works around, not a new one).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
HELD_TRIM_THRESHOLD = 2**31 - 1  # an int: the largest value mallopt takes

_lock = threading.Lock()
_depth = 0


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (and mallopt's parameters as above)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def is_available() -> bool:
    """Whether this process' C library is glibc, whose malloc `reused_heap` tunes."""
    return _LIBC is not None


@contextlib.contextmanager
def reused_heap() -> Iterator[None]:
    """Large blocks from the heap and kept there until the outermost `reused_heap` ends (re-entrant, thread-safe)."""
    global _depth
    if _LIBC is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _LIBC.mallopt(M_MMAP_MAX, 0)
            _LIBC.mallopt(M_TRIM_THRESHOLD, HELD_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _LIBC.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                _LIBC.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                _LIBC.malloc_trim(0)
