"""Who answers a preference query: the synthetic oracle (here) or a person
(:class:`protege.teleop.preference_window.PersonLabeler`).

A labeler has ``source`` (the name written with every answer) and
``ask(left, right, update, index) -> (choice, seconds)`` with a choice from
:data:`~protege.rewards.preference_data.CHOICES`.

:class:`SyntheticOracle` compares the task's true reward summed over each segment. Exact
(``noisy=False``): the larger sum wins, sums within ``tie_margin`` are "equal". Noisy: a
Boltzmann-rational answerer, left with probability ``sigmoid((R_left − R_right)/temperature)``
(temperature 0: the larger sum), then flipped with probability ``error_rate``. Its draws for
query ``index`` of update ``update`` come from ``(seed, update, index)`` alone, so a resumed
run's answers are the ones the interrupted run would have given.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from protege.algos.rl_rollout import derived_seed
from protege.rewards.preference_data import Segment


class Labeler(Protocol):
    """Answers preference queries (see the module docstring)."""

    source: str

    def ask(self, left: Segment, right: Segment, update: int, index: int) -> tuple[str, float]:
        """("left" | "right" | "equal" | "skip", seconds the answer took)."""
        ...


class SyntheticOracle:
    """The task's true reward as the answerer, exact or noisy (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        noisy: bool = False,
        temperature: float = 1.0,
        error_rate: float = 0.0,
        tie_margin: float = 1e-6,
    ):
        self.seed = seed
        self.noisy = noisy
        self.temperature = temperature
        self.error_rate = error_rate
        self.tie_margin = tie_margin
        self.source = "noisy" if noisy else "true"

    def probability(self, left: Segment, right: Segment) -> float:
        """P(the answer is "left") before errors: 1, 0 or ½ exact; the Boltzmann one noisy."""
        diff = left.true_return - right.true_return
        if not self.noisy or self.temperature == 0.0:
            if abs(diff) <= self.tie_margin:
                return 0.5
            return 1.0 if diff > 0 else 0.0
        z = diff / self.temperature
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def ask(self, left: Segment, right: Segment, update: int, index: int) -> tuple[str, float]:
        p = self.probability(left, right)
        if not self.noisy:
            return {1.0: "left", 0.0: "right"}.get(p, "equal"), 0.0
        rng = np.random.default_rng(derived_seed(self.seed, update, index, 8))
        u_choice, u_error = rng.random(2)
        if self.temperature == 0.0 and p == 0.5:
            choice = "equal"
        else:
            choice = "left" if u_choice < p else "right"
        if u_error < self.error_rate and choice != "equal":
            choice = "right" if choice == "left" else "left"
        return choice, 0.0
