"""OfflineConfig: the offline dial (:func:`protege.algos.offline.fit`), and the mixed-quality
collection spec (``protege collect --mix``). Standard library only.

The dial, from most to least trust in the data: ``bc`` clones every labeled step;
``filtered-bc`` clones only the best episodes by return; ``awr`` weights every step by
``exp(A/β)`` with the advantage ``A`` from a value function fit on the data's Monte Carlo
returns (Peng et al. 2019); ``iql`` learns ``V`` by expectile regression and twin ``Q`` by TD
with a target network, then weights by the same ``exp(A/β)`` with ``A = Q − V`` (Kostrikov,
Nair & Levine 2021). The weighted methods extract the policy by BC with per-step weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protege.configs.checks import MAX_STEPS, check_float, check_int, check_sizes
from protege.errors import ConfigError

ALGOS = ("bc", "filtered-bc", "awr", "iql")
"""The positions of the dial, from full trust in the data to least."""
DEFAULT_BETA = {"awr": 1.0 / 3.0, "iql": 1.0 / 3.0}
"""β (temperature of ``exp(A/β)``, the advantage in units of its standard deviation) when
``OfflineConfig.beta`` is None: 1/3 for both (IQL: Kostrikov et al.'s inverse temperature 3
for locomotion). Peng et al.'s β = 1 for AWR is in reward units; in units of the advantage's
spread it is too soft for data that is mostly poor: on the dial's Pendulum store (10% expert
episodes) it gave the expert's steps 48% of the total weight, 1/3 gives them 91%
(BENCHMARKS.md, the offline dial)."""
DEFAULT_DISCOUNT = {"awr": 0.999, "iql": 0.99}
"""γ when ``OfflineConfig.discount`` is None. AWR: 0.999. Its value network is fit on
TD(λ) returns (λ = 0.95 keeps the targets' variance down whatever γ is), so γ only sets how
far ahead ``V`` looks, and on tasks whose decisive reward comes at the end of long episodes
(LunarLander: +100 for landing, −100 for crashing, 100–300 steps after the start) 0.99
discounts the outcome of an early action to a tenth: on the dial's LunarLander dev stores
(seeds 100–102) 0.999 gave the expert's steps 76–83% of the total weight instead of 68–75%
and scores of 91–99% instead of 86–92% (BENCHMARKS.md, the offline dial). IQL: 0.99
(Kostrikov et al.); its TD targets propagate value one step per target update, and a longer
horizon needs more of them."""
DEFAULT_MAX_WEIGHT = {"awr": 20.0, "iql": 100.0}
"""The clip on ``exp(A/β)`` when ``OfflineConfig.max_weight`` is None: 20 (Peng et al.),
100 (Kostrikov et al.)."""


@dataclass
class OfflineConfig:
    """How the offline dial's methods use rewards; the same names are ``protege train``
    flags. The policy itself trains with :class:`~protege.configs.bc.BCConfig`'s settings."""

    algo: str = "bc"
    """bc (clone every labeled step), filtered-bc (clone the best episodes), awr or iql
    (clone every step weighted by exp(A/β))."""
    top_fraction: float | None = None
    """filtered-bc: keep this fraction (0, 1] of the episodes, those with the highest
    returns (default 0.1 unless --min-return is given)."""
    min_return: float | None = None
    """filtered-bc: keep the episodes whose return is at least this."""
    beta: float | None = None
    """awr, iql: temperature β of the weights exp(A/β), A in units of its standard deviation
    over the data (default 1/3)."""
    max_weight: float | None = None
    """awr, iql: clip the weights at this (default: 20 for awr, 100 for iql)."""
    discount: float | None = None
    """awr, iql: discount γ of returns and TD targets (default: 0.999 for awr, 0.99 for
    iql)."""
    tau: float = 0.7
    """iql: expectile τ of the value regression (0.5 is the mean; → 1 the max over the
    data's actions)."""
    critic_steps: int = 20000
    """awr, iql: gradient steps of the value (awr) or the V and twin Q networks (iql)."""
    critic_lr: float = 3e-4
    """awr, iql: Adam learning rate of the value and Q networks."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """awr, iql: hidden layer sizes of the value and Q networks."""
    critic_batch_size: int = 256
    """awr, iql: batch size of the value and Q updates."""
    target_update: float = 0.005
    """iql: Polyak rate of the target Q networks."""

    def __post_init__(self) -> None:
        own = "OfflineConfig"
        if self.algo not in ALGOS:
            raise ConfigError(
                f"{own}.algo (--algo) must be one of {', '.join(ALGOS)}, got {self.algo!r}"
            )
        if self.top_fraction is not None:
            check_float(own, "top_fraction", self.top_fraction, 0.0, 1.0, lo_open=True)
        if self.min_return is not None:
            check_float(own, "min_return", self.min_return)
        if self.top_fraction is not None and self.min_return is not None:
            raise ConfigError(f"{own}: give top_fraction or min_return, not both")
        if self.beta is not None:
            check_float(own, "beta", self.beta, 0.0, lo_open=True)
        if self.max_weight is not None:
            check_float(own, "max_weight", self.max_weight, 0.0, lo_open=True)
        if self.discount is not None:
            check_float(own, "discount", self.discount, 0.0, 1.0)
        check_float(own, "tau", self.tau, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int(own, "critic_steps", self.critic_steps, 1, MAX_STEPS)
        check_float(own, "critic_lr", self.critic_lr, 0.0, lo_open=True)
        check_sizes(own, "critic_hidden", self.critic_hidden, empty=False)
        check_int(own, "critic_batch_size", self.critic_batch_size, 1, 2**20)
        check_float(own, "target_update", self.target_update, 0.0, 1.0, lo_open=True)

    @property
    def uses_rewards(self) -> bool:
        """True for the methods that read the store's rewards (all but ``bc``)."""
        return self.algo != "bc"

    @property
    def weighted(self) -> bool:
        """True for the advantage-weighted methods (awr, iql)."""
        return self.algo in ("awr", "iql")

    @property
    def temperature(self) -> float:
        """β in effect (the given one, else the method's default)."""
        return self.beta if self.beta is not None else DEFAULT_BETA.get(self.algo, 1.0)

    @property
    def gamma(self) -> float:
        """γ in effect (the given discount, else the method's default)."""
        return self.discount if self.discount is not None else DEFAULT_DISCOUNT.get(self.algo, 0.99)

    @property
    def weight_clip(self) -> float:
        """The weight clip in effect (the given one, else the method's default)."""
        if self.max_weight is not None:
            return self.max_weight
        return DEFAULT_MAX_WEIGHT.get(self.algo, 20.0)


@dataclass(frozen=True)
class MixSource:
    """One source of a mixed-quality collection: the expert taking a uniformly random
    action with probability ``epsilon`` at each step (0: the expert; 1: a random policy)."""

    name: str
    epsilon: float
    fraction: float


def parse_mix(spec: str) -> list[MixSource]:
    """``"expert:0.1,eps0.3:0.3,random:0.6"`` → sources with their fractions of the episodes.

    A source is ``expert`` (ε = 0), ``random`` (ε = 1) or ``epsX`` (ε = X in [0, 1]); each
    fraction is > 0 and they sum to 1 (within 1e-6). Raises ConfigError naming the part."""
    sources: list[MixSource] = []
    for part in spec.split(","):
        name, sep, frac_text = part.strip().partition(":")
        if not sep:
            raise ConfigError(f"--mix {spec!r}: {part!r} is not SOURCE:FRACTION")
        if name == "expert":
            eps = 0.0
        elif name == "random":
            eps = 1.0
        elif name.startswith("eps"):
            eps = _number(name[3:], spec, part)
            if not 0.0 <= eps <= 1.0:
                raise ConfigError(f"--mix {spec!r}: {name}: ε must be in [0, 1]")
        else:
            raise ConfigError(
                f"--mix {spec!r}: unknown source {name!r} (expert, random or epsX, e.g. eps0.3)"
            )
        frac = _number(frac_text, spec, part)
        if not 0.0 < frac <= 1.0:
            raise ConfigError(f"--mix {spec!r}: {part!r}: the fraction must be in (0, 1]")
        if any(s.name == name for s in sources):
            raise ConfigError(f"--mix {spec!r}: {name!r} appears twice")
        sources.append(MixSource(name, eps, frac))
    total = sum(s.fraction for s in sources)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"--mix {spec!r}: the fractions sum to {total:g}, not 1")
    return sources


def mix_counts(sources: list[MixSource], episodes: int) -> list[int]:
    """Episodes per source: ``fraction × episodes`` rounded by largest remainder (the counts
    sum to ``episodes``)."""
    raw = [s.fraction * episodes for s in sources]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])
    for i in order[: episodes - sum(counts)]:
        counts[i] += 1
    return counts


def _number(text: str, spec: str, part: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"--mix {spec!r}: {part!r}: {text!r} is not a finite number")
    return value
