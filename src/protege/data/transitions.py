"""Every step of a store as aligned arrays (:meth:`protege.data.store.Store.transitions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protege.data.obs import Obs, take


@dataclass(frozen=True)
class Transitions:
    """Every step of a store, concatenated. N = total steps.

    Arrays are aligned: ``obs[i]`` is the observation at which ``actions[i]`` was labeled.
    """

    obs: np.ndarray
    """(N, *obs_shape); for a store of compressed frames a lazy
    :class:`~protege.data.frames.FrameArray` (index it, then ``take`` or ``np.asarray``); for
    a store of observation parts a ``dict`` of those, one per part (:mod:`protege.data.obs`)."""
    actions: np.ndarray
    """(N, *act_shape): expert labels (meaningful where ``labeled``)."""
    executed: np.ndarray
    """(N, *act_shape)."""
    rewards: np.ndarray
    """(N,) float32."""
    actor: np.ndarray
    """(N,) uint8."""
    labeled: np.ndarray
    """(N,) bool."""
    episode_starts: np.ndarray
    """(E,) int64: index of each episode's first step."""
    episode_lengths: np.ndarray
    """(E,) int64."""
    rounds: np.ndarray
    """(E,) int64: the round each episode was collected in."""
    final_obs: np.ndarray | None = None
    """(E, *obs_shape): the observation after each episode's last step (what offline RL
    bootstraps from); None when not read (then only whole-episode methods apply)."""
    terminated: np.ndarray | None = None
    """(E,) bool: whether each episode ended in a terminal state (no value after it), as
    opposed to being cut off by a time limit; None when not read."""
    success: np.ndarray | None = None
    """(E,) float: the task's success verdict recorded with each episode when it was
    collected (its ``success`` extra, judged on the episode's final info: 1 or 0), NaN where
    none was recorded (e.g. demonstrations from ``protege collect``); None when not read."""

    @classmethod
    def labeled_steps(
        cls, obs: Obs, actions: np.ndarray, lengths: Any, round: int = 0
    ) -> Transitions:
        """Steps the expert labeled and drove throughout (no rewards), cut into episodes of
        ``lengths``: training data made from (observation, action) pairs."""
        lengths = np.asarray(lengths, np.int64)
        n = len(actions)
        if int(lengths.sum()) != n:
            raise ValueError(f"episode lengths sum to {int(lengths.sum())}, not the {n} steps")
        return cls(
            obs=obs,
            actions=actions,
            executed=actions,
            rewards=np.zeros(n, np.float32),
            actor=np.zeros(n, np.uint8),
            labeled=np.ones(n, bool),
            episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            episode_lengths=lengths,
            rounds=np.full(len(lengths), round, np.int64),
        )

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_labels(self) -> int:
        return int(self.labeled.sum())

    def episode_of_step(self) -> np.ndarray:
        """(N,) int64: the episode index of every step."""
        return np.repeat(np.arange(len(self.episode_lengths)), self.episode_lengths)

    def select_episodes(self, mask: np.ndarray) -> Transitions:
        """The subset made of the episodes where ``mask`` (E,) is true."""
        return self.take_episodes(np.flatnonzero(mask))

    def take_episodes(self, order: np.ndarray) -> Transitions:
        """The episodes ``order`` (indices, repeats allowed), in that order."""
        order = np.asarray(order, np.int64)
        lengths = self.episode_lengths[order].astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        shift = np.repeat(self.episode_starts[order] - starts, lengths)
        steps = np.arange(len(shift)) + shift
        return Transitions(
            obs=take(self.obs, steps),
            actions=self.actions[steps],
            executed=self.executed[steps],
            rewards=self.rewards[steps],
            actor=self.actor[steps],
            labeled=self.labeled[steps],
            episode_starts=starts,
            episode_lengths=lengths,
            rounds=self.rounds[order],
            final_obs=None if self.final_obs is None else take(self.final_obs, order),
            terminated=None if self.terminated is None else self.terminated[order],
            success=None if self.success is None else self.success[order],
        )

    def next_obs(self) -> np.ndarray:
        """(N, *obs_shape): the observation after each step (the next step's, or the
        episode's final one). Needs ``final_obs``; raw observations only."""
        if self.final_obs is None:
            raise ValueError("these transitions carry no final observations")
        obs = np.asarray(self.obs)
        out = np.empty_like(obs)
        out[:-1] = obs[1:]
        last = self.episode_starts + self.episode_lengths - 1
        out[last] = np.asarray(self.final_obs)
        return out

    def step_terminal(self) -> np.ndarray:
        """(N,) bool: True at the last step of each episode that ended in a terminal state
        (the steps after which nothing more is earned)."""
        done = np.zeros(len(self), bool)
        if self.terminated is not None:
            last = self.episode_starts + self.episode_lengths - 1
            done[last] = self.terminated
        return done
