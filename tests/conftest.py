import os

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small networks run fastest single-threaded on 2 cores; keep tests from oversubscribing.
    One thread also makes the arithmetic deterministic and the same as in the subprocesses of
    the kill tests, which run one thread too."""
    torch.set_num_threads(1)
    yield
