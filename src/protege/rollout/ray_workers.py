"""Ray workers that run rollout units (:mod:`protege.rollout.remote`) and stream episodes back.

:class:`RayWorkers` connects to a Ray cluster (``address``), or starts a local one bound to
127.0.0.1 when only a number of workers is given, and holds that many actors (one CPU each).
Each actor loads the run's plugins, then runs one unit at a time; every message a unit emits
(a finished episode) is streamed to the driver as it is produced (a Ray streaming generator),
and the driver alone commits it. A worker that dies (killed, out of memory, its node lost) is
replaced and its unit run again from the start on the new one; the driver drops the messages
it already has (:class:`~protege.rollout.remote.Deduplicate`), so nothing is committed twice.
The messages that arrive together are fed as a group and then flushed: the driver appends
their episodes with one fsync per file (a group commit) and counts them once on disk.

Ray is optional (``pip install 'protege[distributed]'``): it is imported only here, when
workers are asked for.

Example:
    >>> with RayWorkers(2) as workers:            # a local Ray on 127.0.0.1, 2 actors
    ...     result = collect(task, "demos/lunar", 100, seed=0, workers=workers)
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import tempfile
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from protege.errors import ConfigError, ProtegeError
from protege.rollout.remote import Deduplicate, UnitDone, join_shared, split_shared

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Set to "0", a single-node Ray binds 127.0.0.1 instead of the network card's address."""
WORKER_NICENESS = 0
"""What a local Ray's workers add to their niceness (Ray's ``worker_niceness``; its default,
15, gives the rollouts only the CPU other processes leave). A cluster keeps its own."""
MAX_GROUP = 64
"""Most messages the driver takes off the queue (and so commits) as one group."""
MAX_ATTEMPTS = 3
"""Runs of one unit on workers that died before it is given up (a unit that kills every
worker it runs on is a bug, not bad luck)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--workers/--ray-address need Ray: pip install 'protege[distributed]'"
        ) from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """A ConfigError unless something listens at ``address`` (``host:port`` of a Ray head's
    GCS; "auto" and ``ray://`` addresses are left to Ray)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT (or 'auto')")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"--ray-address {address}: no Ray cluster reachable there ({exc}); start one with "
            "`ray start --head` on that machine, or check the address and port"
        ) from None


def start_local(num_cpus: int | None, **kwargs: Any) -> str:
    """Start a single-node Ray in this process (``ray.init(address="local")``) bound to
    127.0.0.1 only, in a new short temp dir under /tmp (Unix socket paths must stay under
    ~107 characters), which it returns; ``ray.shutdown()`` stops it.

    Ray decides at import time whether to use the network card's address (its
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` switch, read into ``ray_constants``): the switch is
    set for the processes this starts, and for this process while it starts them, even if Ray
    was imported before.

    The workers run at this process's priority (:data:`WORKER_NICENESS`), as the rollouts
    would in this process: Ray's default lowers theirs by 15, which on a busy machine gives
    them less CPU (a small, inconsistent effect in BENCHMARKS.md's "Rollouts on Ray")."""
    ray = _import_ray()
    system = {"worker_niceness": WORKER_NICENESS, **kwargs.pop("_system_config", {})}
    from ray._private import ray_constants

    temp = tempfile.mkdtemp(prefix="pr-", dir="/tmp")
    before_env, before = os.environ.get(LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            _temp_dir=temp,
            _node_ip_address="127.0.0.1",
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _system_config=system,
            **kwargs,
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = before_env
    return temp


class _Worker:
    """The actor: loads the plugins, then runs units, streaming their messages.

    Every unit runs on the same thread, the worker's one runner thread (started with its
    first unit), while the actor's own thread streams the messages: a GL context (MuJoCo's
    offscreen renderer, one per process) is current in one thread at a time, and a unit on a
    new thread while the previous unit's thread was still exiting failed with EGL_BAD_ACCESS.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None]] | None = None

    def _runner(self) -> None:
        assert self._jobs is not None
        while True:
            self._jobs.get()()

    def setup(self, plugins: list[str], threads: int) -> int:
        import torch

        from protege.tasks import load_plugins

        torch.set_num_threads(threads)
        try:
            load_plugins(plugins)
        except ProtegeError as exc:
            raise ConfigError(
                f"a Ray worker on {socket.gethostname()} cannot load the plugins: {exc} "
                "(every node needs the plugin: the same path, shared storage, or an "
                "installed package)"
            ) from None
        return os.getpid()

    def run(self, unit: Any, shared: dict[str, Any] | None = None) -> Iterator[Any]:
        unit = join_shared(unit, shared)  # Ray resolved the shared object's ref to a copy
        messages: queue.Queue[Any] = queue.Queue()
        end = object()

        def target() -> None:
            try:
                unit.run(messages.put)
                messages.put(end)
            except BaseException as exc:  # handed to the generator, raised there
                messages.put(_Failed(exc))

        if self._jobs is None:
            self._jobs = queue.Queue()
            threading.Thread(target=self._runner, daemon=True, name="protege-unit").start()
        self._jobs.put(target)
        while True:
            item = messages.get()
            if item is end:
                return
            if isinstance(item, _Failed):
                raise item.sendable()
            yield item

    def hold(self, obj: Any, shared: dict[str, Any] | None = None) -> None:
        """Keep ``obj`` (with its shared parts put back) for :meth:`call` (a fleet's shard)."""
        self.held = join_shared(obj, shared)

    def call(self, method: str, *args: Any) -> Any:
        """``method(*args)`` of the object held."""
        return getattr(self.held, method)(*args)


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def sendable(self) -> BaseException:
        """The error, or, if Ray could not send it (an OpenGL error holds ctypes pointers),
        a RuntimeError with its type, text and traceback: the driver sees what happened,
        not Ray's failure to pickle it."""
        from ray import cloudpickle  # what Ray sends an error with

        try:
            cloudpickle.dumps(self.exc)
        except Exception:
            text = "".join(traceback.format_exception(self.exc))
            return RuntimeError(f"on a Ray worker: {text}")
        return self.exc


class RayWorkers:
    """``workers`` Ray actors that run rollout units; the driver commits what they stream.

    Args:
        workers: actors (one CPU each). None with an ``address``: one per CPU of the cluster.
        address: a running cluster's ``HOST:PORT`` (or "auto"); None starts a local Ray bound
            to 127.0.0.1 in a short temp dir, shut down by :meth:`close`. If this process is
            already connected to Ray (``ray.init`` was called), that connection is used.
        plugins: plugins each worker imports before its first unit (default: the ones this
            process loaded, :func:`protege.tasks.loaded_plugins`).
        threads: torch threads per worker.

    A worker that cannot get a CPU within :attr:`start_timeout` seconds (the cluster's CPUs
    held by another job) is a :class:`~protege.errors.ConfigError`, not a wait without end.
    """

    start_timeout: float = 300.0
    """Seconds a worker may wait for a CPU and start (an autoscaling cluster may need more)."""

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        plugins: Sequence[str] | None = None,
        threads: int = 1,
    ):
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers {workers}: needs at least 1 worker")
        if workers is None and address is None:
            raise ConfigError("RayWorkers needs a number of workers or a Ray address")
        ray = self.ray = _import_ray()
        from protege.tasks import loaded_plugins

        self.plugins = list(loaded_plugins() if plugins is None else plugins)
        self.threads = threads
        self.lost = 0
        """Workers that died and were replaced (over this object's life): each cost a re-run
        of its unit, or of its held robots' episodes in flight."""
        self.started = False
        self.shared_puts = 0
        """Objects put once for all the units of a :meth:`run` (over this object's life)."""
        self._temp: str | None = None
        self._held: list[Any] = []
        self._held_shared: Any = None
        if address is not None:
            check_address(address)
        if not ray.is_initialized():
            self._connect(workers, address)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.n = cpus if workers is None else workers
        if self.n < 1 or self.n > cpus:
            where = address or "the local Ray"
            self.close()
            raise ConfigError(
                f"--workers {self.n}: {where} has {cpus} CPUs (one per worker); ask for fewer "
                "workers or add nodes"
            )
        self.actors = [self._actor() for _ in range(self.n)]
        self.pids = [self._setup(a) for a in self.actors]

    def _connect(self, workers: int | None, address: str | None) -> None:
        ray = self.ray
        kwargs: dict[str, Any] = dict(
            include_dashboard=False, log_to_driver=False, configure_logging=False
        )
        if address is None:
            self._temp = start_local(workers)
        else:
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"--ray-address {address}: cannot join the cluster: {exc}"
                ) from None
        self.started = True

    def _actor(self) -> Any:
        cls = self.ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Worker)
        return cls.remote()

    def _setup(self, actor: Any) -> int:
        try:
            ready = actor.setup.remote(self.plugins, self.threads)
            return int(self.ray.get(ready, timeout=self.start_timeout))
        except self.ray.exceptions.GetTimeoutError:
            free = self.ray.available_resources().get("CPU", 0)
            total = self.ray.cluster_resources().get("CPU", 0)
            self.close()
            raise ConfigError(
                f"a Ray worker did not start within {self.start_timeout:.0f} s: the cluster has "
                f"{total:.0f} CPUs, {free:.0f} free (each worker needs one; another job or "
                "another set of workers may hold them)"
            ) from None
        except self.ray.exceptions.RayTaskError as exc:
            self.close()
            cause = exc.cause if isinstance(exc.cause, ProtegeError) else None
            raise cause or ConfigError(f"a Ray worker failed to start: {exc}") from None
        except self.ray.exceptions.RayActorError as exc:
            self.close()
            raise ConfigError(
                f"a Ray worker failed to start ({exc}); every node needs protege and its "
                "dependencies installed (pip install 'protege[distributed]')"
            ) from None

    # ---------------------------------------------------------------------- running
    def run(
        self,
        units: Sequence[Any],
        feed: Callable[[int, Any], None],
        flush: Callable[[], None] | None = None,
    ) -> None:
        """Run every unit on the workers; ``feed(unit_index, message)`` receives each
        message once, in the order its unit emitted them, units interleaved. Returns when
        every unit has sent its :class:`~protege.rollout.remote.UnitDone`. A worker's error
        is raised here (a protege error as itself).

        ``flush()`` is called each time the messages that had arrived together (up to
        :data:`MAX_GROUP`) have all been fed, and before a worker's error is raised: the
        driver commits them to the store as one group
        (:class:`~protege.rollout.remote.GroupCommit`), one fsync for all of them.

        What all the units hold alike (the learner's weights, the gate, the expert) is put in
        Ray's object store once (:func:`~protege.rollout.remote.split_shared`) and each
        call passes its ref: the weights are serialized once per call, not once per unit."""
        ray = self.ray
        units, common = split_shared(units)
        shared = ray.put(common) if common else None
        self.shared_puts += shared is not None
        todo: deque[int] = deque(range(len(units)))
        attempts = [0] * len(units)
        lock = threading.Lock()
        out: queue.Queue[tuple[Any, ...]] = queue.Queue()
        stop = threading.Event()

        def serve(w: int) -> None:
            while not stop.is_set():
                with lock:
                    if not todo:
                        return
                    u = todo.popleft()
                try:
                    call = self.actors[w].run.options(num_returns="streaming")
                    gen = call.remote(units[u], shared)
                    for seq, ref in enumerate(gen):
                        out.put(("msg", u, seq, ray.get(ref)))
                except ray.exceptions.RayTaskError as exc:
                    out.put(("error", exc.cause if exc.cause is not None else exc))
                    return
                except ray.exceptions.RayActorError as exc:
                    attempts[u] += 1
                    if attempts[u] >= MAX_ATTEMPTS or stop.is_set():
                        out.put(("error", RuntimeError(f"unit {u}: {attempts[u]} workers died")))
                        return
                    try:
                        self._replace(w)
                    except Exception as again:
                        out.put(("error", again))
                        return
                    out.put(("lost", u, str(exc).splitlines()[0] if str(exc) else ""))
                    with lock:
                        todo.appendleft(u)

        threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in range(self.n)]
        for t in threads:
            t.start()
        dedupe = Deduplicate()
        remaining = len(units)
        try:
            while remaining:
                items = [out.get()]  # and whatever else has arrived by now: one group
                with contextlib.suppress(queue.Empty):
                    while len(items) < MAX_GROUP:
                        items.append(out.get_nowait())
                for item in items:
                    if item[0] == "error":
                        if flush is not None:
                            flush()
                        raise item[1]
                    if item[0] == "lost":
                        self.lost += 1
                        continue
                    _, u, seq, msg = item
                    if dedupe.fresh(u, seq):
                        feed(u, msg)
                        if isinstance(msg, UnitDone):
                            remaining -= 1
                if flush is not None:
                    flush()
        finally:
            stop.set()

    def _replace(self, w: int) -> None:
        """A new actor in place of worker ``w`` (which died), set up, holding what it held."""
        self.actors[w] = actor = self._actor()
        self.pids[w] = int(self.ray.get(actor.setup.remote(self.plugins, self.threads)))
        if w < len(self._held):
            self.ray.get(actor.hold.remote(self._held[w], self._held_shared))

    # --------------------------------------------------------------- held objects
    def hold(self, objects: Sequence[Any]) -> None:
        """Worker w holds ``objects[w]`` for :meth:`call` (one object each, replacing what it
        held; a fleet's :class:`~protege.rollout.fleet_shards.RobotShard`). What they hold
        alike (the task, the expert) is put in Ray's object store once."""
        if len(objects) > self.n:
            raise ConfigError(f"{len(objects)} objects to hold on {self.n} workers")
        stripped, common = split_shared(objects)
        self._held, self._held_shared = stripped, self.ray.put(common) if common else None
        self.shared_puts += self._held_shared is not None
        refs = [self.actors[w].hold.remote(o, self._held_shared) for w, o in enumerate(stripped)]
        for w, ref in enumerate(refs):
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayActorError:  # died since its last unit: replaced
                self.lost += 1
                self._replace(w)

    def call(
        self, calls: Mapping[int, tuple[str, tuple[Any, ...]]]
    ) -> tuple[dict[int, Any], list[int]]:
        """``{w: (method, args)}``: the methods of the objects the workers hold, run at once;
        the answers by worker, and the workers that died meanwhile (each replaced by a new one
        holding a fresh copy of the object first sent: the caller restores its state). A
        worker's error is raised here (a protege error as itself)."""
        ray = self.ray
        refs = {w: self.actors[w].call.remote(method, *args) for w, (method, args) in calls.items()}
        try:  # all at once (one wait); on a failure, each apart to find whose it is
            return dict(zip(refs, ray.get(list(refs.values())), strict=True)), []
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError):
            pass
        answers: dict[int, Any] = {}
        lost: list[int] = []
        for w, ref in refs.items():
            try:
                answers[w] = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                raise (exc.cause if exc.cause is not None else exc) from None
            except ray.exceptions.RayActorError:
                lost.append(w)
        for w in lost:
            self.lost += 1
            self._replace(w)
        return answers, lost

    # ---------------------------------------------------------------------- closing
    def close(self) -> None:
        """Kill the actors; shut down the Ray this object started (only that one)."""
        for actor in getattr(self, "actors", []):
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        self.actors = []
        if self.started:
            self.ray.shutdown()
            self.started = False
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def __enter__(self) -> RayWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
