"""imitation's GAIL or AIRL on a gymnasium task from protege's demonstrations (peer venv).

The demonstrations arrive as an ``.npz`` written by ``adversarial_vs_imitation.py`` (the
same episodes protege trains on): ``obs`` (every step), ``acts``, ``lengths``, ``final_obs``
and ``terminated`` per episode. They become imitation ``Trajectory`` objects.

The learner and discriminator follow imitation's own documented examples (``docs/algorithms/
gail.rst`` and ``airl.rst``, v1.0.1): SB3 PPO with ``MlpPolicy``, batch 64, ``ent_coef`` 0,
5 epochs, γ = 0.95 (AIRL: lr 5e-4, clip 0.1, vf_coef 0.1; GAIL: lr 4e-4), a
``BasicRewardNet`` (GAIL) or ``BasicShapedRewardNet`` (AIRL) with ``RunningNorm`` inputs,
a 512-sample generator replay, 8 (GAIL) or 16 (AIRL) discriminator updates per round and
demo batches of 1024 (GAIL) or 2048 (AIRL), capped at the number of demonstration steps.
One change: PPO's ``n_steps`` is ``--rollout-steps / --n-envs`` so that a generator round
collects the same 2,048 steps as one protege PPO update (imitation's example collects
16,384 with 8 envs: fewer, larger rounds). ``--n-epochs``, ``--batch-size``, ``--lr``,
``--gamma``, ``--gae-lambda`` and ``--clip`` replace the example's PPO settings where a task
needs its own (the caller gives protege's learner the same).

Training runs in chunks of ``--eval-every`` env steps (``trainer.train(chunk)``); after each
chunk the policy is evaluated deterministically on episodes reset with ``--eval-seed + i``,
outside the timed span.

    python adversarial_run.py --algo gail --env CartPole-v1 --demos demos.npz --steps 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings

import gymnasium as gym
import numpy as np
import torch as th
from imitation.algorithms.adversarial.airl import AIRL
from imitation.algorithms.adversarial.gail import GAIL
from imitation.data.types import Trajectory
from imitation.data.wrappers import RolloutInfoWrapper
from imitation.rewards.reward_nets import BasicRewardNet, BasicShapedRewardNet
from imitation.util import logger as imit_logger
from imitation.util.networks import RunningNorm
from imitation.util.util import make_vec_env
from stable_baselines3 import PPO
from stable_baselines3.ppo import MlpPolicy


def load_trajectories(path: str) -> list[Trajectory]:
    d = np.load(path)
    obs, acts = d["obs"], d["acts"]
    out, start = [], 0
    for i, n in enumerate(d["lengths"].tolist()):
        o = np.concatenate([obs[start : start + n], d["final_obs"][i][None]])
        out.append(
            Trajectory(
                obs=o, acts=acts[start : start + n], infos=None, terminal=bool(d["terminated"][i])
            )
        )
        start += n
    return out


def evaluate(policy, env_id: str, n_episodes: int, seed: int) -> dict:
    env = gym.make(env_id)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    returns = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            act, _ = policy.predict(obs, deterministic=True)
            obs, rew, term, trunc, _ = env.step(int(act) if discrete else act)
            ret += float(rew)
            done = term or trunc
        returns.append(ret)
    env.close()
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--algo", choices=["gail", "airl"], required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--demos", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--rollout-steps", type=int, default=2048)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    # Learner settings other than the example's (both sides get the same: the caller's
    # --learner); unset, the documented example's values below.
    p.add_argument("--n-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--gamma", type=float)
    p.add_argument("--gae-lambda", type=float)
    p.add_argument("--clip", type=float)
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    th.set_num_threads(1)
    th.manual_seed(a.seed)
    demos = load_trajectories(a.demos)
    demo_steps = sum(len(t.acts) for t in demos)
    venv = make_vec_env(
        a.env,
        rng=np.random.default_rng(a.seed),
        n_envs=a.n_envs,
        post_wrappers=[lambda env, _: RolloutInfoWrapper(env)],
    )
    gail = a.algo == "gail"
    ppo_kwargs = {
        "batch_size": 64,
        "ent_coef": 0.0,
        "learning_rate": 0.0004 if gail else 0.0005,
        "gamma": 0.95,
        "n_epochs": 5,
        **({} if gail else {"clip_range": 0.1, "vf_coef": 0.1}),
    }
    given = {
        "n_epochs": a.n_epochs,
        "batch_size": a.batch_size,
        "learning_rate": a.lr,
        "gamma": a.gamma,
        "gae_lambda": a.gae_lambda,
        "clip_range": a.clip,
    }
    ppo_kwargs.update({k: v for k, v in given.items() if v is not None})
    learner = PPO(
        env=venv,
        policy=MlpPolicy,
        n_steps=max(a.rollout_steps // a.n_envs, 2),
        seed=a.seed,
        device="cpu",
        **ppo_kwargs,
    )
    net_cls = BasicRewardNet if gail else BasicShapedRewardNet
    reward_net = net_cls(
        observation_space=venv.observation_space,
        action_space=venv.action_space,
        normalize_input_layer=RunningNorm,
    )
    cls = GAIL if gail else AIRL
    with tempfile.TemporaryDirectory() as tmp:
        trainer = cls(
            demonstrations=demos,
            demo_batch_size=min(1024 if gail else 2048, demo_steps),
            gen_replay_buffer_capacity=512,
            n_disc_updates_per_round=8 if gail else 16,
            venv=venv,
            gen_algo=learner,
            reward_net=reward_net,
            allow_variable_horizon=True,
            custom_logger=imit_logger.configure(folder=tmp, format_strs=[]),
        )
        evals = [
            {
                "env_steps": 0,
                "wall_seconds": 0.0,
                **evaluate(learner, a.env, a.eval_episodes, a.eval_seed),
            }
        ]
        wall = 0.0
        while learner.num_timesteps < a.steps:
            t0 = time.perf_counter()
            trainer.train(a.eval_every)
            wall += time.perf_counter() - t0
            ev = evaluate(learner, a.env, a.eval_episodes, a.eval_seed)
            evals.append({"env_steps": int(learner.num_timesteps), "wall_seconds": wall, **ev})
            print(f"[imitation {a.algo}] {evals[-1]}", file=sys.stderr, flush=True)
    print(json.dumps({"algo": a.algo, "env": a.env, "seed": a.seed, "evals": evals}))


if __name__ == "__main__":
    main()
