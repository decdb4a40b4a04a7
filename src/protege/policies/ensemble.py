"""A bootstrap ensemble of policies that acts as one (:class:`PolicyEnsemble`): the mean
action, the members' variance (novelty) and their disagreement with a given action
(discrepancy); members that stack act in one batched pass (:mod:`protege.policies.stacked`).
Trained by :class:`protege.algos.ensemble_dagger.EnsembleTrainer`; EnsembleDAgger's and
ThriftyDAgger's robot."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from protege.device import to_device, to_numpy
from protege.errors import CheckpointError, ConfigError, DataError
from protege.policies.parts import to_tensors
from protege.policies.policy import Policy
from protege.policies.stacked import PolicyPlan, stackable

MAX_MEMBERS = 256
"""Members a saved ensemble may have (ThriftyDAgger and EnsembleDAgger use about 5)."""


class PolicyEnsemble:
    """K policies acting as one.

    The action is the members' mean (continuous) or the action with the highest mean
    probability (discrete). ``novelty`` is ThriftyDAgger's ``variance(o)``: the ensemble's
    action variance averaged over action dimensions (for discrete actions, the variance of the
    members' probability vectors). ``discrepancy`` is the squared L2 distance of the mean
    action from given actions (discrete: 1 − the mean probability of the given action).

    Example:
        >>> ens = PolicyEnsemble([p1, p2, p3])
        >>> ens.act(obs_N), ens.novelty(obs_N)
    """

    def __init__(self, members: Sequence[Policy]):
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        if any(m.config.chunk_size != 1 for m in members):
            raise ConfigError("PolicyEnsemble members must predict single actions (chunk_size 1)")
        self.members = list(members)
        self.discrete = members[0].config.discrete
        self._cache_obs: np.ndarray | None = None
        self._cache: np.ndarray | None = None
        self._stacked: PolicyPlan | None = None
        self._stacked_members: list[Policy] = []
        self._stackable = False

    def __len__(self) -> int:
        return len(self.members)

    def to(self, device: torch.device) -> PolicyEnsemble:
        """Every member moved to ``device`` (numpy in and out as before)."""
        for m in self.members:
            m.to(device)
        return self

    @torch.inference_mode()
    def member_outputs(self, obs: np.ndarray) -> np.ndarray:
        """(K, N, A) actions in env units, or (K, N, n_actions) probabilities if discrete.
        The last call is cached (the loop and the gate look at the same observations).
        Members that :func:`~protege.policies.stacked.stackable` says stack (MLPs with a
        ``mse``, ``categorical`` or ``gaussian`` head, one config) answer in one batched
        pass; others one after another."""
        if self._cache_obs is obs and self._cache is not None:
            return self._cache
        plan = self._plan()
        out = self._stacked_outputs(obs, plan) if plan is not None else self._member_loop(obs)
        self._cache_obs, self._cache = obs, out
        return out

    def _plan(self) -> PolicyPlan | None:
        """The members' stacked plan (None if they do not stack), rebuilt when any member's
        weights or statistics changed. Each member's arithmetic is that of the loop below:
        probabilities from ``head.linear(features)``, actions from ``predict_chunk``."""
        if self._stacked_members != self.members:  # first call, or members replaced
            self._stacked_members = list(self.members)
            self._stackable, self._stacked = stackable(self.members), None
        if not self._stackable:
            return None
        if self._stacked is None or not self._stacked.current():
            self._stacked = PolicyPlan(self.members, folded=not self.discrete)
        return self._stacked

    def _stacked_outputs(self, obs: np.ndarray, plan: PolicyPlan) -> np.ndarray:
        first = self.members[0]
        obs_t = torch.from_numpy(np.ascontiguousarray(obs))
        if tuple(obs_t.shape[1:]) != first.config.obs_shape:
            raise DataError(
                f"policy expects observations of shape {first.config.obs_shape}, "
                f"got {tuple(obs_t.shape[1:])}"
            )
        out_KND = plan(obs_t)
        k, n = out_KND.shape[:2]
        if self.discrete:
            return F.softmax(out_KND, dim=-1).numpy().astype(np.float64)
        acts = first.head.output_mode(out_KND.reshape(k * n, -1)).reshape(k, n, -1)
        out = (acts * plan.act_scale + plan.act_offset).numpy()
        if first._low.size:
            out = np.clip(out, first._low, first._high)
        return out.astype(np.float64)

    def _member_loop(self, obs: np.ndarray) -> np.ndarray:
        obs_t = to_tensors(obs)
        outs = []
        for m in self.members:
            feats = m.features(m.normalize_obs(to_device(obs_t, m.device)))
            if self.discrete:
                logits = getattr(m.head, "logits")(feats)[:, 0]  # noqa: B009 (categorical)
                outs.append(to_numpy(F.softmax(logits, dim=-1)))
            else:
                outs.append(m.predict_chunk(obs)[:, 0])
        return np.stack(outs).astype(np.float64)

    def act(
        self,
        obs: np.ndarray,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        out = self.member_outputs(obs)
        if self.discrete:
            return out.mean(0).argmax(-1).astype(np.int64)
        return out.mean(0).astype(np.float32)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        for m in self.members:
            m.episodes_started(mask)

    def novelty(self, obs: np.ndarray) -> np.ndarray:
        return self.member_outputs(obs).var(axis=0).mean(-1)

    def discrepancy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        out = self.member_outputs(obs)
        if self.discrete:
            p = out.mean(0)
            return 1.0 - p[np.arange(len(p)), np.asarray(actions, np.int64).reshape(-1)]
        diff = out.mean(0) - np.asarray(actions, np.float64).reshape(out.shape[1:])
        return (diff**2).sum(-1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for k, m in enumerate(self.members):
            m.save(path / f"member_{k}")
        meta = {"kind": "ensemble", "members": len(self.members)}
        (path / "ensemble.json").write_text(json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PolicyEnsemble:
        """Load a saved ensemble; a missing or corrupt file raises
        :class:`~protege.errors.CheckpointError` naming it."""
        path = Path(path)
        meta_file = path / "ensemble.json"
        try:
            meta = json.loads(meta_file.read_text())
            k = meta["members"]
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(
                f"{meta_file}: not a policy ensemble's metadata ({type(exc).__name__}: {exc})"
            ) from None
        unknown = sorted(set(meta) - {"kind", "members"})
        if unknown or meta.get("kind", "ensemble") != "ensemble":
            raise CheckpointError(
                f"{meta_file}: not a policy ensemble's metadata (unknown fields {unknown} "
                f"or kind {meta.get('kind')!r})"
            )
        if isinstance(k, bool) or not isinstance(k, int):
            raise CheckpointError(f"{meta_file}: field 'members' must be an integer, got {k!r}")
        if k < 1:
            raise CheckpointError(f"{meta_file}: an ensemble needs at least one member, not {k}")
        if k > MAX_MEMBERS:
            raise CheckpointError(
                f"{meta_file}: field 'members' must be in [1, {MAX_MEMBERS}], got {k}"
            )
        return cls([Policy.load(path / f"member_{i}") for i in range(k)])
