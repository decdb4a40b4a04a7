"""protege: imitation learning from an expert's demonstrations and corrections.

The main entry points:

    import protege
    task = protege.tasks.make("lunarlander")
    protege.collect(task, "demos/lunar", episodes=100, seed=0)
    policy = protege.Policy(protege.PolicyConfig.for_spaces(*task.spaces))
    protege.bc.fit(policy, protege.Store.open("demos/lunar"), protege.BCConfig(seed=0))
    protege.evaluate(policy, task, episodes=50, seed=0).summary()

The names below are imported on first use, not by ``import protege``: that keeps the
``protege`` command's ``--help`` (whose modules live in this package) from importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from protege.errors import CheckpointError, ConfigError, DataError, ProtegeError

__version__ = "0.1.0"

_LAZY = {
    "tasks": "protege.tasks",
    "bc": "protege.algos.bc",
    "BCConfig": "protege.configs.bc:BCConfig",
    "Store": "protege.data.store:Store",
    "Policy": "protege.policies:Policy",
    "PolicyConfig": "protege.configs.policy:PolicyConfig",
    "evaluate": "protege.rollout:evaluate",
    "evaluate_expert": "protege.rollout:evaluate_expert",
    "collect": "protege.rollout.collect:collect",
}
"""``protege.NAME`` → the module (and attribute) it is imported from on first use."""


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'protege' has no attribute {name!r}")
    module, _, attr = _LAZY[name].partition(":")
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:
    from protege import tasks
    from protege.algos import bc
    from protege.configs.bc import BCConfig
    from protege.configs.policy import PolicyConfig
    from protege.data.store import Store
    from protege.policies import Policy
    from protege.rollout import evaluate, evaluate_expert
    from protege.rollout.collect import collect

__all__ = [
    "BCConfig",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Policy",
    "PolicyConfig",
    "ProtegeError",
    "Store",
    "bc",
    "collect",
    "evaluate",
    "evaluate_expert",
    "tasks",
]
