"""``protege teleop``: a person demonstrates, or supervises a learner HG-DAgger style.

Without a policy the person drives every step (demonstrations, all labeled). With a policy the
learner drives and the person takes over by holding SPACE (HG-DAgger's human gate, Kelly,
Sidrane, Driggs-Campbell & Kochenderfer, ICRA 2019): only the takeover steps are labeled. Both
run through the one rollout loop (:func:`protege.rollout.loop.rollout`) on a single-env vector
env, with a :class:`~protege.teleop.supervisor.HumanSupervisor` as gate and expert, and every
episode is appended durably to the store as it ends.

**Rounds.** Demonstrations are round 0. Each session with a learner is the next round after
the highest one in the store (1 for the first), so the data of successive sessions is tagged
and trains like DAgger rounds; pass ``round=`` (``--round``) to choose. For rounds with
retraining in between, run HG-DAgger with a person: :func:`protege.algos.hg_dagger.run_human`.

Every stored episode carries, in its index entry's ``extras``, its ``interventions``
(:func:`~protege.rollout.loop.count_interventions`), ``attention_seconds`` and
``session_seconds``. Next to the store, ``<store>.teleop.jsonl``
(:func:`protege.teleop.log.log_path`) gets one line per stored episode: its index in the
store, its round, who was in control at each step, the learner's proposed and the person's
actions at every step (both, whoever was executed), takeover segment ids, wall-clock times
(``t0_unix + t_wall``) and the episode's counts. The store holds labels and executed
actions; this log holds the rest.

Example:
    >>> summary = teleop("lunarlander", "demos/lander", episodes=5)             # demonstrate
    >>> summary = teleop("lunarlander", "hg/lander", episodes=5, policy="runs/bc")  # intervene
    >>> print(summary.to_text())
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from protege import tasks
from protege.data.episode import EXPERT, Episode
from protege.data.store import Store
from protege.rollout.loop import Actor, count_interventions, rollout
from protege.rollout.observers import RecordEpisodes
from protege.tasks.base import Task
from protege.teleop.controls import Controls
from protege.teleop.log import append_log, log_path
from protege.teleop.supervisor import HumanSupervisor, TeleopQuit

__all__ = ["TeleopSummary", "next_round", "teleop"]


@dataclass
class TeleopSummary:
    """What a teleop session stored, and what it cost the person.

    Counts are over the episodes appended to the store in this session (an episode cut short
    by quitting is stored truncated and counted). ``attention_seconds`` is wall time the person
    was in control; ``session_seconds`` wall time the window was live and unpaused (see
    :mod:`protege.teleop.supervisor`). In a demonstration the two are equal.
    """

    task: str
    store: str
    mode: str
    """"demonstrate" (no learner) or "intervene" (HG-DAgger: the learner drives)."""
    round: int = 0
    """The round the session's episodes are tagged with."""
    episodes: int = 0
    steps: int = 0
    labels: int = 0
    human_steps: int = 0
    learner_steps: int = 0
    interventions: int = 0
    """Takeovers, by :func:`~protege.rollout.loop.count_interventions` (0 in a
    demonstration)."""
    attention_seconds: float = 0.0
    session_seconds: float = 0.0
    returns: list[float] = field(default_factory=list)
    quit: bool = False
    """The person ended the session before all episodes were run."""
    log: str = ""
    """The per-step log file (``<store>.teleop.jsonl``)."""

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_return": self.mean_return}

    def to_text(self) -> str:
        how = "quit by the person" if self.quit else "all episodes run"
        return (
            f"teleop {self.mode} on {self.task}, round {self.round}: {self.episodes} episodes "
            f"({how}) → {self.store}\n"
            f"  steps {self.steps}: human {self.human_steps}, learner {self.learner_steps}; "
            f"labels {self.labels}; interventions {self.interventions}\n"
            f"  attention {self.attention_seconds:.1f} s of {self.session_seconds:.1f} s; "
            f"mean return {self.mean_return:.1f}\n  per-step log: {self.log}"
        )


def next_round(store: Store) -> int:
    """The round of a new intervention session on ``store``: one after its highest (≥ 1)."""
    return max([0, *(e.round for e in store.index)]) + 1


def teleop(
    task: str | Task,
    store_path: str | os.PathLike[str],
    episodes: int = 5,
    policy: str | os.PathLike[str] | Actor | None = None,
    seed: int = 0,
    fps: float = 20.0,
    *,
    controls: Controls | None = None,
    takeover_key: str = "space",
    toggle_key: str | None = "t",
    implicit_takeover: bool = False,
    round: int | None = None,
    supervisor: HumanSupervisor | None = None,
    log: Callable[[str], None] | None = None,
    device: str = "auto",
) -> TeleopSummary:
    """A person demonstrates (``policy=None``) or supervises ``policy`` on ``task``.

    Args:
        task: a registered task name or a :class:`~protege.tasks.base.Task`.
        store_path: the store to append to (created if missing; its spaces must match).
        episodes: how many episodes to run (the person can quit earlier with ESC).
        policy: a saved :class:`~protege.policies.Policy` directory, or any loop ``Actor``.
        seed: seeds the env's first reset.
        fps: the fixed control rate in Hz.
        controls: the key mapping (default: the task's, see
            :func:`protege.teleop.controls.controls_for`).
        takeover_key: see :class:`HumanSupervisor`.
        toggle_key: see :class:`HumanSupervisor`.
        implicit_takeover: see :class:`HumanSupervisor`.
        round: the round tag of the stored episodes (default 0 for demonstrations; with a
            learner, one after the store's highest round, see :func:`next_round`).
        supervisor: use this supervisor (its settings win over the arguments above).
        log: receives one line per stored episode (e.g. ``print``).
        device: where a saved ``policy`` acts (auto, cpu, cuda, cuda:N, mps).

    Returns:
        A :class:`TeleopSummary` of the episodes stored in this session.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be ≥ 1, got {episodes}")
    t = tasks.make(task) if isinstance(task, str) else task
    learner: Actor | None
    if policy is None or isinstance(policy, str | os.PathLike):
        from protege.algos.registry import load_learner

        learner = None if policy is None else load_learner(policy, device)
    else:
        learner = policy
    sup = supervisor or HumanSupervisor.for_task(
        t,
        controls=controls,
        fps=fps,
        takeover_key=takeover_key,
        toggle_key=toggle_key,
        implicit_takeover=implicit_takeover,
    )
    env = gym.vector.SyncVectorEnv(
        [lambda: sup.make_env(t)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    store = Store.create(
        store_path,
        env.single_observation_space,
        env.single_action_space,
        task=t.name,
        exist_ok=True,
    )
    if round is None:
        round = 0 if learner is None else next_round(store)
    summary = TeleopSummary(
        task=t.name,
        store=str(store_path),
        mode="demonstrate" if learner is None else "intervene",
        round=round,
        log=str(log_path(store_path)),
    )

    def on_episode(env_index: int, episode: Episode) -> None:
        rec = sup.episode
        interventions = float(count_interventions(episode.actors == EXPERT))
        extras = {**sup.episode_extras(), "interventions": interventions}
        store.append(dataclasses.replace(episode, extras=extras))
        _add(summary, episode, rec.counts.attention_seconds, rec.counts.session_seconds)
        fields = {"store_index": len(store) - 1, "round": round, "task": t.name}
        append_log(store_path, rec, **fields, mode=summary.mode)
        if log is not None:
            log(
                f"episode {summary.episodes}: return {episode.episode_return:.1f}, "
                f"{len(episode)} steps, {int(episode.label_mask.sum())} labels, "
                f"{rec.counts.interventions} takeovers" + (" (truncated: quit)" if rec.quit else "")
            )

    try:
        rollout(
            env,
            episodes,
            gate=sup,
            seed=seed,
            learner=learner,
            expert=sup,
            observers=[RecordEpisodes(on_episode, round=round)],
        )
    except TeleopQuit:
        pass
    finally:
        summary.quit = sup.quit_requested
        sup.close()
        env.close()
        store.close()
    return summary


def _add(s: TeleopSummary, ep: Episode, attention: float, session: float) -> None:
    actors = ep.actors
    human = actors == EXPERT
    s.episodes += 1
    s.steps += len(ep)
    s.labels += int(ep.label_mask.sum())
    s.human_steps += int(human.sum())
    s.learner_steps += int((~human).sum())
    s.interventions += count_interventions(human)
    s.attention_seconds += attention
    s.session_seconds += session
    s.returns.append(ep.episode_return)
