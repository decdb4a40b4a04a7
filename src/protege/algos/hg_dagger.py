"""HG-DAgger (Kelly, Sidrane, Driggs-Campbell & Kochenderfer, ICRA 2019, "HG-DAgger:
Interactive Imitation Learning with Human Experts").

The novice drives; a supervisor takes full control when it judges the novice unsafe and
hands control back once it has recovered. Only the takeover steps are labeled, and the
novice is retrained on all labels after every round. Two supervisors, one round loop
(:func:`protege.algos.engine.run`):

* :func:`run`, simulated by the task's expert
  (:class:`~protege.rollout.gates_interactive.SimulatedSupervisorGate`): it takes over when
  the state leaves the task's safe set (:attr:`Task.risk <protege.tasks.base.Task.risk>`) or
  when the novice keeps disagreeing with it, and hands back inside a band of the safe set.
* :func:`run_human`, a person at the keyboard
  (:class:`~protege.teleop.supervisor.HumanSupervisor`) in a window showing one rendered env:
  round 0 they demonstrate (unless the store already holds demonstrations), in later rounds
  the learner drives and they hold SPACE to take over. The learner is retrained between
  rounds, every episode is stored as it ends with the seconds of attention it cost, and a
  run the person quits (ESC) or that crashed continues with ``resume=True``.

Example:
    >>> result = hg_engine.run(task, "runs/hg/store", DAggerConfig(rounds=8),
    ...                        SupervisorConfig(disagreement_threshold=0.5, window=10))
    >>> result = hg_dagger.run_human("lunarlander", "runs/me/store",
    ...                              DAggerConfig(rounds=3, episodes_per_round=2))
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protege import tasks
from protege.algos import engine
from protege.algos.engine import MethodSpec, RoundContext, Trainer
from protege.algos.results import DAggerResult
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import SupervisorConfig
from protege.data.episode import Episode
from protege.data.store import Transitions
from protege.errors import ConfigError
from protege.policies.policy import Policy
from protege.rollout.gates import Gate
from protege.rollout.gates_interactive import RiskScore, SimulatedSupervisorGate
from protege.rollout.loop import Actor
from protege.tasks.base import Task

if TYPE_CHECKING:  # pygame is imported only when a person is in the loop
    from protege.teleop.controls import Controls
    from protege.teleop.supervisor import HumanSupervisor


def risk_for(task: Task, sc: SupervisorConfig) -> RiskScore | None:
    """The risk score the simulated supervisor uses on ``task``: ``sc.risk``, else the task's
    own (:attr:`~protege.tasks.base.Task.risk`); None when ``sc.use_risk`` is off."""
    if not sc.use_risk:
        return None
    risk = sc.risk or task.risk
    if risk is None:
        raise ConfigError(
            f"task {task.name!r} has no safe set (Task.risk): pass "
            "SupervisorConfig(risk=...) or use_risk=False"
        )
    return risk


def make_gate(task: Task, sc: SupervisorConfig) -> SimulatedSupervisorGate:
    return SimulatedSupervisorGate(
        risk=risk_for(task, sc),
        disagreement_threshold=sc.disagreement_threshold,
        window=sc.window,
        hand_back=sc.hand_back,
        min_takeover=sc.min_takeover,
    )


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: SupervisorConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    gate_factory: Callable[[RoundContext], Gate] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """HG-DAgger through :func:`protege.algos.engine.run` with the simulated supervisor (or
    any ``gate_factory``); for a person at the keyboard, see :func:`run_human`."""
    sc = method_config or SupervisorConfig()
    factory = gate_factory or (lambda ctx: make_gate(task, sc))
    kwargs.setdefault("method", "hg-dagger")
    kwargs.setdefault("settings", sc)
    return engine.run(
        task, make_policy or engine.policy_factory(task), store_path, config, factory, **kwargs
    )


def run_human(
    task: Task | str,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    *,
    supervisor: HumanSupervisor | None = None,
    fps: float = 20.0,
    controls: Controls | None = None,
    make_policy: Callable[[], Policy] | None = None,
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """HG-DAgger with a person at the keyboard as the supervisor, round by round.

    Round 0: the person demonstrates ``config.initial_demos`` episodes (skipped if the store
    already holds demonstrations, e.g. from ``protege teleop``). Each later round: the learner
    trained on every label so far drives ``config.episodes_per_round`` episodes and the person
    takes over by holding SPACE (T toggles, P pauses); only their steps are labeled. Between
    rounds the window says the learner is being trained (and evaluated on the task's own
    envs, without the person). Every episode is appended to the store as it ends, with its
    interventions and seconds of attention, and its per-step record goes to
    ``<store>.teleop.jsonl`` (see :mod:`protege.teleop.log`). ESC or closing the window ends
    the run after saving the episode in progress (cut short); ``resume=True`` continues it.

    Args:
        task: a registered task name or a :class:`~protege.tasks.base.Task`.
        config: the rounds (a person watches one env: ``n_envs`` is set to 1). The reference
            return is the task's scripted expert's (NaN if it has none).
        supervisor: the person's window and keys (default: :meth:`HumanSupervisor.for_task`
            with ``fps`` and ``controls``); closed when the run ends.
        make_policy: fresh learners (default: :func:`protege.algos.engine.policy_factory`).
        log: receives one line per episode and per round (e.g. ``print``).
        kwargs: for :func:`protege.algos.engine.run` (``resume``, ``run_dir``, ``progress``,
            ``method``, ``trainer``: by default BC of one policy per ``config.retrain``).
    """
    from protege.teleop.supervisor import HumanSupervisor

    t = tasks.make(task) if isinstance(task, str) else task
    config = dataclasses.replace(config or DAggerConfig(), n_envs=1)
    sup = supervisor or HumanSupervisor.for_task(t, fps=fps, controls=controls)
    inner = kwargs.pop("trainer", None) or engine.PolicyTrainer(
        make_policy or engine.policy_factory(t), config.bc, config.retrain
    )
    trainer = _Announced(inner, sup)

    def after_episode(episode: Episode, store_index: int) -> None:
        _record(store_path, t.name, sup, episode, store_index, log)

    kwargs.setdefault("method", "hg-dagger")
    try:
        return engine.run(
            t,
            None,
            store_path,
            config,
            lambda ctx: sup,
            trainer=trainer,
            expert=sup,
            make_env=lambda: sup.make_env(t),
            demo_gate=sup,
            stop=sup.poll,
            after_episode=after_episode,
            log=log,
            **kwargs,
        )
    finally:
        sup.close()


@dataclass
class _Announced:
    """A trainer that first tells the person, in the window, why nothing moves (and drains
    its input, so the window keeps responding and an ESC meanwhile is seen)."""

    inner: Trainer
    supervisor: HumanSupervisor

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> Actor:
        self.supervisor.notice(f"round {round} done: training and evaluating the learner...")
        return self.inner.fit(data, round, seed, previous)

    def save(self, learner: Any, path: Path) -> None:
        self.inner.save(learner, path)

    def load(self, path: Path) -> Actor:
        return self.inner.load(path)


def _record(
    store_path: str | os.PathLike[str],
    task: str,
    sup: HumanSupervisor,
    episode: Episode,
    store_index: int,
    log: Callable[[str], None] | None,
) -> None:
    """Log the episode just stored: its per-step record next to the store, a line to ``log``."""
    from protege.teleop.log import append_log

    rec = sup.episode
    index = int(episode.extras.get("episode", -1))
    mode = "demonstrate" if episode.round == 0 else "intervene"
    append_log(
        store_path,
        rec,
        store_index=store_index,
        round=episode.round,
        episode=index,
        task=task,
        mode=mode,
    )
    if log is not None:
        log(
            f"round {episode.round} episode {index}: return {episode.episode_return:.1f}, "
            f"{len(episode)} steps, {int(episode.label_mask.sum())} labels, "
            f"{int(episode.extras.get('interventions', 0))} takeovers, attention "
            f"{rec.counts.attention_seconds:.1f} s" + (" (cut short: quit)" if rec.quit else "")
        )


SPEC = MethodSpec("hg-dagger", "HG-DAgger", SupervisorConfig, run, Policy.load)
