"""Behavioral cloning of K policies at once, as one stacked network.

An ensemble's members are each trained by :func:`protege.algos.bc.fit` from their own seed on
their own data (EnsembleDAgger's and ThriftyDAgger's bootstrap resamples). Where the members
stack (:func:`~protege.policies.stacked.stackable`: MLPs with a ``mse``, ``categorical`` or
``gaussian`` head, one config) and their settings differ only in the seed, :func:`fit` trains
them together: one :class:`~protege.policies.stacked.StackedBackprop` step on ``(K, B, ·)``
batches instead of K :class:`~protege.algos.mlp_step.MLPStep` steps.

The method is :func:`~protege.algos.bc.fit`'s, member by member: member k's training split,
normalization statistics, batch rows (drawn from its own seeded generator, in the same
order), learning-rate schedule and AdamW state (the update is elementwise) are those its own
``bc.fit`` would use; losses and gradients agree to float rounding. Members whose step counts
differ (``BCConfig.steps=None`` derives them from their data sizes) train in groups of equal
step counts. ``bc.fit``'s validation is skipped: :func:`applies` holds only where it would
change nothing in the weights (no early stopping, no restoring the best weights). Where
more CPUs are free, groups of members take their steps in parallel threads
(:mod:`~protege.policies.member_threads`), with the bits of one thread.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from protege.algos import bc
from protege.algos.bc import BCConfig
from protege.algos.optim import RowsAdamW
from protege.data.frames import FrameArray
from protege.data.store import Transitions
from protege.device import fast_paths_apply, resolve_device
from protege.errors import DataError, TrainingError
from protege.policies import member_procs, member_threads
from protege.policies.heads.base import LinearHead
from protege.policies.mlp import FAST_PATHS
from protege.policies.policy import Policy
from protege.policies.stacked import StackedBackprop, StackedMLP, policy_layers, stackable


def applies(
    policies: Sequence[Policy], data: Sequence[Transitions], configs: Sequence[BCConfig]
) -> bool:
    """True if :func:`fit` trains these members as their own ``bc.fit`` would: they stack,
    their observations are arrays (not compressed frames), their settings differ only in
    the seed, and none asks for validation-driven choices or a tensorboard log."""
    if len(configs) < 2 or not stackable(policies):
        return False
    first = dataclasses.replace(configs[0], seed=0)
    return (
        all(dataclasses.replace(c, seed=0) == first for c in configs[1:])
        and first.patience is None
        and not first.restore_best
        and first.tensorboard_dir is None
        and first.fast_path
        and FAST_PATHS
        and first.precision == "fp32"
        and fast_paths_apply(resolve_device(first.device))
        and not any(isinstance(d.obs, FrameArray) for d in data)
    )


@dataclasses.dataclass
class _Member:
    """One member's training setup, as ``bc.fit`` builds it from the member's seed."""

    policy: Policy
    train: bc._Samples
    gen: torch.Generator
    steps: int


def _setup(policy: Policy, data: Transitions, config: BCConfig) -> _Member:
    if data.n_labels == 0:
        raise DataError("no labeled steps to train on")
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    n_eps = len(data.episode_lengths)
    train_eps, _ = bc.split_episodes(n_eps, config.val_fraction, rng)
    if config.fit_normalization:
        lab = data.select_episodes(np.isin(np.arange(n_eps), train_eps))
        policy.set_normalization(lab.obs[lab.labeled], lab.actions[lab.labeled])
    train = bc._Samples(policy, data, train_eps)
    if len(train) == 0:
        raise DataError("the training split has no labeled steps")
    steps = config.steps or max(1, math.ceil(config.epochs * len(train) / config.batch_size))
    return _Member(policy, train, gen, steps)


def fit(
    policies: Sequence[Policy], data: Sequence[Transitions], configs: Sequence[BCConfig]
) -> None:
    """Train ``policies[k]`` on ``data[k]`` with ``configs[k]`` (where :func:`applies`), all
    at once; the weights end in the policies, in eval mode. Torch's global RNG is left
    seeded as the last member's ``bc.fit`` leaves it."""
    members = [_setup(p, d, c) for p, d, c in zip(policies, data, configs, strict=True)]
    for steps in sorted({m.steps for m in members}):
        _train([m for m in members if m.steps == steps], configs[0], steps)
    torch.manual_seed(configs[-1].seed)


def _update(
    net: StackedBackprop,
    head: LinearHead,
    out: torch.Tensor,
    targets: torch.Tensor,
    opt: RowsAdamW,
    lr: float,
    grad_clip: float | None,
    members: slice,
) -> None:
    """The gradient and AdamW step of ``members`` (a group: :mod:`member_threads`) after the
    forward pass ``out``; the step count was advanced (:meth:`RowsAdamW.count`)."""
    grad = net.output_grad()
    # Member by member: each member's loss weighs its own B rows (one call over all K·B rows
    # would weigh them 1/(K·B) and round differently).
    for i in range(len(out))[members]:
        _, member_grad = head.output_loss(out[i], targets[i], None, with_grad=True)
        assert member_grad is not None
        grad[i].copy_(member_grad)
    net.backward(members)
    if grad_clip:
        net.clip_grad_norm_(grad_clip, members)
    opt.update(lr, members)


def _train(members: list[_Member], config: BCConfig, steps: int) -> None:
    """Members with the same number of steps, trained as one stacked network (its groups in
    forked processes where a second CPU is free: :mod:`~protege.policies.member_procs`)."""
    layers = [policy_layers(m.policy) or [] for m in members]
    mlp = StackedMLP(layers)
    shapes = [(w.shape[1], w.shape[2]) for w in mlp.weights]
    work = member_threads.product_work(config.batch_size, shapes)
    # A lone member's product with one output column takes another kernel: two at least.
    parts = member_procs.groups(len(members), steps, work, 2 if shapes[-1][0] == 1 else 1)

    def train(part: slice) -> torch.Tensor:
        show = config.progress and part.start == 0
        return _steps(members[part], config, steps, show, threads=len(parts) == 1)

    rows = member_procs.run(train, parts, mlp.size)
    for m in members:
        m.policy.eval()
    # The losses are never read here (no sync per step): the weights are checked once, and
    # a member gone non-finite leaves every member of the group with its initial weights.
    diverged = [i for i, row in enumerate(rows) if not bool(row.isfinite().all())]
    if diverged:
        raise TrainingError(
            f"training diverged: the weights of ensemble members {diverged} are not finite "
            f"after {steps} steps; kept the initial weights (lower the lr, set grad_clip, or "
            "check the data for huge values)",
            step=steps,
            kept_step=0,
        )
    mlp.flat.copy_(rows)
    mlp.unstack_into(layers)


def _steps(
    members: list[_Member], config: BCConfig, steps: int, progress: bool, threads: bool
) -> torch.Tensor:
    """``steps`` training steps of ``members`` as one stacked network (in groups in parallel
    threads where ``threads`` and the products are large enough); returns each member's
    trained parameters as a row ``(K, size)``, leaving the policies as they were."""
    layers = [policy_layers(m.policy) or [] for m in members]
    mlp = StackedMLP(layers, align=True)
    net = StackedBackprop(mlp)
    opt = RowsAdamW(mlp.rows(), mlp.grad_rows(), lr=config.lr, weight_decay=config.weight_decay)
    head = members[0].policy.head
    assert isinstance(head, LinearHead)  # policy_layers admits linear heads only
    k, b = len(members), config.batch_size
    # Every member's rows in one tensor: a batch is one gather at per-member offsets.
    obs = torch.cat([m.train.obs.flatten(1) for m in members])
    acts = torch.cat([m.train.actions for m in members])
    sizes = [len(m.train) for m in members]
    offsets = torch.as_tensor(np.cumsum([0, *sizes[:-1]]))[:, None]
    # Groups of members in parallel threads, where the products are large enough.
    shapes = [(w.shape[1], w.shape[2]) for w in mlp.weights]
    work = member_threads.product_work(b, shapes)
    parts = member_threads.groups(k, None if threads else 1, work=work)
    # No tqdm object at all without a bar: a forked child must not take tqdm's lock.
    bar = tqdm(range(1, steps + 1), desc=f"bc ×{k}", leave=False) if progress else None
    try:
        torch.set_flush_denormal(True)
        for step in bar if bar is not None else range(1, steps + 1):
            rows = torch.stack(
                [
                    torch.randint(n, (b,), generator=m.gen)
                    for n, m in zip(sizes, members, strict=True)
                ]
            )
            flat = (rows + offsets).view(-1)
            x = net.prepare(obs.index_select(0, flat).view(k, b, -1))
            targets = acts.index_select(0, flat).view(k, b, *acts.shape[1:])
            member_threads.run(partial(net.hidden, x), parts, flush_denormal=True)
            out = net.last()
            opt.count()
            lr = bc._lr(config, step, steps)
            update = partial(_update, net, head, out, targets, opt, lr, config.grad_clip)
            member_threads.run(update, parts, flush_denormal=True)
    finally:
        torch.set_flush_denormal(False)
        if bar is not None:
            bar.close()
    return mlp.flat[:, : mlp.size]
