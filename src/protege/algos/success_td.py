"""ThriftyDAgger's success critic trained by TD with its twin networks stacked.

:class:`~protege.policies.success_q.SuccessQ` holds two Q networks of one shape that see the same
rows; :func:`td_fit` trains them as one :class:`~protege.policies.stacked.StackedMLP` with the
backward pass written out, instead of two ``nn.Sequential`` forwards and autograd. The
objective is :func:`~protege.algos.thrifty.fit_success_q`'s: both twins' squared TD error
against r + γ(1−d)·min(Q1', Q2')(s', a'), Q = sigmoid of the network's output (the output of
the executed action where actions are discrete), Polyak-averaged target twins updated every
second step, Adam (protege's flat AdamW, no weight decay). Batches draw the same rows from
the same generator; values agree with autograd's to float rounding. Where a second CPU is
free, each twin's hidden layers and backward pass run in their own thread
(:mod:`~protege.policies.member_threads`), with the bits of one thread.

Shape letters: T twins (2), B rows, I inputs, O outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch

from protege.algos.optim import RowsAdamW
from protege.errors import TrainingError
from protege.policies import member_procs, member_threads
from protege.policies.stacked import StackedBackprop, StackedMLP
from protege.policies.success_q import SuccessQ, critic_inputs, pick, twin_layers

if TYPE_CHECKING:
    from protege.configs.methods import ThriftyConfig


def _hidden(
    target: StackedBackprop, s_next: torch.Tensor, net: StackedBackprop, s: torch.Tensor, m: slice
) -> None:
    target.hidden(s_next, m)
    net.hidden(s, m)


def _own_twin(pair: member_procs.Pair, own: slice, fn: Callable[[slice], None]) -> None:
    fn(own)
    pair.meet()


def _split_twins(
    net: StackedBackprop, target_net: StackedBackprop, batch: int
) -> tuple[member_procs.Pair, Callable[[Callable[[slice], None]], None], slice]:
    """Fork the TD fit's second process. Each process computes its own twin's hidden layers
    and backward pass (then meets the other), both compute the twins' last layers and the
    loss from the shared last hidden layers, and each takes the AdamW and Polyak updates of
    its own part of the flat buffers (shared): the first 64·n entries, twin 1's first
    parameters, here, the rest in the child. Cut at a multiple of 64 entries, each part's
    elements take the vector or scalar path of the fused kernels as in one call over the
    whole buffer. Returns the pair (the steps' context), the twins' runner and the part."""
    mlp = net.mlp
    for buf in (mlp.flat, mlp.grad, target_net.mlp.flat):
        buf.share_memory_()
    net.share(batch)
    target_net.share(batch)
    cut = mlp.size // 64 * 64
    pair = member_procs.Pair.fork()  # the child runs on from here: nothing can raise before
    own = slice(0, cut) if pair.role == 0 else slice(cut, None)  # the caller's `with pair`
    return pair, partial(_own_twin, pair, slice(pair.role, pair.role + 1)), own


def td_fit(
    critic: SuccessQ,
    batch: dict[str, torch.Tensor],
    positives: torch.Tensor,
    n_pos: int,
    config: ThriftyConfig,
    gen: torch.Generator,
) -> float:
    """``config.q_steps`` TD steps on ``batch`` (every transition: obs, act, reward,
    next_obs, next_act, done); each batch holds ``n_pos`` rows drawn from ``positives``.
    The trained weights end in ``critic``; returns the mean loss of the last 100 steps.
    Where a second CPU is free, the twins step in two processes
    (:class:`~protege.policies.member_procs.Pair`), else in threads; the same bits."""
    shapes = [(layer.out_features, layer.in_features) for layer in twin_layers(critic)[0]]
    work = member_threads.product_work(config.q_batch, shapes)
    fit = partial(_fit, critic, batch, positives, n_pos, config, gen)
    if len(member_procs.groups(2, config.q_steps, work)) == 2:
        state = gen.get_state()
        try:
            return fit(forked=True)
        except member_procs.PairBroken:  # the child failed: start over in this process
            gen.set_state(state)
    return fit(forked=False)


def _fit(
    critic: SuccessQ,
    batch: dict[str, torch.Tensor],
    positives: torch.Tensor,
    n_pos: int,
    config: ThriftyConfig,
    gen: torch.Generator,
    *,
    forked: bool,
) -> float:
    gamma, polyak = config.gamma, config.polyak
    layers = twin_layers(critic)
    mlp = StackedMLP(layers)
    target = StackedMLP(layers)
    net, target_net = StackedBackprop(mlp), StackedBackprop(target)
    # The twins' parameters back to back, q1's then q2's: the layout of one FlatAdamW over
    # both networks, updated as one tensor as it would be.
    params, grads, targets = mlp.flat.view(-1), mlp.grad.view(-1), target.flat.view(-1)
    # Every row's inputs, TD terms and actions in one tensor: a batch is one gather. The
    # discount column γ(1 − done) is the product the target takes, rounded the same way.
    with torch.no_grad():
        x = critic_inputs(critic, batch["obs"], batch["act"])
        x_next = critic_inputs(critic, batch["next_obs"], batch["next_act"])
        columns = [x, x_next, batch["reward"][:, None], (1.0 - batch["done"][:, None]) * gamma]
        if critic.n_actions:
            columns += [
                batch["act"].float().reshape(-1, 1),
                batch["next_act"].float().reshape(-1, 1),
            ]
        packed = torch.cat(columns, dim=1).contiguous()
    n_in = x.shape[1]
    c_r = 2 * n_in  # reward, discount, action, next action
    B = config.q_batch
    rows = torch.empty(B, dtype=torch.long)
    b = torch.empty(B, packed.shape[1])
    y = torch.empty(B)
    losses: list[torch.Tensor] = []
    # The twins in parallel where a second CPU is free and the products are large enough:
    # in two processes or in threads (:func:`_split_twins`).
    work = member_threads.product_work(B, [(w.shape[1], w.shape[2]) for w in mlp.weights])
    steps: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    twins: Callable[[Callable[[slice], None]], None]
    twins = partial(member_threads.run, parts=member_threads.groups(2, work=work))
    own = slice(None)  # the part of the flat buffers this process updates
    if forked:
        steps, twins, own = _split_twins(net, target_net, B)
    with steps:
        opt = RowsAdamW([params[own]], [grads[own]], lr=config.q_lr)
        for step in range(config.q_steps):
            torch.randint(len(packed), (B - n_pos,), generator=gen, out=rows[: B - n_pos])
            if n_pos:
                draw = torch.randint(len(positives), (n_pos,), generator=gen)
                torch.index_select(positives, 0, draw, out=rows[B - n_pos :])
            torch.index_select(packed, 0, rows, out=b)
            a, a_next = (b[:, c_r + 2], b[:, c_r + 3]) if critic.n_actions else (None, None)
            s_next, s_now = target_net.prepare(b[:, n_in:c_r]), net.prepare(b[:, :n_in])
            twins(partial(_hidden, target_net, s_next, net, s_now))
            t = pick(target_net.last().sigmoid_(), a_next)
            torch.addcmul(b[:, c_r], b[:, c_r + 1], torch.minimum(t[0], t[1]), out=y)
            q = pick(net.last().sigmoid_(), a)
            diff = q.sub(y)
            if step >= config.q_steps - 100:
                losses.append(diff.square().mean(1).sum())
            # Autograd's chain, operation for operation: mean (1/B), square (2·diff), sigmoid
            # (g·(1 − q)·q); the gradient of every other action's output is 0.
            dz = diff.mul_(2.0).mul_(1.0 / B).mul_(1.0 - q).mul_(q)
            grad = net.output_grad()
            if critic.n_actions:
                assert a is not None
                rows_a = a.long().view(1, -1, 1).expand(2, -1, 1)
                grad.zero_().scatter_(2, rows_a, dz.unsqueeze(2))
            else:
                grad.copy_(dz.unsqueeze(2))
            twins(net.backward)
            opt.step()
            if step % 2 == 1:
                # Polyak averaging, element by element as on the networks' own tensors.
                targets[own].mul_(polyak).add_(params[own], alpha=1.0 - polyak)
    mlp.unstack_into(layers)
    if not all(bool(torch.isfinite(p).all()) for p in critic.parameters()):
        raise TrainingError(
            f"the success critic's TD fit diverged within {config.q_steps} steps (its weights "
            "are not finite); this round's learner is not saved, the earlier rounds' are kept; "
            "lower q_lr, or check the stored rewards and observations",
            step=config.q_steps,
            kept_step=0,
        )
    return sum(float(v) for v in losses) / len(losses) if losses else float("nan")
