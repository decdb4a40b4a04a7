"""Self-imitation: a BC loss on the learner's own best episodes so far.

``protege finetune --self-imitation W`` adds :class:`SelfImitation` to PPO's loss: of every
episode the learner has collected, it keeps the ``--self-imitation-episodes K`` with the
highest return (the return of the rewards PPO trains on) and adds ``W · (−log π(a|s))`` on a
minibatch of their steps, drawn from ``(seed, update)``. Filtered BC on RL's own episodes, in
the spirit of self-imitation learning (Oh et al. 2018), which weights each step by its
return's excess over the critic instead.

Why: PPO improves the policy it samples from; a policy's most likely action (what a
deterministic evaluation runs) can lag far behind. BC from a few demonstrations is such a
policy on LunarLander: sampling, its episodes sometimes land, while its most likely action
crashes (BENCHMARKS.md, "RL fine-tuning"). Imitating the episodes that went best moves the
most likely action toward the actions that worked, with no env steps of its own.

The kept episodes are part of the learner's checkpoint (:meth:`SelfImitation.tensors`), so a
resumed run imitates the same ones.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from protege.algos.ppo import PolicyTerm
from protege.algos.rl_rollout import RolloutBatch, derived_seed
from protege.policies.policy import Policy


class SelfImitation(PolicyTerm):
    """−log π(a|s) on steps of the ``episodes`` best episodes seen so far (by return; ties:
    the earlier episode), weight ``weight``; minibatches of ``batch_size`` drawn from
    ``(seed, update)``. :meth:`observe` offers it each update's batch."""

    name = "self_imitation"

    def __init__(self, weight: float, episodes: int, batch_size: int, seed: int):
        self.w, self.k, self.batch_size, self.seed = weight, episodes, batch_size, seed
        self.kept: list[tuple[float, int, torch.Tensor, torch.Tensor]] = []
        """(return, arrival index, observations, head-space actions) of each kept episode."""
        self.seen = 0
        self._cat: tuple[torch.Tensor, torch.Tensor] | None = None
        self._update = -1
        self._g = torch.Generator()

    def weight(self, update: int) -> float:
        return self.w if self.kept else 0.0

    def observe(self, batch: RolloutBatch, rewards: np.ndarray, update: int) -> None:
        """Offer the batch's episodes (``rewards``: what PPO trains on); keep the best."""
        ends = np.flatnonzero(batch.last) + 1
        start = 0
        for end in ends:
            ret = float(np.sum(rewards[start:end], dtype=np.float64))
            obs = torch.as_tensor(np.asarray(batch.obs[start:end], np.float32))
            self.kept.append((ret, self.seen, obs, batch.raw_actions[start:end].clone()))
            self.seen += 1
            start = int(end)
        self.kept.sort(key=lambda e: (-e[0], e[1]))
        del self.kept[self.k :]
        self._cat = None

    def loss(self, policy: Policy, mb: dict[str, torch.Tensor], update: int) -> torch.Tensor:
        if self._cat is None:
            self._cat = (
                torch.cat([e[2] for e in self.kept]),
                torch.cat([e[3] for e in self.kept]),
            )
        obs, raw = self._cat
        if update != self._update:
            self._update = update
            self._g.manual_seed(derived_seed(self.seed, update, 6))
        idx = torch.randint(len(obs), (self.batch_size,), generator=self._g)
        feats = policy.features(policy.normalize_obs(obs[idx]))
        return -policy.head.log_prob(feats, raw[idx])[:, 0].mean()

    def returns(self) -> list[float]:
        """The kept episodes' returns, best first."""
        return [e[0] for e in self.kept]

    def tensors(self) -> dict[str, torch.Tensor]:
        if not self.kept:
            return {"seen": torch.tensor([self.seen])}
        return {
            "seen": torch.tensor([self.seen]),
            "returns": torch.tensor([e[0] for e in self.kept], dtype=torch.float64),
            "order": torch.tensor([e[1] for e in self.kept]),
            "lengths": torch.tensor([len(e[2]) for e in self.kept]),
            "obs": torch.cat([e[2] for e in self.kept]),
            "raw": torch.cat([e[3] for e in self.kept]),
        }

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.kept, self._cat = [], None
        self.seen = int(tensors["seen"][0]) if "seen" in tensors else 0
        if "returns" not in tensors:
            return
        bounds = np.concatenate([[0], np.cumsum(tensors["lengths"].numpy())])
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            self.kept.append(
                (
                    float(tensors["returns"][i]),
                    int(tensors["order"][i]),
                    tensors["obs"][a:b].clone(),
                    tensors["raw"][a:b].clone(),
                )
            )
