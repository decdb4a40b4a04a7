"""What adversarial imitation's discriminator learns from: the demonstrations' steps
(:class:`ExpertSteps`) and, when terminations lead to an absorbing state (Kostrikov et al.
2019; ``AdversarialConfig.absorbing``), how much of an episode's occupancy that state is
(:func:`absorbing_mass`). :mod:`protege.algos.adversarial` trains on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protege.configs.adversarial import AdversarialConfig
from protege.data.transitions import Transitions
from protege.errors import DataError


@dataclass
class ExpertSteps:
    """The demonstrations' steps the discriminator learns from (env units, numpy)."""

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    done: np.ndarray
    length: np.ndarray | None = None
    """(N,) the length of each step's episode (None: unknown; the absorbing state's share
    of a terminated episode is then one step)."""

    @classmethod
    def of(cls, data: Transitions, state_only: bool, where: str) -> ExpertSteps:
        """Every step of ``data`` (``state_only``), else its labelled steps; a DataError
        naming ``where`` if the method needs action labels and there are none."""
        if isinstance(data.obs, dict):
            raise DataError(f"{where}: adversarial imitation takes Box observations, not parts")
        if data.final_obs is None:
            raise DataError(f"{where}: the demonstrations carry no final observations")
        keep = np.arange(len(data)) if state_only else np.flatnonzero(data.labeled)
        if len(keep) == 0:
            raise DataError(
                f"{where}: no step carries an expert action label, and this method learns "
                "from actions; use --state-only (observations alone) or labelled demonstrations"
            )
        obs = np.asarray(data.obs, np.float32)
        actions = data.actions if not state_only else data.executed
        return cls(
            obs=obs[keep],
            actions=np.asarray(actions)[keep],
            next_obs=data.next_obs().astype(np.float32)[keep],
            done=data.step_terminal()[keep],
            length=np.repeat(data.episode_lengths, data.episode_lengths)[keep],
        )

    def __len__(self) -> int:
        return len(self.obs)


def absorbing_mass(done: np.ndarray, length: np.ndarray, horizon: int) -> np.ndarray:
    """(N,) float32: at the last step of a terminated episode of ``length`` steps, the steps
    its time limit ``horizon`` had left, which it spends in the absorbing state (at least
    one); 0 at every other step (a truncated episode never reaches it). An episode that
    lands after 240 of 1,000 steps is 76% absorbing state, one that hovers to the limit 0%."""
    left = np.maximum(int(horizon) - np.asarray(length, np.int64), 1)
    return np.where(np.asarray(done, bool), left, 0).astype(np.float32)


def uses_absorbing(config: AdversarialConfig, expert: ExpertSteps) -> bool:
    """Whether terminations lead to an absorbing state: ``config.absorbing`` "on", or "auto"
    and some demonstration episode terminated (rather than ran to its time limit)."""
    return config.absorbing == "on" or (config.absorbing == "auto" and bool(expert.done.any()))


def uses_bc_start(config: AdversarialConfig, expert: ExpertSteps) -> bool:
    """Whether the policy starts from BC (with the critic warm-up and the BC term):
    ``config.bc_start`` "on", or "auto" and some demonstration episode terminated; never
    with ``state_only``."""
    if config.state_only:
        return False
    return config.bc_start == "on" or (config.bc_start == "auto" and bool(expert.done.any()))
