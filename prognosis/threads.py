"""BLAS threading for the many small fits of validation.

Models here fit matrices of a few thousand rows by ~20 columns, hundreds of times (bootstrap,
cross-validation). Multi-threaded OpenBLAS on such small matrices spends its time synchronising:
on the shared 2-core machine a 2000 x 17 QR took 87 ms with the default threads and 4 ms with one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

P = ParamSpec("P")
R = TypeVar("R")


def single_threaded_blas(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` with BLAS and OpenMP (boosted trees) limited to one thread, restored afterwards."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with threadpool_limits(limits=1):
            return fn(*args, **kwargs)

    return wrapper
