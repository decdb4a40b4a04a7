"""A fleet of learner-driven robots sharing a few supervisors (Fleet-DAgger's setting).

N robots run at once; each step, a robot that is not helped acts on its own policy, and the
:class:`~protege.rollout.allocation.Allocator` gives the K supervisors to robots. A supervisor
costs time: ``switch_steps`` to take in the robot's situation (the robot waits), then it
drives (the expert acts and labels) for at least ``min_takeover`` steps until the
switch-back rule hands control back (ThriftyDAgger's: the robot's proposal within δ_r of the
supervisor's action and Q above β_r; or after ``max_takeover`` steps). A robot that *fails*
(its episode ends without success: a crash, a fallen pole) waits until a supervisor resets
it (``switch_steps`` + ``reset_steps``). With the priority allocation a robot asks for help
(novelty or risk past its gate's thresholds); with ``wait="pause"`` it stands idle until a
supervisor is free (with ``"continue"``, the default, it drives on and asks again).

Why not the rollout loop (:func:`protege.rollout.loop.rollout`): a gymnasium vector env
steps every sub-env at once, and a fleet's waiting robots must not move. Everything else is
shared: the learner's signals and thresholds come from
:class:`~protege.rollout.gates_interactive.ThriftyGate`, every expert action is asked through
:class:`~protege.rollout.gates.LazyExpert` (and counted), and finished episodes go to the
same :class:`~protege.rollout.observers.Observer` hooks (the round engine's recorder appends
them to the store the moment they end). A failed episode ends when its reset is done, so its
stored record holds the time it cost.

**Who supervises** is the task's expert with modelled time costs (above), or people
(:class:`People`: one teleop window each, :class:`protege.teleop.desk.Desk`), who take
over, reset and hand back when they press a key, and whose keys are the labels.

**Where robots live** is a :class:`Robots`: :class:`LocalRobots` steps gymnasium envs in this
process; :class:`~protege.rollout.fleet_shards.ShardedRobots` steps them on Ray workers (each
holding its share of the envs and a copy of the simulated supervisors' expert, which then acts
where its robot is: ``runs_expert``, ``step_supervised``); other sources (real robots)
implement the same methods. The learner stays here: all N robots' observations go through it
as one batch every step (waiting ones too), so the numbers depend neither on which robots
moved nor on where they live (a batched forward pass's last bits depend on the batch size).

Example:
    >>> fleet = Fleet(LocalRobots(task.make_env, 8), gate, expert, config, task.success)
    >>> result = fleet.run(episodes=range(32), seeds=lambda e: 1000 + e, rng=rng)
    >>> result.rohe, result.idle_fraction
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, cast

import gymnasium as gym
import numpy as np

from protege.configs.fleet import FleetConfig
from protege.data.obs import stack
from protege.errors import ConfigError
from protege.experts.base import Expert
from protege.rollout.allocation import Signals, make_allocator
from protege.rollout.fleet_result import FleetResult
from protege.rollout.gates import Decision, LazyExpert
from protege.rollout.gates_interactive import ThriftyGate
from protege.rollout.loop import Actor, count_interventions
from protege.rollout.observers import EpisodeEnd, Observer, Step
from protege.tasks.base import EpisodeOutcome, SuccessTest

# A robot's mode.
AUTO, ASKING, SWITCH, TELEOP, FAILED, RESET, DONE = range(7)
"""Driving itself; asked and waiting (paused); a supervisor is taking in its situation; a
supervisor drives; failed, waiting for a reset; being reset; no more episodes."""
COUNTERS = (
    "fleet_idle_steps",
    "fleet_robot_steps",
    "supervisor_steps",
    "fleet_requests",
    "fleet_visits",
    "resets",
    "fleet_successes",
)
"""Per-episode figures a fleet stores with each episode (a round's row sums them): steps
waited, steps on the fleet's clock (moving or waiting), supervisor steps spent on it,
requests, visits, hard resets, and 1 if it succeeded."""


class Robots(Protocol):
    """Where a fleet's robots live: the seam for robots stepped elsewhere (Ray actors, real
    robots). Only the robots named are reset or stepped. For people's windows a source may
    also have ``render(i)``: robot i's frame (H×W×3 uint8), else its numbers are shown.

    A source whose ``runs_expert`` is True holds the simulated supervisors' expert where its
    robots are, and the fleet steps it with ``step_supervised(idx, actions, supervised)``:
    the robots in ``supervised`` (a bool per robot of ``idx``) act on the expert's action
    instead; it returns the step results, the expert's actions of those robots (in order)
    and the expert's queries."""

    num_robots: int

    def reset(self, i: int, seed: int) -> Any:
        """Start a new episode on robot ``i`` seeded ``seed``; its first observation."""
        ...

    def step(
        self, idx: Sequence[int], actions: np.ndarray
    ) -> list[tuple[Any, float, bool, bool, dict[str, Any]]]:
        """Step robots ``idx`` with ``actions`` (one row each, in order); per robot
        (obs, reward, terminated, truncated, info). A finished robot is not reset."""
        ...

    def close(self) -> None: ...


class PeopleStep(Protocol):
    """What the people at their windows did at one tick, per robot (N,): ``go``: the person
    with the robot pressed to take over (or to reset it, if it failed); ``back``: they
    pressed to hand back; ``actions``: their actions (rows of robots nobody drives: any)."""

    go: np.ndarray
    back: np.ndarray
    actions: np.ndarray
    quit: bool
    """Someone asked to end the run."""


class People(Protocol):
    """Supervisors who decide for themselves (people at teleop windows): supervisor ``k``
    helps the robot ``i`` with ``fleet.helper[i] == k``. Each fleet step is one tick of
    their fixed-rate clock (:meth:`tick` sleeps until it is due)."""

    count: int

    def tick(self, fleet: Fleet, obs: Sequence[Any]) -> PeopleStep:
        """Show each person their robot (``obs``: every robot's latest observation), wait
        for the tick, and read what they pressed."""
        ...


WAIT = np.iinfo(np.int64).max // 2
"""The timer of a switch or reset a person ends by pressing a key, not by counting steps."""


class LocalRobots:
    """``n`` gymnasium envs from ``make_env``, stepped in this process."""

    def __init__(self, make_env: Callable[[], gym.Env], n: int):
        self.envs = [make_env() for _ in range(n)]
        self.num_robots = n

    def reset(self, i: int, seed: int) -> Any:
        obs, _ = self.envs[i].reset(seed=seed)
        return obs

    def step(
        self, idx: Sequence[int], actions: np.ndarray
    ) -> list[tuple[Any, float, bool, bool, dict[str, Any]]]:
        out = []
        for i, a in zip(idx, actions, strict=True):
            obs, r, term, trunc, info = self.envs[i].step(a)
            out.append((obs, float(r), bool(term), bool(trunc), info))
        return out

    def render(self, i: int) -> np.ndarray | None:
        """Robot ``i``'s frame (H×W×3) if its env renders ``rgb_array``, else None."""
        env = self.envs[i]
        return np.asarray(env.render()) if env.render_mode == "rgb_array" else None

    def close(self) -> None:
        for env in self.envs:
            env.close()


class Fleet:
    """N robots (:class:`Robots`), a learner they all run, and ``config.supervisors``
    supervisors played by ``expert``, allocated by ``config.allocation``.

    ``gate`` supplies the signals and thresholds: its learner's novelty and discrepancy, its
    critic's Q, and δ_h, β_h, δ_r, β_r as calibrated (:class:`ThriftyGate`). With ``people``
    the supervisors are those people (``expert`` is not asked): a switch lasts until the
    person takes over, a reset until they reset, a takeover until they hand back."""

    def __init__(
        self,
        robots: Robots,
        gate: ThriftyGate,
        expert: Expert,
        config: FleetConfig,
        success: SuccessTest,
        action_space: gym.Space,
        people: People | None = None,
    ):
        self.robots, self.gate, self.expert, self.config = robots, gate, expert, config
        self.success, self.action_space, self.people = success, action_space, people
        n = robots.num_robots
        if people is not None and people.count != config.supervisors:
            raise ConfigError(f"{people.count} people for {config.supervisors} supervisors")
        self.allocator = make_allocator(config.allocation, config.priority_order)
        self.mode = np.full(n, DONE)
        self.timer = np.zeros(n, np.int64)
        """Steps left of a switch or reset; steps driven in a takeover."""
        self.position = np.full(n, -1)
        """The episode (position in the run's list) each robot is on."""
        self.helper = np.full(n, -1)
        """The supervisor (0..K−1) with each robot; −1: none."""
        self.counts = {k: np.zeros(n, np.int64) for k in COUNTERS}
        self._pending: dict[int, EpisodeEnd] = {}

    # --------------------------------------------------------------------------- run
    def run(
        self,
        episodes: Iterable[int],
        seeds: Callable[[int], int],
        rng: np.random.Generator,
        *,
        learner: Actor | None = None,
        observers: Sequence[Observer] = (),
        max_steps: int | None = None,
    ) -> FleetResult:
        """Run the episodes ``episodes`` (positions, handed to robots as they free up; each
        reset with ``seeds(position)``) until all are done or ``max_steps`` fleet steps have
        passed (episodes in flight then are dropped: not told to ``observers``, not counted).

        ``learner`` drives (default: the gate's); ``rng`` breaks priority ties and draws the
        random allocation. Observers are told each step (rows of the robots that moved) and
        each finished episode, as in :func:`~protege.rollout.loop.rollout`."""
        cfg, n = self.config, self.robots.num_robots
        learner = learner or cast(Actor, self.gate.learner)
        todo = iter(episodes)
        res = FleetResult(step_seconds=cfg.step_seconds)
        lazy = LazyExpert(self.expert, self.action_space)
        self.helper[:] = -1
        obs: list[Any] = [None] * n
        t = np.zeros(n, np.int64)
        ret = np.zeros(n)
        expert_drove: list[list[bool]] = [[] for _ in range(n)]
        for o in observers:
            o.on_rollout_start(cast(gym.vector.VectorEnv, None), 0, 0)  # not a vector env
        learner.episodes_started()

        def start(i: int) -> bool:
            pos = next(todo, None)
            if pos is None:
                self.mode[i] = DONE
                return False
            self.position[i] = pos
            obs[i] = self.robots.reset(i, seeds(pos))
            self.mode[i], t[i], ret[i] = AUTO, 0, 0.0
            expert_drove[i] = []
            for k in self.counts.values():
                k[i] = 0
            for o in observers:
                o.on_episode_start(i)
            return True

        def finish(i: int, end: EpisodeEnd) -> None:
            won = bool(self.success(end.outcome))
            self.counts["fleet_successes"][i] = int(won)
            res.episodes += 1
            res.successes += int(won)
            res.returns += end.outcome.episode_return
            res.interventions += end.interventions
            for o in observers:
                o.on_episode_end(i, end)

        for i in range(n):
            start(i)
        filler = next((o for o in obs if o is not None), None)  # rows of robots with no episode
        template = _template(self.action_space, n)
        onboard = bool(getattr(self.robots, "runs_expert", False))
        while (self.mode != DONE).any() and (max_steps is None or res.steps < max_steps):
            if self.people is not None:  # people end switches and resets by pressing a key
                desk = self.people.tick(self, obs)
                if desk.quit:
                    break
                self.timer[desk.go & ((self.mode == SWITCH) | (self.mode == RESET))] = 0
            # Finished switches and resets from the last step take effect now.
            switched = (self.mode == SWITCH) & (self.timer <= 0)
            self.mode[switched], self.timer[switched] = TELEOP, 0
            for i in map(int, np.flatnonzero((self.mode == RESET) & (self.timer <= 0))):
                finish(i, self._pending.pop(i))
                self.helper[i] = -1
                if start(i):
                    learner.episodes_started(np.arange(n) == i)
            live = self.mode != DONE
            if not live.any():
                break
            batch = stack([filler if o is None else o for o in obs])
            proposal = learner.act(batch)
            novelty = self.gate.learner.novelty(batch)
            critic = self.gate.critic
            q = critic.success(batch, proposal) if critic is not None else np.ones(n)
            signals = self._signals(novelty, q)

            # Requests (priority allocation only) and allocation of free supervisors.
            if self.allocator.uses_requests:
                asks = (self.mode == AUTO) & signals.requesting
                res.requests += int(asks.sum())
                self.counts["fleet_requests"][asks] += 1
                if cfg.wait == "pause":
                    self.mode[asks] = ASKING
            helped = self.helper >= 0
            eligible = live & ~helped
            if self.allocator.uses_requests:
                eligible &= (self.mode == ASKING) | (self.mode == FAILED) | (self.mode == AUTO)
            n_free = cfg.supervisors - int(helped.sum())
            if cfg.supervisor_share is not None and not self.allocator.uses_requests:
                # Paced: a visit starts only if its least cost fits the budget so far.
                budget = cfg.supervisor_share * cfg.supervisors * (res.steps + 1)
                least = cfg.switch_steps + cfg.min_takeover
                n_free = min(n_free, max(0, int((budget - res.supervisor_steps) // least)))
            free = [k for k in range(cfg.supervisors) if k not in self.helper]
            people = self.people is not None
            for i in map(int, self.allocator.choose(signals, eligible, n_free, rng)):
                self.helper[i] = free.pop(0)
                res.visits += 1
                self.counts["fleet_visits"][i] += 1
                if self.mode[i] == FAILED:
                    self.mode[i], self.timer[i] = RESET, cfg.switch_steps + cfg.reset_steps
                else:
                    self.mode[i], self.timer[i] = SWITCH, cfg.switch_steps
                    if cfg.switch_steps == 0 and not people:
                        self.mode[i] = TELEOP
                if people:
                    self.timer[i] = WAIT
            helped = self.helper >= 0
            if cfg.wait == "continue":
                self.mode[self.mode == ASKING] = AUTO

            # Who moves: robots driving themselves and those a supervisor drives.
            teleop = self.mode == TELEOP
            moving = (self.mode == AUTO) | teleop
            idx = np.flatnonzero(moving)
            back = np.zeros(n, bool)
            mask = teleop.reshape((n,) + (1,) * (template.ndim - 1))
            if onboard and not people:  # the robots' side asks the expert, then steps
                executed = np.asarray(proposal).astype(template.dtype)
                stepped, rows, queries = self.robots.step_supervised(  # type: ignore[attr-defined]
                    idx.tolist(), executed[idx], teleop[idx]
                )
                expert_action, asked = np.zeros_like(template), teleop
                expert_action[teleop] = rows
                executed = np.where(mask, expert_action, proposal).astype(template.dtype)
                res.expert_queries += queries
            else:
                lazy.begin_step(batch, {}, template, moving)
                if people:  # the people's keys: their actions, their hand-backs
                    expert_action, asked = desk.actions.astype(template.dtype), teleop
                    back = teleop & desk.back
                else:
                    expert_action = lazy(teleop) if teleop.any() else lazy.actions
                    asked = lazy.asked
                executed = np.where(mask, expert_action, proposal).astype(template.dtype)
                stepped = self.robots.step(idx.tolist(), executed[idx])
            if teleop.any() and not people:
                self.timer[teleop] += 1
                close = self.gate.learner.discrepancy(batch, expert_action)
                back = teleop & (self.timer >= cfg.min_takeover)
                back &= (close < self.gate.switch_back_discrepancy) & (
                    q > self.gate.switch_back_risk
                )
                back |= teleop & (self.timer >= cfg.max_takeover)

            # Time: busy supervisors, waiting robots.
            res.supervisor_steps += int(helped.sum())
            self.counts["supervisor_steps"][helped] += 1
            idle = (self.mode == ASKING) | (self.mode == SWITCH)
            idle |= (self.mode == FAILED) | (self.mode == RESET)
            res.idle_steps += int(idle.sum())
            self.counts["fleet_idle_steps"][idle] += 1
            res.robot_steps += int(live.sum())
            self.counts["fleet_robot_steps"][live] += 1
            res.steps += 1

            reward, term, trunc = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
            next_obs = list(obs)
            for k, i in enumerate(idx.tolist()):
                next_obs[i], reward[i], term[i], trunc[i], _ = stepped[k]
                expert_drove[i].append(bool(teleop[i]))
            res.labels += int(teleop.sum())
            if observers:
                decision = Decision(expert_acts=teleop, label=teleop.copy())
                step = Step(
                    obs=batch,
                    infos={},
                    t=t.copy(),
                    active=moving,
                    learner_action=proposal,
                    expert_action=expert_action,
                    asked=asked,
                    decision=decision,
                    executed=executed,
                    reward=reward,
                    terminated=term,
                    truncated=trunc,
                )
                for o in observers:
                    o.on_step(step)
            t[moving] += 1
            ret[moving] += reward[moving]
            obs = next_obs

            # Switches and resets tick on; hand-backs; finished episodes.
            self.timer[(self.mode == SWITCH) | (self.mode == RESET)] -= 1
            handed = back & ~(term | trunc)
            self.mode[handed], self.timer[handed] = AUTO, 0
            self.helper[handed] = -1
            for i in map(int, np.flatnonzero(moving & (term | trunc))):
                outcome = EpisodeOutcome(float(ret[i]), int(t[i]), bool(term[i]), bool(trunc[i]))
                end = EpisodeEnd(outcome, count_interventions(np.array(expert_drove[i])), obs[i])
                if term[i] and not self.success(outcome):  # a failure: waits for a reset
                    res.resets += 1
                    self.counts["resets"][i] += 1
                    self._pending[i] = end
                    if self.helper[i] >= 0:  # the supervisor driving it resets it at once
                        self.mode[i], self.timer[i] = RESET, WAIT if people else cfg.reset_steps
                    else:
                        self.mode[i] = FAILED
                    continue
                self.helper[i] = -1
                finish(i, end)
                if start(i):
                    learner.episodes_started(np.arange(n) == i)
        res.expert_queries += lazy.queries
        self._pending.clear()
        return res

    # ------------------------------------------------------------------------ signals
    def _signals(self, novelty: np.ndarray, q: np.ndarray) -> Signals:
        g = self.gate
        uncertain = np.where(novelty > g.novelty_threshold, novelty, 0.0)
        risky = np.where(q < g.risk_threshold, 1.0 - q, 0.0) if g.critic is not None else 0 * q
        failed = self.mode == FAILED
        busy = (self.mode == SWITCH) | (self.mode == TELEOP) | (self.mode == RESET)
        busy |= self.mode == DONE
        # A robot being helped (or done) asks for nothing; a failure always asks.
        return Signals(
            failed=failed,
            uncertainty=np.where(busy, 0.0, uncertain) * ~failed,
            risk=np.where(busy, 0.0, risky) * ~failed,
        )

    def episode_extras(self, i: int) -> dict[str, float]:
        """Robot ``i``'s current episode: waiting, supervisor time and counts (the
        thresholds it ran with too)."""
        out = {k: float(v[i]) for k, v in self.counts.items()}
        out["attention_seconds"] = out["supervisor_steps"] * self.config.step_seconds
        out.update(self.gate.thresholds())
        return out


def _template(space: gym.Space, n: int) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return np.zeros(n, np.int64)
    return np.zeros((n, *(space.shape or ())), np.asarray(space.sample()).dtype)
