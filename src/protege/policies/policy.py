"""Policy = normalizer + encoder + head (+ chunk executor), saved as config.json + safetensors.

The policy acts; algorithms learn. Its public edge is batched numpy: ``act(obs_N) -> actions_N``.
Inside, observations are normalized with statistics computed from the training data and saved
with the weights, and continuous actions are scaled for the head and unscaled on the way out.
Observations of several parts (a ``Dict`` space) are dicts of arrays throughout
(:mod:`protege.policies.parts`: an encoder per part, statistics and history per part).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from protege.configs.policy import PolicyConfig
from protege.data.obs import n_rows, take
from protege.device import fast_paths_apply, to_device, to_numpy
from protege.errors import CheckpointError, ConfigError, DataError
from protege.policies import mlp
from protege.policies.checks import (
    ENCODER_ARGS,
    HEAD_ARGS,
    check_settings,
    check_size,
    read_tensors,
)
from protege.policies.chunking import ChunkExecutor
from protege.policies.encoders import ENCODERS, MLPEncoder
from protege.policies.heads import HEADS
from protege.policies.heads.base import LinearHead
from protege.policies.history import ObsHistory, PartsHistory
from protege.policies.mlp import ActingPlan
from protege.policies.parts import PartStats, as_tensors, is_image_part

CONFIG_FILE = "config.json"
KIND = "policy"
"""The learner kind ``config.json`` records (:func:`protege.algos.registry.load_learner`)."""
WEIGHTS_FILE = "model.safetensors"
FORMAT = "protege-policy"
EXTRA_FIELDS = ("task", "data", "diverged_at_step")
"""What ``save(extra=...)`` may record beside the config: the task and the data (strings),
and the step where training diverged (an integer; ``protege train`` keeps the last finite
weights of a run whose loss became NaN)."""


class Policy(nn.Module):
    """A behavior policy built from a :class:`PolicyConfig`.

    Example:
        >>> policy = Policy(PolicyConfig.for_spaces(env.observation_space, env.action_space))
        >>> policy.set_normalization(data.obs, data.actions)
        >>> actions = policy.act(obs_N)            # numpy in, numpy out
        >>> policy.save("runs/bc"); Policy.load("runs/bc")
    """

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    act_offset: torch.Tensor
    act_scale: torch.Tensor

    def __init__(self, config: PolicyConfig, seed: int | None = None) -> None:
        """Build the network; with ``seed``, its initial weights depend on nothing else."""
        super().__init__()
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._build(config)
        else:
            self._build(config)

    def _build(self, config: PolicyConfig) -> None:
        self.config = config
        if config.encoder not in ENCODERS:
            raise CheckpointError(f"unknown encoder {config.encoder!r}; known: {sorted(ENCODERS)}")
        if config.head not in HEADS:
            raise CheckpointError(f"unknown head {config.head!r}; known: {sorted(HEADS)}")
        head_cls = HEADS[config.head]
        if head_cls.discrete != config.discrete:
            kind = "Discrete" if config.discrete else "Box"
            raise CheckpointError(f"head {config.head!r} does not fit a {kind} action space")
        encoder_cls = ENCODERS[config.encoder]
        check_settings(encoder_cls, config.encoder_kwargs, ENCODER_ARGS, "encoder_kwargs")
        check_settings(head_cls, config.head_kwargs, HEAD_ARGS, "head_kwargs")
        encoder_kwargs = dict(config.encoder_kwargs)
        if config.n_obs_steps != 1:
            encoder_kwargs["n_obs_steps"] = config.n_obs_steps
        if config.random_shift:
            encoder_kwargs["random_shift"] = config.random_shift
        parts = config.obs_parts
        shape_arg = config.obs_shape if parts is None else parts
        self.encoder = encoder_cls(shape_arg, config.hidden_sizes, **encoder_kwargs)
        head_kwargs = dict(config.head_kwargs)
        if config.discrete:
            head_kwargs.setdefault("n_actions", config.n_actions)
        if head_cls.uses_action_norm:
            head_kwargs.setdefault("action_norm", config.action_norm)
        self.head = head_cls(self.encoder.out_dim, config.act_dim, config.chunk_size, **head_kwargs)
        obs_shape = config.obs_shape if config.normalize_obs else ()
        self.register_buffer("obs_mean", torch.zeros(obs_shape))
        self.register_buffer("obs_std", torch.ones(obs_shape))
        self.register_buffer("act_offset", torch.zeros(config.act_dim))
        self.register_buffer("act_scale", torch.ones(config.act_dim))
        # Observation parts: statistics per part (a vector part's shape if normalized, else
        # scalars), in obs_parts order; obs_mean and obs_std are then unused scalars.
        self.part_stats = nn.ModuleList(
            PartStats(s if config.normalize_obs and not is_image_part(s) else ())
            for s in (parts or {}).values()
        )
        low = config.action_low if config.action_low is not None else []
        high = config.action_high if config.action_high is not None else []
        self._low = np.asarray(low, np.float32)
        self._high = np.asarray(high, np.float32)
        self.history: ObsHistory | PartsHistory | None = None
        if config.n_obs_steps > 1:
            self.history = (
                ObsHistory(config.n_obs_steps)
                if parts is None
                else PartsHistory(config.n_obs_steps)
            )
        # The fast paths' case (protege.policies.mlp): an MLP encoder and a LinearHead. Then
        # mlp_layers are all the network's layers, and _fast is the acting plan built from
        # them (checked on every call; dropped when .to() and friends replace tensors).
        self.mlp_layers: list[nn.Linear] = []
        if type(self.encoder) is MLPEncoder and isinstance(self.head, LinearHead):
            self.mlp_layers = [*self.encoder.linears, self.head.linear]
        self._fast: ActingPlan | None = None
        self._obs_shape = torch.Size(config.obs_shape)
        self.executor: ChunkExecutor | None = None
        if config.chunk_size > 1:
            self.executor = ChunkExecutor(
                config.chunk_size, config.n_action_steps, config.temporal_ensemble_coeff
            )

    # ------------------------------------------------------------------ normalization
    def set_normalization(self, obs: Any, actions: np.ndarray) -> None:
        """Compute normalization statistics from training observations (an array, or a dict
        of parts: each vector part's own statistics) and actions."""
        parts = self.config.obs_parts
        if parts is not None and self.config.normalize_obs:
            for (name, shape), stats in zip(parts.items(), self.part_stats, strict=True):
                if not is_image_part(shape):
                    assert isinstance(stats, PartStats)
                    stats.fit(obs[name])
        elif self.config.normalize_obs:
            obs64 = np.asarray(obs, np.float64)
            self.obs_mean.copy_(torch.as_tensor(obs64.mean(0), dtype=torch.float32))
            std = obs64.std(0)
            # A feature that never varies in the data is left unscaled, not divided by ~0.
            self.obs_std.copy_(torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32))
        if not self.config.discrete:
            a = np.asarray(actions, np.float64).reshape(len(actions), -1)
            if self.config.action_norm == "std":
                offset, scale = a.mean(0), a.std(0)
            else:
                lo, hi = a.min(0), a.max(0)
                offset, scale = (hi + lo) / 2, (hi - lo) / 2
            scale = np.where(scale < 1e-6, 1.0, scale)
            self.act_offset.copy_(torch.as_tensor(offset, dtype=torch.float32))
            self.act_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def normalize_obs(self, obs: Any) -> Any:
        """Observations ``(B, [K,] *obs_shape)`` as the encoder takes them: z-scored floats,
        or raw uint8 frames for an image encoder without obs normalization (it scales them).
        Observation parts (a dict of tensors): image parts stay raw uint8, vector parts are
        z-scored with their own statistics."""
        if isinstance(obs, dict):
            return self._normalize_parts(obs)
        if obs.dtype == torch.uint8 and not self.config.normalize_obs and self.encoder.takes_uint8:
            return obs
        if obs.dtype != torch.float32:
            obs = obs.float()
        if self.config.normalize_obs:
            return (obs - self.obs_mean) / self.obs_std
        return obs

    def _normalize_parts(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        parts = self.config.obs_parts
        assert parts is not None, "a policy of one observation array got a dict of parts"
        out = {}
        for (name, shape), stats in zip(parts.items(), self.part_stats, strict=True):
            x = obs[name]
            if is_image_part(shape):
                out[name] = x if x.dtype == torch.uint8 else x.float()
                continue
            x = x if x.dtype == torch.float32 else x.float()
            assert isinstance(stats, PartStats)
            out[name] = (x - stats.mean) / stats.std if self.config.normalize_obs else x
        return out

    def normalize_actions(self, actions_BHA: torch.Tensor) -> torch.Tensor:
        if self.config.discrete:
            return actions_BHA
        return (actions_BHA - self.act_offset) / self.act_scale

    def unnormalize_actions(self, actions_BHA: torch.Tensor) -> torch.Tensor:
        if self.config.discrete:
            return actions_BHA
        return actions_BHA * self.act_scale + self.act_offset

    @property
    def device(self) -> torch.device:
        """Where the policy's weights are (``policy.to(device)`` moves them); it takes numpy
        observations and returns numpy actions wherever that is."""
        return self.act_scale.device

    # ---------------------------------------------------------------------- inference
    def features(self, obs_norm: Any) -> torch.Tensor:
        """``(B, F)`` features of normalized observations (a tensor, or a dict of parts)."""
        return self.encoder(obs_norm)

    def obs_tensors(self, obs: Any) -> Any:
        """A numpy batch as the tensors :meth:`normalize_obs` takes, checked against the
        config: ``(N, *obs_shape)``, or a dict of parts (each part's shape checked)."""
        k, parts = self.config.n_obs_steps, self.config.obs_parts
        if parts is not None:
            return to_device(as_tensors(obs, parts, k), self.device)
        if isinstance(obs, dict):
            raise DataError(
                f"policy expects observations of shape {self.config.obs_shape}, "
                f"got observation parts {sorted(obs)}"
            )
        obs_t = torch.from_numpy(np.ascontiguousarray(obs))
        shape = self.config.obs_shape
        got = tuple(obs_t.shape[1:])
        if k > 1 and got == shape:
            obs_t = obs_t[:, None].expand(-1, k, *shape)
        elif got != ((k, *shape) if k > 1 else shape):
            stacked = f" (or {(k, *shape)} with history)" if k > 1 else ""
            raise DataError(f"policy expects observations of shape {shape}{stacked}, got {got}")
        return obs_t.to(self.device)

    @torch.inference_mode()
    def predict_chunk(
        self,
        obs: Any,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Predicted action chunks ``(N, H, A)`` in env units (float; indices if discrete).

        With ``n_obs_steps = K > 1``, ``obs`` is ``(N, K, *obs_shape)`` (oldest first); a plain
        ``(N, *obs_shape)`` is taken as K copies of each observation (no history). Observation
        parts are a dict, each part shaped so. This call keeps no state: :meth:`act` is what
        keeps each sub-env's history.
        """
        obs_t = self.obs_tensors(obs)
        plan = self._fast_plan() if deterministic else None
        if plan is not None:
            acts = self.head.output_mode(plan.output(obs_t))
        else:
            feats = self.features(self.normalize_obs(obs_t))
            acts = self.head.mode(feats) if deterministic else self.head.sample(feats, generator)
        out = to_numpy(self.unnormalize_actions(acts))
        if self._low.size:
            out = np.clip(out, self._low, self._high)
        return out

    @torch.no_grad()
    def _act_fast(self, obs: np.ndarray, plan: ActingPlan) -> np.ndarray:
        """:meth:`act` for one-step, history-free MLP policies with a linear head: the
        evaluation hot path, in as few calls as possible (between env steps, every call runs
        on cold caches)."""
        obs_t = torch.from_numpy(np.ascontiguousarray(obs))
        if obs_t.shape[1:] != self._obs_shape:
            raise DataError(
                f"policy expects observations of shape {self.config.obs_shape}, "
                f"got {tuple(obs_t.shape[1:])}"
            )
        acts = self.head.output_mode(plan.output(obs_t))
        if self.config.discrete:
            return acts.numpy()[:, 0, 0].astype(np.int64)
        out = self.unnormalize_actions(acts).numpy()[:, 0]
        if self._low.size:
            out = np.clip(out, self._low, self._high)
        return out.astype(np.float32, copy=False)

    def _fast_plan(self) -> ActingPlan | None:
        """The plan for deterministic acting with an MLP encoder and a ``linear_output``
        head (None otherwise, off the CPU, or with the fast paths off: ``mlp.FAST_PATHS``).
        Rebuilt when any weight or normalization statistic is changed in place or given new
        storage."""
        if not self.mlp_layers or not mlp.FAST_PATHS or not fast_paths_apply(self.device):
            return None
        plan = self._fast
        if plan is None or not plan.current():
            stats = (self.obs_mean, self.obs_std) if self.config.normalize_obs else None
            plan = self._fast = ActingPlan.build(self.mlp_layers, stats)
        return plan

    def _apply(self, fn: Any, recurse: bool = True) -> Policy:
        self._fast = None  # .to(), .float(), ...: buffers become new tensors
        return super()._apply(fn, recurse)

    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """One action per observation: ``(N,)`` int64 if discrete, else ``(N, A)`` float32.

        ``obs`` is one observation per sub-env, ``(N, *obs_shape)`` (or a dict of parts, each
        ``(N, *part_shape)``, as a vector env returns them). With ``n_obs_steps > 1``
        each call is one step of every sub-env: the policy appends ``obs`` to each sub-env's
        history (see :meth:`episodes_started`) and acts on the last K.
        """
        if deterministic and self.history is None and self.executor is None:
            plan = self._fast_plan()
            if plan is not None:
                return self._act_fast(obs, plan)
        if isinstance(self.history, PartsHistory):
            obs = self.history.push(obs, self.config.obs_parts or {})
        elif self.history is not None:
            obs = self.history.push(np.asarray(obs), self.config.obs_shape)
        if self.executor is None:
            acts = self.predict_chunk(obs, deterministic, generator)[:, 0]
        else:
            acts = self.executor.act(
                obs,
                lambda o, m: self.predict_chunk(take(o, m), deterministic, generator),
                self.config.act_dim,
                n_rows(obs),
            )
        if self.config.discrete:
            return acts[:, 0].round().astype(np.int64)
        return acts.astype(np.float32)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """Start new episodes (all sub-envs, or those in ``mask``): clears chunk queues and
        observation histories."""
        if self.history is not None:
            self.history.episodes_started(mask)
        if self.executor is not None:
            self.executor.episodes_started(mask)

    # ---------------------------------------------------------------------- save/load
    def save(self, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into the directory ``path``;
        ``extra`` may record strings under the keys of ``EXTRA_FIELDS`` (a ``None`` value is
        left out: an unknown task is no task)."""
        unknown = sorted(set(extra or {}) - set(EXTRA_FIELDS))
        if unknown:
            raise ConfigError(
                f"a policy records only {EXTRA_FIELDS} beside its config, not {unknown}"
            )
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        given = {k: v for k, v in (extra or {}).items() if v is not None}
        meta = {"format": FORMAT, "kind": KIND, "policy": self.config.to_dict(), **given}
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        # On the host: a checkpoint saved from any device loads on the CPU.
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": FORMAT})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Policy:
        """Load a saved policy. Reads JSON and safetensors only: nothing in the files runs.

        Every config field is checked for type and range, head and encoder settings against
        what they accept, and the network's size (counted without allocating) before it is
        built; then every tensor against it (:func:`load_weights`). Any problem is one
        :class:`CheckpointError` naming the file and the field or tensor.
        """
        path = Path(path)
        cfg_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        for f in (cfg_file, weights_file):
            if not f.exists():
                raise CheckpointError(f"{f}: missing; {path} is not a protege policy directory")
        try:
            meta = json.loads(cfg_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{cfg_file}: corrupt JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or "policy" not in meta:
            raise CheckpointError(f"{cfg_file}: not a protege policy config")
        unknown = sorted(set(meta) - {"format", "kind", "policy", *EXTRA_FIELDS})
        if unknown:
            raise CheckpointError(f"{cfg_file}: unknown top-level fields {unknown}")
        if meta.get("kind", KIND) != KIND:
            raise CheckpointError(f"{cfg_file}: field 'kind' must be {KIND!r}")
        for name in ("task", "data"):
            value = meta.get(name, "")
            if not isinstance(value, str) or len(value) > 4096:
                raise CheckpointError(f"{cfg_file}: field {name!r} must be a string")
        step = meta.get("diverged_at_step", 0)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise CheckpointError(f"{cfg_file}: field 'diverged_at_step' must be an integer ≥ 0")
        config = PolicyConfig.from_dict(meta["policy"], str(cfg_file))
        check_size(lambda: cls(config), str(cfg_file))
        policy = cls(config)
        load_weights(policy, weights_file, "config")
        policy.eval()
        return policy


def load_weights(module: nn.Module, file: Path, described_by: str) -> None:
    """Load ``file`` (safetensors: nothing in it can run) into ``module``, strictly; any
    problem is one :class:`CheckpointError` naming the file. ``described_by`` names what the
    module was built from, for the mismatch message ("config", "the critic's description")."""
    state = read_tensors(module, file, described_by)
    module.load_state_dict(state, strict=True)
