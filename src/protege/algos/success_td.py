"""ThriftyDAgger's success critic trained by TD with its twin networks stacked.

:class:`~protege.policies.success_q.SuccessQ` holds two Q networks of one shape that see the same
rows; :func:`td_fit` trains them as one :class:`~protege.policies.stacked.StackedMLP` with the
backward pass written out, instead of two ``nn.Sequential`` forwards and autograd. The
objective is :func:`~protege.algos.thrifty.fit_success_q`'s: both twins' squared TD error
against r + γ(1−d)·min(Q1', Q2')(s', a'), Q = sigmoid of the network's output (the output of
the executed action where actions are discrete), Polyak-averaged target twins updated every
second step, Adam (protege's flat AdamW, no weight decay). Batches draw the same rows from
the same generator; values agree with autograd's to float rounding.

Shape letters: T twins (2), B rows, I inputs, O outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from protege.algos.optim import RowsAdamW
from protege.errors import TrainingError
from protege.policies.stacked import StackedBackprop, StackedMLP, stacked_forward
from protege.policies.success_q import SuccessQ, critic_inputs, pick, twin_layers

if TYPE_CHECKING:
    from protege.configs.methods import ThriftyConfig


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
    The trained weights end in ``critic``; returns the mean loss of the last 100 steps."""
    layers = twin_layers(critic)
    mlp = StackedMLP(layers)
    target = StackedMLP(layers)
    target_layers = target.layers()
    net = StackedBackprop(mlp)
    # The twins' parameters back to back, q1's then q2's: the layout of one FlatAdamW over
    # both networks, updated as one tensor as it would be.
    opt = RowsAdamW([mlp.flat.view(-1)], [mlp.grad.view(-1)], lr=config.q_lr)
    # Polyak averaging parameter by parameter, as on the networks' own tensors.
    critic_params = [t for p in (*mlp.weights, *mlp.biases) for t in p]
    target_params = [t for p in (*target.weights, *target.biases) for t in p]
    # Every row's inputs, TD terms and actions in one tensor: a batch is one gather.
    with torch.no_grad():
        x = critic_inputs(critic, batch["obs"], batch["act"])
        x_next = critic_inputs(critic, batch["next_obs"], batch["next_act"])
        columns = [x, x_next, batch["reward"][:, None], batch["done"][:, None]]
        if critic.n_actions:
            columns += [
                batch["act"].float().reshape(-1, 1),
                batch["next_act"].float().reshape(-1, 1),
            ]
        packed = torch.cat(columns, dim=1).contiguous()
    n_in = x.shape[1]
    n = len(packed)
    gamma, polyak = config.gamma, config.polyak
    losses: list[float] = []
    for step in range(config.q_steps):
        rows = torch.randint(n, (config.q_batch - n_pos,), generator=gen)
        if n_pos:
            rows = torch.cat(
                [rows, positives[torch.randint(len(positives), (n_pos,), generator=gen)]]
            )
        b = packed.index_select(0, rows)
        a, a_next = (b[:, 2 * n_in + 2], b[:, 2 * n_in + 3]) if critic.n_actions else (None, None)
        t = pick(stacked_forward(target_layers, b[:, n_in : 2 * n_in]).sigmoid_(), a_next)
        y = b[:, 2 * n_in] + (1.0 - b[:, 2 * n_in + 1]).mul_(gamma) * torch.minimum(t[0], t[1])
        q = pick(net.forward(b[:, :n_in]).sigmoid(), a)
        diff = q - y
        if step >= config.q_steps - 100:
            losses.append(float(diff.square().mean(1).sum()))
        # Autograd's chain, operation for operation: mean (1/B), square (2·diff), sigmoid
        # (g·(1 − q)·q); the gradient of every other action's output is 0.
        dz = diff.mul_(2.0).mul_(1.0 / len(rows)).mul_(1.0 - q).mul_(q)
        grad = net.output_grad()
        if critic.n_actions:
            assert a is not None
            grad.zero_().scatter_(2, a.long().view(1, -1, 1).expand(2, -1, 1), dz.unsqueeze(2))
        else:
            grad.copy_(dz.unsqueeze(2))
        net.backward()
        opt.step()
        if step % 2 == 1:
            torch._foreach_mul_(target_params, polyak)
            torch._foreach_add_(target_params, critic_params, alpha=1.0 - polyak)
    mlp.unstack_into(layers)
    if not all(bool(torch.isfinite(p).all()) for p in critic.parameters()):
        raise TrainingError(
            f"the success critic's TD fit diverged within {config.q_steps} steps (its weights "
            "are not finite); this round's learner is not saved, the earlier rounds' are kept; "
            "lower q_lr, or check the stored rewards and observations",
            step=config.q_steps,
            kept_step=0,
        )
    return sum(losses) / len(losses) if losses else float("nan")
