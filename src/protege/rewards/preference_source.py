"""The PPO learner's reward from preferences: query, record, train, label (Christiano et al.).

:class:`PreferenceReward` is a :class:`~protege.algos.ppo.RewardSource`. At each update the
query schedule (:meth:`~protege.configs.preferences.PreferenceConfig.pairs_at`) allows, it
draws pairs of segments from the batch the policy just collected, asks the labeler (the
synthetic oracle or a person) about each, appends every answer durably to the run's
:class:`~protege.rewards.preference_data.PreferenceFile` before the next question, and trains
the Bradley–Terry reward model on all answers so far. It then labels the batch with the
learned reward divided by its standard deviation over the batch (the scale normalized, the
sign and offset kept: on a task whose episodes end early, like CartPole, the offset is what
makes surviving worth it; ``center_reward`` subtracts the batch mean too).

With an ensemble, a query is the most disputed of ``candidates`` drawn pairs (the spread of
the members' predicted preference probabilities).

**Resuming.** Pairs, answers and training draws of update ``u`` come from ``(seed, u)``; the
answer to query ``k`` of update ``u`` is looked up in the file before anyone is asked. A run
resumed from the checkpoint of update ``u − 1`` therefore re-draws the same pairs, asks
nobody about what was answered before the crash, and trains to the same weights.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from protege.algos.ppo import RewardSource
from protege.algos.rl_rollout import RolloutBatch, derived_seed
from protege.configs.preferences import PreferenceConfig
from protege.rewards.oracle import Labeler
from protege.rewards.preference_data import (
    Preference,
    PreferenceFile,
    Segment,
    sample_pairs,
)
from protege.rewards.preference_model import RewardModel, RewardSpec, new_model, train


class PreferenceReward(RewardSource):
    """Rewards learned from preferences about the learner's own segments (module docstring).

    Args:
        spec: the task's spaces as the reward model sees them.
        file: where every answer is kept (and found again on resume).
        labeler: who answers.
        seed: the run's seed.
    """

    name = "preferences"

    def __init__(
        self,
        spec: RewardSpec,
        config: PreferenceConfig,
        file: PreferenceFile,
        labeler: Labeler,
        seed: int,
    ):
        self.config, self.file, self.labeler, self.seed = config, file, labeler, seed
        self.model: RewardModel = new_model(spec, config.reward_hidden_sizes, config.ensemble, seed)
        self.asked_now = 0
        """Questions put to the labeler by this process (not found in the file)."""
        self.seconds = 0.0
        """Seconds the labeler took over those."""

    # ---------------------------------------------------------------------- querying
    def budget_left(self, update: int) -> int:
        """Queries the budget still allows before update ``update``."""
        before = sum(1 for p in self.file.records if p.update < update)
        return max(self.config.preferences - before, 0)

    def pairs(self, batch: RolloutBatch, update: int, n: int) -> list[tuple[Segment, Segment]]:
        """The ``n`` pairs update ``update`` asks about (drawn from ``(seed, update)``)."""
        cfg = self.config
        rng = np.random.default_rng(derived_seed(self.seed, update, 5))
        if cfg.ensemble == 1 or cfg.candidates == 1 or not bool(self.model.fitted):
            return sample_pairs(batch, n, cfg.segment_length, rng)
        pool = sample_pairs(batch, n * cfg.candidates, cfg.segment_length, rng)
        returns = self.model.segment_returns([s for pair in pool for s in pair])
        diff = returns[:, 0::2] - returns[:, 1::2]  # (members, pairs)
        spread = torch.sigmoid(diff).std(0)
        keep = torch.argsort(spread, descending=True, stable=True)[:n].sort().values
        return [pool[int(i)] for i in keep]

    def query(self, pairs: list[tuple[Segment, Segment]], update: int) -> int:
        """Answer query ``k`` about ``pairs[k]`` for every ``k`` the file has no answer to
        (each appended durably before the next is asked); returns how many were asked."""
        asked = 0
        for k, (left, right) in enumerate(pairs):
            if self.file.has(update, k):
                continue
            t0 = time.perf_counter()
            choice, seconds = self.labeler.ask(left, right, update, k)
            self.seconds += seconds or (time.perf_counter() - t0)
            pref = Preference(update, k, choice, self.labeler.source, left, right, seconds)
            self.file.append(pref)
            asked += 1
        self.asked_now += asked
        return asked

    # ------------------------------------------------------------------ RewardSource
    def update(self, batch: RolloutBatch, update: int) -> dict[str, float]:
        n = min(self.config.pairs_at(update), self.budget_left(update))
        metrics: dict[str, float] = {}
        if n > 0:
            new = self.query(self.pairs(batch, update, n), update)
            seen = [p for p in self.file.records if p.update <= update]
            cfg = self.config
            metrics.update(
                train(
                    self.model,
                    seen,
                    derived_seed(self.seed, update, 6),
                    cfg.reward_epochs,
                    cfg.reward_batch_size,
                    cfg.reward_lr,
                    cfg.reward_weight_decay,
                )
            )
            metrics["preferences_new"] = float(new)
        answered = [p for p in self.file.records if p.update <= update]
        metrics["preferences"] = float(len(answered))
        metrics["preferences_skipped"] = float(sum(p.choice == "skip" for p in answered))
        return metrics

    @torch.no_grad()
    def rewards(self, batch: RolloutBatch) -> np.ndarray:
        r = self.model(batch.obs, batch.actions, batch.next_obs, batch.terminal).double().numpy()
        if self.config.center_reward:
            r = r - r.mean()
        scale = float(np.std(r))
        return r / scale if scale > 1e-8 else r

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.model.state_dict())

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            self.model.load_state_dict(tensors)

    def describe(self) -> dict[str, Any]:
        """What the run's preferences were: counts by choice, labeler, seconds asked here."""
        return {
            **self.file.counts(),
            "source": self.labeler.source,
            "asked_this_run": self.asked_now,
            "labeler_seconds_this_run": round(self.seconds, 3),
        }
