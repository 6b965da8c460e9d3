"""glibc's malloc held to its heap while a computation frees and re-allocates the same large tensors.

Torch takes every CPU tensor from malloc. glibc serves a block larger than its mmap threshold
(at most 32 MB) with a fresh `mmap` and unmaps it on `free`, so each layer output of a large
network is page-faulted and zeroed by the kernel anew, tile after tile: BLAST-CT's network on
CT-ICH patient 81 took 2.5 million page faults and 4 s of system time per scan, a fifth of its
CPU time (bench/segment_bench.py --real-ct). Inside `reused_heap()` large blocks come from the heap
instead (`M_MMAP_MAX` 0) and freed ones stay there (`M_TRIM_THRESHOLD` raised), so later tiles
reuse the memory the first one faulted in; on leaving, the defaults are set again and
`malloc_trim` hands the free memory back to the kernel. Elsewhere than glibc it changes nothing.

The settings are process-wide, but they keep blocks on the main heap only for threads that
allocate from it (glibc's main arena). A thread with an arena of its own allocates from heaps of
at most 64 MB, maps every larger block afresh and unmaps heaps it has emptied, whatever the
settings: a plain second tile thread on CT-ICH patient 81 takes 1.1 million more page faults and 3.5 s
more system time than one. `main_heap_threads` gives threads that share the main arena. Setting
either parameter turns off glibc's dynamic mmap threshold for the rest of the process (large
blocks then always get their own mmap, which is the behaviour this module works around).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TypeVar

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_MAX = -4
M_ARENA_MAX = -8
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
HELD_TRIM_THRESHOLD = 2**31 - 1  # an int: the largest value mallopt takes

_lock = threading.Lock()
_depth = 0
_pool: MainHeapThreads | None = None
T = TypeVar("T")


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


def main_heap_threads(n: int) -> MainHeapThreads:
    """`n` threads, kept for the life of the process, each allocating from the main heap where glibc allows it.

    glibc gives a thread its arena at the thread's first allocation: one left by a thread that
    ended, else a new one while there are fewer than its arena limit, else the existing ones in
    turn. The limit is set to one arena here (`M_ARENA_MAX` 1), so a new thread shares an existing
    arena instead of creating its own; a thread that lands on another arena than the main one is
    parked for good (its arena stays attached to it, so the next new thread is handed the next one)
    and another is started, at most `MAX_STARTS` in all. glibc fixes the arena limit the first time
    a thread asks for an arena and no setting lifts it again, so from then on every thread started
    in this process shares the arenas that exist (arenas made before stay). Elsewhere than glibc:
    plain threads.
    """
    global _pool
    with _lock:
        if _pool is None or _pool.pid != os.getpid():  # a forked child's copy has no threads
            if _LIBC is not None:
                _LIBC.mallopt(M_ARENA_MAX, 1)
            _pool = MainHeapThreads()
        pool = _pool
    pool.grow(n)
    return pool


MAX_STARTS = 64  # threads started while looking for ones on the main arena (glibc makes at most 8 per core)


class MainHeapThreads:
    """Daemon threads taking tasks from one queue (see `main_heap_threads`)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.parked: list[threading.Thread] = []
        self.on_main_heap: list[bool] = []  # per kept thread
        self._grow = threading.Lock()

    def grow(self, n: int) -> None:
        with self._grow, reused_heap():  # large blocks from the heap, where the check below looks for them
            while len(self.threads) < n:
                last_try = len(self.threads) + len(self.parked) + 1 >= MAX_STARTS
                ready: queue.SimpleQueue = queue.SimpleQueue()
                thread = threading.Thread(target=self._serve, args=(ready, last_try), daemon=True, name="main-heap")
                thread.start()
                on_main, kept = ready.get()
                (self.threads if kept else self.parked).append(thread)
                if kept:
                    self.on_main_heap.append(on_main)

    def _serve(self, ready: queue.SimpleQueue, last_try: bool) -> None:
        try:
            on_main = _LIBC is not None and allocates_from_main_heap()
            kept = on_main or _LIBC is None or last_try
        except MemoryError:  # no room for the probe: kept, it serves as a plain thread
            on_main, kept = False, True
        ready.put((on_main, kept))
        if not kept:
            threading.Event().wait()  # parked: holds its arena, so that the next thread is handed another
        while True:
            fn, future = self.tasks.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
                    future.set_exception(error)

    def submit(self, fn: Callable[[], T]) -> Future:
        """`fn()` on one of the threads; its result or exception in the returned future."""
        future: Future = Future()
        self.tasks.put((fn, future))
        return future


def allocates_from_main_heap(nbytes: int = 128 * 2**20) -> bool:
    """Whether a block of `nbytes` malloc'ed by the calling thread lies below the program break (the main heap).

    Meaningful inside `reused_heap` (large blocks come from the heap there), on glibc only.
    """
    if _LIBC is None:
        raise RuntimeError("allocates_from_main_heap: this process' C library is not glibc")
    malloc, sbrk = _LIBC.malloc, _LIBC.sbrk
    malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    sbrk.restype, sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
    _LIBC.free.argtypes = [ctypes.c_void_p]
    block = malloc(nbytes)
    if not block:
        raise MemoryError(f"allocates_from_main_heap: malloc of {nbytes} bytes failed")
    try:
        return block + nbytes <= sbrk(0)
    finally:
        _LIBC.free(block)
