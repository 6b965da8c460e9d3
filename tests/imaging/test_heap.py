"""imaging.heap: inside `reused_heap` freed large tensors are reused without new page faults, then given back."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from imaging import heap

pytestmark = pytest.mark.skipif(not heap.is_available(), reason="tunes glibc's malloc only")

MB = 2**20


# Run in a process of its own: a long test session's heap (other tests' tensors, mappings next to the program
# break) decides where malloc can grow, which is not what this measures.
_MEASURE = """
import json, resource
import torch
from imaging import heap

MB = 2**20


def faults_of_second_allocation(nbytes):
    # Right after a larger block was freed (an aligned request of the very same size asks malloc for a
    # little more than the freed block).
    t = torch.ones(nbytes * 3 // 8)
    del t
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(nbytes // 4)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del t
    return faults


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


with heap.reused_heap():
    with heap.reused_heap():  # re-entrant: the inner exit keeps the settings
        pass
    faults = faults_of_second_allocation(64 * MB)
    t = torch.ones(256 * MB // 4)
    del t
    held = resident_bytes()
print(json.dumps({"faults": faults, "held": held, "after": resident_bytes()}))
"""


def test_freed_large_blocks_are_reused_inside_and_given_back_on_leaving() -> None:
    done = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["faults"] < 64 * MB // resource.getpagesize() // 10  # the freed pages are reused, not faulted anew
    assert got["held"] - got["after"] > 200 * MB  # the freed 256 MB stay until the outermost reused_heap ends
