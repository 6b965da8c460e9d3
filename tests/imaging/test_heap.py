"""imaging.heap: inside `reused_heap` a freed large tensor's memory is reused without new page faults."""

from __future__ import annotations

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


def test_large_blocks_are_reused_inside_and_mapped_afresh_outside() -> None:
    pages = 64 * MB // resource.getpagesize()
    assert _faults_of_second_allocation(64 * MB) > pages // 2  # glibc's default: a fresh mmap each time
    with heap.reused_heap():
        with heap.reused_heap():  # re-entrant: the inner exit keeps the settings
            pass
        assert _faults_of_second_allocation(64 * MB) < pages // 10
    assert _faults_of_second_allocation(64 * MB) > pages // 2  # defaults back on leaving
