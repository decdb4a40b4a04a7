"""The round engine every interactive method runs on: rounds, durable labels, resume.

An interactive method (DAgger and its gated descendants HG-DAgger, EnsembleDAgger,
ThriftyDAgger; DART) is round 0 of expert demonstrations, then rounds in which a *gate*
decides at each step who drives and where the expert labels, the labels aggregated with
everything before and a learner trained on the aggregate. Methods differ only in the gate
(``gate_factory``) and in what is trained (``trainer``), so they all run through :func:`run`;
each is one module exporting a :class:`MethodSpec` (see :mod:`protege.algos.registry`). How a
round's episodes are seeded, collected, recorded and read back in order is
:mod:`protege.algos.rounds`; what a run reports is :mod:`protege.algos.results`.

**Every label counted, none lost.** Each episode is appended to the store the moment it ends,
with its round, who acted at each step and which steps carry an expert label; its index
entry also records the episode's index within the round, its seed, the expert queries it
cost and its interventions. All per-round figures are computed from the store, so a resumed
run reports exactly what an uninterrupted one does.

**Resume.** Every random choice of round r's episode e (env seed, gate draws) is derived from
``(seed, r, e)``, every training run from ``(seed, r)``, and training data are ordered by
(round, episode index), never by completion order. A ``kill -9`` loses at most the episodes
in flight; ``run(..., resume=True)`` skips complete rounds, collects only the missing
episodes of a partial round and then reaches the same final numbers as an uninterrupted run
with the same seed (trained learners are checkpointed per round, so it never retrains one).

Example:
    >>> task = protege.tasks.make("lunarlander")
    >>> result = engine.run(task, engine.policy_factory(task), "runs/dagger/store",
    ...                     DAggerConfig(rounds=8, seed=0), dagger.dagger_gate)
    >>> print(result.to_markdown())
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import torch
from tqdm.auto import tqdm

from protege.algos import bc
from protege.algos.remote_rounds import collect_batches
from protege.algos.results import DAggerResult, read_rows, round_row
from protege.algos.resume import check_resumed_config, open_run_store
from protege.algos.rounds import (
    EpisodeEnv,
    EpisodeHook,
    Sources,
    has_external_demos,
    missing_batches,
    ordered,
    stored_indices,
    train_seed,
)
from protege.configs.bc import BCConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.policy import PolicyConfig
from protege.data.store import Store, Transitions, write_atomic
from protege.device import resolve_device
from protege.errors import ConfigError, DataError
from protege.experts.adapters import check_expert
from protege.experts.base import Expert
from protege.policies.policy import Policy
from protege.rollout.evaluate import evaluate, evaluate_expert
from protege.rollout.gates import ExpertGate, Gate, beta_schedule
from protege.rollout.loop import Actor
from protege.tasks.base import Task


class Trainer(Protocol):
    """Trains the learner at the end of a round and checkpoints it (safetensors, no pickle)."""

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> Actor: ...

    def save(self, learner: Any, path: Path) -> None: ...

    def load(self, path: Path) -> Actor: ...


def policy_factory(task: Task, **overrides: Any) -> Callable[[], Policy]:
    """A factory of fresh policies for ``task`` (2×256 MLP by default); the caller seeds
    torch before calling it."""
    obs_space, act_space = task.spaces

    def make() -> Policy:
        return Policy(PolicyConfig.for_spaces(obs_space, act_space, **overrides))

    return make


@dataclass
class PolicyTrainer:
    """One policy trained by behavioral cloning on every label so far."""

    make_policy: Callable[[], Policy]
    bc: BCConfig
    retrain: str = "scratch"

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> Policy:
        if self.retrain == "warm" and isinstance(previous, Policy):
            policy = copy.deepcopy(previous)
            # Keep the input scaling the network was trained with.
            cfg = dataclasses.replace(self.bc, seed=seed, fit_normalization=False)
        else:
            torch.manual_seed(seed)
            policy = self.make_policy()
            cfg = dataclasses.replace(self.bc, seed=seed)
        bc.fit(policy, data, cfg)
        return policy

    def save(self, learner: Any, path: Path) -> None:
        learner.save(path)

    def load(self, path: Path) -> Policy:
        return Policy.load(path).to(resolve_device(self.bc.device))


# ------------------------------------------------------------------------------ gates
@dataclass
class RoundContext:
    """What a gate factory may use to build round ``round``'s gate."""

    task: Task
    round: int
    learner: Any | None
    """The learner that drives this round (None in round 0)."""
    data: Transitions | None
    """Every stored step of the earlier rounds, ordered by (round, episode index)."""
    config: DAggerConfig
    beta: float
    """β of this round under ``config.beta``."""
    previous: Any | None = None
    """The learner that drove the round before (None before round 2); DART measures its
    error on that round's states, which it was not trained on."""


GateFactory = Callable[[RoundContext], Gate]
BatchHook = Callable[[Gate, RoundContext, "Transitions | None"], None]
"""Called before each batch of episodes with the round's stored steps so far (or None)."""
Collector = Callable[[Sources, Store, Gate, Any, int, list[int], int], None]
"""``(sources, store, gate, learner, round, batch, seed)``: collects an interactive round's
batch of episode indices (all of them, stored ones too: it must not store those again) in
place of :func:`~protege.algos.rounds.collect` (fleet mode, :mod:`protege.algos.fleet`)."""


# ------------------------------------------------------------------------------ methods
class RunMethod(Protocol):
    """How a method runs: the engine's :func:`run` with the method's gate and trainer;
    ``kwargs`` go to :func:`run` (``resume``, ``run_dir``, ``progress``, ``log``...)."""

    def __call__(
        self,
        task: Task,
        store_path: str | os.PathLike[str],
        config: DAggerConfig | None = None,
        method_config: Any | None = None,
        *,
        make_policy: Callable[[], Policy] | None = None,
        **kwargs: Any,
    ) -> DAggerResult: ...


@dataclass(frozen=True)
class MethodSpec:
    """What an interactive method module exports as ``SPEC``: everything the registry
    (:mod:`protege.algos.registry`), the CLI and the demo need to run it by name."""

    name: str
    """The name ``--method`` and :func:`~protege.algos.registry.run_method` take."""
    title: str
    """How reports name it ("ThriftyDAgger")."""
    config: type | None
    """The dataclass of its own settings (in :mod:`protege.configs`), or None."""
    run: RunMethod
    load: Callable[[Path], Actor]
    """Loads one of its round checkpoints (``learners/round_NNN``)."""


# --------------------------------------------------------------------------- the run
def run(
    task: Task,
    make_policy: Callable[[], Policy] | None,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None,
    gate_factory: GateFactory,
    *,
    trainer: Trainer | None = None,
    before_batch: BatchHook | None = None,
    collector: Collector | None = None,
    expert: Expert | None = None,
    make_env: Callable[[], gym.Env] | None = None,
    demo_gate: Gate | None = None,
    stop: Callable[[], bool] | None = None,
    after_episode: EpisodeHook | None = None,
    round_episodes: Callable[[int], int] | None = None,
    episode_env: EpisodeEnv | None = None,
    method: str = "dagger",
    settings: Any | None = None,
    resume: bool = False,
    run_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    workers: Any | None = None,
) -> DAggerResult:
    """Run an interactive imitation method round by round; returns per-round rows.

    Args:
        make_policy: fresh policies for the default :class:`PolicyTrainer` (ignored when a
            ``trainer`` is given); see :func:`policy_factory`.
        store_path: the store every episode is appended to as it ends. If it already holds
            only round-0 episodes (demonstrations), they are round 0.
        gate_factory: builds each round's gate from a :class:`RoundContext` (plain DAgger's
            β-mixture is :func:`protege.algos.dagger.dagger_gate`). Round 0 uses ``demo_gate``.
        trainer: trains (and checkpoints) the learner after each round (default: BC of one
            policy, retrained per ``config.retrain``).
        before_batch: called before each batch of ``config.n_envs`` episodes (ThriftyDAgger
            re-calibrates its thresholds there).
        collector: collects the batches of rounds ≥ 1 (see :data:`Collector`).
        expert: who labels and takes over (default: ``task.make_expert()``). A person's
            :class:`~protege.teleop.supervisor.HumanSupervisor` is expert, gate (from
            ``gate_factory``) and ``demo_gate`` at once (see
            :func:`protege.algos.hg_dagger.run_human`).
        make_env: makes one sub-env of the collection vector env (default: ``task.make_env``);
            a person's supervisor makes a rendered env it shows (its first reset is still
            seeded per episode). Evaluation always uses ``task.make_env``.
        demo_gate: round 0's gate (default: the expert drives and labels every step).
        stop: asked before each batch of episodes and before each round's training; when it
            returns True the run ends there (``DAggerResult.stopped``), every stored episode
            kept, and ``resume=True`` continues it.
        after_episode: called after each episode is appended (see :data:`EpisodeHook`).
        round_episodes: the episodes round r ≥ 1 collects (default
            ``config.episodes_per_round``); AggreVaTe's rounds are roll-ins then completions.
        episode_env: wraps each episode's sub-env knowing its round and index (see
            :data:`~protege.algos.rounds.EpisodeEnv`).
        method: the method's name, in the result and ``config.json``.
        settings: the method's own settings (a dataclass, e.g. ``ThriftyConfig``): written to
            ``config.json`` with ``config`` and, like it, checked when the run is resumed.
        resume: continue the run found at ``store_path``/``run_dir``.
        run_dir: where per-round checkpoints and rows go (default ``<store_path>.run``).
        progress: a bar over the rounds on stderr.
        log: receives one line per round (e.g. ``print``).
        workers: run every rollout (the rounds' batches, the evaluations) on these Ray
            workers (:class:`~protege.rollout.ray_workers.RayWorkers`), with the same
            episodes, labels and numbers (:mod:`protege.algos.remote_rounds`).
    """
    config = config or DAggerConfig()
    schedule = beta_schedule(config.beta)
    if trainer is None:
        if make_policy is None:
            raise ConfigError("run() needs make_policy or a trainer")
        trainer = PolicyTrainer(make_policy, config.bc, config.retrain)
    expert = task.make_expert() if expert is None else expert
    if expert is None:
        raise ConfigError(f"task {task.name!r} has no scripted expert: pass expert=...")
    check_expert(expert, *task.spaces)
    store_path = Path(store_path)
    run_dir = Path(run_dir) if run_dir is not None else Path(f"{store_path}.run")
    rows_file = run_dir / "rounds.jsonl"
    store = open_run_store(store_path, task, resume, rows_file)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = read_rows(rows_file) if resume else []
    config_file = run_dir / "config.json"
    written = {
        **config.to_dict(),
        "method": method,
        "method_settings": asdict(settings) if settings is not None else None,
    }
    if resume:
        check_resumed_config(config_file, written, store)
        # Keep only whole rows: a row torn by a crash is redone, and must not stay in front
        # of the redone one (every later resume would stop reading there).
        write_atomic(rows_file, "".join(json.dumps(asdict(r)) + "\n" for r in rows))
    else:
        rows_file.write_text("")
        shutil.rmtree(run_dir / "learners", ignore_errors=True)
        write_atomic(config_file, json.dumps(written, indent=2, default=str))
    done_rounds = {r.round for r in rows}

    expert_eval = _expert_reference(task, config, run_dir, workers)
    expert.begin_run(config.seed)
    sources = Sources(task, expert, make_env, after_episode, episode_env)
    stopped = False
    external_demos = has_external_demos(store)
    learner: Any | None = None
    previous: Any | None = None
    wall = rows[-1].wall_seconds if rows else 0.0
    bar = tqdm(range(config.rounds + 1), desc=method, unit="round", disable=not progress)
    try:
        for r in bar:
            ckpt = run_dir / "learners" / f"round_{r:03d}"
            if r in done_rounds and ckpt.exists():
                learner = previous = None  # loaded lazily if a later round needs them
                continue
            if r > 0 and learner is None:
                learner = trainer.load(run_dir / "learners" / f"round_{r - 1:03d}")
            if r > 1 and previous is None:
                previous = trainer.load(run_dir / "learners" / f"round_{r - 2:03d}")
            t_round = time.perf_counter()
            beta = schedule(r)
            target = config.initial_demos if r == 0 else config.episodes_per_round
            if r > 0 and round_episodes is not None:
                target = round_episodes(r)
            if r == 0 and external_demos:
                target = 0
            data_before = ordered(store, max_round=r - 1)
            ctx = RoundContext(task, r, learner, data_before, config, beta, previous)
            gate: Gate = (demo_gate or ExpertGate()) if r == 0 else gate_factory(ctx)
            have = stored_indices(store, r)
            # Batches sit at fixed places (episodes k·n_envs … k·n_envs + n_envs − 1), and the
            # hook sees only the episodes before its batch, so a resumed round calls it with
            # what the uninterrupted round had at the same point. Workers run a round's
            # batches at once unless the hook must see each one's predecessors.
            n = config.n_envs
            todo = missing_batches(target, n, have)
            hooked = (before_batch is not None or collector is not None) and r > 0
            groups = [[b] for b in todo] if workers is None or hooked else [todo][: len(todo)]
            for group in groups:
                if stop is not None and stop():
                    stopped = True
                    break
                start = group[0][0] // n * n
                if before_batch is not None and r > 0:
                    before_batch(gate, ctx, ordered(store, r, r, before_episode=start))
                if collector is not None and r > 0:  # the whole batch: it stores what's missing
                    whole = list(range(start, min(start + n, target)))
                    collector(sources, store, gate, learner, r, whole, config.seed)
                else:
                    actor = learner if r > 0 else None
                    collect_batches(sources, store, gate, actor, r, group, config.seed, workers)
            if stopped or (stop is not None and stop()):
                stopped = True
                if log is not None:
                    log(f"[{method}] stopped in round {r}; every finished episode is stored")
                break
            if before_batch is not None and r > 0:
                # Once more with the whole round, so the row's thresholds do not depend on
                # where an interrupted run stopped.
                before_batch(gate, ctx, ordered(store, min_round=r, max_round=r))
            collect_s = time.perf_counter() - t_round

            t0 = time.perf_counter()
            if ckpt.exists():
                new_learner = trainer.load(ckpt)
            else:
                data = ordered(store, max_round=r)
                if data is None:
                    raise DataError(f"{store_path}: no episodes to train on after round {r}")
                new_learner = trainer.fit(data, r, train_seed(config.seed, r), learner)
                tmp = ckpt.with_name(ckpt.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                trainer.save(new_learner, tmp)
                os.replace(tmp, ckpt)
            train_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            ev = evaluate(
                new_learner,
                task,
                episodes=config.eval_episodes,
                n_envs=config.eval_envs,
                seed=config.eval_seed,
                measure_disagreement=False,
                workers=workers,
            )
            eval_s = time.perf_counter() - t0
            wall += time.perf_counter() - t_round
            gate_beta = gate.beta if r > 0 else None
            row = round_row(store, r, gate_beta, ev, collect_s, train_s, eval_s, wall)
            row.extras.update(gate.thresholds())
            rows = [x for x in rows if x.round != r] + [row]
            with open(rows_file, "a") as f:
                f.write(json.dumps(asdict(row)) + "\n")
                f.flush()
                os.fsync(f.fileno())
            if log is not None:
                log(
                    f"[{method}] round {r}: labels {row.labels}, return {row.mean_return:.1f}"
                    f" ± {row.std_return:.1f}, success {row.success_rate:.0%}, "
                    f"wall {row.wall_seconds:.0f}s"
                )
            previous, learner = learner, new_learner
    finally:
        bar.close()
        store.close()
    rows.sort(key=lambda x: x.round)
    return DAggerResult(
        method=method,
        task=task.name,
        seed=config.seed,
        expert_return=expert_eval["mean_return"],
        expert_success=expert_eval["success_rate"],
        target_fraction=config.target_fraction,
        rows=rows[: config.rounds + 1],
        config=config.to_dict(),
        stopped=stopped,
    )


def _expert_reference(
    task: Task, config: DAggerConfig, run_dir: Path, workers: Any | None
) -> dict[str, Any]:
    """The expert's mean return on the run's evaluation episodes (cached in run_dir)."""
    file = run_dir / "expert.json"
    key = {"episodes": config.eval_episodes, "seed": config.eval_seed, "envs": config.eval_envs}
    try:
        cached = json.loads(file.read_text())
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached
    except (OSError, ValueError):
        pass  # missing, or cut off by a crash: measured again
    if task.make_expert() is None:  # only a person can demonstrate this task: no reference
        out = {"key": key, "mean_return": float("nan"), "success_rate": float("nan")}
        write_atomic(file, json.dumps(out))
        return out
    ev = evaluate_expert(
        task,
        episodes=config.eval_episodes,
        n_envs=config.eval_envs,
        seed=config.eval_seed,
        workers=workers,
    )
    out = {"key": key, "mean_return": ev.mean_return, "success_rate": ev.success_rate}
    write_atomic(file, json.dumps(out))
    return out
