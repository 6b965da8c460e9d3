"""Each test starts with torch's thread count of the session: one command setting it does not change a later
test's arithmetic (tests/conftest.py's `keep_torch_threads`). The two tests run in this order."""

from __future__ import annotations

import torch

from imaging.devices import set_cpu_threads

SESSION_THREADS = torch.get_num_threads()  # read when the tests are collected, before any of them runs


def test_a_command_sets_the_thread_count() -> None:
    set_cpu_threads(SESSION_THREADS + 1)
    assert torch.get_num_threads() == SESSION_THREADS + 1


def test_the_next_test_has_the_sessions_thread_count() -> None:
    assert torch.get_num_threads() == SESSION_THREADS
