"""Fleet mode with people as the supervisors (:mod:`protege.teleop.desk`), driven by scripted
key sources (:class:`ScriptedStation`): the same desk and fleet code a real window drives
(tests/test_fleet_display.py does that under Xvfb)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from fakes import FirstStepNovelty, short_demo
from protege.algos import engine
from protege.algos import fleet as fleet_method
from protege.algos.resume import check_resumed_config
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.configs.bc import BCConfig
from protege.configs.fleet import FleetConfig
from protege.configs.interactive import DAggerConfig
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts.adapters import CallableExpert
from protege.rollout.fleet import AUTO, Fleet
from protege.rollout.gates_interactive import ThriftyGate
from protege.rollout.observers import Observer, Step
from protege.teleop.controls import DiscreteControls
from protege.teleop.desk import Desk, ScriptedStation, View
from test_fleet import SHORT_POLE

PUSH = DiscreteControls({"left": 0, "right": 1}, noop=None, initial=0)


class Robots:
    """Robot i observes ``[i, t]``; episodes end (truncated) after ``length`` steps."""

    def __init__(self, n: int, length: int = 1000):
        self.num_robots, self.length = n, length
        self.t = np.zeros(n, np.int64)

    def reset(self, i: int, seed: int) -> Any:
        self.t[i] = 0
        return np.array([i, 0], np.float32)

    def step(self, idx: Any, actions: Any) -> list[tuple[Any, float, bool, bool, dict]]:
        out = []
        for i in idx:
            self.t[i] += 1
            obs = np.array([i, self.t[i]], np.float32)
            out.append((obs, 1.0, False, bool(self.t[i] >= self.length), {}))
        return out

    def close(self) -> None:
        pass


def person(drive: int, key: str = "right", wait: int = 0) -> Callable[[int, View], list[str]]:
    """A scripted person: ``wait`` ticks looking at a robot that asks, SPACE (with ``key``),
    ``drive`` ticks holding ``key``, ENTER."""
    state = {"looked": 0, "driven": 0}

    def script(tick: int, view: View) -> list[str]:
        if view.robot is None:
            return []
        if view.heading.startswith("driving"):
            state["driven"] += 1
            if state["driven"] > drive:
                state["driven"] = 0
                return ["return"]
            return [key]
        state["looked"] += 1
        if state["looked"] > wait:
            state["looked"] = 0
            return ["space", key]
        return []

    return script


class Steps(Observer):
    def __init__(self) -> None:
        self.steps: list[Step] = []

    def on_step(self, step: Step) -> None:
        self.steps.append(step)


def fleet(robots: Robots, scripts: Sequence[Callable[[int, View], list[str]]]) -> Fleet:
    gate = ThriftyGate(FirstStepNovelty(discrepancy=0.0), None, novelty_threshold=0.05)
    cfg = FleetConfig(robots=robots.num_robots, supervisors=len(scripts), wait="pause")
    desk = Desk([ScriptedStation(s) for s in scripts], PUSH, gym.spaces.Discrete(2), fps=1000)
    never = CallableExpert(lambda obs: pytest.fail("a fleet with people asked the expert"))
    return Fleet(robots, gate, never, cfg, lambda o: True, gym.spaces.Discrete(2), people=desk)


def test_a_person_takes_the_highest_priority_robot_drives_it_and_hands_back() -> None:
    robots, seen = Robots(3), Steps()
    f = fleet(robots, [person(drive=3, wait=2)])
    res = f.run(range(3), lambda e: e, np.random.default_rng(0), observers=[seen], max_steps=40)
    (desk_station,) = f.people.stations  # type: ignore[union-attr]
    shown = [v.robot for v in desk_station.views]
    # Everyone asks at step 0 and pauses; the person gets robot 2 (most novel), then 1, then
    # 0. A visit: the step it is given and 2 ticks looking (3 idle steps), SPACE (the person
    # drives from that step on), 3 more steps driving, ENTER (that step is still driven):
    # 8 steps, 5 of them labels.
    firsts = [r for k, r in enumerate(shown) if r is not None and (k == 0 or shown[k - 1] != r)]
    assert firsts == [2, 1, 0]
    assert res.visits == 3 and res.labels == 3 * 5 and res.supervisor_steps == 3 * 8
    labels = np.array([s.decision.label for s in seen.steps])
    executed = np.array([s.executed for s in seen.steps])
    np.testing.assert_array_equal(labels, np.array([s.asked for s in seen.steps]))
    assert (executed[labels] == 1).all()  # the person's "right"; the learner pushes left
    assert (executed[~labels & np.array([s.active for s in seen.steps])] == 0).all()
    assert labels.sum(axis=0).tolist() == [5, 5, 5]
    # A robot waiting for the person does not move: robot 0 waited two whole visits and its
    # own 3 idle steps, then moved for the remaining 40 - 19 steps.
    assert robots.t.tolist() == [21, 29, 37]
    assert (f.mode == AUTO).all() and (f.helper < 0).all()  # everyone handed back
    assert res.idle_steps == 3 + 11 + 19 and res.expert_queries == 0


def test_two_people_work_at_once_and_escape_ends_the_run() -> None:
    robots, seen = Robots(4), Steps()

    keeper = person(drive=100, key="left")

    def quitter(tick: int, view: View) -> list[str]:
        return ["escape"] if tick == 12 else keeper(tick, view)

    f = fleet(robots, [person(drive=2), quitter])
    res = f.run(range(8), lambda e: e, np.random.default_rng(0), observers=[seen])
    # Robots 3 and 2 (the two most novel) are taken at step 0, both driven from step 1. The
    # first person drives robot 3 for steps 1-4, then robot 1 (steps 6-9), then robot 0
    # (step 11); the second never hands back robot 2; ESC at tick 12 ends the run there.
    assert res.steps == 12 and res.episodes == 0 and res.visits == 4
    labels = np.array([s.decision.label for s in seen.steps])
    assert labels.sum(axis=0).tolist() == [1, 4, 11, 4]
    assert np.flatnonzero(labels[:, 1]).tolist() == [6, 7, 8, 9]
    executed = np.array([s.executed for s in seen.steps])
    assert (executed[:, 3][labels[:, 3]] == 1).all()  # the first person pushes right
    assert (executed[:, 2][labels[:, 2]] == 0).all()  # the second, left
    assert f.people.quit_requested  # type: ignore[union-attr]


def test_the_people_must_be_the_configured_supervisors() -> None:
    with pytest.raises(ConfigError, match="1 people for 2 supervisors"):
        gate = ThriftyGate(FirstStepNovelty(discrepancy=0.0), None, novelty_threshold=0.05)
        desk = Desk([ScriptedStation(lambda t, v: [])], PUSH, gym.spaces.Discrete(2), fps=10)
        Fleet(Robots(2), gate, CallableExpert(lambda o: o), FleetConfig(supervisors=2),
              lambda o: True, gym.spaces.Discrete(2), people=desk)  # fmt: skip


# ------------------------------------------------------------ Fleet-DAgger with people
def _people_run(tmp_path: Path, scripts: Sequence[Any], **kwargs: Any) -> Any:
    torch.set_num_threads(1)
    config = DAggerConfig(
        rounds=1,
        episodes_per_round=4,
        initial_demos=1,
        eval_episodes=2,
        seed=3,
        bc=BCConfig(steps=20, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False),
    )
    fc = FleetConfig(robots=2, supervisors=len(scripts), members=2, q_steps=20, people=True)
    fc = dataclasses.replace(fc, q_hidden=(16, 16))
    space = SHORT_POLE.spaces[1]
    desk = Desk([ScriptedStation(s) for s in scripts], PUSH, space, fps=1000)
    make = engine.policy_factory(SHORT_POLE, hidden_sizes=(16, 16))
    if not kwargs.get("resume"):
        short_demo(SHORT_POLE, tmp_path / "store", 40)
    result = fleet_method.run(
        SHORT_POLE, tmp_path / "store", config, fc, make_policy=make, people=desk, **kwargs
    )
    return result, desk


def test_the_people_s_labels_are_stored_and_escape_stops_a_resumable_run(tmp_path: Path) -> None:
    helper = person(drive=5)  # takes over (or resets) any robot shown, drives it pushing right

    def quits_at_60(tick: int, view: View) -> list[str]:
        return ["escape"] if tick == 60 else helper(tick, view)

    cut, desk = _people_run(tmp_path, [quits_at_60])
    assert cut.stopped and desk.quit_requested
    store = Store.open(tmp_path / "store")
    done = [e.episode for e in store.index if e.round == 1]
    assert len(done) < 4  # ESC cut the round; the finished episodes are stored
    resumed, _ = _people_run(tmp_path, [person(drive=5)], resume=True)
    assert not resumed.stopped
    store = Store.open(tmp_path / "store")
    assert sorted(e.episode for e in store.index if e.round == 1) == [0, 1, 2, 3]
    data = store.transitions()
    people = data.labeled.astype(bool) & (np.repeat(data.rounds, data.episode_lengths) > 0)
    assert people.sum() > 0 and (data.actions[people] == 1).all()  # the person's "right"
    extras = [e.extras for e in store.index if e.round == 1]
    assert sum(x["fleet_visits"] for x in extras) > 0
    assert resumed.rows[-1].attention_seconds > 0


def test_people_with_no_display_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):  # SDL would fall back to
        monkeypatch.delenv(name, raising=False)  # an invisible window nobody can type in
    argv = ["dagger", "--task", "cartpole", "--method", "fleet", "--people", "--supervisors"]
    assert main([*argv, "2", "--rounds", "1", "--out", str(tmp_path / "run")]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "cannot open the window 'protege fleet - supervisor 1/2 - cartpole'" in err
    assert "no display" in err
    with pytest.raises(ConfigError, match="names 1 displays for 2 supervisors"):
        FleetConfig(supervisors=2, people=True, displays=(":0",))


def test_a_people_run_resumes_at_other_displays(tmp_path: Path) -> None:
    def settings(people: bool, displays: list[str]) -> dict[str, Any]:
        bc = {"device": "auto", "precision": "fp32"}
        return {"rounds": 2, "bc": bc, "method_settings": {"people": people, "displays": displays}}

    (tmp_path / "config.json").write_text(json.dumps(settings(True, [":0", ":1"])))
    check = check_resumed_config
    check(tmp_path / "config.json", settings(True, [":5", ":6"]), None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="people"):
        check(tmp_path / "config.json", settings(False, [":0", ":1"]), None)  # type: ignore[arg-type]
