"""The horizon experiment's settings (:class:`HorizonConfig`) and names: standard library only,
so ``protege experiment horizon --help`` reads them without importing numpy or torch.

The experiment itself: :mod:`protege.experiments.horizon`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protege.configs.checks import MAX_COUNT, MAX_SEED, check_float, check_int
from protege.errors import ConfigError

ARMS: tuple[str, ...] = (
    "bc",
    "dagger",
    "dagger-exp",
    "dagger-linear",
    "dart",
    "hg-dagger",
    "smile",
    "aggrevate",
)
"""Every arm the experiment knows, in reporting order."""
DEFAULT_ARMS: tuple[str, ...] = ARMS[:6]
"""The arms a sweep runs unless told (``--arms``): all but SMILe and AggreVaTe, whose
training (per-round policies; cost-to-go completions over replayed states) takes several
times as long as the six others together."""

DAGGER_BETA = {"dagger": "indicator", "dagger-exp": "exponential:0.5", "dagger-linear": "linear"}
"""The β schedule of each DAgger arm (``linear`` gets its ramp from the config)."""
ARM_CODE = {name: i for i, name in enumerate(ARMS)}
"""Each arm's number in the seeds it derives (``derive_seed(seed, stream, ARM_CODE[arm], ...)``)."""
STREAM_TRAIN, STREAM_MC, STREAM_BOOT = 1, 3, 4
"""Seed streams: training runs, Monte Carlo rollouts, bootstrap resamples."""


@dataclass(frozen=True)
class HorizonConfig:
    """Settings of one horizon sweep (every field has the documented default).

    The defaults are the headline setting of the DriftCorridor spec: straight road, W = 5,
    ε = 2.5e-4 (so εT ≤ 0.25), K = 20 demos, 5 DAgger rounds.
    """

    horizons: tuple[int, ...] = (50, 100, 200, 500, 1000)
    """The horizons T swept (at least two, for a slope)."""
    epsilon: float = 2.5e-4
    """Learner slip rate at training-time rollouts and at evaluation."""
    epsilon_dart: float = 0.05
    """DART's tremble: the noisy expert executes a uniformly random action this often."""
    n_demos: int = 20
    """K: expert demonstrations (episodes of length T) for BC, DART and round 0."""
    dagger_rounds: int = 5
    """Interactive rounds of DAgger, DART and HG-DAgger after round 0."""
    episodes_per_round: int = 4
    """Fewest episodes of an interactive round (see ``slips_per_round``)."""
    slips_per_round: float = 5.0
    """Each interactive round runs enough episodes for this many expected learner slips."""
    linear_rampdown: int | None = None
    """R of the linear β schedule; ``None`` means ``dagger_rounds`` (last round β = 0)."""
    hg_threshold: int = 1
    """HG-DAgger's supervisor takes over at ``|d| ≥ hg_threshold`` and returns at d = 0."""
    smile_alpha: float = 0.1
    """SMILe's α (the paper's experiments use 0.1)."""
    seeds: int = 2
    """Data replicates: each reruns every arm's training with other draws."""
    mc_episodes: int = 10_000
    """Monte Carlo episodes at the shortest MC horizon; a longer T runs ⌈that · T_min / T⌉,
    the same steps per cell; 0 skips the Monte Carlo."""
    mc_horizons: tuple[int, ...] | None = None
    """Horizons the Monte Carlo runs at (a subset of ``horizons``; None: all of them)."""
    mc_envs: int = 1000
    """Sub-envs of the Monte Carlo's vector env."""
    n_envs: int = 32
    """Episodes collected in parallel while training (``DAggerConfig.n_envs``)."""
    bootstrap: int = 2000
    """Bootstrap resamples (over episodes) of each Monte Carlo slope."""
    ci: float = 0.95
    """Coverage of the slopes' confidence intervals."""
    seed: int = 0
    """Seeds every run (with the arm, T and replicate)."""
    width: int = 5
    """W: the corridor's half-width (:data:`protege.tasks.lane_dynamics.WIDTH`)."""
    p_turn: float = 0.0
    """Winding road: the centreline moves ±1 with this probability per step (0: straight)."""
    cliff: bool = False
    """Make ``|d| ≥ cliff_offset`` absorbing (the cliff variant)."""
    cliff_offset: int | None = None
    """Where the cliff starts (None: the corridor's half-width W)."""
    init_offset_spread: int = 0
    """Draw the initial offset uniformly from −s..s (0: start on the centreline)."""
    saturated_epsilon: float | None = 1e-2
    """Rerun the sweep at this ε to show saturation; ``None`` skips it."""
    saturated_mc: bool = True
    """Run the Monte Carlo cross-check in the saturated sweep too."""
    arms: tuple[str, ...] = DEFAULT_ARMS
    """The arms to run (any of :data:`ARMS`; ``smile`` and ``aggrevate`` are opt-in)."""
    scratch_dir: str | None = None
    """Where the runs' stores go while they train (deleted after each run); default /dev/shm
    when it is writable, else the system's temporary directory."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", tuple(int(t) for t in self.horizons))
        object.__setattr__(self, "arms", tuple(self.arms))
        if self.mc_horizons is not None:
            object.__setattr__(self, "mc_horizons", tuple(int(t) for t in self.mc_horizons))
        self._validate()

    def _validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"HorizonConfig: {msg}")

        own = "HorizonConfig"
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        check_float(own, "slips_per_round", self.slips_per_round, 0.0, 1e6, lo_open=True)
        for name in ("n_demos", "seeds", "mc_envs", "n_envs", "episodes_per_round", "bootstrap"):
            check_int(own, name, getattr(self, name), 1, MAX_COUNT)
        check_int(own, "mc_episodes", self.mc_episodes, 0, MAX_COUNT)
        check_int(own, "dagger_rounds", self.dagger_rounds, 0, 10**4)
        if any(t > MAX_COUNT for t in self.horizons):
            raise bad(f"horizons must be at most {MAX_COUNT}, got {self.horizons}")
        if len(self.horizons) < 2 or any(t < 1 for t in self.horizons):
            raise bad(f"horizons needs ≥ 2 positive values, got {self.horizons}")
        if len(set(self.horizons)) != len(self.horizons):
            raise bad(f"horizons must be distinct, got {self.horizons}")
        for name in ("epsilon", "epsilon_dart", "p_turn", "smile_alpha"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise bad(f"{name} must be in [0, 1], got {v}")
        if self.epsilon <= 0.0:
            raise bad("epsilon must be > 0 (with ε = 0 every arm makes no mistake)")
        if self.saturated_epsilon is not None and not 0.0 < self.saturated_epsilon <= 1.0:
            raise bad(f"saturated_epsilon must be in (0, 1], got {self.saturated_epsilon}")
        for name in ("n_demos", "seeds", "width", "mc_envs", "n_envs", "episodes_per_round"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("dagger_rounds", "mc_episodes"):
            if getattr(self, name) < 0:
                raise bad(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.slips_per_round <= 0:
            raise bad(f"slips_per_round must be > 0, got {self.slips_per_round}")
        if self.bootstrap < 1 or not 0.0 < self.ci < 1.0:
            raise bad("bootstrap must be ≥ 1 and ci in (0, 1)")
        if self.linear_rampdown is not None and self.linear_rampdown < 1:
            raise bad(f"linear_rampdown must be ≥ 1, got {self.linear_rampdown}")
        if not 1 <= self.hg_threshold <= self.width:
            raise bad(f"hg_threshold must be in 1..{self.width}, got {self.hg_threshold}")
        if self.cliff_offset is not None and not 1 <= self.cliff_offset <= self.width:
            raise bad(f"cliff_offset must be in 1..{self.width}, got {self.cliff_offset}")
        if not 0 <= self.init_offset_spread <= self.width:
            raise bad(f"init_offset_spread must be in 0..{self.width}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms or len(set(self.arms)) != len(self.arms):
            raise bad(f"arms must be distinct names from {ARMS}, got {self.arms}")
        mc = self.mc_horizons
        if mc is not None and (
            len(mc) < 2 or len(set(mc)) != len(mc) or set(mc) - set(self.horizons)
        ):
            raise bad(f"mc_horizons must be ≥ 2 distinct values of horizons, got {mc}")

    def episodes_for(self, horizon: int) -> int:
        """Episodes per interactive round at horizon T (about ``slips_per_round`` slips)."""
        slips = math.ceil(self.slips_per_round / (self.epsilon * horizon))
        return max(self.episodes_per_round, slips)

    def rollins_for(self, horizon: int) -> int:
        """AggreVaTe's roll-ins per round at horizon T: :meth:`episodes_for` rounded up to a
        multiple of ``n_envs`` (its completions start in a batch of their own)."""
        return math.ceil(self.episodes_for(horizon) / self.n_envs) * self.n_envs

    def beta(self, arm: str) -> str:
        """The β schedule (``DAggerConfig.beta``) of a DAgger arm."""
        spec = DAGGER_BETA[arm]
        if spec == "linear":
            return f"linear:{self.linear_rampdown or max(self.dagger_rounds, 1)}"
        return spec

    @property
    def mc_at(self) -> tuple[int, ...]:
        """The horizons the Monte Carlo runs at (none when it is off)."""
        if self.mc_episodes == 0:
            return ()
        return self.mc_horizons if self.mc_horizons is not None else self.horizons

    def mc_episodes_for(self, horizon: int) -> int:
        """Monte Carlo episodes at horizon T: the same number of steps at every MC horizon."""
        return max(1, math.ceil(self.mc_episodes * min(self.mc_at) / horizon))
