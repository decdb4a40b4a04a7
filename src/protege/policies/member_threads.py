"""The members of a stacked network spread over the CPUs: one Python thread per group.

A :class:`~protege.policies.stacked.StackedMLP`'s members are independent networks, and
their products are the bulk of a stacked fit (ThriftyDAgger's twin critics, an ensemble's
BC members). With torch on one thread (protege's default: OpenMP threads spin at every
product and lose badly on a busy machine), :func:`run` splits the members into contiguous
groups and computes each group's products in its own thread (the calling thread takes the
first group); torch releases the GIL inside each product, so the groups run in parallel.
Every member's arithmetic is the same products on the same values as in one batched call,
so the results are bit-identical to one thread (``tests/test_member_threads.py``; MKL on the
machines measured, an AMD EPYC and an Intel Xeon): a group's batched product gives each
member the bits of the whole stack's, except a lone member's product with one output column
(another kernel), which is why :class:`~protege.policies.stacked.StackedBackprop` takes every
member's last layer in one call. A thread waiting for the others sleeps rather than spins,
so on a loaded machine the cost is a few thread switches per step
(``benchmarks/ensemble_speed.py``).

The thread count (:func:`threads`): one per member up to the CPUs this process may use
(``taskset -c 0 …`` gives it one), when torch itself runs on one thread and a member's largest
product in a step is at least :data:`MIN_WORK` multiply-adds; with more torch threads the
products are already parallel, and with smaller products the hand-offs and the Python between
them (which holds the GIL) cost more than the second CPU gives, so the members stay in the
calling thread. :func:`set_threads` fixes it (1: never).

Threads are the fallback: where fork is available (Linux), the stacked fits put a group of
members in a forked process instead (:mod:`~protege.policies.member_procs`), which hands no
GIL back and forth and gains at every size measured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

MIN_WORK = 12_000_000
"""Multiply-adds of a member's largest product per step (rows × inputs × outputs) from which
its members get threads of their own. Measured (``benchmarks/member_threads_size.py``, 2-core
Intel Xeon VM): stacked BC of 5 members took 1.20× the wall time in two threads at 4.2 million
(256-wide layers, batch 64: ``protege demo``'s ensembles), 0.96-0.99× at 8.4-9.4 million,
0.78-0.83× at 16.8 million; the success critic's fit 1.42× at 4.2 million, 0.93× at 16.8
(256-wide, batch 256: its default)."""

_pool: ThreadPoolExecutor | None = None
_workers = 0
_fixed: int | None = None


def _forget_pool() -> None:
    # A forked child has none of the parent's threads: it starts its own pool if it needs one.
    global _pool, _workers
    _pool, _workers = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def set_threads(n: int | None) -> None:
    """Use at most ``n`` threads for a stacked fit's members (None: :func:`threads`' rule)."""
    global _fixed
    if n is not None and n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    _fixed = n


def cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads(members: int, work: int | None = None) -> int:
    """Threads for ``members`` stacked members whose largest product per step is ``work``
    multiply-adds (None: large): :func:`set_threads`' number if given, else one per member up
    to :func:`cpus` when torch runs on one thread and ``work`` is at least :data:`MIN_WORK`,
    else 1."""
    if _fixed is not None:
        return max(1, min(_fixed, members))
    if torch.get_num_threads() != 1 or (work is not None and work < MIN_WORK):
        return 1
    return max(1, min(cpus(), members))


def product_work(rows: int, layer_shapes: list[tuple[int, int]]) -> int:
    """Multiply-adds of the largest of a member's products on ``rows`` rows through layers
    of weight shapes ``(outputs, inputs)``: what :func:`threads` weighs."""
    return rows * max(o * i for o, i in layer_shapes)


def groups(members: int, n_threads: int | None = None, work: int | None = None) -> list[slice]:
    """``members`` split into contiguous groups, one per thread (``n_threads``, else
    :func:`threads` of ``members`` and ``work``), sizes differing by at most 1 (the first
    groups the larger)."""
    n = threads(members, work) if n_threads is None else max(1, min(n_threads, members))
    size, extra = divmod(members, n)
    out, start = [], 0
    for g in range(n):
        stop = start + size + (1 if g < extra else 0)
        out.append(slice(start, stop))
        start = stop
    return out


def _worker_init() -> None:
    torch.set_num_threads(1)


def _in_worker(fn: Callable[[slice], None], group: slice, flush_denormal: bool) -> None:
    # Grad mode and the denormal flag are per thread: set them as the caller has them.
    torch.set_flush_denormal(flush_denormal)
    try:
        with torch.no_grad():
            fn(group)
    finally:
        torch.set_flush_denormal(False)


def run(fn: Callable[[slice], None], parts: list[slice], flush_denormal: bool = False) -> None:
    """``fn(group)`` for every group of ``parts``, the first in the calling thread and the
    others in worker threads; returns once all are done, raising the first error.
    ``flush_denormal``: the workers flush denormals (as ``torch.set_flush_denormal(True)``
    makes the calling thread do)."""
    global _pool, _workers
    if len(parts) == 1:
        fn(parts[0])
        return
    if _pool is None or _workers < len(parts) - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _workers = len(parts) - 1
        _pool = ThreadPoolExecutor(_workers, "protege-members", _worker_init)
    futures: list[Future[None]] = [
        _pool.submit(_in_worker, fn, g, flush_denormal) for g in parts[1:]
    ]
    try:
        fn(parts[0])
    finally:
        errors = [f.exception() for f in futures]
    for err in errors:
        if err is not None:
            raise err
