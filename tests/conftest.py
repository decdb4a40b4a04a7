import os
import sys
from collections.abc import Iterator

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


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The task and method registries and the plugin state of a new process, for one test:
    what the test's plugins register is gone after it, and so are the plugins' modules
    (those imported from a file, and any named ``my_*``)."""
    from protege import tasks
    from protege.algos import registry

    tasks.names()  # the built-in tasks are in the copy
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    monkeypatch.setattr(tasks, "_FILE_PLUGINS", {})
    monkeypatch.setattr(tasks, "_LOADED", [])  # what Ray workers would be asked to load
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("PROTEGE_PLUGINS", raising=False)
    before = set(sys.modules)
    yield
    from_files = {m.__name__ for m in tasks._FILE_PLUGINS.values()}
    for name in set(sys.modules) - before:
        if name.startswith(("my_", "_protege_plugin")) or name in from_files:
            del sys.modules[name]
