"""d3rlpy's side of ``benchmarks/offline_dial.py``, run with the d3rlpy venv's python.

Reads a mixed store exported as ``.npz`` (observations, actions, rewards, terminals, timeouts:
d3rlpy's ``MDPDataset`` arrays), trains one d3rlpy 2.8.1 algorithm for ``--steps`` gradient
steps and scores it on the evaluation episodes of ``episodes.py``. Prints one JSON object:
returns, training seconds, samples/s (steps × batch / training seconds).

Settings: 2×256 ReLU networks (d3rlpy's default encoder), batch 256, observations
standardized (``StandardObservationScaler``, as protege does), discount 0.99. IQL: d3rlpy's
defaults, which are Kostrikov et al.'s (expectile 0.7, weight_temp 3, max_weight 100, lr 3e-4,
tau 0.005, twin critics), with the reward scaling of d3rlpy's own IQL reproduction script
(``ReturnBasedRewardScaler(multiplier=1000)``). AWAC: d3rlpy's defaults (λ = 1) at batch 256.
BC: d3rlpy's continuous BC (MSE, lr 1e-3) or DiscreteBC, at batch 256.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from episodes import env_spec, run_episodes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--algo", required=True, choices=["bc", "discrete-bc", "iql", "awac"])
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env", required=True, help="env_id|kwargs-json|horizon")
    p.add_argument("--eval-seeds", type=int, nargs=2, required=True, metavar=("FIRST", "N"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    import d3rlpy

    d3rlpy.seed(a.seed)
    z = np.load(a.data)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=z["observations"],
        actions=z["actions"],
        rewards=z["rewards"],
        terminals=z["terminals"],
        timeouts=z["timeouts"],
        action_space=d3rlpy.ActionSpace.DISCRETE
        if a.algo == "discrete-bc"
        else d3rlpy.ActionSpace.CONTINUOUS,
    )
    obs_scaler = d3rlpy.preprocessing.StandardObservationScaler()
    common = {"batch_size": a.batch_size, "observation_scaler": obs_scaler}
    if a.algo == "bc":
        algo = d3rlpy.algos.BCConfig(**common).create(device="cpu:0")
    elif a.algo == "discrete-bc":
        algo = d3rlpy.algos.DiscreteBCConfig(**common).create(device="cpu:0")
    elif a.algo == "iql":
        scaler = d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0)
        algo = d3rlpy.algos.IQLConfig(reward_scaler=scaler, **common).create(device="cpu:0")
    else:
        algo = d3rlpy.algos.AWACConfig(**common).create(device="cpu:0")
    algo.build_with_dataset(dataset)
    t0 = time.perf_counter()
    algo.fit(
        dataset,
        n_steps=a.steps,
        n_steps_per_epoch=a.steps,
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
    )
    seconds = time.perf_counter() - t0
    env_id, kwargs, horizon = env_spec(a.env)
    first, n = a.eval_seeds
    returns = run_episodes(
        lambda obs: algo.predict(np.asarray(obs, np.float32)[None])[0],
        env_id,
        kwargs,
        horizon,
        range(first, first + n),
    )
    print(
        json.dumps(
            {
                "algo": f"d3rlpy-{a.algo}",
                "seed": a.seed,
                "steps": a.steps,
                "batch_size": a.batch_size,
                "train_seconds": seconds,
                "samples_per_s": a.steps * a.batch_size / seconds,
                "returns": returns,
                "d3rlpy": d3rlpy.__version__,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
