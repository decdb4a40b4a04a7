"""Every step of a store as aligned arrays (:meth:`protege.data.store.Store.transitions`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protege.data.obs import take


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
        )
