"""ThriftyDAgger's learner (:class:`ThriftyLearner`): the bootstrap ensemble that acts and
its success critic, saved as JSON + safetensors. The method: :mod:`protege.algos.thrifty`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from protege.configs.checks import (
    MAX_CHUNK,
    MAX_PARAMETERS,
    MAX_WIDTH,
    require_int,
    require_int_list,
    require_number,
)
from protege.errors import CheckpointError, ConfigError
from protege.policies.checks import check_size
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.policy import load_weights
from protege.policies.success_q import SuccessQ


class ThriftyLearner:
    """The robot: an ensemble that acts, its success critic (or None) and δ_r."""

    def __init__(
        self, ensemble: PolicyEnsemble, critic: SuccessQ | None, switch_back_discrepancy: float
    ):
        self.ensemble = ensemble
        self.critic = critic
        self.switch_back_discrepancy = switch_back_discrepancy

    def to(self, device: torch.device) -> ThriftyLearner:
        """The ensemble moved to ``device``; the success critic stays on the CPU (its TD
        step is the stacked CPU path of :mod:`protege.algos.success_td`)."""
        self.ensemble.to(device)
        return self

    def act(
        self, obs: np.ndarray, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> np.ndarray:
        return self.ensemble.act(obs, deterministic, generator)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        self.ensemble.episodes_started(mask)

    def novelty(self, obs: np.ndarray) -> np.ndarray:
        return self.ensemble.novelty(obs)

    def discrepancy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.ensemble.discrepancy(obs, actions)

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        self.ensemble.save(path / "ensemble")
        meta: dict[str, Any] = {
            "kind": "thrifty",
            "switch_back_discrepancy": self.switch_back_discrepancy,
        }
        if self.critic is not None:
            meta["critic"] = self.critic.spec()
            tensors = {
                k: v.detach().cpu().contiguous() for k, v in self.critic.state_dict().items()
            }
            save_file(tensors, str(path / "critic.safetensors"))
        (path / "thrifty.json").write_text(json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ThriftyLearner:
        """Load a saved learner (JSON and safetensors only); a missing or corrupt file raises
        :class:`~protege.errors.CheckpointError` naming it."""
        path = Path(path)
        meta_file = path / "thrifty.json"
        try:
            meta = json.loads(meta_file.read_text())
            delta_r = meta["switch_back_discrepancy"]
            spec = meta.get("critic")
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise CheckpointError(
                f"{meta_file}: not a ThriftyDAgger learner's metadata ({type(e).__name__}: {e})"
            ) from None
        unknown = sorted(set(meta) - {"kind", "switch_back_discrepancy", "critic"})
        if unknown or meta.get("kind", "thrifty") != "thrifty":
            raise CheckpointError(
                f"{meta_file}: not a ThriftyDAgger learner's metadata (unknown fields "
                f"{unknown} or kind {meta.get('kind')!r})"
            )
        try:
            delta_r = require_number(delta_r, "switch_back_discrepancy")
        except ConfigError as exc:
            raise CheckpointError(f"{meta_file}: {exc}") from None
        critic = None if spec is None else load_critic(spec, path / "critic.safetensors")
        return cls(PolicyEnsemble.load(path / "ensemble"), critic, delta_r)


CRITIC_FIELDS = ("obs_dim", "act_dim", "n_actions", "hidden")


def load_critic(spec: Any, file: Path) -> SuccessQ:
    """The success critic described by ``spec`` (``thrifty.json``'s ``critic``: every field
    typed and bounded, the network's size counted before it is built) with the weights in
    ``file`` (names, shapes, dtypes and finite values checked)."""
    where = file.with_name("thrifty.json")
    try:
        if not isinstance(spec, dict) or sorted(spec) != sorted(CRITIC_FIELDS):
            raise ConfigError(f"field 'critic' must be an object with exactly {CRITIC_FIELDS}")
        obs_dim = require_int(spec["obs_dim"], "critic.obs_dim", 1, MAX_PARAMETERS)
        act_dim = require_int(spec["act_dim"], "critic.act_dim", 1, MAX_CHUNK)
        n_actions = require_int(spec["n_actions"], "critic.n_actions", 0, MAX_WIDTH)
        hidden = require_int_list(spec["hidden"], "critic.hidden", 1, MAX_WIDTH, min_len=1)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: bad critic description ({exc})") from None
    check_size(lambda: SuccessQ(obs_dim, act_dim, n_actions, hidden), f"{where}: critic")
    critic = SuccessQ(obs_dim, act_dim, n_actions, hidden)
    load_weights(critic, file, "the critic's description")
    return critic.eval()
