"""BCConfig: how behavioral cloning trains (:func:`protege.algos.bc.fit`)."""

from __future__ import annotations

from dataclasses import dataclass

from protege.configs.checks import (
    MAX_SEED,
    MAX_STEPS,
    check_device_spec,
    check_float,
    check_int,
    check_precision,
)
from protege.errors import ConfigError


@dataclass
class BCConfig:
    """Training settings; the same names are ``protege train`` flags."""

    steps: int | None = None
    """Gradient steps. If None, derived from ``epochs``."""
    epochs: float = 20.0
    """Passes over the training split (used when ``steps`` is None)."""
    batch_size: int = 256
    """Transitions (or chunks) per gradient step."""
    lr: float = 1e-3
    """AdamW learning rate (the peak of the cosine schedule)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    lr_schedule: str = "cosine"
    """"cosine" (decay to 0 over the run) or "constant"."""
    grad_clip: float | None = None
    """Clip the gradients' global L2 norm to this (None: no clipping)."""
    val_fraction: float = 0.1
    """Fraction of *episodes* held out for validation (split by episode, not by step)."""
    eval_every: int = 500
    """Validate every this many steps."""
    patience: int | None = None
    """Stop after this many validations without improvement (None: never stop early)."""
    restore_best: bool = False
    """Keep the weights with the lowest validation loss instead of the last ones. Off by
    default: held-out BC loss often bottoms out long before rollout return does (on
    lunarlander the lowest-loss weights reached 69-97% of the expert, the last ones 93-100%)."""
    seed: int = 0
    progress: bool = False
    """Progress bars on stderr (off unless asked for: the command line asks when stderr is a
    terminal, or with --progress)."""
    tensorboard_dir: str | None = None
    """Write losses to TensorBoard event files in this folder (needs ``protege[tensorboard]``)."""
    fit_normalization: bool = True
    """Recompute the policy's observation/action statistics from the training split."""
    fast_path: bool = True
    """Train through protege's CPU fast paths: the flat fused AdamW (``FlatAdamW``) and, for
    an MLP policy with an ``mse``, ``categorical`` or ``gaussian`` head, the hand-written
    backward pass (``MLPStep``); the same loss and gradients as autograd to float rounding,
    several times faster at control's sizes. False: autograd and ``torch.optim.AdamW`` (no
    private torch internals), to the same quality but not to the same bits.
    ``PROTEGE_FAST_PATH=0`` in the environment turns the fast paths off for every run.
    They run only on the CPU: on any other ``device`` the plain torch path is taken."""
    device: str = "auto"
    """Where training runs and the trained policy acts: auto (CUDA if available, else MPS,
    else the CPU), cpu, cuda, cuda:N or mps. A device this machine lacks is an error."""
    precision: str = "fp32"
    """fp32, or bf16: the forward pass and loss under bfloat16 autocast (for CNN encoders
    and diffusion/flow heads; works on the CPU too, but is slow on CPUs without native
    bfloat16). bf16 trains through autograd."""

    def __post_init__(self) -> None:
        own = "BCConfig"
        if self.steps is not None:
            check_int(own, "steps", self.steps, 1, MAX_STEPS)
        check_float(own, "epochs", self.epochs, 0.0, 1e6, lo_open=True)
        check_int(own, "batch_size", self.batch_size, 1, 2**20)
        check_float(own, "lr", self.lr, 0.0)  # 0: frozen weights (tests use it)
        check_float(own, "weight_decay", self.weight_decay, 0.0)
        if self.grad_clip is not None:
            check_float(own, "grad_clip", self.grad_clip, 0.0)
        check_float(own, "val_fraction", self.val_fraction, 0.0, 1.0, hi_open=True)
        check_int(own, "eval_every", self.eval_every, 1, MAX_STEPS)
        if self.patience is not None:
            check_int(own, "patience", self.patience, 1, MAX_STEPS)
        check_int(own, "seed", self.seed, 0, MAX_SEED)
        check_device_spec("device", self.device)
        check_precision("precision", self.precision)
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(
                f"lr_schedule must be 'cosine' or 'constant', not {self.lr_schedule!r}"
            )
