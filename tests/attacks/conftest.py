import os
import sys

import pytest
import torch

# One intra-op thread: on a shared 2-core machine OpenMP's spinning threads made a 16-pixel conv net
# 25x slower; one thread is also what makes CPU float results reproducible run to run.
torch.set_num_threads(1)
sys.path.append(os.path.dirname(__file__))  # after tests/: `conftest` stays the root one

import tinymodels  # noqa: E402


@pytest.fixture
def tiny():
    return tinymodels.tiny_classifier()


@pytest.fixture
def linear():
    return tinymodels.linear_classifier()


@pytest.fixture(scope="session")
def batch():
    return tinymodels.make_data(48, seed=7)
