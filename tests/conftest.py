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


@pytest.fixture(params=[True, False], ids=["fast", "autograd"])
def both_paths(request, monkeypatch):
    """Run a test with the CPU fast paths on and then off (``protege.policies.mlp.FAST_PATHS``,
    what ``PROTEGE_FAST_PATH=0`` sets): off, BC trains through autograd and torch's AdamW and
    policies act through their modules. Test modules opt in with
    ``pytestmark = pytest.mark.usefixtures("both_paths")``."""
    from protege.policies import mlp

    monkeypatch.setattr(mlp, "FAST_PATHS", request.param)
    return request.param
