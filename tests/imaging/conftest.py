"""Fixtures shared by the imaging tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():  # noqa: ANN201 - small patches: one thread is faster than two fighting a loaded machine
    """torch on one intra-op thread for the module's tests, the earlier setting restored after them."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
