"""Turn what a user already has into a queryable expert in one line.

* any function ``obs_N -> actions_N`` (or a per-observation function with ``batched=False``);
* a saved protege policy (a directory with config.json + model.safetensors);
* a stable-baselines3 model (``model.predict`` is called deterministically).

A trained expert knows the spaces it was trained on: :func:`check_expert` (which
``protege.collect`` and ``protege.evaluate`` call) raises a :class:`ConfigError` when they
do not fit the task's, instead of a shape error deep inside the model or the env.

Example:
    >>> expert = CallableExpert(lambda obs: (obs[:, 2] > 0).astype(int))
    >>> expert = PolicyExpert.load("runs/bc-lunar")
    >>> expert = SB3Expert(PPO.load("ppo_pendulum.zip"))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.obs import n_rows, take
from protege.data.spaces import describe_space
from protege.errors import ConfigError
from protege.policies.policy import Policy


def check_expert(expert: Any, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise a :class:`ConfigError` if ``expert`` knows its spaces and they do not fit these
    (experts without a ``check_spaces`` method, e.g. scripted ones, are taken as they are)."""
    check = getattr(expert, "check_spaces", None)
    if check is not None:
        check(observation_space, action_space)


def _mismatch(who: str, what: str, mine: str, theirs: gym.Space) -> ConfigError:
    """``who: the model's action space (Discrete(4)) does not match the task's (...)``."""
    return ConfigError(
        f"{who}: {what} ({mine}) does not match the task's ({describe_space(theirs)})"
    )


def _same_kind(mine: gym.Space, theirs: gym.Space) -> bool:
    """Whether a model trained on ``mine`` can act in ``theirs``: the same kind of space
    with the same shape (and number of actions); bounds may differ."""
    if isinstance(mine, gym.spaces.Discrete) or isinstance(theirs, gym.spaces.Discrete):
        return (
            isinstance(mine, gym.spaces.Discrete)
            and isinstance(theirs, gym.spaces.Discrete)
            and int(mine.n) == int(theirs.n)
            and int(mine.start) == int(theirs.start)
        )
    return type(mine) is type(theirs) and tuple(mine.shape or ()) == tuple(theirs.shape or ())


class CallableExpert:
    """Wraps a function. ``batched=False`` applies it row by row."""

    def __init__(self, fn: Callable[[np.ndarray], Any], batched: bool = True):
        self.fn = fn
        """The function: ``obs_N -> actions_N``, or ``obs -> action`` with ``batched=False``."""
        self.batched = batched
        """False: ``fn`` takes one observation and is applied row by row."""

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """The function's actions for a batch of observations (``infos`` is not passed on)."""
        if self.batched:
            return np.asarray(self.fn(obs))
        return np.stack([np.asarray(self.fn(take(obs, i))) for i in range(n_rows(obs))])

    def begin_run(self, seed: int | None = None) -> None:
        """Nothing to reset: a function keeps no state."""
        pass


class PolicyExpert:
    """A trained protege policy acting as the expert (deterministically)."""

    def __init__(self, policy: Policy, name: str = "the expert policy"):
        self.policy = policy
        """The policy whose deterministic first action of each chunk is the label."""
        self.name = name
        """How errors name it: its ``config.json`` when loaded from a directory."""

    @classmethod
    def load(cls, path: str | os.PathLike) -> PolicyExpert:
        """The policy saved in ``path`` as an expert."""
        return cls(Policy.load(path), name=str(os.path.join(path, "config.json")))

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise a ConfigError naming the policy if it was built for other spaces."""
        cfg = self.policy.config
        if cfg.obs_parts is not None:
            theirs = (
                {k: tuple(s.shape or ()) for k, s in observation_space.spaces.items()}
                if isinstance(observation_space, gym.spaces.Dict)
                else None
            )
            if theirs != cfg.obs_parts:
                mine = f"parts {cfg.obs_parts}"
                raise _mismatch(self.name, "the policy's observations", mine, observation_space)
        elif isinstance(observation_space, gym.spaces.Dict) or tuple(cfg.obs_shape) != tuple(
            observation_space.shape or ()
        ):
            mine = f"shape {tuple(cfg.obs_shape)}"
            raise _mismatch(self.name, "the policy's observations", mine, observation_space)
        if cfg.discrete:
            ok = isinstance(action_space, gym.spaces.Discrete) and cfg.n_actions == action_space.n
            mine = f"Discrete({cfg.n_actions})"
        else:
            ok = isinstance(action_space, gym.spaces.Box) and cfg.act_dim == int(
                np.prod(action_space.shape)
            )
            mine = f"Box of dimension {cfg.act_dim}"
        if not ok:
            raise _mismatch(self.name, "the policy's action space", mine, action_space)

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """The policy's deterministic actions for a batch of observations of its shape (a
        ConfigError naming the policy otherwise). Each call is independent: chunked policies
        predict a fresh chunk and take its first action."""
        shape = tuple(self.policy.config.obs_shape)
        # Observation parts are checked part by part by the policy itself.
        if self.policy.config.obs_parts is None and (
            np.ndim(obs) != len(shape) + 1 or tuple(np.shape(obs)[1:]) != shape
        ):
            raise ConfigError(
                f"{self.name}: the policy takes a batch of observations of shape {shape}, "
                f"got an array of shape {tuple(np.shape(obs))}"
            )
        # Chunked policies keep per-env queues; an expert asked about arbitrary states must not.
        chunks = self.policy.predict_chunk(obs, deterministic=True)
        first = chunks[:, 0]
        if self.policy.config.discrete:
            return first[:, 0].round().astype(np.int64)
        return first.astype(np.float32)

    def begin_run(self, seed: int | None = None) -> None:
        """Nothing to reset: each call is independent of the previous ones."""
        pass


class SB3Expert:
    """A stable-baselines3 model (PPO, SAC, DQN, ...) acting as the expert.

    Its actions come as the store keeps them: ``(N,)`` int64 for a Discrete action space,
    ``(N, *shape)`` float32 for a Box."""

    def __init__(self, model: Any, deterministic: bool = True):
        self.model = model
        """The stable-baselines3 model (anything with ``predict`` and its spaces)."""
        self.deterministic = deterministic
        """Passed to ``model.predict``."""
        self.name = f"SB3Expert ({type(model).__name__} model)"
        """How errors name it."""

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise a ConfigError if the model was trained on other spaces than these."""
        for what, mine, theirs in (
            ("the model's observation space", self.model.observation_space, observation_space),
            ("the model's action space", self.model.action_space, action_space),
        ):
            if not _same_kind(mine, theirs):
                raise _mismatch(self.name, what, describe_space(mine), theirs)

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """``model.predict`` on a batch of observations of the model's shape (a ConfigError
        naming the model otherwise)."""
        shape = tuple(self.model.observation_space.shape or ())
        if np.ndim(obs) != len(shape) + 1 or tuple(np.shape(obs)[1:]) != shape:
            raise ConfigError(
                f"{self.name}: the model takes a batch of observations of shape {shape}, "
                f"got an array of shape {tuple(np.shape(obs))}"
            )
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        if isinstance(self.model.action_space, gym.spaces.Discrete):
            return np.asarray(actions).astype(np.int64).reshape(len(obs))
        return np.asarray(actions, np.float32).reshape(len(obs), *self.model.action_space.shape)

    def begin_run(self, seed: int | None = None) -> None:
        """Nothing to reset."""
        pass


class ExpertActor:
    """The other direction: an expert wearing the learner's interface, e.g. to evaluate it
    with :func:`protege.evaluate` exactly as a policy would be."""

    def __init__(self, expert: Any):
        self.expert = expert
        """The expert that acts."""

    def act(self, obs: np.ndarray, deterministic: bool = True, generator: Any = None) -> np.ndarray:
        """The expert's actions (``deterministic`` and ``generator`` do not apply; no infos)."""
        return self.expert.act(obs, None)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """Nothing to reset."""
        pass
