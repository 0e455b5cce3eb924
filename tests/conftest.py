"""Shared fixtures for the test suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Run torch on one CPU thread for the tests that use this, then restore the setting.

    The tests use tiny tensors, where extra threads only add overhead; on a small, busy machine
    (2 cores shared with a training run) two torch threads made the Jacobian checks 5-10x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
