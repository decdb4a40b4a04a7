"""Settings of adversarial imitation: ``protege gail`` and ``protege airl``.

(:mod:`protege.algos.adversarial`.) Standard library only: the commands' flags are these
fields, their docstrings the help. The PPO learner's own settings are
:class:`protege.configs.rl.PPOConfig`, with :data:`PPO_DEFAULTS` in place of some of its
defaults (:func:`ppo_config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protege.configs.checks import (
    MAX_COUNT,
    MAX_STEPS,
    check_float,
    check_int,
    check_sizes,
)
from protege.configs.rl import PPOConfig
from protege.errors import ConfigError

SWITCH = ("auto", "on", "off")

PPO_DEFAULTS: dict[str, Any] = {
    "rollout_steps": 1024,
    "n_envs": 4,
    "epochs": 5,
    "minibatch_size": 64,
}
"""GAIL's and AIRL's PPO settings where they differ from :class:`PPOConfig`'s (``protege
finetune``'s, unchanged): updates twice as often (at least 1,024 steps of whole episodes
over 4 envs, so long episodes overshoot less) with about five times as many gradient steps
per env step (5 epochs of minibatches of 64). The discriminator's reward moves under the
policy, and a policy that follows it faster needs fewer env steps: on CartPole development
seeds GAIL reached 90% of the expert in a third of the env steps of PPOConfig's defaults
(BENCHMARKS.md, "GAIL and AIRL against `imitation`")."""


def ppo_config(**given: Any) -> PPOConfig:
    """The PPO learner's settings for GAIL and AIRL: ``given``, then :data:`PPO_DEFAULTS`,
    then :class:`PPOConfig`'s defaults."""
    return PPOConfig(**{**PPO_DEFAULTS, **given})


@dataclass
class AdversarialConfig:
    """GAIL (Ho & Ermon 2016) and AIRL (Fu et al. 2018) on the PPO learner.

    A discriminator learns to tell the demonstrations' steps from the policy's; its output is
    the policy's reward. GAIL's discriminator is one MLP ``D(s, a)`` (``D(s, s')`` state-only)
    and the reward ``−log(1 − D)``; AIRL's logit is ``f − log π(a|s)`` with
    ``f = g(s[, a]) + γ h(s') − h(s)`` (reward ``g`` and shaping ``h``) and the reward ``f``
    (``g`` alone is the exported reward). The defaults below train on the built-in tasks
    without tuning."""

    steps: int = 200_000
    """Env steps the policy collects (every step labels the discriminator's generator side)."""
    state_only: bool = False
    """Learn from observations alone: the discriminator never sees actions (GAIL: D(s, s'),
    AIRL: g(s)), so demonstrations need no action labels; the policy then starts untrained
    (``bc_start`` needs labelled actions)."""
    disc_hidden_sizes: tuple[int, ...] = (64, 64)
    """The discriminator's hidden layers (AIRL: g's and h's each)."""
    disc_lr: float = 3e-4
    """The discriminator's Adam learning rate."""
    disc_updates: int = 4
    """Discriminator gradient steps per generator round (per PPO update)."""
    disc_batch_size: int = 256
    """Expert and generator samples per discriminator step (each)."""
    grad_penalty: float = 1.0
    """Weight of the gradient penalty ``E‖∇D‖²`` on interpolated inputs (0: off)."""
    spectral_norm: bool = False
    """Spectral normalization on the discriminator's layers (instead of, or with, the
    gradient penalty)."""
    label_smoothing: float = 0.1
    """Expert labels are ``1 − ε``, generator labels ``ε``."""
    replay_size: int = 20_000
    """Generator steps kept for the discriminator (the newest batch always among them): a
    replay of older policies that keeps it from forgetting them (0: the newest batch only)."""
    absorbing: str = "auto"
    """Terminations as absorbing states (Kostrikov et al. 2019): a terminated episode moves
    to one absorbing state and stays there for what its time limit had left; the
    discriminator learns that state's reward from how much of each side's occupancy it is
    (the expert's episodes end in it too), and the policy's returns bootstrap a termination
    with that reward forever instead of 0, so that coming to rest like the expert is not a
    loss under GAIL's positive reward. Time-limit truncations are not terminations. "on",
    "off", or "auto": on when some demonstration episode terminated (LunarLander's, which
    land), off when none did (CartPole's and Pendulum's run to the time limit)."""
    normalize_reward: bool = True
    """Divide the policy's rewards by their running standard deviation (not centred: the sign
    of a step's reward, and so what ending an episode early is worth, stays)."""
    policy_hidden_sizes: tuple[int, ...] = (64, 64)
    """The policy's hidden layers."""
    bc_start: str = "auto"
    """Start the policy from BC on the same demonstrations (``bc_steps``; no more labels),
    let the critic learn first (``value_warmup``) and add a decaying BC term to the policy's
    loss (``bc_weight``, ``bc_decay``). "on", "off" (an untrained policy, as in Ho & Ermon),
    or "auto": on when some demonstration episode terminated, like ``absorbing``. What an
    expert does to end its episodes (LunarLander's: come to rest) leads out of the game, so
    the discriminator rewards it only through the absorbing state, one input among many and
    learned slowly; the BC term teaches it from the demonstrations meanwhile (on LunarLander
    a BC start without it drifted within 50,000 env steps to hovering until the time limit).
    Where the episodes run to the time limit, BC may be far worse than GAIL's own start
    (Pendulum: −895 from 8 demonstrations) and the term holds the policy near it. Off with
    ``state_only`` (no actions to clone)."""
    bc_steps: int = 2000
    """Behavioral-cloning gradient steps (minibatches of 64) of the BC start; their seconds
    are counted in the run's."""
    value_warmup: int = 2
    """With the BC start: PPO updates at the start in which the policy does not move (the
    critic and the discriminator learn on its rollouts first, so that the BC policy is not
    pushed by the advantages of a critic that knows nothing)."""
    bc_weight: float = 1.0
    """With the BC start: the weight of a BC term ``−log π(a|s)`` on the demonstrations'
    labelled steps in the policy's PPO loss after the warm-up (0: none)."""
    bc_decay: float = 0.99
    """The BC term's weight is multiplied by this every PPO update (0.99: a third after
    about 110 updates)."""
    airl_entropy: float | None = None
    """AIRL: the weight ``c`` of ``−log π(a|s)`` in the policy's reward ``f − c·log π`` (1: Fu
    et al.'s, the discriminator's logit, an entropy bonus; 0: ``f`` alone). The discriminator
    always uses the full logit. None: 0 with the BC start, 1 without. From a BC start the
    bonus pays the policy for moving away from the demonstrations' actions: on LunarLander
    development seeds AIRL with it fell below 90% of the expert within 25,000–230,000 env
    steps, without it held the level (BENCHMARKS.md). GAIL ignores it."""
    store_episodes: bool = False
    """Also append every RL episode to ``OUT/store`` (durably, one fsync per episode: on short
    episodes that costs more wall time than the learning)."""
    eval_every: int = 10_000
    """Evaluate on rollouts (deterministic actions, true reward) every this many env steps."""
    eval_episodes: int = 10
    """Episodes per evaluation (the same seeded ones every time)."""
    checkpoint_every: int = 1
    """Write the resumable checkpoint every this many PPO updates."""

    def entropy_weight(self, bc_start: bool) -> float:
        """AIRL's ``c`` in effect: ``airl_entropy``, else 0 with the BC start and 1 without."""
        if self.airl_entropy is not None:
            return self.airl_entropy
        return 0.0 if bc_start else 1.0

    def __post_init__(self) -> None:
        own = "AdversarialConfig"
        check_int(own, "steps", self.steps, 1, MAX_STEPS)
        check_sizes(own, "disc_hidden_sizes", self.disc_hidden_sizes)
        check_float(own, "disc_lr", self.disc_lr, 0.0, lo_open=True)
        check_int(own, "disc_updates", self.disc_updates, 0, 10_000)
        check_int(own, "disc_batch_size", self.disc_batch_size, 1, 2**20)
        check_float(own, "grad_penalty", self.grad_penalty, 0.0)
        check_float(own, "label_smoothing", self.label_smoothing, 0.0, 0.5)
        check_int(own, "replay_size", self.replay_size, 0, MAX_STEPS)
        for name in ("absorbing", "bc_start"):
            if getattr(self, name) not in SWITCH:
                raise ConfigError(
                    f"{own}.{name} must be one of {', '.join(SWITCH)}, not {getattr(self, name)!r}"
                )
        check_sizes(own, "policy_hidden_sizes", self.policy_hidden_sizes)
        check_int(own, "bc_steps", self.bc_steps, 0, MAX_STEPS)
        check_int(own, "value_warmup", self.value_warmup, 0, MAX_COUNT)
        check_float(own, "bc_weight", self.bc_weight, 0.0)
        check_float(own, "bc_decay", self.bc_decay, 0.0, 1.0)
        if self.airl_entropy is not None:
            check_float(own, "airl_entropy", self.airl_entropy, 0.0)
        check_int(own, "eval_every", self.eval_every, 1, MAX_STEPS)
        check_int(own, "eval_episodes", self.eval_episodes, 1, MAX_COUNT)
        check_int(own, "checkpoint_every", self.checkpoint_every, 1, MAX_COUNT)
