"""Throughput of imitation's `bc.BC` on discrete LunarLander transitions (runs in the peer venv).

Input: an ``.npz`` with ``obs`` (N, 8) float32 and ``acts`` (N,) int64. The
learner is imitation's own BC (its DataLoader, collate, NLL + entropy loss via
``policy.evaluate_actions``, Adam) on an SB3 ``ActorCriticPolicy`` whose policy
path is a 2×256 MLP: ``net_arch=dict(pi=[256, 256], vf=[])``, ReLU by default.
With ``vf=[]`` the value head is one Linear(8, 1) on the raw observation, which
BC's loss computes but never uses (imitation's default ``FeedForward32Policy``
is ``net_arch=[32, 32]``: a second 2×32 MLP for the value). Timed:
``BC.train(n_batches=...)`` after a separate warm-up call. Prints one JSON line.

    python bc_train.py --data demo.npz --batch-size 256 --n-batches 2000 [--eval-episodes 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings

import gymnasium as gym
import numpy as np
import torch as th
from imitation.algorithms import bc
from imitation.data import types
from imitation.util import logger as imit_logger
from stable_baselines3.common.policies import ActorCriticPolicy

ENV_ID = "LunarLander-v3"
ACTIVATIONS = {"relu": th.nn.ReLU, "tanh": th.nn.Tanh}


def parse_arch(text: str) -> list[int]:
    """'256,256' -> [256, 256]; '' -> []."""
    return [int(x) for x in text.split(",") if x.strip()]


def make_policy(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    pi_arch: list[int],
    vf_arch: list[int],
    activation: str,
) -> ActorCriticPolicy:
    """The ActorCriticPolicy BC trains; built the way imitation builds its default policy."""
    return ActorCriticPolicy(
        observation_space=observation_space,
        action_space=action_space,
        # As in imitation's BC default: BC uses its own optimizer, never the policy's.
        lr_schedule=lambda _: th.finfo(th.float32).max,
        net_arch=dict(pi=pi_arch, vf=vf_arch),
        activation_fn=ACTIVATIONS[activation],
    )


def describe_policy(policy: ActorCriticPolicy, pi_arch: list[int], vf_arch: list[int]) -> dict:
    return {
        "class": "stable_baselines3.common.policies.ActorCriticPolicy",
        "net_arch": {"pi": pi_arch, "vf": vf_arch},
        "activation": policy.activation_fn.__name__,
        "ortho_init": policy.ortho_init,
        "n_params": int(sum(p.numel() for p in policy.parameters())),
        "n_params_actor": int(
            sum(p.numel() for p in policy.mlp_extractor.policy_net.parameters())
            + sum(p.numel() for p in policy.action_net.parameters())
        ),
    }


def quiet_logger(folder: str) -> imit_logger.HierarchicalLogger:
    """imitation's logger with no outputs (its default prints tables and writes CSVs)."""
    return imit_logger.configure(folder=folder, format_strs=[])


def evaluate(policy, n_episodes: int, seed: int) -> dict:
    """Deterministic episodes on LunarLander-v3; episode i is reset with seed ``seed + i``.

    ``policy`` is anything with an SB3-style ``predict(obs, deterministic=True)``.
    """
    env = gym.make(ENV_ID)
    returns, lengths = [], []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret, n = False, 0.0, 0
        while not done:
            act, _ = policy.predict(obs, deterministic=True)
            obs, rew, term, trunc, _ = env.step(int(act))
            ret += float(rew)
            n += 1
            done = term or trunc
        returns.append(ret)
        lengths.append(n)
    env.close()
    return {
        "episodes": n_episodes,
        "seeds": [seed, seed + n_episodes - 1],
        "mean_return": round(float(np.mean(returns)), 2),
        "std_return": round(float(np.std(returns)), 2),
        "mean_length": round(float(np.mean(lengths)), 1),
        "returns": [round(r, 2) for r in returns],
    }


def load_transitions(path: str) -> types.Transitions:
    """Full `Transitions`, as imitation builds from rollouts (its collate stacks every field).

    BC reads only obs and acts; ``next_obs``/``dones`` are taken from the file when present,
    else filled with ``obs`` and False so each batch still carries all five fields.
    """
    data = np.load(path)
    obs = np.asarray(data["obs"], dtype=np.float32)
    acts = np.asarray(data["acts"], dtype=np.int64)
    if obs.ndim != 2 or acts.shape != (len(obs),):
        raise ValueError(f"expected obs (N, D) and acts (N,), got {obs.shape} and {acts.shape}")
    next_obs = np.asarray(data["next_obs"], dtype=np.float32) if "next_obs" in data else obs
    dones = np.asarray(data["dones"], dtype=bool) if "dones" in data else np.zeros(len(obs), bool)
    infos = np.array([{}] * len(obs))
    return types.Transitions(obs=obs, acts=acts, infos=infos, next_obs=next_obs, dones=dones)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help=".npz with obs (N, 8) and acts (N,)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-batches", type=int, default=1000, help="timed batches")
    p.add_argument("--warmup-batches", type=int, default=50, help="untimed, before timing")
    p.add_argument("--net-arch", default="256,256", help="policy (pi) hidden sizes")
    p.add_argument("--vf-arch", default="", help="value hidden sizes ('' = linear head)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam lr (imitation default 1e-3)")
    p.add_argument("--ent-weight", type=float, default=1e-3, help="imitation default 1e-3")
    p.add_argument("--torch-threads", type=int, default=0, help="0 = torch's default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=0, help="0 = skip evaluation")
    p.add_argument("--eval-seed", type=int, default=1000)
    a = p.parse_args()

    # BC's logging converts the loss tensor with float(): a torch warning per train call.
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    if a.torch_threads > 0:
        th.set_num_threads(a.torch_threads)
    th.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    transitions = load_transitions(a.data)
    env = gym.make(ENV_ID)
    pi_arch, vf_arch = parse_arch(a.net_arch), parse_arch(a.vf_arch)
    policy = make_policy(
        env.observation_space,
        env.action_space,
        pi_arch=pi_arch,
        vf_arch=vf_arch,
        activation=a.activation,
    )
    with tempfile.TemporaryDirectory(prefix="imitation_bc_log_") as log_dir:
        trainer = bc.BC(
            observation_space=env.observation_space,
            action_space=env.action_space,
            rng=rng,
            policy=policy,
            demonstrations=transitions,
            batch_size=a.batch_size,
            optimizer_kwargs={"lr": a.lr},
            ent_weight=a.ent_weight,
            device="cpu",
            custom_logger=quiet_logger(log_dir),
        )
        env.close()
        train_kwargs = dict(log_interval=10**9, progress_bar=False)
        if a.warmup_batches > 0:
            trainer.train(n_batches=a.warmup_batches, **train_kwargs)
        t = time.perf_counter()
        trainer.train(n_batches=a.n_batches, **train_kwargs)
        seconds = time.perf_counter() - t

    res = {
        "samples_per_s": round(a.n_batches * a.batch_size / seconds, 1),
        "seconds": round(seconds, 3),
        "batches": a.n_batches,
        "batch_size": a.batch_size,
        "warmup_batches": a.warmup_batches,
        "torch_threads": th.get_num_threads(),
        "n_transitions": len(transitions),
        "policy": describe_policy(policy, pi_arch, vf_arch),
        "lr": a.lr,
        "ent_weight": a.ent_weight,
        "seed": a.seed,
    }
    if a.eval_episodes > 0:
        res["eval"] = evaluate(policy, a.eval_episodes, a.eval_seed)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
