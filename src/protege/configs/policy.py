"""PolicyConfig: one dataclass whose field names are the CLI flags and config.json keys."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from protege.configs.checks import (
    MAX_CHUNK,
    MAX_LAYERS,
    MAX_PARAMETERS,
    MAX_PARTS,
    MAX_SIZE,
    MAX_WIDTH,
    PART_NAME,
    check_float,
    check_int,
    check_sizes,
    require_bool,
    require_int,
    require_int_list,
    require_number,
    require_settings,
    require_str,
)
from protege.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import gymnasium as gym


@dataclass
class PolicyConfig:
    """Everything needed to rebuild a policy's network (not its weights).

    Example:
        >>> cfg = PolicyConfig.for_spaces(env.observation_space, env.action_space, head="gaussian")
    """

    obs_shape: tuple[int, ...]
    """The shape of one observation; ``()`` for observations of several parts (``obs_parts``)."""
    act_dim: int
    """Action dimension A (1 for a Discrete space)."""
    discrete: bool = False
    """Discrete actions (then ``n_actions`` of them); False: a Box."""
    n_actions: int = 0
    """Number of discrete actions (Discrete spaces only)."""
    action_low: list[float] | None = None
    """Box lower bounds, ``act_dim`` numbers (None for Discrete)."""
    action_high: list[float] | None = None
    """Box bounds; sampled actions are clipped to them."""
    encoder: str = "mlp"
    """A registered encoder: "mlp", or "cnn" for image observations."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the encoder's fully connected layers."""
    head: str = "mse"
    """A registered head: "mse", "categorical", "gaussian", "mog", "binned", "diffusion",
    "flow" or a plugin's."""
    chunk_size: int = 1
    """Actions predicted per call (H)."""
    n_action_steps: int = 1
    """Actions executed from a chunk before re-planning (ignored with temporal ensembling)."""
    temporal_ensemble_coeff: float | None = None
    """ACT's exponential weight; None executes chunks as a queue."""
    normalize_obs: bool = True
    """Z-score observations with the training data's statistics (off for images)."""
    action_norm: str = "std"
    """How continuous actions are scaled for the head: "std" (z-score) or "minmax" (to [-1, 1],
    what diffusion and flow heads prefer)."""
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    """The head's own constructor arguments (``{"n_components": 5}`` for "mog")."""
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    """The encoder's own constructor arguments (``{"channels": (16, 32, 32)}`` for "cnn")."""
    n_obs_steps: int = 1
    """Observations of history the encoder sees (frame stacking): the current one and the
    K−1 before it, oldest first. Training stacks stored single frames at sample time
    (repeating an episode's first frame before its start); at inference the policy keeps the
    last K observations of every sub-env and ``episodes_started(mask)`` restarts them."""
    random_shift: int = 0
    """Image encoders: pad of DrQ's random-shift augmentation, applied in training mode only
    (0: off; 4 is DrQ's choice for 84×84 frames). With observation parts, every camera part
    is shifted on its own."""
    obs_parts: dict[str, tuple[int, ...]] | None = None
    """Observations of several named parts (a ``Dict`` observation space): each part's
    shape, in the space's order; a 3-D part is a camera image ``(H, W, C)``. The ``parts``
    encoder then encodes each part on its own and concatenates the features; ``obs_shape``
    is ``()``. None: one observation array of ``obs_shape``."""

    def __post_init__(self) -> None:
        self.obs_shape = tuple(int(s) for s in self.obs_shape)
        if self.obs_parts is not None:
            self.obs_parts = {str(k): tuple(int(s) for s in v) for k, v in self.obs_parts.items()}
        self.hidden_sizes = tuple(int(s) for s in self.hidden_sizes)
        own = "PolicyConfig"  # first the flags' ranges, naming the flag; then a checkpoint's
        check_sizes(own, "hidden_sizes", self.hidden_sizes)
        check_int(own, "chunk_size", self.chunk_size, 1, MAX_SIZE)
        check_int(own, "n_obs_steps", self.n_obs_steps, 1, MAX_SIZE)
        check_int(own, "random_shift", self.random_shift, 0, MAX_SIZE)
        if self.temporal_ensemble_coeff is not None:
            check_float(own, "temporal_ensemble_coeff", self.temporal_ensemble_coeff, -1e3, 1e3)
        if len(self.obs_shape) > 8 or not all(1 <= s <= MAX_WIDTH for s in self.obs_shape):
            raise ConfigError(
                f"obs_shape must have at most 8 dimensions in [1, {MAX_WIDTH}], "
                f"got {self.obs_shape}"
            )
        if (self.obs_parts is None) == (self.obs_shape == ()):
            raise ConfigError(
                "a policy config has either obs_shape or obs_parts (then obs_shape ())"
            )
        if (self.obs_parts is not None) != (self.encoder == "parts"):
            raise ConfigError(
                "the parts encoder is for observation parts (obs_parts), and they need it; "
                f"got encoder {self.encoder!r} with obs_parts {self.obs_parts}"
            )
        for name, shape in (self.obs_parts or {}).items():
            if not PART_NAME.fullmatch(name):
                raise ConfigError(f"obs_parts: part name {name!r} is not a valid part name")
            if not 1 <= len(shape) <= 8 or not all(1 <= s <= MAX_WIDTH for s in shape):
                raise ConfigError(
                    f"obs_parts[{name!r}] must have 1 to 8 dimensions in [1, {MAX_WIDTH}], "
                    f"got {shape}"
                )
        if len(self.hidden_sizes) > MAX_LAYERS or not all(
            1 <= s <= MAX_WIDTH for s in self.hidden_sizes
        ):
            raise ConfigError(
                f"hidden_sizes must be at most {MAX_LAYERS} widths in [1, {MAX_WIDTH}], "
                f"got {self.hidden_sizes}"
            )
        for name in ("act_dim", "chunk_size", "n_obs_steps"):
            if not 1 <= getattr(self, name) <= MAX_CHUNK:
                raise ConfigError(f"{name} must be in [1, {MAX_CHUNK}], got {getattr(self, name)}")
        if self.obs_parts is not None and not 1 <= len(self.obs_parts) <= MAX_PARTS:
            raise ConfigError(f"obs_parts must have 1 to {MAX_PARTS} parts")
        if self.obs_size * self.n_obs_steps > MAX_PARAMETERS:
            raise ConfigError(
                f"obs_shape {self.obs_shape} × n_obs_steps {self.n_obs_steps} "
                f"exceed {MAX_PARAMETERS} values"
            )
        if not 0 <= self.n_actions <= MAX_WIDTH:
            raise ConfigError(f"n_actions must be in [0, {MAX_WIDTH}], got {self.n_actions}")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ConfigError(
                f"n_action_steps must be in [1, chunk_size={self.chunk_size}], "
                f"got {self.n_action_steps}"
            )
        if self.action_norm not in ("std", "minmax"):
            raise ConfigError(f"action_norm must be 'std' or 'minmax', got {self.action_norm!r}")
        if self.discrete and self.n_actions < 2:
            raise ConfigError("a discrete policy needs n_actions ≥ 2")
        if self.n_obs_steps < 1:
            raise ConfigError(f"n_obs_steps must be ≥ 1, got {self.n_obs_steps}")
        if not 0 <= self.random_shift <= MAX_CHUNK:
            raise ConfigError(f"random_shift must be in [0, {MAX_CHUNK}], got {self.random_shift}")

    @property
    def obs_size(self) -> int:
        """Numbers in one observation (all parts together)."""
        if self.obs_parts is None:
            return math.prod(self.obs_shape)
        return sum(math.prod(shape) for shape in self.obs_parts.values())

    @classmethod
    def for_spaces(
        cls, observation_space: gym.Space, action_space: gym.Space, **overrides: Any
    ) -> PolicyConfig:
        """A config fitted to the env's spaces; the head defaults to what the action space needs."""
        import gymnasium as gym  # only here: the rest of this module is standard library
        import numpy as np

        kw: dict[str, Any]
        if isinstance(observation_space, gym.spaces.Dict):
            from protege.data.obs import part_spaces

            parts = part_spaces(observation_space)
            for name, box in parts.items():
                if len(box.shape) == 3 and box.dtype != np.uint8:
                    raise ConfigError(
                        f"observation part {name!r}: a 3-D part is a camera image and must be "
                        f"uint8 (H, W, C), not {box.dtype}; flatten other 3-D data"
                    )
            kw = {"obs_shape": (), "obs_parts": {k: tuple(b.shape) for k, b in parts.items()}}
            kw["encoder"] = "parts"
        elif not isinstance(observation_space, gym.spaces.Box):
            raise ConfigError(
                f"protege policies take Box observations or a Dict of Box parts, "
                f"not {observation_space}"
            )
        else:
            kw = {"obs_shape": tuple(observation_space.shape)}
        if isinstance(action_space, gym.spaces.Discrete):
            kw.update(act_dim=1, discrete=True, n_actions=int(action_space.n), head="categorical")
        elif isinstance(action_space, gym.spaces.Box):
            kw.update(
                act_dim=math.prod(action_space.shape),
                action_low=action_space.low.astype(float).ravel().tolist(),
                action_high=action_space.high.astype(float).ravel().tolist(),
            )
        else:
            raise ConfigError(f"protege policies take Box or Discrete actions, not {action_space}")
        if len(kw["obs_shape"]) == 3:
            kw.update(encoder="cnn", normalize_obs=False)
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["obs_shape"] = list(self.obs_shape)
        d["hidden_sizes"] = list(self.hidden_sizes)
        if self.obs_parts is None:
            del d["obs_parts"]  # configs of one observation array read as before
        else:
            d["obs_parts"] = {k: list(v) for k, v in self.obs_parts.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> PolicyConfig:
        """The config a checkpoint's ``config.json`` describes, every field checked for type
        and range first (:func:`check_fields`); any problem is a :class:`CheckpointError`
        naming ``where`` and the field."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: the policy config must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(f"{where}: unknown fields {unknown}")
        missing = sorted({"obs_shape", "act_dim"} - set(d))
        if missing:
            raise CheckpointError(f"{where}: missing fields {missing}")
        try:
            check_fields(d)
            return cls(**d)
        except (TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"{where}: invalid policy config ({exc})") from None


def check_fields(d: dict[str, Any]) -> None:
    """Type and range of every field present in a policy config read from JSON; raises
    :class:`ConfigError` naming the field. Ranges shared with fresh configs are
    ``PolicyConfig.__post_init__``'s."""
    require_int_list(d["obs_shape"], "obs_shape", 1, MAX_WIDTH, max_len=8)
    parts = d.get("obs_parts")
    if parts is not None:
        if not isinstance(parts, dict) or not 1 <= len(parts) <= MAX_PARTS:
            raise ConfigError(f"field 'obs_parts' must be an object of 1 to {MAX_PARTS} parts")
        for name, shape in parts.items():
            require_str(name, "obs_parts key")
            require_int_list(shape, f"obs_parts[{name!r}]", 1, MAX_WIDTH, min_len=1, max_len=8)
    act_dim = require_int(d["act_dim"], "act_dim", 1, MAX_CHUNK)
    for name in ("discrete", "normalize_obs"):
        if name in d:
            require_bool(d[name], name)
    if "n_actions" in d:
        require_int(d["n_actions"], "n_actions", 0, MAX_WIDTH)
    bounds = {}
    for name in ("action_low", "action_high"):
        value = d.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or len(value) != act_dim:
            raise ConfigError(f"field {name!r} must be a list of act_dim={act_dim} numbers")
        bounds[name] = [
            require_number(v, f"{name}[{i}]", finite=False) for i, v in enumerate(value)
        ]
    if len(bounds) == 2 and any(
        lo > hi for lo, hi in zip(bounds["action_low"], bounds["action_high"], strict=True)
    ):
        raise ConfigError("field 'action_low' must not exceed 'action_high'")
    for name in ("encoder", "head", "action_norm"):
        if name in d:
            require_str(d[name], name)
    if "hidden_sizes" in d:
        require_int_list(d["hidden_sizes"], "hidden_sizes", 1, MAX_WIDTH)
    for name in ("chunk_size", "n_action_steps", "n_obs_steps"):
        if name in d:
            require_int(d[name], name, 1, MAX_CHUNK)
    if "random_shift" in d:
        require_int(d["random_shift"], "random_shift", 0, MAX_CHUNK)
    if d.get("temporal_ensemble_coeff") is not None:
        require_number(d["temporal_ensemble_coeff"], "temporal_ensemble_coeff")
    for name in ("head_kwargs", "encoder_kwargs"):
        if name in d:
            require_settings(d[name], name)
