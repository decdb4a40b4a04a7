"""A stacked fit's independent members spread over the CPUs: one forked process per group.

An ensemble's BC members never look at each other while they train: each has its own
data, generator, learning-rate schedule and AdamW rows. So where a second CPU is free,
:func:`run` trains a group of them in a forked child process for the whole fit, while the
calling process trains the first group; the child writes its members' trained parameters
into memory shared with the parent and exits. Threads
(:mod:`~protege.policies.member_threads`) hand the GIL back and forth between every two
products, which costs more than the second CPU gives at the sizes of ``protege demo``'s
ensembles; a process pays one fork per fit and nothing per step. Every member's arithmetic is
the same products on the same values as in one stacked call (a group's batched product gives
each member the bits of the whole stack's), so the results are bit-identical to one process
(``tests/test_member_procs.py``).

Members that read each other every step (ThriftyDAgger's twin critics: the TD target is the
min of both target twins) step together instead: :class:`Pair` forks once per fit, and the
two processes meet wherever one reads what the other wrote
(:func:`protege.algos.success_td.td_fit`). Measured in ``benchmarks/ensemble_speed.py``.

The child only computes: it writes no files, shows no progress bar and leaves with
``os._exit``. If it fails, is killed, or outlives the parent's own group by far (a fork
that deadlocked), the parent kills it and trains that group itself, which gives the same
result or raises the same error as one process would. Linux only (fork), and only when
torch runs on one thread (an OpenMP team does not survive a fork) and
:func:`~protege.policies.member_threads.threads` allows more than one group.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable

import torch

from protege.policies import member_threads

MIN_FIT_WORK = 2_000_000_000
"""Multiply-adds of a member's largest product per step times the fit's steps from which a
fit forks: about 40 ms of one member's products at 96 GFLOP/s, against about 8 ms per fork
measured in ``protege demo``'s process (474 MB). A margin chosen, not a measured
break-even."""

_forks = os.environ.get("PROTEGE_FORKS", "1").strip() not in ("0", "false", "off")


def set_forks(on: bool) -> None:
    """Let stacked fits fork (the default; ``PROTEGE_FORKS=0``, false or off in the
    environment turns it off) or keep them in this process (in threads where they gain)."""
    global _forks
    _forks = on


GRACE_SECONDS = 60.0
"""How long past four times the parent's own group a child may take before it is presumed
stuck, killed, and its group trained by the parent."""


def groups(members: int, steps: int, work: int, min_members: int = 1) -> list[slice]:
    """Contiguous groups of ``members`` (sizes differing by at most 1, the first the larger),
    one per process: more than one where fork is available, torch runs on one thread, more
    than one CPU is free (:func:`~protege.policies.member_threads.threads`, which
    :func:`~protege.policies.member_threads.set_threads` fixes), the fit's ``steps`` times its
    largest product ``work`` reach :data:`MIN_FIT_WORK`, and each group keeps at least
    ``min_members`` members."""
    n = member_threads.threads(members)  # the CPUs free for members, or set_threads' count
    n = min(n, members // max(1, min_members))
    if (
        n < 2
        or not _forks
        or torch.get_num_threads() != 1
        or not sys.platform.startswith("linux")
        or not hasattr(os, "fork")
        or steps * work < MIN_FIT_WORK
    ):
        return [slice(0, members)]
    return member_threads.groups(members, n)


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when its parent dies (``kill -9`` of a run): no
    orphan computes on."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not glibc: a Pair notices at its next meeting
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _fork() -> int:
    """``os.fork()``, or -1 where it fails (no memory for another process): the caller then
    does the child's part itself. Ctrl-C kills the child outright (it is blocked across the
    fork, so no ``KeyboardInterrupt`` can run the caller's code on in the child). Python 3.12+
    warns that forking a process with threads may deadlock the child; the child here only
    computes, and a stuck one is killed."""
    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        pid = -1
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with(parent)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


def _child(fn: Callable[[slice], torch.Tensor], part: slice, out: torch.Tensor) -> None:
    code = 1
    try:
        out.copy_(fn(part).reshape(out.shape))
        code = 0
    except BaseException:  # the parent trains this group itself and raises what it raises
        code = 1
    finally:
        os._exit(code)


def _wait(pid: int, deadline: float) -> bool:
    """True if child ``pid`` exited cleanly by ``deadline``; else it is killed and reaped."""
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def run(fn: Callable[[slice], torch.Tensor], parts: list[slice], row_numel: int) -> torch.Tensor:
    """``fn(part)`` for every group of ``parts`` (see :func:`groups`), each returning its
    members' float32 rows ``(members in part, row_numel)``; the first group in this process,
    the others in forked children. Returns every member's row, in order."""
    if len(parts) == 1:
        return fn(parts[0]).reshape(-1, row_numel)
    children: list[tuple[slice, int, mmap.mmap, torch.Tensor]] = []
    try:
        for part in parts[1:]:
            n = part.stop - part.start
            shared = mmap.mmap(-1, max(1, n * row_numel * 4))  # anonymous, shared with a fork
            out = torch.frombuffer(shared, dtype=torch.float32, count=n * row_numel)
            pid = _fork()
            if pid == 0:
                _child(fn, part, out.view(n, row_numel))
            children.append((part, pid, shared, out))
        start = time.monotonic()
        rows = [fn(parts[0]).reshape(-1, row_numel)]
        deadline = time.monotonic() + 4 * (time.monotonic() - start) + GRACE_SECONDS
        for child in list(children):
            part, pid, _, out = child
            ok = pid > 0 and _wait(pid, deadline)
            children.remove(child)  # reaped: the cleanup below leaves it alone
            rows.append(out.view(-1, row_numel).clone() if ok else fn(part).reshape(-1, row_numel))
        return torch.cat(rows)
    finally:
        for _, pid, _, _ in children:  # left only by an error or Ctrl-C here
            if pid <= 0:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


class PairBroken(RuntimeError):
    """The other process of a :class:`Pair` died or stopped answering."""


class Pair:
    """This process and a forked child stepping through one fit together, each computing
    its own members and meeting at :meth:`meet` wherever one reads what the other wrote
    (tensors moved into shared memory before :meth:`fork`; everything else each process
    keeps and computes for itself). Use as a context manager around the steps: the child
    leaves through ``os._exit`` at its end, clean or not; the parent then waits for it, and
    :class:`PairBroken` tells the parent the child failed (start over in one process)."""

    SPIN_SECONDS = 0.002
    """How long :meth:`meet` polls before it sleeps on the semaphore (the other side is
    normally a fraction of a millisecond behind)."""

    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._arrived = (ctx.Semaphore(0), ctx.Semaphore(0))  # posted by parent, by child
        self.pid = 0
        self.role = 0
        self._parent = os.getpid()

    @classmethod
    def fork(cls) -> Pair:
        """Fork the child; ``role`` is 0 here, 1 in the child."""
        pair = cls()
        parent = os.getpid()
        pair.pid = _fork()
        if pair.pid < 0:
            raise PairBroken("could not fork the second process of a fit")
        pair.role = 1 if pair.pid == 0 else 0
        pair._parent = parent
        return pair

    def meet(self) -> None:
        """Return once the other process has called :meth:`meet` as often as this one."""
        mine, theirs = self._arrived[self.role], self._arrived[1 - self.role]
        mine.release()
        end = time.monotonic() + self.SPIN_SECONDS
        while not theirs.acquire(False):
            if time.monotonic() > end:
                give_up = end + GRACE_SECONDS
                while not theirs.acquire(timeout=1.0):
                    if not self._other_alive() or time.monotonic() > give_up:
                        raise PairBroken("the other process of a forked fit is gone or stuck")
                return

    def _other_alive(self) -> bool:
        if self.role:
            return os.getppid() == self._parent
        done, _ = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.pid = 0
        return not done

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self.role:
            os._exit(0 if kind is None else 1)
        if self.pid:
            if kind is not None:
                os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self.pid = 0
            if kind is None and os.waitstatus_to_exitcode(status) != 0:
                raise PairBroken("the forked half of a fit failed")
