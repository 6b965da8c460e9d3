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


# Threads that made arenas of their own before (torch's intra-op threads; threads that ended, whose arenas glibc
# hands to the next thread started): a thread started afterwards lands on one of those unless steered.
_THREADS = """
import json, threading
import torch
from imaging import heap

torch.set_num_threads(2)
x = torch.randn(2000, 2000)
(x @ x).sum()
ended = [threading.Thread(target=lambda: [bytearray(100000) for _ in range(3)]) for _ in range(3)]
for t in ended:
    t.start()
for t in ended:
    t.join()
fresh = []
with heap.reused_heap():
    t = threading.Thread(target=lambda: fresh.append(heap.allocates_from_main_heap()))
    t.start()
    t.join()
calls = []
for _ in range(3):  # one scan after another: the same threads serve each
    with heap.reused_heap():
        pool = heap.main_heap_threads(2)
        both = threading.Barrier(2)
        futures = [pool.submit(lambda: (both.wait(), heap.allocates_from_main_heap())[1]) for _ in range(2)]
        calls.append([f.result() for f in futures] + [heap.allocates_from_main_heap()])
print(json.dumps({"calls": calls, "fresh": fresh[0], "parked": len(pool.parked)}))
"""


def test_main_heap_threads_allocate_from_the_main_heap_where_a_plain_thread_does_not() -> None:
    done = subprocess.run([sys.executable, "-c", _THREADS], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["calls"] == [[True, True, True]] * 3  # both pool threads and the caller, call after call
    assert got["parked"] >= 1  # the situation the pool steers around was there
    assert got["fresh"] is False  # a thread started the plain way lands on an ended thread's arena
