"""A Task bundles what an imitation run needs about an environment.

A Task is an env factory, a factory for a queryable expert, the horizon (max episode length)
and a success test; optionally, the safe set HG-DAgger's simulated supervisor keeps (``risk``)
and the keys a person drives it with (``controls``). ``protege.tasks.make(name)`` returns one
from the registry; users add their own with ``protege.tasks.register``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from protege.experts.base import Expert

if TYPE_CHECKING:
    from protege.rollout.gates_interactive import RiskScore
    from protege.teleop.controls import Controls, ControlsFactory


@dataclass(frozen=True)
class EpisodeOutcome:
    """What the success test sees of one finished episode."""

    episode_return: float
    """Sum of the episode's rewards."""
    length: int
    """Steps taken."""
    terminated: bool
    """The env ended the episode (a terminal state: landed, crashed, fell)."""
    truncated: bool
    """The episode was cut short (the task's horizon)."""
    final_info: dict[str, Any] = field(default_factory=dict)
    """The info dict of the last step of this episode (one sub-env's, not batched)."""


SuccessTest = Callable[[EpisodeOutcome], bool]
"""``success(outcome) -> bool``: whether a finished episode counts as a success."""


def _never(outcome: EpisodeOutcome) -> bool:
    return False


@dataclass(frozen=True)
class Task:
    """An environment, a queryable expert, a horizon and a success test (and, optionally, a
    safe set and teleop keys).

    Example:
        >>> task = protege.tasks.make("cartpole")
        >>> env = task.make_env()
        >>> expert = task.make_expert()
    """

    name: str
    """The name the registry knows it by (``protege.tasks.make(name)``, ``--task``)."""
    env_id: str | Callable[..., gym.Env]
    """A gymnasium id, or a callable returning an env (it receives ``render_mode``)."""
    expert_factory: Callable[[], Expert]
    """Makes a new queryable expert (:class:`~protege.experts.base.Expert`) for a run."""
    horizon: int
    """Most steps of an episode: every env is wrapped in a TimeLimit at it."""
    success: SuccessTest = _never
    """Whether a finished episode succeeded (default: never)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``gym.make`` (or of the ``env_id`` callable)."""
    description: str = ""
    """One line about the task; ``protege info --tasks`` shows it up to its first colon."""
    expert_return: float | None = None
    """The level the expert's mean return reaches over 20 seeded episodes (tested)."""
    risk: RiskScore | None = None
    """The safe set HG-DAgger's simulated supervisor keeps
    (:func:`protege.algos.hg_dagger.run`): ``risk(obs_N, t_N) -> (N,)``, above 1 outside it
    (:data:`~protege.rollout.gates_interactive.RiskScore`). None: the task has none (pass
    ``SupervisorConfig(risk=...)`` or ``use_risk=False``)."""
    controls: Controls | ControlsFactory | None = None
    """The keys (and gamepad) a person drives the task with in ``protege teleop``: a
    :class:`~protege.teleop.controls.DiscreteControls`, a
    :class:`~protege.teleop.controls.BoxControls`, or a function of the action space returning
    one. None: :func:`~protege.teleop.controls.default_controls` for the action space."""

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """One env, wrapped with a TimeLimit at the task's horizon."""
        if isinstance(self.env_id, str):
            env = gym.make(
                self.env_id,
                render_mode=render_mode,
                max_episode_steps=self.horizon,
                **self.env_kwargs,
            )
        else:
            env = self.env_id(render_mode=render_mode, **self.env_kwargs)
            env = gym.wrappers.TimeLimit(env, max_episode_steps=self.horizon)
        return env

    def make_vec_env(
        self, n_envs: int, render_mode: str | None = None, asynchronous: bool = False
    ) -> gym.vector.VectorEnv:
        """``n_envs`` copies in a vector env that resets a finished sub-env in the same step.

        The final observation and info of a finished episode are in
        ``infos["final_obs"]`` / ``infos["final_info"]`` (gymnasium's SAME_STEP autoreset).
        """
        fns = [lambda: self.make_env(render_mode=render_mode) for _ in range(n_envs)]
        kwargs: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        if asynchronous:
            return gym.vector.AsyncVectorEnv(fns, **kwargs)
        return gym.vector.SyncVectorEnv(fns, **kwargs)

    def make_expert(self) -> Expert:
        """A new expert, from ``expert_factory``."""
        return self.expert_factory()

    @property
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """(observation_space, action_space) of one env."""
        env = self.make_env()
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()


def is_discrete(space: gym.Space) -> bool:
    """Whether ``space`` is Discrete (else protege expects a Box)."""
    return isinstance(space, gym.spaces.Discrete)


def action_shape(space: gym.Space) -> tuple[int, ...]:
    """The per-step shape actions have in a dataset: () for Discrete, space.shape for Box."""
    if isinstance(space, gym.spaces.Discrete):
        return ()
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape)
    raise TypeError(f"protege supports Discrete and Box action spaces, not {space!r}")


def obs_dtype(space: gym.Space) -> np.dtype:
    """The dtype of a Box observation space; a TypeError for any other space."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"protege supports Box observation spaces, not {space!r}")
    return np.dtype(space.dtype)
