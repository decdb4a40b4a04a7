"""Settings of reinforcement learning from a policy: the PPO learner and ``protege finetune``.

(:mod:`protege.algos.ppo`, :mod:`protege.algos.finetune`.) Standard library only: the
command's flags are these fields, their docstrings the help.
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.configs.checks import (
    MAX_COUNT,
    MAX_SEED,
    MAX_STEPS,
    check_float,
    check_int,
    check_sizes,
)


@dataclass
class PPOConfig:
    """The PPO learner (:class:`protege.algos.ppo.PPO`): clipped surrogate, GAE, a separate
    critic with its own optimizer. Each update collects at least ``rollout_steps`` steps of
    whole episodes through protege's rollout loop, then runs ``epochs`` passes over them."""

    rollout_steps: int = 2048
    """Steps collected (whole episodes) before each update."""
    n_envs: int = 8
    """Sub-envs of the vector env the learner collects on."""
    epochs: int = 4
    """Passes over each update's steps."""
    minibatch_size: int = 256
    lr: float = 3e-4
    """The policy's Adam learning rate."""
    critic_lr: float = 1e-3
    """The critic's Adam learning rate."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    """PPO's ratio clip ε."""
    max_grad_norm: float = 0.5
    critic_hidden_sizes: tuple[int, ...] = (64, 64)
    """The critic MLP's hidden layers (tanh)."""
    renormalize_obs: bool = True
    """At the first update, re-express the policy's observation normalization in the units
    of its own rollouts, its function unchanged (the first layer absorbs the change): a policy
    normalized on a few demonstrations otherwise sees explored states as huge inputs."""
    seed: int = 0

    def __post_init__(self) -> None:
        own = "PPOConfig"
        check_int(own, "rollout_steps", self.rollout_steps, 1, MAX_STEPS)
        check_int(own, "n_envs", self.n_envs, 1, 1024)
        check_int(own, "epochs", self.epochs, 1, 1000)
        check_int(own, "minibatch_size", self.minibatch_size, 1, 2**20)
        check_float(own, "lr", self.lr, 0.0)
        check_float(own, "critic_lr", self.critic_lr, 0.0)
        check_float(own, "gamma", self.gamma, 0.0, 1.0)
        check_float(own, "gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_float(own, "clip", self.clip, 0.0, 10.0, lo_open=True)
        check_float(own, "max_grad_norm", self.max_grad_norm, 0.0, lo_open=True)
        check_sizes(own, "critic_hidden_sizes", self.critic_hidden_sizes)
        check_int(own, "seed", self.seed, 0, MAX_SEED)


@dataclass
class SACConfig:
    """Soft actor-critic for a categorical or Gaussian policy (:class:`protege.algos.sac.SAC`),
    off-policy, with the demonstrations in its replay. Each update collects at least
    ``rollout_steps`` steps of whole episodes (one per sub-env), appends them to the replay as
    ``nstep``-step transitions, then takes ``utd`` gradient steps per collected step on
    minibatches drawn ``demo_fraction`` from the demonstrations and the rest from the replay.
    The actor is regularized by ``FinetuneConfig.kl`` times KL(π ‖ π_start), not by an entropy
    bonus."""

    rollout_steps: int = 1
    """Steps collected (whole episodes) before each update (1: one episode per sub-env)."""
    n_envs: int = 1
    """Sub-envs the learner collects on."""
    utd: float = 1.0
    """Gradient steps per collected env step (the update-to-data ratio)."""
    batch_size: int = 256
    demo_fraction: float = 0.5
    """Share of each minibatch drawn from the demonstrations (--bc-data; 0 without them)."""
    nstep: int = 3
    """Rewards summed before bootstrapping from the target critics."""
    gamma: float = 0.99
    lr: float = 3e-4
    """The policy's Adam learning rate."""
    critic_lr: float = 3e-4
    """The twin Q networks' Adam learning rate."""
    tau: float = 0.005
    """Polyak rate of the target Q networks."""
    critic_hidden_sizes: tuple[int, ...] = (128, 128)
    """Each Q network's hidden layers (ReLU); one output per action."""
    reward_scale: float = 0.1
    """Rewards are multiplied by this for the critics (the KL weight is in those units)."""
    buffer_size: int = 200_000
    """Replay capacity in steps (the oldest are dropped first)."""
    max_grad_norm: float = 10.0
    renormalize_obs: bool = True
    """At the first update, re-express the policy's observation normalization in the units
    of its own rollouts, its function unchanged (as PPOConfig.renormalize_obs)."""
    seed: int = 0

    def __post_init__(self) -> None:
        own = "SACConfig"
        check_int(own, "rollout_steps", self.rollout_steps, 1, MAX_STEPS)
        check_int(own, "n_envs", self.n_envs, 1, 1024)
        check_float(own, "utd", self.utd, 0.0, 1000.0, lo_open=True)
        check_int(own, "batch_size", self.batch_size, 1, 2**20)
        check_float(own, "demo_fraction", self.demo_fraction, 0.0, 1.0)
        check_int(own, "nstep", self.nstep, 1, 1000)
        check_float(own, "gamma", self.gamma, 0.0, 1.0)
        check_float(own, "lr", self.lr, 0.0)
        check_float(own, "critic_lr", self.critic_lr, 0.0)
        check_float(own, "tau", self.tau, 0.0, 1.0, lo_open=True)
        check_sizes(own, "critic_hidden_sizes", self.critic_hidden_sizes)
        check_float(own, "reward_scale", self.reward_scale, 0.0, lo_open=True)
        check_int(own, "buffer_size", self.buffer_size, 1, MAX_STEPS)
        check_float(own, "max_grad_norm", self.max_grad_norm, 0.0, lo_open=True)
        check_int(own, "seed", self.seed, 0, MAX_SEED)


@dataclass
class FinetuneConfig:
    """``protege finetune``: RL from a trained policy on the task's reward.

    Pattern 1 (IL then RL): PPO starts from the policy, with a KL penalty
    ``kl · kl_decay^u · KL(π ‖ π_start)`` to the frozen starting policy at update ``u``.
    Pattern 2 (IL + RL, DAPG-style): with demonstrations, a BC loss
    ``bc_weight · bc_decay^u · (−log π(a_demo | s_demo))`` is added as well.
    """

    steps: int = 100_000
    """Env steps of fine-tuning (value warm-up included)."""
    kl: float = 0.1
    """KL coefficient to the frozen starting policy (0: no anchor)."""
    kl_decay: float = 1.0
    """The KL coefficient is multiplied by this after every update (1: constant)."""
    value_warmup: int = 2
    """Updates in which only the critic learns, on the starting policy's rollouts."""
    critic_prefit: int = 0
    """Gradient steps fitting the critic to the demonstrations' (--bc-data's) discounted
    returns-to-go (PPO's gamma) before the first update's advantages: a critic that starts
    out knowing the values of the demonstrated states, at no env steps, instead of (or
    besides) --value-warmup's critic-only updates (0: off; the demonstrations must carry
    rewards)."""
    critic_prefit_own: int = 0
    """Gradient steps fitting the critic to the first update's own rollouts' discounted
    returns-to-go before that update's advantages: the starting policy's values rather
    than the demonstrator's (its env steps are the first update's; 0: off)."""
    temperature: float = 1.0
    """Soften the starting policy before fine-tuning (the KL anchor is the softened policy):
    a categorical head's logits are divided by it, a Gaussian head's standard deviation
    multiplied by it. Its most likely action does not change (deterministic evaluation
    starts where BC is), but actions BC is sure are wrong get sampled, so PPO can learn
    that they are not. Below 1 it sharpens the start instead: sampled actions follow its most
    likely one more often (1: unchanged; categorical and gaussian heads)."""
    bc_weight: float = 0.0
    """Weight of the BC loss on --bc-data's demonstrations (pattern 2; 0: off)."""
    bc_decay: float = 0.95
    """The BC weight is multiplied by this after every update."""
    bc_batch_size: int = 256
    """Demonstration transitions per BC-loss minibatch."""
    self_imitation: float = 0.0
    """Weight of a BC loss on the learner's own best episodes so far (the
    --self-imitation-episodes with the highest return; minibatches of --bc-batch-size
    steps): it moves the policy's most likely action toward the actions of the episodes that
    went best (0: off)."""
    self_imitation_episodes: int = 10
    """How many of the best episodes --self-imitation imitates."""
    eval_every: int = 10_000
    """Evaluate (deterministic actions) every this many env steps, and at the start and end."""
    eval_episodes: int = 20
    """Episodes per evaluation (the same seeded ones every time)."""
    eval_envs: int = 0
    """Sub-envs of the evaluation (0: PPO's --n-envs). Which episodes an evaluation runs
    depends on it (each sub-env's episodes are seeded from its slot), so runs whose PPO uses
    a different --n-envs evaluate on the same episodes only with the same --eval-envs."""
    eval_sampled: bool = False
    """Also evaluate with sampled actions (the stochastic policy PPO trains, its draws seeded
    per episode) on the same episodes, recorded as ``sampled_return`` beside the
    deterministic ``mean_return``: a policy that mixes actions can do far better sampled
    than by its most likely action, and PPO improves the sampled policy first."""
    stop_return: float | None = None
    """End the run at the first evaluation whose returns (the deterministic one and, with
    --eval-sampled, the sampled one) all reach this (default: run all --steps)."""
    checkpoint_every: int = 1
    """Write the resumable checkpoint every this many updates."""

    def __post_init__(self) -> None:
        own = "FinetuneConfig"
        check_int(own, "steps", self.steps, 1, MAX_STEPS)
        check_float(own, "kl", self.kl, 0.0)
        check_float(own, "kl_decay", self.kl_decay, 0.0, 1.0)
        check_int(own, "value_warmup", self.value_warmup, 0, MAX_COUNT)
        check_int(own, "critic_prefit", self.critic_prefit, 0, MAX_STEPS)
        check_int(own, "critic_prefit_own", self.critic_prefit_own, 0, MAX_STEPS)
        check_float(own, "temperature", self.temperature, 0.0, 100.0, lo_open=True)
        check_float(own, "bc_weight", self.bc_weight, 0.0)
        check_float(own, "bc_decay", self.bc_decay, 0.0, 1.0)
        check_int(own, "bc_batch_size", self.bc_batch_size, 1, 2**20)
        check_float(own, "self_imitation", self.self_imitation, 0.0)
        check_int(own, "self_imitation_episodes", self.self_imitation_episodes, 1, MAX_COUNT)
        check_int(own, "eval_every", self.eval_every, 1, MAX_STEPS)
        check_int(own, "eval_episodes", self.eval_episodes, 1, MAX_COUNT)
        check_int(own, "eval_envs", self.eval_envs, 0, 1024)
        check_int(own, "checkpoint_every", self.checkpoint_every, 1, MAX_COUNT)
        if self.stop_return is not None:
            check_float(own, "stop_return", self.stop_return)
