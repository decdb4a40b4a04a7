"""A learned reward as a first-class artefact: saved, loaded, and used as any task's reward.

A learned reward is a torch module mapping a batch of env-unit steps
``(obs, action, next_obs, done)`` to rewards ``(B,)``. It is saved as ``config.json``
(``format``, its ``kind`` and the ``config`` that rebuilds it) plus ``model.safetensors``
(no pickle). Kinds are registered by name with the function that builds a module from its
config (:func:`register_reward_kind`): ``gail`` and ``airl``
(:mod:`protege.rewards.discriminator`) and ``preference`` (the Bradley–Terry model of
:mod:`protege.rewards.preference_model`) are built in; other reward learners register their
own.

:class:`LearnedRewardWrapper` makes any gymnasium env pay the learned reward (the env's own
stays in ``info["true_reward"]``), so an RL learner, or anyone's, trains on it.

Example:
    >>> save_reward("runs/airl/reward", net, net.spec())
    >>> reward = load_reward("runs/airl/reward")
    >>> env = LearnedRewardWrapper(gym.make("CartPole-v1"), reward)
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from protege.data.files import write_atomic
from protege.errors import CheckpointError, ConfigError

FORMAT = "protege-reward"
WEIGHTS = "model.safetensors"

REWARD_KINDS: dict[str, str | Callable[[dict[str, Any]], nn.Module]] = {
    "gail": "protege.rewards.discriminator:build",
    "airl": "protege.rewards.discriminator:build",
    "preference": "protege.rewards.preference_model:build",
}
"""Kind → the builder of its module from its config (a callable, or ``"module:function"``
imported only when a reward of that kind is loaded)."""


def register_reward_kind(kind: str, build: str | Callable[[dict[str, Any]], nn.Module]) -> None:
    """Make :func:`load_reward` rebuild rewards of ``kind`` with ``build(config)``."""
    REWARD_KINDS[kind] = build


def save_reward(
    path: str | os.PathLike[str], model: nn.Module, config: dict[str, Any], kind: str | None = None
) -> Path:
    """Write ``model`` to the folder ``path``: ``config.json`` (its kind, ``model.kind``
    unless ``kind`` is given, and the JSON-able ``config`` its builder takes) and its weights.
    Returns the folder."""
    kind = kind or getattr(model, "kind", None)
    if not isinstance(kind, str) or kind not in REWARD_KINDS:
        raise ConfigError(f"reward kind {kind!r} is not registered; known: {sorted(REWARD_KINDS)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path / WEIGHTS), metadata={"format": FORMAT})
    record = {"format": FORMAT, "kind": kind, "config": config}
    write_atomic(path / "config.json", json.dumps(record, indent=2))
    return path


def load_reward(path: str | os.PathLike[str]) -> nn.Module:
    """The reward module saved in ``path`` (eval mode, no gradients); a CheckpointError
    naming the file if anything is missing or wrong."""
    path = Path(path)
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{path}: no learned reward here (config.json is missing)")
    try:
        record = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file}: corrupt JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a protege learned reward (format {FORMAT!r})")
    kind = record.get("kind")
    if kind not in REWARD_KINDS:
        raise CheckpointError(
            f"{file}: unknown reward kind {kind!r}; known: {sorted(REWARD_KINDS)}"
        )
    build = REWARD_KINDS[kind]
    if isinstance(build, str):
        module, _, name = build.partition(":")
        build = getattr(importlib.import_module(module), name)
    assert callable(build)
    config = record.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: field 'config' must be an object")
    try:
        model = build(config)
    except ConfigError as exc:
        raise CheckpointError(f"{file}: {exc}") from None
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{path}: {WEIGHTS} is missing")
    try:
        tensors = load_file(str(weights))
        model.load_state_dict(tensors)
    except Exception as exc:  # safetensors' and torch's errors: a bad or mismatched file
        raise CheckpointError(f"{weights}: does not fit {file} ({exc})") from None
    return model.eval().requires_grad_(False)


@torch.no_grad()
def reward_of(model: nn.Module, obs: Any, action: Any, next_obs: Any, done: Any) -> np.ndarray:
    """``model``'s rewards of a numpy batch of steps, as float64 ``(B,)``."""

    def t(x: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x))

    out = model(t(obs), t(action), t(next_obs), t(done).bool())
    return out.double().numpy().reshape(-1)


class LearnedRewardWrapper(gym.Wrapper):
    """``env`` paying ``reward``'s reward instead of its own, which it keeps in
    ``info["true_reward"]``. ``done`` given to the reward is ``terminated`` (a time limit does
    not end the task)."""

    def __init__(self, env: gym.Env, reward: nn.Module):
        super().__init__(env)
        self.reward = reward
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        r = reward_of(
            self.reward,
            np.asarray(self._obs, np.float32)[None],
            np.asarray(action)[None],
            np.asarray(obs, np.float32)[None],
            np.asarray([terminated]),
        )
        self._obs = obs
        info = {**info, "true_reward": float(true_reward)}
        return obs, float(r[0]), terminated, truncated, info
