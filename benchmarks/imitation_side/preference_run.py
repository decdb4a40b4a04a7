"""imitation's `PreferenceComparisons` on CartPole-v1 with a synthetic oracle (peer venv).

The set-up mirrors ``benchmarks/preferences_vs_imitation.py``'s protege arm: SB3 PPO (2×64
MlpPolicy, 4 envs × 256 steps = 1,024 steps per update, 10 epochs, minibatch 256, lr 1e-3),
a ``BasicRewardNet`` (obs, action, next_obs, done; 2×32 MLP, running input normalization),
fragments of ``--fragment-length`` steps, ``SyntheticGatherer(sample=False)`` (the probability
``sigmoid(R_A − R_B)`` of the true returns, temperature 1), the cross-entropy reward loss,
``--iterations`` iterations of the hyperbolic query schedule with 10% of the budget first,
``allow_variable_horizon=True`` (CartPole's episodes end early) and ``--oversampling`` 4
(imitation drops episodes shorter than a fragment: with 1, the random first policy gives
none). After every iteration the agent is evaluated (deterministic actions) on the true
reward, outside the timed span. If imitation stops because no episode is as long as a
fragment (a policy that learned to fall fast), the error is reported with the curve so far.

    python preference_run.py --comparisons 100 --steps 20000 --iterations 10 --seed 0
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import tempfile
import time
import warnings

import gymnasium as gym
import numpy as np
import torch as th
from imitation.algorithms import preference_comparisons as pc
from imitation.data.wrappers import RolloutInfoWrapper
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util import logger as imit_logger
from imitation.util.networks import RunningNorm
from imitation.util.util import make_vec_env
from stable_baselines3 import PPO

ENV_ID = "CartPole-v1"


def evaluate(policy, n_episodes: int, seed: int) -> float:
    """Mean true return of deterministic episodes reset with seeds ``seed + i``."""
    env = gym.make(ENV_ID)
    returns = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            act, _ = policy.predict(obs, deterministic=True)
            obs, rew, term, trunc, _ = env.step(int(act))
            ret += float(rew)
            done = term or trunc
        returns.append(ret)
    env.close()
    return float(np.mean(returns))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comparisons", type=int, default=100)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--fragment-length", type=int, default=25)
    p.add_argument("--oversampling", type=float, default=4.0)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    th.set_num_threads(1)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(a.seed)
    th.manual_seed(a.seed)
    venv = make_vec_env(
        ENV_ID, n_envs=4, rng=rng, post_wrappers=[lambda e, _: RolloutInfoWrapper(e)]
    )
    reward_net = BasicRewardNet(
        venv.observation_space,
        venv.action_space,
        normalize_input_layer=RunningNorm,
        hid_sizes=(32, 32),
    )
    logger = imit_logger.configure(folder=tempfile.mkdtemp(), format_strs=[])
    preference_model = pc.PreferenceModel(reward_net)
    trainer = pc.BasicRewardTrainer(
        preference_model,
        loss=pc.CrossEntropyRewardLoss(),
        epochs=3,
        rng=rng,
        custom_logger=logger,
    )
    agent = PPO(
        "MlpPolicy",
        venv,
        n_steps=256,
        batch_size=256,
        n_epochs=10,
        learning_rate=1e-3,
        policy_kwargs={"net_arch": [64, 64]},
        seed=a.seed,
        verbose=0,
    )
    generator = pc.AgentTrainer(
        agent, reward_net, venv, rng=rng, exploration_frac=0.0, custom_logger=logger
    )
    comparisons = pc.PreferenceComparisons(
        generator,
        reward_net,
        num_iterations=a.iterations,
        fragmenter=pc.RandomFragmenter(rng=rng, warning_threshold=0, custom_logger=logger),
        preference_gatherer=pc.SyntheticGatherer(rng=rng, sample=False, custom_logger=logger),
        reward_trainer=trainer,
        fragment_length=a.fragment_length,
        transition_oversampling=a.oversampling,
        initial_comparison_frac=0.1,
        allow_variable_horizon=True,
        initial_epoch_multiplier=4,
        custom_logger=logger,
        query_schedule="hyperbolic",
    )
    curve = [
        {
            "env_steps": 0,
            "mean_return": evaluate(agent, a.eval_episodes, a.eval_seed),
            "preferences": 0,
            "wall_seconds": 0.0,
        }
    ]
    clock = {"wall": 0.0, "t0": time.perf_counter()}

    def callback(iteration: int) -> None:
        clock["wall"] += time.perf_counter() - clock["t0"]
        curve.append(
            {
                "env_steps": int(agent.num_timesteps),
                "mean_return": evaluate(agent, a.eval_episodes, a.eval_seed),
                "preferences": len(comparisons.dataset),
                "wall_seconds": round(clock["wall"], 2),
            }
        )
        clock["t0"] = time.perf_counter()

    error, accuracy = None, None
    try:
        out = comparisons.train(a.steps, a.comparisons, callback=callback)
        accuracy = float(out["reward_accuracy"])
    except ValueError as exc:  # imitation gives up when no episode is as long as a fragment
        error = f"{type(exc).__name__}: {exc}"
    print(
        json.dumps(
            {
                "library": f"imitation {importlib.metadata.version('imitation')}",
                "env": ENV_ID,
                "seed": a.seed,
                "comparisons": a.comparisons,
                "preferences_used": len(comparisons.dataset),
                "env_steps": int(agent.num_timesteps),
                "final_return": curve[-1]["mean_return"],
                "reward_accuracy": accuracy,
                "error": error,
                "curve": curve,
            }
        )
    )


if __name__ == "__main__":
    main()
