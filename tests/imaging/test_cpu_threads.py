"""Inference threads beside other work: the cores the load average leaves free, at least one."""

from __future__ import annotations

import torch

from imaging.devices import set_cpu_threads, threads_beside_load


def test_threads_take_the_free_cores() -> None:
    assert threads_beside_load(2, 0.3) == 2  # idle: every core
    assert threads_beside_load(2, 1.2) == 1  # one core busy
    assert threads_beside_load(2, 9.7) == 1  # overloaded: still one
    assert threads_beside_load(16, 4.9) == 12
    assert threads_beside_load(4, 0.0) == 4


def test_asked_threads_win_over_the_load() -> None:
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1, beside_load=True) == 1
    finally:
        torch.set_num_threads(before)
