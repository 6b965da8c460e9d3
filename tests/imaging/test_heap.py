"""imaging.heap: inside `reused_heap` freed large tensors are reused without new page faults, then given back."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import resource

import pytest
import torch

from imaging import heap

pytestmark = pytest.mark.skipif(not heap.is_available(), reason="tunes glibc's malloc only")

MB = 2**20


def _faults_of_second_allocation(nbytes: int) -> int:
    """Minor page faults while filling a fresh tensor of `nbytes`, right after a larger one was freed.

    (Larger: an aligned request of the very same size asks malloc for a little more than the freed block.)
    """
    t = torch.ones(nbytes * 3 // 8)
    del t
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(nbytes // 4)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del t
    return faults


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _measured_in_a_fresh_process() -> tuple[int, int, int]:
    """(faults of the second allocation inside, resident bytes held inside after a 256 MB free, resident after).

    Run in a process of its own: a long test session's heap (other tests' tensors, mappings next to the
    program break) decides where malloc can grow, which is not what this measures.
    """
    with heap.reused_heap():
        with heap.reused_heap():  # re-entrant: the inner exit keeps the settings
            pass
        faults = _faults_of_second_allocation(64 * MB)
        t = torch.ones(256 * MB // 4)
        del t
        held = _resident_bytes()  # the freed 256 MB stay with the process...
    return faults, held, _resident_bytes()


def test_freed_large_blocks_are_reused_inside_and_given_back_on_leaving() -> None:
    pages = 64 * MB // resource.getpagesize()
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        faults, held, after = pool.submit(_measured_in_a_fresh_process).result()
    assert faults < pages // 10
    assert held - after > 200 * MB  # ...until the outermost reused_heap ends
