"""imitation's `SimpleDAggerTrainer` on LunarLander-v3 with the heuristic expert (peer venv).

The expert is gymnasium's LunarLander ``heuristic`` wrapped as an SB3
``BasePolicy`` (imitation's DAgger requires one). The learner is imitation's
``bc.BC`` on the 2×256 ActorCriticPolicy of ``bc_train.py``. Each round is one
``SimpleDAggerTrainer.train(total_timesteps=steps_per_round, ...)`` call: since
a round always collects at least ``steps_per_round`` steps, each call runs
exactly one round, and the trainer's own round counter drives the beta schedule
(imitation's default ``LinearBetaSchedule(15)``). After each round the current
policy is evaluated on seeded episodes, outside the timed span.

Per round we record: expert_labels (transitions in DAgger's dataset, i.e. the
expert actions it trains on), expert_queries (observations the expert was asked
about; imitation queries it at every step and discards unfinished episodes, so
this is >= expert_labels; equal with one env), wall_s (cumulative rollout + BC
update, evaluation excluded) and the mean return. round_update_s is imitation's
``extend_and_update``: it reloads every saved round's trajectories from disk
(HuggingFace datasets) and trains BC, from the current weights, for
``epochs_per_round`` epochs on all data so far. BC's built-in rollout logging is
switched off (``log_rollouts_venv=None``) so it adds no episodes to the timed span.

    python dagger_run.py --rounds 5 --steps-per-round 1000 --epochs-per-round 4 --seed 0
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import tempfile
import time
import types
import warnings

import datasets
import gymnasium as gym
import numpy as np
import torch as th
from bc_train import (
    ACTIVATIONS,
    ENV_ID,
    describe_policy,
    evaluate,
    make_policy,
    parse_arch,
    quiet_logger,
)
from gymnasium.envs.box2d.lunar_lander import heuristic
from imitation.algorithms import bc
from imitation.algorithms.dagger import LinearBetaSchedule, SimpleDAggerTrainer
from imitation.data.wrappers import RolloutInfoWrapper
from imitation.util.util import make_vec_env
from stable_baselines3.common.policies import BasePolicy


class HeuristicExpert(BasePolicy):
    """gymnasium's LunarLander heuristic as an SB3 policy; counts every observation it labels."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        super().__init__(observation_space, action_space)
        # heuristic() only reads env.unwrapped.continuous (gymnasium 1.x).
        self._cfg = types.SimpleNamespace(continuous=False)
        self._cfg.unwrapped = self._cfg
        self.n_queries = 0

    def forward(self, *args, **kwargs):  # only predict() is used
        raise NotImplementedError

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        obs = observation.detach().cpu().numpy()
        self.n_queries += len(obs)
        acts = np.array([heuristic(self._cfg, o) for o in obs], dtype=np.int64)
        return th.as_tensor(acts, device=observation.device)


class TimedSimpleDAgger(SimpleDAggerTrainer):
    """SimpleDAggerTrainer that accumulates the time spent in dataset load + BC training."""

    update_seconds = 0.0

    def extend_and_update(self, bc_train_kwargs=None) -> int:
        t = time.perf_counter()
        try:
            return super().extend_and_update(bc_train_kwargs)
        finally:
            self.update_seconds += time.perf_counter() - t


def versions() -> dict[str, str]:
    names = ("imitation", "gymnasium", "stable-baselines3", "torch", "numpy")
    return {n: importlib.metadata.version(n) for n in names}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps-per-round", type=int, default=1000, help="min env steps per round")
    p.add_argument("--min-episodes-per-round", type=int, default=1)
    p.add_argument("--epochs-per-round", type=int, default=4, help="BC epochs on all data")
    p.add_argument("--beta-rampdown-rounds", type=int, default=15, help="LinearBetaSchedule")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--net-arch", default="256,256")
    p.add_argument("--vf-arch", default="")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--n-envs", type=int, default=1, help="DummyVecEnv size for rollouts")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-seed", type=int, default=1000, help="episode i uses eval_seed + i")
    p.add_argument("--torch-threads", type=int, default=0, help="0 = torch's default")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    # imitation stores each DAgger trajectory as a HuggingFace dataset (progress bar per save),
    # and BC's logging converts the loss tensor with float() (a torch warning per train call).
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    if a.torch_threads > 0:
        th.set_num_threads(a.torch_threads)
    th.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    venv = make_vec_env(
        ENV_ID,
        rng=rng,
        n_envs=a.n_envs,
        post_wrappers=[lambda env, _: RolloutInfoWrapper(env)],
    )
    expert = HeuristicExpert(venv.observation_space, venv.action_space)
    pi_arch, vf_arch = parse_arch(a.net_arch), parse_arch(a.vf_arch)
    policy = make_policy(
        venv.observation_space,
        venv.action_space,
        pi_arch=pi_arch,
        vf_arch=vf_arch,
        activation=a.activation,
    )
    res: dict = {
        "env": ENV_ID,
        "seed": a.seed,
        "config": vars(a),
        "versions": versions(),
        "torch_threads": th.get_num_threads(),
        "policy": describe_policy(policy, pi_arch, vf_arch),
        "expert": evaluate(expert, a.eval_episodes, a.eval_seed),
    }
    expert.n_queries = 0  # count only the queries DAgger makes
    bc_train_kwargs = dict(
        n_epochs=a.epochs_per_round,
        log_interval=10**9,
        log_rollouts_venv=None,
        progress_bar=False,
    )
    rounds = []
    wall = 0.0
    with tempfile.TemporaryDirectory(prefix="imitation_dagger_") as scratch:
        logger = quiet_logger(f"{scratch}/log")
        learner = bc.BC(
            observation_space=venv.observation_space,
            action_space=venv.action_space,
            rng=rng,
            policy=policy,
            batch_size=a.batch_size,
            optimizer_kwargs={"lr": a.lr},
            device="cpu",
            custom_logger=logger,
        )
        trainer = TimedSimpleDAgger(
            venv=venv,
            scratch_dir=scratch,
            expert_policy=expert,
            bc_trainer=learner,
            beta_schedule=LinearBetaSchedule(a.beta_rampdown_rounds),
            rng=rng,
            custom_logger=logger,
        )
        for _ in range(a.rounds):
            beta = float(trainer.beta_schedule(trainer.round_num))
            update_before = trainer.update_seconds
            t = time.perf_counter()
            trainer.train(
                total_timesteps=a.steps_per_round,
                rollout_round_min_episodes=a.min_episodes_per_round,
                rollout_round_min_timesteps=a.steps_per_round,
                bc_train_kwargs=bc_train_kwargs,
            )
            round_s = time.perf_counter() - t
            wall += round_s
            update_s = trainer.update_seconds - update_before
            t = time.perf_counter()
            ev = evaluate(trainer.policy, a.eval_episodes, a.eval_seed)
            rounds.append(
                {
                    "round": trainer.round_num,
                    "beta": round(beta, 4),
                    "expert_labels": int(sum(len(tr) for tr in trainer._all_demos)),
                    "expert_queries": expert.n_queries,
                    "wall_s": round(wall, 3),
                    "round_collect_s": round(round_s - update_s, 3),
                    "round_update_s": round(update_s, 3),
                    "mean_return": ev["mean_return"],
                    "std_return": ev["std_return"],
                    "mean_length": ev["mean_length"],
                    "eval_s": round(time.perf_counter() - t, 3),
                }
            )
            print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    venv.close()
    res["rounds"] = rounds
    res["total_wall_s"] = round(wall, 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
