"""The arithmetic of protege's MLPs, in one place: per layer one ``addmm``, then ReLU.

Three callers run an MLP's forward pass, and all of them call :func:`mlp_forward`:

- the encoders' forward (:class:`~protege.policies.encoders.MLPEncoder`, the fully connected
  layers of :class:`~protege.policies.encoders.CNNEncoder`), through autograd;
- the policy's acting plan (:class:`ActingPlan`): weights stored transposed, the observation
  normalization folded into the first layer;
- BC's hand-written training step (:class:`~protege.algos.mlp_step.MLPStep`), into buffers
  allocated once per batch size.

``torch.addmm(b, x, W.t())`` is what ``F.linear(x, W, b)`` runs for a 2-D input, so the
three agree to the bit on the same weights.

**The switch.** ``FAST_PATHS`` turns the CPU fast paths on (the default) or off for the whole
process: the acting plan here, and BC's hand-written step and flat optimizer (which
``BCConfig.fast_path`` also turns off for one run). ``PROTEGE_FAST_PATH=0`` in the environment
sets it to False at import: every policy then acts through its modules and BC trains through
autograd and ``torch.optim.AdamW``, which need no private torch internals
(``tests/test_torch_internals.py`` names the ones the fast paths use).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from protege.errors import ConfigError

FAST_PATHS: bool = os.environ.get("PROTEGE_FAST_PATH", "1").strip() not in ("0", "false", "off")
"""True unless ``PROTEGE_FAST_PATH`` is 0/false/off: see the module docstring."""

ACTIVATIONS = ("relu",)
"""The hidden-layer activations protege's MLPs support (the fast paths are written for ReLU)."""

Layers = Sequence[tuple[torch.Tensor, torch.Tensor]]
"""An MLP's layers as ``(weight transposed (in, out), bias (out,))`` pairs."""


def check_activation(activation: str, where: str) -> None:
    """Refuse an activation the MLPs do not implement, naming ``where`` it was asked for."""
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"{where}: activation {activation!r} is not supported; protege's MLPs use "
            f"{', '.join(ACTIVATIONS)}"
        )


def mlp(in_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Linear + ReLU layers of ``hidden_sizes`` as an ``nn.Sequential`` (the parameter names
    checkpoints hold: ``0.weight``, ``2.weight``, ...). Run it with :func:`mlp_forward` on
    :func:`linear_layers`, or call it as a module: the two agree."""
    check_activation(activation, "mlp")
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(in_dim, size), nn.ReLU()]
        in_dim = size
    return nn.Sequential(*layers)


def linear_layers(net: nn.Sequential) -> list[nn.Linear]:
    """The linear layers of an :func:`mlp`, in order."""
    return [m for m in net if isinstance(m, nn.Linear)]


def transposed(layers: Sequence[nn.Linear]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight.t(), bias)`` of each layer: views, so autograd sees the parameters."""
    return [(layer.weight.t(), layer.bias) for layer in layers]


def mlp_forward(
    x_BI: torch.Tensor,
    layers: Layers,
    relu_last: bool,
    outs: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``x_BI`` through ``layers``: ``addmm`` then in-place ReLU per layer (after the last
    one only with ``relu_last``). With ``outs`` (one ``(B, out)`` buffer per layer) each
    layer's output is written there instead of into a new tensor."""
    last = len(layers) - 1
    x = x_BI
    for i, (w_t, b) in enumerate(layers):
        x = torch.addmm(b, x, w_t) if outs is None else torch.addmm(b, x, w_t, out=outs[i])
        if relu_last or i < last:
            x.relu_()
    return x


class ActingPlan:
    """The arithmetic of a policy's ``normalize_obs()``, ``features()`` and a linear head's
    layer, for acting, in as few tensor calls as possible.

    At the batch sizes of acting (1-16 rows) a matrix product runs ~1.5× faster with the
    weight stored transposed; the observation normalization is folded into the first layer
    (``W (x − μ)/σ + b = (W/σ) x + (b − W μ/σ)``); and one ``addmm`` (+ ``relu_``) per layer
    is a third of the calls of the modules' forward. Between env steps, where every call runs
    on cold caches, that halves what inference adds to stepping
    (``benchmarks/eval_overhead.py``). Results equal the modules' to float rounding.

    The copies are checked against the weights' and statistics' storage and version counters
    (:meth:`current`): in-place updates, optimizer steps, ``load_state_dict`` and
    :class:`~protege.algos.optim.FlatAdamW` all bump them. No tensor here requires grad, so
    no autograd context is needed either.
    """

    def __init__(
        self, watched: list[torch.Tensor], layers: list[tuple[torch.Tensor, torch.Tensor]]
    ):
        self.watched = watched
        self.key = self._key()
        self.layers = layers
        self.dtype = layers[0][0].dtype

    @classmethod
    def build(
        cls, layers: Sequence[nn.Linear], obs_stats: tuple[torch.Tensor, torch.Tensor] | None
    ) -> ActingPlan:
        """The plan of ``layers`` (the encoder's, then the head's), with the observation
        statistics ``(mean, std)`` folded into the first layer (None: no normalization)."""
        stats = list(obs_stats) if obs_stats is not None else []
        watched = [t for m in layers for t in (m.weight, m.bias)] + stats
        with torch.no_grad():
            plan = [(m.weight.detach().t().contiguous(), m.bias.detach()) for m in layers]
            if stats:
                w_t, b = plan[0]
                n_in = w_t.shape[0]
                inv = 1.0 / stats[1].double().flatten()
                shift = stats[0].double().flatten() * inv
                if inv.numel() != n_in:  # n_obs_steps > 1: the K frames share the statistics
                    inv, shift = inv.repeat(n_in // inv.numel()), shift.repeat(n_in // inv.numel())
                folded = w_t.double() * inv[:, None]
                plan[0] = (
                    folded.to(w_t.dtype).contiguous(),
                    (b.double() - shift @ w_t.double()).to(b.dtype),
                )
        return cls(watched, plan)

    def _key(self) -> list[tuple[int, int]]:
        return [(t.data_ptr(), t._version) for t in self.watched]

    def current(self) -> bool:
        """False once any watched weight or statistic was changed in place or re-seated."""
        return self._key() == self.key

    def output(self, obs_t: torch.Tensor) -> torch.Tensor:
        """The linear head's output ``(N, D)`` for raw observations ``(N, ...)``."""
        x = obs_t if obs_t.dtype == self.dtype else obs_t.to(self.dtype)
        if x.dim() > 2:
            x = x.flatten(1)
        return mlp_forward(x, self.layers, relu_last=False)
