"""K MLPs of one shape as one network: stacked weights and batched matrix products.

An ensemble's members and ThriftyDAgger's twin Q networks are small MLPs of one shape, and
training or querying them one after another repeats the same tensor calls K times. Stacked,
layer l of every member is one ``(K, O, I)`` weight and one ``(K, O)`` bias, and the K
members' forward and backward passes are the calls of one member on ``(K, B, ·)`` tensors
(``torch.baddbmm``, ``torch.bmm``): the calls' overhead is paid once, not K times. What
remains is the arithmetic itself, which stacking does not shrink
(``benchmarks/ensemble_speed.py``).

Member k's arithmetic is its own network's, operation for operation: the same products,
sums and elementwise operations on the same values, and parameters laid out as its own
optimizer lays them out. Where a batched product gives each member the bits of its own
product (MKL on the machine measured, an AMD EPYC; products under ~400 multiply-adds take
another kernel), stacked and one-by-one runs agree bit for bit; elsewhere to float rounding.

* :class:`StackedMLP`: the stacked weights (Linear + ReLU layers, a linear last layer) in one
  member-major buffer, row k laid out as member k's own parameters (as a
  :class:`~protege.algos.optim.FlatAdamW` of that member lays them out), with a gradient
  buffer of the same shape; built from and written back to per-member ``nn.Linear`` layers.
* :class:`StackedBackprop`: the forward pass keeping activations and the backward pass
  written out (:class:`~protege.algos.mlp_step.MLPStep`'s arithmetic, batched).
* :class:`PolicyPlan`: the members of an ensemble answering in one pass, checked against
  their weights on every call (as a policy's own acting plan is); :func:`stackable` says
  which policies stack.

Shape letters: K members, B (or N) rows, I inputs, O outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from protege.policies.encoders import MLPEncoder
from protege.policies.policy import Policy

_threshold_backward = torch.ops.aten.threshold_backward.grad_input

ALL = slice(None)
"""Every member of a stacked network."""

Layer = tuple[torch.Tensor, torch.Tensor]
"""``(bias (K, 1, O), weight transposed (K, I, O))``: what :func:`stacked_forward` takes."""


def stacked_forward(layers: Sequence[Layer], x: torch.Tensor) -> torch.Tensor:
    """``(K, B, O)`` outputs of ``x``: ``(B, I)`` (the same rows into every member) or
    ``(K, B, I)`` (member k's rows); ReLU after every layer but the last."""
    k = layers[0][0].shape[0]
    h = x.expand(k, *x.shape) if x.dim() == 2 else x
    last = len(layers) - 1
    for i, (b, w_t) in enumerate(layers):
        h = torch.baddbmm(b, h, w_t)
        if i < last:
            h = h.relu_()
    return h


class StackedMLP:
    """K MLPs of one shape: ``weights[l]`` ``(K, O_l, I_l)`` and ``biases[l]`` ``(K, O_l)``
    are views into ``flat`` ``(K, S)``, whose row k holds member k's parameters in its own
    order (weight, bias, layer by layer) in its first ``size`` entries; ``weight_grads`` and
    ``bias_grads`` are the same views into ``grad``. With ``align``, each row starts on a
    64-byte boundary, as a separately allocated buffer does (products then read member k's
    weights at the alignment its own network's buffer gives them).

    Example:
        >>> mlp = StackedMLP([policy_layers(p) for p in policies])
        >>> out_KBO = mlp(obs_BI)          # the same rows into every member
        >>> mlp.unstack_into([policy_layers(p) for p in policies])
    """

    def __init__(self, members: Sequence[Sequence[nn.Linear]], align: bool = False) -> None:
        if not members or not members[0]:
            raise ValueError("a stacked MLP needs at least one member and one layer")
        shapes = [tuple(layer.weight.shape) for layer in members[0]]
        if any([tuple(layer.weight.shape) for layer in m] != shapes for m in members):
            raise ValueError("stacked members must have layers of one shape")
        k = len(members)
        self.size = sum(o * i + o for o, i in shapes)
        stride = -(-self.size // 16) * 16 if align else self.size
        self.flat = torch.zeros(k, stride)
        self.grad = torch.zeros(k, stride)
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        self.weight_grads: list[torch.Tensor] = []
        self.bias_grads: list[torch.Tensor] = []
        offset = 0
        for o, i in shapes:
            for buf, ws, bs in (
                (self.flat, self.weights, self.biases),
                (self.grad, self.weight_grads, self.bias_grads),
            ):
                ws.append(buf[:, offset : offset + o * i].view(k, o, i))
                bs.append(buf[:, offset + o * i : offset + o * i + o])
            offset += o * i + o
        with torch.no_grad():
            for m, layers in enumerate(members):
                for layer, w, b in zip(layers, self.weights, self.biases, strict=True):
                    w[m].copy_(layer.weight)
                    b[m].copy_(layer.bias)

    @property
    def members(self) -> int:
        return int(self.flat.shape[0])

    def rows(self) -> list[torch.Tensor]:
        """Member k's parameters as one flat ``(size,)`` view, for each k."""
        return [row[: self.size] for row in self.flat]

    def grad_rows(self) -> list[torch.Tensor]:
        """Member k's gradient as one flat ``(size,)`` view, for each k."""
        return [row[: self.size] for row in self.grad]

    def layers(self) -> list[Layer]:
        """The ``(bias, weight transposed)`` views :func:`stacked_forward` takes."""
        return [
            (b.unsqueeze(1), w.transpose(1, 2))
            for w, b in zip(self.weights, self.biases, strict=True)
        ]

    def unstack_into(self, members: Sequence[Sequence[nn.Linear]]) -> None:
        """Copy member k's weights into the k-th list of layers."""
        with torch.no_grad():
            for k, layers in enumerate(members):
                for layer, w, b in zip(layers, self.weights, self.biases, strict=True):
                    layer.weight.copy_(w[k])
                    layer.bias.copy_(b[k])

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(K, B, O)`` outputs of ``x`` (see :func:`stacked_forward`)."""
        return stacked_forward(self.layers(), x)


class _MemberViews(NamedTuple):
    """A group of members' views for one batch size (:meth:`StackedBackprop._member_views`):
    per hidden layer ``(bias, weight transposed, output)``; per layer, last first,
    ``(weight grad, bias grad, output grad, weight, (input, input grad) or None)``."""

    hidden: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    back: list[
        tuple[
            torch.Tensor,
            torch.Tensor,
            torch.Tensor,
            torch.Tensor,
            tuple[torch.Tensor, torch.Tensor] | None,
        ]
    ]


class StackedBackprop:
    """The forward and backward pass of a :class:`StackedMLP` without autograd.

    :meth:`forward` keeps every layer's output in buffers allocated once per batch size;
    :meth:`backward` takes the loss's gradient with respect to the output, written into
    :meth:`output_grad`'s buffer, and overwrites the network's gradient buffer. Each member's
    products, sums and ReLU gradients are :class:`~protege.algos.mlp_step.MLPStep`'s.
    """

    def __init__(self, mlp: StackedMLP) -> None:
        self.mlp = mlp
        self.layers = mlp.layers()
        self.out_features = [int(w.shape[1]) for w in mlp.weights]
        self.k = mlp.members
        self._buffers: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self._views: dict[tuple[int, int | None, int | None], _MemberViews] = {}
        self._input = torch.empty(0)

    def _buffers_for(self, batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        bufs = self._buffers.get(batch)
        if bufs is None:
            outs = [torch.empty(self.k, batch, n) for n in self.out_features]
            grads = [torch.empty(self.k, batch, n) for n in self.out_features]
            bufs = self._buffers[batch] = (outs, grads)
        return bufs

    def _member_views(self, batch: int, members: slice) -> _MemberViews:
        """``members``' views of the weights, gradients and buffers for ``batch`` rows, made
        once: a step's passes then slice nothing but their input."""
        key = (batch, members.start, members.stop)
        views = self._views.get(key)
        if views is None:
            outs, grads = self._buffers_for(batch)
            mlp, m = self.mlp, members
            hidden = [(b[m], w_t[m], outs[i][m]) for i, (b, w_t) in enumerate(self.layers[:-1])]
            back = []
            for i in range(len(self.layers) - 1, -1, -1):
                g = grads[i][m]
                below = (outs[i - 1][m], grads[i - 1][m]) if i else None
                back.append(
                    (mlp.weight_grads[i][m], mlp.bias_grads[i][m], g, mlp.weights[i][m], below)
                )
            views = self._views[key] = _MemberViews(hidden, back)
        return views

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Take ``x`` ``(B, I)`` or ``(K, B, I)`` as the input of the next pass and return
        its ``(K, B, I)`` view; the buffers for B rows exist afterwards (threads computing
        groups of members share them)."""
        x = x.expand(self.k, *x.shape) if x.dim() == 2 else x
        self._buffers_for(x.shape[1])
        self._input = x
        return x

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(K, B, O)`` output for ``x`` ``(B, I)`` (shared) or ``(K, B, I)``; the
        buffer is reused by the next call with as many rows."""
        self.hidden(self.prepare(x))
        return self.last()

    @torch.no_grad()
    def hidden(self, x: torch.Tensor, members: slice = ALL) -> None:
        """Every layer but the last, for ``members``, on ``x`` as :meth:`prepare` returned
        it. Groups of members may run in parallel (:mod:`~protege.policies.member_threads`);
        :meth:`last` then takes every member's last layer in one call (a lone member's
        product with one output column would take another kernel than the stacked one)."""
        h = x[members]
        for b, w_t, out in self._member_views(x.shape[1], members).hidden:
            torch.baddbmm(b, h, w_t, out=out)
            h = out.relu_()

    @torch.no_grad()
    def last(self) -> torch.Tensor:
        """The last layer of every member after :meth:`hidden`: the ``(K, B, O)`` output."""
        outs, _ = self._buffers_for(self._input.shape[1])
        b, w_t = self.layers[-1]
        h = outs[-2] if len(outs) > 1 else self._input
        return torch.baddbmm(b, h, w_t, out=outs[-1])

    def share(self, batch: int) -> None:
        """Move what another process reads of a pass on ``batch`` rows into shared memory
        (every member's last hidden layer, which :meth:`last` takes), before a fork that
        computes some members there (:class:`~protege.policies.member_procs.Pair`)."""
        outs, _ = self._buffers_for(batch)
        if len(outs) > 1:
            outs[-2].share_memory_()

    def output_grad(self) -> torch.Tensor:
        """The buffer ``(K, B, O)`` for the loss's gradient with respect to the last
        :meth:`forward`'s output."""
        return self._buffers_for(self._input.shape[1])[1][-1]

    @torch.no_grad()
    def backward(self, members: slice = ALL) -> None:
        """Every stacked parameter's gradient (with ``members``, those members'), from
        :meth:`output_grad`, into the network's gradient buffer."""
        x = self._input
        for w_grad, b_grad, g, w, below in self._member_views(x.shape[1], members).back:
            torch.bmm(g.transpose(1, 2), below[0] if below else x[members], out=w_grad)
            torch.sum(g, 1, out=b_grad)  # adds each member's rows as a (B, O) sum does
            if below:
                act, grad_below = below
                torch.bmm(g, w, out=grad_below)
                _threshold_backward(grad_below, act, 0.0, grad_input=grad_below)

    def clip_grad_norm_(self, max_norm: float, members: slice = ALL) -> None:
        """Scale each member's gradient to an L2 norm of at most ``max_norm``, as
        :meth:`~protege.algos.optim.FlatAdamW.clip_grad_norm` does for one network."""
        for row in self.mlp.grad_rows()[members]:
            norm = float(row.norm())
            if norm > max_norm:
                row.mul_(max_norm / (norm + 1e-6))


def policy_layers(policy: Policy) -> list[nn.Linear] | None:
    """The linear layers of an MLP-encoder policy whose head is one linear layer with a
    closed-form loss and mode (``Head.linear_output``: ``mse``, ``categorical``,
    ``gaussian``), one action per step from one observation; None for any other policy."""
    cfg, head = policy.config, policy.head
    linear = getattr(head, "linear", None)
    if (
        type(policy.encoder) is not MLPEncoder
        or not head.linear_output
        or not isinstance(linear, nn.Linear)
        or sum(1 for _ in head.parameters()) != 2
        or cfg.chunk_size != 1
        or cfg.n_obs_steps != 1
        or any(p.dtype != torch.float32 for p in policy.parameters())
    ):
        return None
    return [*policy.encoder.linears, linear]


def stackable(policies: Sequence[Policy]) -> bool:
    """True if the policies can act and train as one :class:`StackedMLP`: each is an MLP
    with a linear head (:func:`policy_layers`) and all have the same config (shapes, head,
    normalization), on the CPU (the stacked plan is a CPU fast path)."""
    if not policies or any(policy_layers(p) is None or p.device.type != "cpu" for p in policies):
        return False
    first = policies[0].config.to_dict()
    return all(p.config.to_dict() == first for p in policies[1:])


class Watch:
    """Remembers tensors' storage and version counters: :meth:`current` is false once any
    of them was changed in place (optimizer steps, ``copy_``, ``load_state_dict``) or given
    new storage (``.to()``)."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.tensors = list(tensors)
        self.key = self._key()

    def _key(self) -> list[tuple[int, int]]:
        return [(t.data_ptr(), t._version) for t in self.tensors]

    def current(self) -> bool:
        return self._key() == self.key


class PolicyPlan:
    """:func:`stackable` policies answering in one pass: raw observations ``(N, *obs)`` to
    each member's head output ``(K, N, O)``, and the action scaling ``act_offset``,
    ``act_scale`` ``(K, 1, A)``.

    ``folded=True`` mirrors :meth:`Policy.predict_chunk`'s deterministic path (the policy's
    acting plan: normalization folded into the first layer, weights stored transposed);
    ``folded=False`` mirrors ``head.linear(policy.features(policy.normalize_obs(obs)))``.
    """

    def __init__(self, policies: Sequence[Policy], folded: bool) -> None:
        members = [policy_layers(p) or [] for p in policies]
        tensors = [t for ls in members for layer in ls for t in (layer.weight, layer.bias)]
        cfg = policies[0].config
        if cfg.normalize_obs:
            tensors += [t for p in policies for t in (p.obs_mean, p.obs_std)]
        if not cfg.discrete:
            tensors += [t for p in policies for t in (p.act_offset, p.act_scale)]
        self.watch = Watch(tensors)  # what the plan copied; checked on every call
        self.normalize = policies[0].config.normalize_obs and not folded
        with torch.no_grad():
            if folded:
                plans = [plan for p in policies if (plan := p._fast_plan()) is not None]
                assert len(plans) == len(policies)  # stackable: MLPs with a linear head
                self.layers = [
                    (
                        torch.stack([pl.layers[i][1] for pl in plans]).unsqueeze(1),
                        torch.stack([pl.layers[i][0] for pl in plans]),
                    )
                    for i in range(len(members[0]))
                ]
            else:
                self.layers = StackedMLP(members).layers()
            self.obs_mean = torch.stack([p.obs_mean.flatten() for p in policies]).unsqueeze(1)
            self.obs_std = torch.stack([p.obs_std.flatten() for p in policies]).unsqueeze(1)
            self.act_offset = torch.stack([p.act_offset for p in policies]).unsqueeze(1)
            self.act_scale = torch.stack([p.act_scale for p in policies]).unsqueeze(1)

    def current(self) -> bool:
        """False once any member's weights or statistics changed: rebuild the plan."""
        return self.watch.current()

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs if obs.dtype == torch.float32 else obs.float()
        x = x.flatten(1)
        if self.normalize:
            x = (x - self.obs_mean) / self.obs_std
        return stacked_forward(self.layers, x)
