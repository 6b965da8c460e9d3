"""Which device and how many CPU threads inference uses: light helpers, without any model's imports.

Kept apart from `imaging.inference` (the U-Net's inference, which imports MONAI through
`imaging.model`: about 2.5 CPU s per process) so that BLAST-CT's inference and the command line
can choose a device and threads without that import.
"""

from __future__ import annotations

import os

import torch


def select_device(spec: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else CPU; `cuda` without a GPU is an error rather than a silent fallback."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device here")
    if spec not in ("cpu",) and not spec.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], not {spec!r}")
    return torch.device(spec)


def threads_beside_load(available: int, load_1min: float) -> int:
    """Threads for inference on `available` cores of which `load_1min` (the load average) are busy.

    Torch's intra-op threads; BLAST-CT's inference turns them into tiles computed at once
    (`imaging.deepmedic_inference.DeepMedicSegmenter.tile_workers`).

    The cores not already taken by other work, at least one. On a loaded machine a second thread
    only waits for its core at every parallel region's barrier: BLAST-CT's network on one
    patient-81 tile at a load average of 11 on 2 cores took 3.7 CPU s / 7.7 s wall on one thread
    against 4.7 CPU s / 10.8 s on two, with the same outputs (bench/segment_bench.py --real-ct
    reports the threads it used).
    """
    return max(1, min(available, available - int(load_1min)))


def set_cpu_threads(threads: int | None = None, *, beside_load: bool = False) -> int:
    """Intra-op threads = the cores this process may use (not the machine's count), unless given.

    `beside_load`: without `threads`, only the cores the load average leaves free
    (`threads_beside_load`); for inference, whose outputs do not depend on the thread count.
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = threads or (threads_beside_load(available, os.getloadavg()[0]) if beside_load else available)
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16), where oneDNN runs it fast.

    On such a CPU the phantom-architecture U-Net (8-128 channels, 16 slices of 256 x 256) took 0.05
    CPU s per batch in bf16 against 0.095 s in fp32, its labels differing on 8 pixels in a million;
    elsewhere bf16 is emulated and slower than fp32, so fp32 stays.
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
