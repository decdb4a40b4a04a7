"""The demos' settings: ``protege demo lunarlander | obstacle | carracing``.

(:mod:`protege.demos.lunarlander`, :mod:`protege.demos.obstacle`,
:mod:`protege.demos.carracing`.) The commands' flags are these fields, their docstrings the help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protege.configs.checks import (
    MAX_COUNT,
    MAX_SEED,
    MAX_SIZE,
    MAX_STEPS,
    check_device_spec,
    check_float,
    check_int,
    check_precision,
    check_sizes,
)
from protege.errors import ConfigError

EVAL_SEED_OFFSET = 10_000
"""Evaluation episodes are seeded with ``seed + EVAL_SEED_OFFSET``, so none of them starts where
a demonstration did (no method trained on those tracks)."""

INTERACTIVE = ("dagger", "hg-dagger", "thrifty")
"""The interactive methods ``protege demo`` runs by default."""

OBSTACLE_EVAL_SEED_OFFSET = 1000
"""The obstacle demo's evaluation episodes are seeded with ``seed + 1000`` (its published
figures were measured so; the other demos use :data:`EVAL_SEED_OFFSET`)."""

OBSTACLE_HEADS = ("mse", "gaussian", "mog", "binned", "diffusion", "flow")
"""The heads ``protege demo obstacle`` compares."""


@dataclass
class LunarDemoConfig:
    """Budgets of ``protege demo`` (the defaults take under 5 minutes on 2 cores).

    100 demonstrations (about 20,000 labels), 4000 BC steps of batch 256 on a 2×256 MLP; BC on
    the first 1-16 of them; each interactive method from one demonstration, ``rounds`` rounds
    of two episodes, every round's learner scored on ``round_eval_episodes`` seeded episodes;
    then every final learner and the expert on the same ``eval_episodes`` seeded episodes.

    The default task, ``lunarlander-noisy-mild`` (the learner's sensors noisy, the expert
    flying on the true state), is one where compounding error costs BC: on fresh seeds 0–4
    DAgger reached 95% of the expert's return with a median of 1,881 labels in 6 rounds and BC
    on demonstrations not with 16,000 (BENCHMARKS.md). ``lunarlander`` is the stock lander,
    where BC on demonstrations needs no more labels than the interactive methods.
    """

    task: str = "lunarlander-noisy-mild"
    """Run the same pipeline on another task (``lunarlander``: the stock lander, 4 rounds are
    enough there; ``lunarlander-tight``: the tight pilot; ``lunarlander-steady``: a gentler
    random start; ``lunarlander-noisy``: noisier sensors, which need about 8 rounds)."""
    seed: int = 0
    """Seeds everything; evaluation episodes use ``seed + EVAL_SEED_OFFSET``."""
    episodes: int = 100
    """Expert demonstrations."""
    eval_episodes: int = 50
    """Evaluation episodes, the same seeded ones for every method."""
    n_envs: int = 8
    """Sub-envs."""
    steps: int = 4000
    """BC gradient steps."""
    batch_size: int = 256
    """BC batch size."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """MLP widths."""
    val_fraction: float = 0.1
    """Share of the demonstrations held out for BC's validation loss curve (BC keeps its final
    weights either way; 0 trains on every demonstration, without the curve)."""
    gif: bool = True
    """Record GIFs of BC and DAgger rollouts."""
    methods: tuple[str, ...] = INTERACTIVE
    """Interactive methods compared with BC on return against expert labels (registered
    names); none for BC alone."""
    rounds: int = 6
    """Rounds of each interactive method (DAgger reached 95% of the expert in 4–5 rounds on
    ``lunarlander-noisy-mild``'s seeds; ThriftyDAgger's rounds are most of the demo's time)."""
    round_bc_steps: int = 1500
    """BC steps of each round's learner and of each BC curve point."""
    round_eval_episodes: int = 20
    """Evaluation episodes per round and per BC curve point."""
    progress: bool = False
    """Progress bars on stderr (off unless asked for: the command line asks when stderr is a
    terminal, or with --progress)."""

    device: str = "auto"
    """Where training runs and the trained policy acts: auto (CUDA if available, else MPS,
    else the CPU), cpu, cuda, cuda:N or mps. A device this machine lacks is an error."""

    def __post_init__(self) -> None:
        own = "LunarDemoConfig"
        check_device_spec("device", self.device)
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        for name in ("episodes", "eval_episodes", "n_envs", "round_eval_episodes"):
            check_int(own, name, getattr(self, name), 1, MAX_COUNT)
        for name in ("steps", "batch_size", "round_bc_steps"):
            check_int(own, name, getattr(self, name), 1, MAX_STEPS)
        check_int(own, "rounds", self.rounds, 0, 10**6)
        check_sizes(own, "hidden_sizes", self.hidden_sizes)
        check_float(own, "val_fraction", self.val_fraction, 0.0, 0.99)

    @property
    def eval_seed(self) -> int:
        return self.seed + EVAL_SEED_OFFSET


@dataclass
class ObstacleDemoConfig:
    """Budgets of the comparison (defaults: about 10 minutes on 2 cores)."""

    seed: int = 0
    """Seeds everything; evaluation episodes use ``seed + 1000``."""
    demos: int = 200
    """Expert demonstrations (60% left, 40% right)."""
    steps: int = 4000
    """BC gradient steps per head (batch 256)."""
    lr: float = 1e-3
    """BC learning rate of every head."""
    episodes: int = 100
    """Evaluation episodes per row, the same seeded ones for every head."""
    n_envs: int = 25
    """Sub-envs of the evaluation."""
    heads: tuple[str, ...] = OBSTACLE_HEADS
    """The heads compared (registered names)."""
    chunks: tuple[int, ...] = (8, 1)
    """Chunk sizes to compare; each chunk is executed open loop, then re-planned."""
    sweep_steps: bool = True
    """Also measure success against DDIM / Euler steps (chunk-8 diffusion and flow)."""
    progress: bool = False
    """Progress bars on stderr (off unless asked for: the command line asks when stderr is a
    terminal, or with --progress)."""

    device: str = "auto"
    """Where training runs and the trained policy acts: auto (CUDA if available, else MPS,
    else the CPU), cpu, cuda, cuda:N or mps. A device this machine lacks is an error."""

    def __post_init__(self) -> None:
        unknown = set(self.heads) - set(OBSTACLE_HEADS)
        check_device_spec("device", self.device)
        if unknown:
            raise ConfigError(
                f"unknown heads {sorted(unknown)}; choose from {list(OBSTACLE_HEADS)}"
            )
        own = "ObstacleDemoConfig"
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        for name in ("demos", "episodes", "n_envs"):
            check_int(own, name, getattr(self, name), 1, MAX_COUNT)
        check_int(own, "steps", self.steps, 1, MAX_STEPS)
        check_float(own, "lr", self.lr, 0.0, lo_open=True)
        check_sizes(own, "chunks", self.chunks)

    @property
    def eval_seed(self) -> int:
        return self.seed + OBSTACLE_EVAL_SEED_OFFSET


FINETUNE_DEMONSTRATORS = ("expert", "drifting")
"""Who demonstrates in ``protege demo finetune``: the task's expert, or CartPole's drifting
demonstrator (:class:`protege.demos.finetune_arms.DriftingCartPoleExpert`)."""


@dataclass
class FinetuneDemoConfig:
    """Budgets of ``protege demo finetune`` (the defaults: 2-4 minutes on 2 shared cores)."""

    task: str = "cartpole"
    seed: int = 0
    demos: int = 2
    """Demonstrations BC learns from."""
    demonstrator: str = "drifting"
    """Who demonstrates: ``expert`` (the task's) or ``drifting`` (CartPole's degraded expert,
    mean return ≈ 140: fine-tuning has to go past it)."""
    bc_steps: int = 1000
    """BC gradient steps (batch 64, a 2×64 MLP)."""
    steps: int = 30_000
    """Env steps of each fine-tuning run."""
    kl: float = 0.1
    """KL coefficient of the anchored run (the other runs without)."""
    kl_decay: float = 0.9
    """The KL coefficient's factor per update."""
    value_warmup: int = 2
    """Critic-only updates before the policy moves (both runs)."""
    eval_every: int = 2000
    """Env steps between evaluations."""
    eval_episodes: int = 10
    """Evaluation episodes at each evaluation."""
    progress: bool = False
    """Progress bars on stderr (the command line shows them when stderr is a
    terminal, or with --progress)."""

    def __post_init__(self) -> None:
        own = "FinetuneDemoConfig"
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        for name in ("demos", "eval_episodes"):
            check_int(own, name, getattr(self, name), 1, MAX_COUNT)
        for name in ("bc_steps", "steps", "eval_every"):
            check_int(own, name, getattr(self, name), 1, MAX_STEPS)
        check_int(own, "value_warmup", self.value_warmup, 0, MAX_COUNT)
        check_float(own, "kl", self.kl, 0.0)
        check_float(own, "kl_decay", self.kl_decay, 0.0, 1.0)
        if self.demonstrator not in FINETUNE_DEMONSTRATORS:
            raise ConfigError(
                f"FinetuneDemoConfig.demonstrator (--demonstrator) must be one of "
                f"{FINETUNE_DEMONSTRATORS}, not {self.demonstrator!r}"
            )

    @property
    def eval_seed(self) -> int:
        return self.seed + EVAL_SEED_OFFSET


@dataclass
class CarRacingDemoConfig:
    """Budgets of the tutorial (the defaults: about 16 minutes on 2 shared cores)."""

    seed: int = 0
    """Seeds everything; evaluation tracks use ``seed + EVAL_SEED_OFFSET``."""
    demos: int = 10
    """Expert laps recorded for BC (round 0 of DAgger and DART)."""
    bc_steps: int = 2000
    """Gradient steps of the initial BC policy (batch ``batch_size``)."""
    rounds: int = 2
    """DAgger and DART rounds after round 0."""
    episodes_per_round: int = 4
    """Laps collected in each DAgger and DART round."""
    round_steps: int = 1000
    """Gradient steps per round, continuing from the previous round's policy."""
    batch_size: int = 64
    """Frames per gradient step."""
    lr: float = 1e-3
    """Learning rate of every training run."""
    channels: tuple[int, ...] = (16, 32, 32)
    """CNN channels (the Nature CNN's 32-64-64 trains about 3× slower on this CPU)."""
    hidden_sizes: tuple[int, ...] = (256,)
    """Widths of the fully connected layers after the CNN."""
    n_obs_steps: int = 1
    """Frames stacked per observation (1: the current frame only)."""
    random_shift: int = 4
    """Pad of DrQ's random-shift augmentation (0: off)."""
    dart_noise: float = 0.05
    """DART's action-noise variance per dimension in round 1 (later rounds fit it)."""
    bc_control: bool = True
    """Also train "BC + steps": the BC policy trained ``rounds × round_steps`` more steps on the
    demonstrations alone, as many gradient steps as DAgger's and DART's final policies had.
    It separates what their extra labels did from what extra training did."""
    eval_episodes: int = 6
    """Fresh tracks every method is evaluated on (also DAgger's and DART's per-round rows)."""
    n_envs: int = 4
    """Sub-envs of collection and evaluation."""
    gif: bool = True
    """Record a GIF of each method driving the first evaluation track."""
    gif_every: int = 3
    """Keep every this many frames in the GIFs."""
    torch_threads: int = 1
    """torch threads; 1 is fastest for this CNN on 2 shared cores (2 threads halve it)."""
    progress: bool = False
    """Progress bars on stderr (off unless asked for: the command line asks when stderr is a
    terminal, or with --progress)."""

    device: str = "auto"
    """Where training runs and the trained policy acts: auto (CUDA if available, else MPS,
    else the CPU), cpu, cuda, cuda:N or mps. A device this machine lacks is an error."""
    precision: str = "fp32"
    """fp32, or bf16 autocast for the CNN's training (``BCConfig.precision``)."""

    def __post_init__(self) -> None:
        own = "CarRacingDemoConfig"
        check_device_spec("device", self.device)
        check_precision("precision", self.precision)
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        for name in ("demos", "episodes_per_round", "eval_episodes", "n_envs", "gif_every"):
            check_int(own, name, getattr(self, name), 1, MAX_COUNT)
        for name in ("bc_steps", "round_steps", "batch_size"):
            check_int(own, name, getattr(self, name), 1, MAX_STEPS)
        check_int(own, "rounds", self.rounds, 0, 10**6)
        check_float(own, "lr", self.lr, 0.0, lo_open=True)
        check_float(own, "dart_noise", self.dart_noise, 0.0)
        check_sizes(own, "channels", self.channels, empty=False)
        check_sizes(own, "hidden_sizes", self.hidden_sizes)
        check_int(own, "n_obs_steps", self.n_obs_steps, 1, MAX_SIZE)
        check_int(own, "random_shift", self.random_shift, 0, MAX_SIZE)
        check_int(own, "torch_threads", self.torch_threads, 1, 1024)

    @classmethod
    def smoke(cls, **overrides: Any) -> CarRacingDemoConfig:
        """A toy run for tests: every step runs, on a few hundred frames (seconds, not minutes).

        Episodes are still full CarRacing episodes; use ``max_steps`` of
        :func:`~protege.demos.carracing.run_carracing_demo` to cut them short.
        """
        kw: dict[str, Any] = {
            "demos": 2,
            "bc_steps": 4,
            "rounds": 1,
            "episodes_per_round": 2,
            "round_steps": 2,
            "batch_size": 8,
            "channels": (4, 8, 8),
            "hidden_sizes": (16,),
            "eval_episodes": 2,
            "n_envs": 2,
            "gif_every": 10,
            "progress": False,
        }
        kw.update(overrides)
        return cls(**kw)

    @property
    def eval_seed(self) -> int:
        return self.seed + EVAL_SEED_OFFSET


ARM_SETTINGS = ("main", "few", "hidden")
"""The settings ``protege demo arm`` runs by default
(:data:`protege.demos.arm_settings.SETTINGS`)."""
ARM_OPT_IN = ("camera",)
"""Settings run only when asked for (``--settings camera``): camera + proprioception trains a
CNN, minutes more than the default three together."""
ARM_ALL_SETTINGS = ARM_SETTINGS + ARM_OPT_IN


@dataclass
class ArmDemoConfig:
    """Budgets of the weekend arm project (the defaults: about 3 minutes on 2 quiet cores)."""

    seed: int = 0
    demos: int = 50
    """Expert demonstrations of the main and hidden-goal settings."""
    few_demos: int = 3
    """Expert demonstrations of the few-demonstrations setting."""
    camera_demos: int = 50
    """Expert demonstrations of the camera + proprioception setting."""
    settings: tuple[str, ...] = ARM_SETTINGS
    """main (state, ``demos`` demonstrations), few (state, ``few_demos``), hidden (the goal
    hidden from the learner, the expert privileged); opt-in: camera (the corner camera and the
    arm's proprioception, ``camera_demos``, a CNN trained ``camera_steps`` per round)."""
    rounds: int = 3
    """DAgger rounds after BC (round 0)."""
    episodes_per_round: int = 20
    """Learner rollouts per DAgger round; the expert labels every state they reach."""
    eval_episodes: int = 20
    """Evaluation rollouts of BC and of each round's learner (the same seeded ones)."""
    steps: int = 3000
    """BC gradient steps of each round's learner (trained from scratch on every label)."""
    batch_size: int = 256
    camera_steps: int = 2000
    """BC gradient steps of each round's learner in the camera setting (each DAgger round's
    learner continues from the previous round's weights)."""
    camera_batch_size: int = 64
    """BC batch size of the camera setting."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """MLP widths."""
    n_envs: int = 4
    """Sub-envs of collection and evaluation."""
    horizon: int = 150
    """Steps per episode (an episode also ends at success)."""
    gif: bool = True
    """GIFs from the camera of BC and of the last DAgger learner."""
    progress: bool = True

    def __post_init__(self) -> None:
        own = "ArmDemoConfig"
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        counts = ("demos", "few_demos", "camera_demos", "episodes_per_round", "eval_episodes")
        for name in (*counts, "n_envs"):
            check_int(own, name, getattr(self, name), 1, MAX_COUNT)
        for name in ("steps", "batch_size", "camera_steps", "camera_batch_size"):
            check_int(own, name, getattr(self, name), 1, MAX_STEPS)
        check_int(own, "rounds", self.rounds, 0, 10**6)
        check_int(own, "horizon", self.horizon, 1, 500)
        check_sizes(own, "hidden_sizes", self.hidden_sizes)
        unknown = set(self.settings) - set(ARM_ALL_SETTINGS)
        if unknown or not self.settings:
            raise ConfigError(
                f"ArmDemoConfig.settings {list(self.settings)}: choose one or more of "
                f"{list(ARM_ALL_SETTINGS)}"
            )

    @classmethod
    def smoke(cls, **overrides: Any) -> ArmDemoConfig:
        """A toy run for tests: every step of every setting, on a few short episodes."""
        kw: dict[str, Any] = {
            "demos": 2,
            "few_demos": 1,
            "camera_demos": 1,
            "settings": ARM_ALL_SETTINGS,
            "rounds": 1,
            "episodes_per_round": 2,
            "eval_episodes": 2,
            "steps": 10,
            "batch_size": 16,
            "camera_steps": 5,
            "camera_batch_size": 8,
            "hidden_sizes": (16,),
            "n_envs": 2,
            "horizon": 25,
            "progress": False,
        }
        kw.update(overrides)
        return cls(**kw)

    @property
    def eval_seed(self) -> int:
        return self.seed + EVAL_SEED_OFFSET
