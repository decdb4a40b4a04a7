"""protege: imitation learning from an expert's demonstrations and corrections.

The main entry points:

    import protege
    task = protege.tasks.make("lunarlander")
    protege.collect(task, "demos/lunar", episodes=100, seed=0)
    policy = protege.Policy(protege.PolicyConfig.for_spaces(*task.spaces))
    protege.bc.fit(policy, protege.Store.open("demos/lunar"), protege.BCConfig(seed=0))
    protege.evaluate(policy, task, episodes=50, seed=0).summary()
"""

from protege import tasks
from protege.algos import bc
from protege.algos.bc import BCConfig
from protege.data.store import Store
from protege.errors import CheckpointError, ConfigError, DataError, ProtegeError
from protege.policies import Policy, PolicyConfig
from protege.rollout import evaluate, evaluate_expert
from protege.rollout.collect import collect

__version__ = "0.1.0"

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
