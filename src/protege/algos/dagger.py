"""DAgger and the machinery every interactive method shares: rounds, durable labels, resume.

DAgger (Ross, Gordon & Bagnell 2011, "A Reduction of Imitation Learning and Structured
Prediction to No-Regret Online Learning"): round 0 is expert demonstrations; in round i the
mixture β_i π* + (1 − β_i) π̂_i drives, the expert labels every visited state, the labels are
aggregated with everything before and π̂_{i+1} is trained on the aggregate (from scratch or
warm-started). Its gated descendants (HG-DAgger, EnsembleDAgger, ThriftyDAgger) and DART
differ only in the gate that decides who drives and who labels, and in what is trained, so
they all run through :func:`run` with their own ``gate_factory`` (and ``trainer``). How a
round's episodes are seeded, collected, recorded and read back in order is
:mod:`protege.algos.rounds`.

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
    >>> result = dagger.run(task, dagger.policy_factory(task), "runs/dagger/store",
    ...                     DAggerConfig(rounds=8, episodes_per_round=4, seed=0))
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import torch

from protege.algos import bc
from protege.algos.bc import BCConfig
from protege.algos.rounds import (  # noqa: F401  (re-exported: the seeds and data helpers)
    EpisodeHook,
    Sources,
    collect,
    derive_seed,
    episode_seed,
    gate_seed,
    has_external_demos,
    next_observations,
    ordered,
    reorder_episodes,
    round_gate_seed,
    stored_indices,
    train_seed,
)
from protege.data.store import Store, Transitions, write_atomic
from protege.errors import ConfigError, DataError
from protege.experts.adapters import check_expert
from protege.experts.base import Expert
from protege.policies.config import PolicyConfig
from protege.policies.policy import Policy
from protege.rollout.evaluate import evaluate, evaluate_expert
from protege.rollout.gates import BetaMixture, ExpertGate, Gate, beta_schedule
from protege.rollout.loop import Actor
from protege.tasks.base import Task

RETRAIN = ("scratch", "warm")


@dataclass
class DAggerConfig:
    """Settings every interactive method shares (the gate's own settings live with it)."""

    rounds: int = 8
    """Interactive rounds after round 0 (the demonstrations)."""
    episodes_per_round: int = 4
    initial_demos: int = 4
    """Expert episodes collected as round 0 (unless the store already holds demonstrations)."""
    beta: str = "indicator"
    """β schedule of plain DAgger: "indicator", "exponential:P" or "linear:N"."""
    retrain: str = "scratch"
    """"scratch": a fresh policy each round (Ross et al.; ThriftyDAgger); "warm": continue
    training the previous round's policy (the ``imitation`` package)."""
    bc: BCConfig = field(
        default_factory=lambda: BCConfig(
            steps=1500, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False
        )
    )
    """How each round's learner is trained (its seed is derived per round). The default
    suits a few thousand labels (on LunarLander it matches 3000 steps at batch 256 in a
    third of the time); raise ``steps`` for larger data. No validation split: with a handful
    of episodes it would hold out a large share of the labels, and picking a checkpoint on
    one episode adds noise."""
    n_envs: int = 4
    """Episodes collected in parallel; also the most a crash can lose."""
    seed: int = 0
    eval_episodes: int = 50
    eval_envs: int = 8
    eval_seed: int = 100_000
    """Every round's learner and the expert are evaluated on the same episodes."""
    target_fraction: float = 0.95
    """Report the labels needed to reach this fraction of the expert's mean return."""

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.episodes_per_round < 1 or self.initial_demos < 0:
            raise ConfigError(
                "rounds ≥ 0, episodes_per_round ≥ 1 and initial_demos ≥ 0 are required, got "
                f"{self.rounds}, {self.episodes_per_round}, {self.initial_demos}"
            )
        if self.retrain not in RETRAIN:
            raise ConfigError(f"retrain must be one of {RETRAIN}, not {self.retrain!r}")
        if self.n_envs < 1 or self.eval_envs < 1 or self.eval_episodes < 1:
            raise ConfigError("n_envs, eval_envs and eval_episodes must be ≥ 1")
        beta_schedule(self.beta)  # validates

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- learners
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
        return Policy.load(path)


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

ATTENTION = "attention_seconds"
"""The per-episode extra (``Episode.extras``, from a gate's ``episode_extras``) holding the
seconds a person spent in control; :class:`RoundRow` reports their running total."""


def dagger_gate(ctx: RoundContext) -> Gate:
    """Plain DAgger's gate: the β-mixture (the expert labels every step)."""
    return BetaMixture(ctx.beta, seed=round_gate_seed(ctx.config.seed, ctx.round))


# ----------------------------------------------------------------------------- results
@dataclass
class RoundRow:
    """One round: what it cost (cumulative over rounds 0..round) and how its learner did."""

    round: int
    beta: float | None
    episodes: int
    """Episodes collected in this round."""
    labels: int
    """Expert labels stored so far (rounds 0..round), demonstrations included."""
    round_labels: int
    expert_steps: int
    learner_steps: int
    interventions: int
    """Interventions so far (:func:`~protege.rollout.loop.count_interventions`)."""
    expert_queries: int
    mean_return: float
    std_return: float
    success_rate: float
    collect_seconds: float
    train_seconds: float
    eval_seconds: float
    wall_seconds: float
    """Cumulative wall time (collection, training and evaluation) up to this round."""
    attention_seconds: float = 0.0
    """Seconds a person spent in control so far (rounds 0..round); 0 for a scripted or
    simulated expert."""
    extras: dict[str, float] = field(default_factory=dict)


@dataclass
class DAggerResult:
    """Per-round rows and totals of one run. Rows are the learner trained *after* the
    round's collection, evaluated on the run's fixed evaluation episodes."""

    method: str
    task: str
    seed: int
    expert_return: float
    expert_success: float
    target_fraction: float
    rows: list[RoundRow]
    config: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False
    """The run was stopped before its last round (a person quit); ``resume=True`` continues."""

    @property
    def target_return(self) -> float:
        """``target_fraction`` of the expert's mean return (also for negative returns)."""
        return self.expert_return - (1.0 - self.target_fraction) * abs(self.expert_return)

    def labels_to_reach(self, target: float | None = None) -> int | None:
        """Labels stored when a round's learner first reached ``target`` (default
        :attr:`target_return`), or None if none did."""
        target = self.target_return if target is None else target
        for row in self.rows:
            if row.mean_return >= target:
                return row.labels
        return None

    @property
    def totals(self) -> dict[str, Any]:
        last = self.rows[-1] if self.rows else None
        return {
            "labels": last.labels if last else 0,
            "expert_steps": last.expert_steps if last else 0,
            "learner_steps": last.learner_steps if last else 0,
            "interventions": last.interventions if last else 0,
            "attention_seconds": last.attention_seconds if last else 0.0,
            "expert_queries": last.expert_queries if last else 0,
            "wall_seconds": last.wall_seconds if last else 0.0,
            "final_return": last.mean_return if last else float("nan"),
            "best_return": max((r.mean_return for r in self.rows), default=float("nan")),
            "labels_to_target": self.labels_to_reach(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "task": self.task,
            "seed": self.seed,
            "expert_return": self.expert_return,
            "expert_success": self.expert_success,
            "target_fraction": self.target_fraction,
            "target_return": self.target_return,
            "totals": self.totals,
            "rows": [asdict(r) for r in self.rows],
            "config": self.config,
            "stopped": self.stopped,
        }

    def to_markdown(self) -> str:
        head = (
            f"**{self.method}** on `{self.task}`, seed {self.seed}: expert mean return "
            f"{self.expert_return:.1f} (success {self.expert_success:.0%}); target "
            f"{self.target_fraction:.0%} = {self.target_return:.1f}\n\n"
            "| round | β | episodes | labels | expert steps | learner steps | interventions "
            "| attention s | expert queries | return | success | wall s |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        )
        lines = []
        for r in self.rows:
            beta = "–" if r.beta is None else f"{r.beta:.2f}"
            lines.append(
                f"| {r.round} | {beta} | {r.episodes} | {r.labels} | {r.expert_steps} | "
                f"{r.learner_steps} | {r.interventions} | {r.attention_seconds:.1f} | "
                f"{r.expert_queries} | "
                f"{r.mean_return:.1f} ± {r.std_return:.1f} | {r.success_rate:.0%} | "
                f"{r.wall_seconds:.0f} |"
            )
        reach = self.labels_to_reach()
        tail = (
            f"\nLabels to reach {self.target_fraction:.0%} of the expert: "
            + (f"{reach}" if reach is not None else "not reached")
            + "\n"
            + ("\nStopped before the last round; resume to continue.\n" if self.stopped else "")
        )
        return head + "\n".join(lines) + "\n" + tail


# --------------------------------------------------------------------------- the run
def run(
    task: Task,
    make_policy: Callable[[], Policy] | None,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    gate_factory: GateFactory = dagger_gate,
    *,
    trainer: Trainer | None = None,
    before_batch: BatchHook | None = None,
    expert: Expert | None = None,
    make_env: Callable[[], gym.Env] | None = None,
    demo_gate: Gate | None = None,
    stop: Callable[[], bool] | None = None,
    after_episode: EpisodeHook | None = None,
    method: str = "dagger",
    settings: Any | None = None,
    resume: bool = False,
    run_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> DAggerResult:
    """Run an interactive imitation method round by round; returns per-round rows.

    Args:
        make_policy: fresh policies for the default :class:`PolicyTrainer` (ignored when a
            ``trainer`` is given); see :func:`policy_factory`.
        store_path: the store every episode is appended to as it ends. If it already holds
            only round-0 episodes (demonstrations), they are round 0.
        gate_factory: builds each round's gate from a :class:`RoundContext` (default: DAgger's
            β-mixture). Round 0 uses ``demo_gate``.
        trainer: trains (and checkpoints) the learner after each round (default: BC of one
            policy, retrained per ``config.retrain``).
        before_batch: called before each batch of ``config.n_envs`` episodes (ThriftyDAgger
            re-calibrates its thresholds there).
        expert: who labels and takes over (default: ``task.make_expert()``). A person's
            :class:`~protege.experts.human.HumanSupervisor` is expert, gate (from
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
        method: the method's name, in the result and ``config.json``.
        settings: the method's own settings (a dataclass, e.g. ``ThriftyConfig``): written to
            ``config.json`` with ``config`` and, like it, checked when the run is resumed.
        resume: continue the run found at ``store_path``/``run_dir``.
        run_dir: where per-round checkpoints and rows go (default ``<store_path>.run``).
        log: receives one line per round (e.g. ``print``).
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
    store = _open_store(store_path, task, resume, rows_file)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = _read_rows(rows_file) if resume else []
    config_file = run_dir / "config.json"
    written = {
        **config.to_dict(),
        "method": method,
        "method_settings": asdict(settings) if settings is not None else None,
    }
    if resume:
        _check_resumed_config(config_file, written)
        # Keep only whole rows: a row torn by a crash is redone, and must not stay in front
        # of the redone one (every later resume would stop reading there).
        write_atomic(rows_file, "".join(json.dumps(asdict(r)) + "\n" for r in rows))
    else:
        rows_file.write_text("")
        shutil.rmtree(run_dir / "learners", ignore_errors=True)
        write_atomic(config_file, json.dumps(written, indent=2, default=str))
    done_rounds = {r.round for r in rows}

    expert_eval = _expert_reference(task, config, run_dir)
    expert.begin_run(config.seed)
    sources = Sources(task, expert, make_env, after_episode)
    stopped = False
    external_demos = has_external_demos(store)
    learner: Any | None = None
    previous: Any | None = None
    wall = rows[-1].wall_seconds if rows else 0.0
    try:
        for r in range(config.rounds + 1):
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
            if r == 0 and external_demos:
                target = 0
            data_before = ordered(store, max_round=r - 1)
            ctx = RoundContext(task, r, learner, data_before, config, beta, previous)
            gate: Gate = (demo_gate or ExpertGate()) if r == 0 else gate_factory(ctx)
            have = stored_indices(store, r)
            # Batches sit at fixed places (episodes k·n_envs … k·n_envs + n_envs − 1), and the
            # hook sees only the episodes before its batch, so a resumed round calls it with
            # what the uninterrupted round had at the same point.
            for start in range(0, target, config.n_envs):
                batch = [
                    e for e in range(start, min(start + config.n_envs, target)) if e not in have
                ]
                if not batch:
                    continue
                if stop is not None and stop():
                    stopped = True
                    break
                if before_batch is not None and r > 0:
                    before_batch(gate, ctx, ordered(store, r, r, before_episode=start))
                collect(sources, store, gate, learner if r > 0 else None, r, batch, config.seed)
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
            )
            eval_s = time.perf_counter() - t0
            wall += time.perf_counter() - t_round
            gate_beta = gate.beta if r > 0 else None
            row = _row(store, r, gate_beta, ev, collect_s, train_s, eval_s, wall)
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


RESUMABLE_CHANGES = ("rounds", "bc.progress")
"""Settings a resumed run may change: more (or fewer) rounds, and progress bars."""


def _check_resumed_config(path: Path, config: dict[str, Any]) -> None:
    """A resumed run must collect, train and evaluate as the interrupted one did (``config``:
    what :func:`run` writes to ``config.json``)."""
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return  # the run crashed before writing it: nothing to compare with
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); cannot check the resumed run") from None
    now = _flat(json.loads(json.dumps(config, default=str)))
    before = _flat(stored) if isinstance(stored, dict) else {}
    changed = sorted(
        k
        for k in set(before) | set(now)
        if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k)
    )
    if changed:
        diffs = "; ".join(f"{k}: {before.get(k)!r} → {now.get(k)!r}" for k in changed)
        raise ConfigError(
            f"{path}: resuming with settings that differ from the interrupted run ({diffs}); "
            "resume with the same settings, or start a new run"
        )


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# --------------------------------------------------------------------------- store I/O
def _open_store(path: Path, task: Task, resume: bool, rows_file: Path) -> Store:
    obs_space, act_space = task.spaces
    exists = (path / "meta.json").exists()
    store = Store.create(path, obs_space, act_space, task=task.name, exist_ok=True)
    if exists and not resume:
        rounds = {int(e["round"]) for e in store.index}
        if rounds - {0} or (rows_file.exists() and rows_file.read_text().strip()):
            store.close()
            raise ConfigError(
                f"{path}: holds an earlier run (rounds {sorted(rounds)}); pass resume=True "
                "to continue it, or choose a new path"
            )
    return store


def _row(
    store: Store,
    r: int,
    beta: float | None,
    ev: Any,
    collect_s: float,
    train_s: float,
    eval_s: float,
    wall: float,
) -> RoundRow:
    upto = [e for e in store.index if int(e["round"]) <= r]
    this = [e for e in upto if int(e["round"]) == r]

    def total(entries: list[dict[str, Any]], key: str) -> float:
        return sum(float(e.get("extras", {}).get(key, 0.0)) for e in entries)

    labels = sum(int(e["labels"]) for e in upto)
    learner_steps = sum(int(e["learner_steps"]) for e in upto)
    steps = sum(int(e["length"]) for e in upto)
    extras: dict[str, float] = {}
    for e in this:
        for k, v in e.get("extras", {}).items():
            if k not in ("episode", "queries", "interventions", "success", ATTENTION):
                extras[k] = extras.get(k, 0.0) + float(v)
    # Demonstrations not collected by run() cost one query per labeled step.
    queries = sum(float(e.get("extras", {}).get("queries", e["labels"])) for e in upto)
    return RoundRow(
        round=r,
        beta=beta,
        episodes=len(this),
        labels=labels,
        round_labels=sum(int(e["labels"]) for e in this),
        expert_steps=steps - learner_steps,
        learner_steps=learner_steps,
        interventions=int(total(upto, "interventions")),
        expert_queries=int(queries),
        mean_return=ev.mean_return,
        std_return=ev.std_return,
        success_rate=ev.success_rate,
        collect_seconds=collect_s,
        train_seconds=train_s,
        eval_seconds=eval_s,
        wall_seconds=wall,
        attention_seconds=total(upto, ATTENTION),
        extras=extras,
    )


def _read_rows(path: Path) -> list[RoundRow]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(RoundRow(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            break  # a row cut off by a crash: that round is redone
    return rows


def _expert_reference(task: Task, config: DAggerConfig, run_dir: Path) -> dict[str, Any]:
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
        task, episodes=config.eval_episodes, n_envs=config.eval_envs, seed=config.eval_seed
    )
    out = {"key": key, "mean_return": ev.mean_return, "success_rate": ev.success_rate}
    write_atomic(file, json.dumps(out))
    return out


# --------------------------------------------------------------------------- by name
METHODS = ("dagger", "hg-dagger", "ensemble", "thrifty", "dart")
"""The interactive methods :func:`run_method` knows (the CLI's ``--method``)."""


def load_learner(path: str | os.PathLike[str]) -> Actor:
    """A learner checkpoint of any method: a policy (``config.json``), a policy ensemble
    (``ensemble.json``) or a ThriftyDAgger learner (``thrifty.json``)."""
    path = Path(path)
    if (path / "thrifty.json").exists():
        from protege.algos.thrifty import ThriftyLearner

        return ThriftyLearner.load(path)
    if (path / "ensemble.json").exists():
        from protege.algos.ensemble_dagger import PolicyEnsemble

        return PolicyEnsemble.load(path)
    return Policy.load(path)


def method_config_class(method: str) -> type | None:
    """The dataclass of ``method``'s own settings (None for plain DAgger)."""
    if method == "dagger":
        return None
    if method == "hg-dagger":
        from protege.algos.hg_dagger import SupervisorConfig

        return SupervisorConfig
    if method == "ensemble":
        from protege.algos.ensemble_dagger import EnsembleConfig

        return EnsembleConfig
    if method == "thrifty":
        from protege.algos.thrifty import ThriftyConfig

        return ThriftyConfig
    if method == "dart":
        from protege.algos.dart import DARTConfig

        return DARTConfig
    raise ConfigError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def run_method(
    method: str,
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: Any | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """Run ``method`` (one of :data:`METHODS`) by name; ``kwargs`` go to :func:`run`
    (``resume``, ``run_dir``, ``progress``, ``log``).

    Example:
        >>> run_method("thrifty", make("lunarlander"), "runs/t/store",
        ...            DAggerConfig(rounds=6), ThriftyConfig(alpha_h=0.01), resume=True)
    """
    cls = method_config_class(method)
    if method_config is not None and (cls is None or not isinstance(method_config, cls)):
        raise ConfigError(f"method {method!r} takes {cls.__name__ if cls else 'no'} settings")
    mc: Any = method_config
    if method == "dagger":
        return run(task, make_policy or policy_factory(task), store_path, config, **kwargs)
    if method == "hg-dagger":
        from protege.algos import hg_dagger

        return hg_dagger.run(task, store_path, config, mc, make_policy=make_policy, **kwargs)
    if method == "ensemble":
        from protege.algos import ensemble_dagger

        return ensemble_dagger.run(task, store_path, config, mc, make_policy=make_policy, **kwargs)
    if method == "thrifty":
        from protege.algos import thrifty

        return thrifty.run(task, store_path, config, mc, make_policy=make_policy, **kwargs)
    from protege.algos import dart

    return dart.run(task, store_path, config, mc, make_policy=make_policy, **kwargs)
