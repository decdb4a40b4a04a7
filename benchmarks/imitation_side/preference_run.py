"""imitation's `PreferenceComparisons` with a synthetic oracle (peer venv), CartPole or Pendulum.

The set-up mirrors ``benchmarks/preferences_vs_imitation.py``'s protege arm: SB3 PPO (2×64
MlpPolicy, 4 envs × ``--n-steps`` steps per update, ``--epochs`` epochs, minibatch
``--batch-size``, lr ``--lr``, ``--gamma``, ``--gae-lambda``, no entropy bonus, no gSDE),
a ``BasicRewardNet`` (obs, action, next_obs, done; 2×32 MLP, running input normalization),
fragments of ``--fragment-length`` steps, ``SyntheticGatherer(sample=False)`` (the probability
``sigmoid(R_A − R_B)`` of the true returns, temperature 1), the cross-entropy reward loss,
``--iterations`` iterations of the hyperbolic query schedule with ``--initial-fraction`` of the
budget first (imitation gathers ``iterations + 1`` times and trains the agent
``total_timesteps // iterations`` steps after each: ``--agent-steps`` is the agent's total,
``iterations + 1`` equal chunks),
``allow_variable_horizon=True`` (CartPole's episodes end early) and ``--oversampling`` 4
(imitation drops episodes shorter than a fragment: with 1, the random first policy gives
none). After every iteration the agent is evaluated (deterministic actions) on the true
reward, outside the timed span. If imitation stops because no episode is as long as a
fragment (a policy that learned to fall fast), the error is reported with the curve so far.
``env_steps_all`` counts every step of the training envs, also those imitation samples
outside PPO's own rollouts (the first fragments, before the agent has trained).

    python preference_run.py --comparisons 100 --steps 20000 --iterations 10 --seed 0
    python preference_run.py --env Pendulum-v1 --comparisons 100 --agent-steps 80000 \
        --iterations 19 --n-steps 1000 --gamma 0.9 --initial-fraction 0.25 --seed 0
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

STEPS = {"all": 0}
"""Every step of the training envs (one process: make_vec_env's DummyVecEnv)."""


class CountSteps(gym.Wrapper):
    """Adds one to ``STEPS["all"]`` per step."""

    def step(self, action):
        STEPS["all"] += 1
        return self.env.step(action)


def evaluate(policy, env_id: str, n_episodes: int, seed: int) -> float:
    """Mean true return of deterministic episodes reset with seeds ``seed + i``."""
    env = gym.make(env_id)
    returns = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            act, _ = policy.predict(obs, deterministic=True)
            act = int(act) if isinstance(env.action_space, gym.spaces.Discrete) else act
            obs, rew, term, trunc, _ = env.step(act)
            ret += float(rew)
            done = term or trunc
        returns.append(ret)
    env.close()
    return float(np.mean(returns))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--comparisons", type=int, default=100)
    p.add_argument("--steps", type=int, default=20_000, help="imitation's total_timesteps")
    p.add_argument(
        "--agent-steps",
        type=int,
        help="the agent's env steps in all (overrides --steps: total_timesteps is set so "
        "that iterations + 1 chunks of total_timesteps // iterations make this many)",
    )
    p.add_argument("--n-steps", type=int, default=256, help="SB3 PPO's steps per env per update")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--initial-fraction", type=float, default=0.1)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--fragment-length", type=int, default=25)
    p.add_argument("--oversampling", type=float, default=4.0)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument(
        "--eval-every-iterations", type=int, default=1, help="and after the last iteration"
    )
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    th.set_num_threads(1)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(a.seed)
    th.manual_seed(a.seed)
    steps = a.steps
    if a.agent_steps:
        if a.agent_steps % (a.iterations + 1):
            p.error("--agent-steps must be a multiple of --iterations + 1")
        steps = a.agent_steps // (a.iterations + 1) * a.iterations
    venv = make_vec_env(
        a.env,
        n_envs=4,
        rng=rng,
        post_wrappers=[lambda e, _: RolloutInfoWrapper(CountSteps(e))],
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
        n_steps=a.n_steps,
        batch_size=a.batch_size,
        n_epochs=a.epochs,
        learning_rate=a.lr,
        gamma=a.gamma,
        gae_lambda=a.gae_lambda,
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
        initial_comparison_frac=a.initial_fraction,
        allow_variable_horizon=True,
        initial_epoch_multiplier=4,
        custom_logger=logger,
        query_schedule="hyperbolic",
    )
    curve = [
        {
            "env_steps": 0,
            "env_steps_all": 0,
            "mean_return": evaluate(agent, a.env, a.eval_episodes, a.eval_seed),
            "preferences": 0,
            "wall_seconds": 0.0,
        }
    ]
    clock = {"wall": 0.0, "t0": time.perf_counter()}

    def callback(iteration: int) -> None:
        clock["wall"] += time.perf_counter() - clock["t0"]
        if (iteration + 1) % a.eval_every_iterations and iteration < a.iterations:
            clock["t0"] = time.perf_counter()
            return
        curve.append(
            {
                "env_steps": int(agent.num_timesteps),
                "env_steps_all": STEPS["all"],
                "mean_return": evaluate(agent, a.env, a.eval_episodes, a.eval_seed),
                "preferences": len(comparisons.dataset),
                "wall_seconds": round(clock["wall"], 2),
            }
        )
        clock["t0"] = time.perf_counter()

    error, accuracy = None, None
    try:
        out = comparisons.train(steps, a.comparisons, callback=callback)
        accuracy = float(out["reward_accuracy"])
    except ValueError as exc:  # imitation gives up when no episode is as long as a fragment
        error = f"{type(exc).__name__}: {exc}"
    print(
        json.dumps(
            {
                "library": f"imitation {importlib.metadata.version('imitation')}",
                "env": a.env,
                "seed": a.seed,
                "comparisons": a.comparisons,
                "preferences_used": len(comparisons.dataset),
                "env_steps": int(agent.num_timesteps),
                "env_steps_all": STEPS["all"],
                "total_timesteps": steps,
                "final_return": curve[-1]["mean_return"],
                "reward_accuracy": accuracy,
                "error": error,
                "curve": curve,
            }
        )
    )


if __name__ == "__main__":
    main()
