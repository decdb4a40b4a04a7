"""The weekend arm project: a simulated arm picks up a block.

``run_arm_demo`` does, on Meta-World's pick-place (a Sawyer arm in MuJoCo, Meta-World's
scripted policy as the expert), what the seeds' hands-on robot project asks for:

1. **Demonstrations.** The expert picks and places the block ``demos`` times (seeded; every
   seed is a different block and goal position).
2. **BC** (round 0 of DAgger): an MLP regresses the expert's (dx, dy, dz, grip) on the states;
   evaluated on ``eval_episodes`` seeded rollouts.
3. **DAgger**, ``rounds`` rounds: the learner drives ``episodes_per_round`` episodes, the
   expert labels *every* state the learner reaches, a learner is trained on all labels so far
   and evaluated on the same rollouts as BC.
4. **Report**: success per round, the disagreement with the expert along the learner's own
   trajectories, GIFs of BC and of the last learner from the camera, ``results.json``.

Everything runs through protege's round engine (:func:`protege.algos.engine.run` with
DAgger's gate): round 0 is BC on the demonstrations, rows are evaluations on fixed seeds.

With the full state and 50 demonstrations BC is already near the expert, so the demo also runs
the settings where the lesson shows (:data:`SETTINGS`): **few** demonstrations (3: BC fails,
DAgger's labels on the learner's own states recover), and the **hidden** goal (the learner's
observation lacks the goal, the expert reads it from the simulator: the asymmetric pair DAgger
is made for, and what it can and cannot fix). A setting is one :class:`Setting`. Opt-in, the
**camera** setting (``metaworld/pick-place-camera-workspace``): the learner sees a camera on the
table and the arm's proprioception, not the block or the goal, through a small CNN (the parts
encoder; see :mod:`protege.tasks.metaworld_env`), each DAgger round's learner starting from the
previous round's weights.

Example:
    >>> run = run_arm_demo("reports/demo-arm", ArmDemoConfig(seed=0))
    >>> [r.success_rate for r in run.results["main"].rows]
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protege import tasks
from protege.algos import dagger, engine
from protege.algos.results import DAggerResult
from protege.configs.bc import BCConfig
from protege.configs.demos import ArmDemoConfig
from protege.configs.interactive import DAggerConfig
from protege.data.episode import LEARNER
from protege.data.store import Store
from protege.demos.arm_report import write_report
from protege.demos.arm_settings import SETTINGS, Setting
from protege.demos.common import timed
from protege.errors import ConfigError
from protege.policies import Policy
from protege.report import page as pg
from protege.report.video import record_gif
from protege.rollout.evaluate import Evaluation, evaluate
from protege.tasks.base import Task


@dataclass
class ArmDemo:
    """What :func:`run_arm_demo` produced."""

    config: ArmDemoConfig
    out: Path
    results: dict[str, DAggerResult] = field(default_factory=dict)
    """Per setting: the engine's rows (round 0 = BC), success on the evaluation rollouts."""
    disagreement: dict[str, list[float]] = field(default_factory=dict)
    """Per setting and round: mean ‖learner − expert‖ over the states the learner reached
    (rounds 0..R−1 from the next round's labelled rollouts, round R from the evaluation)."""
    final: dict[str, Evaluation] = field(default_factory=dict)
    """Per setting: the last learner's evaluation with disagreement by step."""
    by_step: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """BC's disagreement by step on its own round-1 rollouts (and episodes reaching each
    step), per setting."""
    gifs: dict[str, pg.Figure] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Wall seconds per setting (and for the GIFs)."""
    cpu_timings: dict[str, float] = field(default_factory=dict)
    """CPU seconds of this process per setting: on a shared machine, about the wall time
    the step would take with a core to itself (the demo is mostly serial)."""
    notes: dict[str, str] = field(default_factory=dict)
    page_paths: tuple[Path, Path] | None = None

    @property
    def wall_seconds(self) -> float:
        return sum(self.timings.values())

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_timings.values())

    def success(self, setting: str) -> list[float]:
        """Success rate of BC (round 0) and of each DAgger round's learner."""
        return [r.success_rate for r in self.results[setting].rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "settings": {
                name: {
                    "task": SETTINGS[name].task,
                    "success": self.success(name),
                    "labels": [r.labels for r in res.rows],
                    "disagreement": self.disagreement.get(name, []),
                    "expert_success": res.expert_success,
                    "wall_seconds": res.rows[-1].wall_seconds if res.rows else 0.0,
                    "rounds": res.to_dict(),
                }
                for name, res in self.results.items()
            },
            "timings": self.timings,
            "wall_seconds": self.wall_seconds,
            "cpu_timings": self.cpu_timings,
            "cpu_seconds": self.cpu_seconds,
            "load_average": os.getloadavg(),
            "notes": self.notes,
            "command": pg.command_line(),
            "machine": pg.machine(),
        }


def run_arm_demo(
    out: str | os.PathLike[str] = "reports/demo-arm",
    config: ArmDemoConfig | None = None,
    *,
    log: Any = print,
) -> ArmDemo:
    """Demonstrations → BC → evaluation → DAgger rounds, for each of ``config.settings``, then
    a report in ``out`` (``index.html``, ``report.md``, ``results.json``, figures, GIFs, and
    per setting its store and learners in ``<setting>/``). An existing report is replaced.
    """
    cfg = config or ArmDemoConfig()
    out = Path(out)
    if out.exists():
        if not (out / "results.json").exists() and any(out.iterdir()):
            raise ConfigError(f"{out}: exists and is not an arm demo report; not replacing it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    run = ArmDemo(config=cfg, out=out)
    say = log or (lambda _: None)
    for name in cfg.settings:
        _run_setting(run, SETTINGS[name], say)
    if cfg.gif:
        _gifs(run)
    write_report(run)
    say(f"[arm] report: {run.page_paths[1] if run.page_paths else out}")
    return run


def setting_task(setting: Setting, config: ArmDemoConfig) -> Task:
    """The setting's task with the demo's horizon."""
    return dataclasses.replace(tasks.make(setting.task), horizon=config.horizon)


def _dagger_config(cfg: ArmDemoConfig, setting: Setting) -> DAggerConfig:
    demos = int(getattr(cfg, setting.demos_field))
    return DAggerConfig(
        rounds=cfg.rounds,
        episodes_per_round=cfg.episodes_per_round,
        initial_demos=demos,
        beta="indicator",  # the expert drives round 0 (the demonstrations), the learner after
        retrain=setting.retrain,
        bc=BCConfig(
            steps=int(getattr(cfg, setting.steps_field)),
            batch_size=int(getattr(cfg, setting.batch_field)),
            val_fraction=0.0,
            eval_every=max(1, int(getattr(cfg, setting.steps_field))),
            seed=cfg.seed,
            progress=False,
        ),
        n_envs=cfg.n_envs,
        seed=cfg.seed,
        eval_episodes=cfg.eval_episodes,
        eval_envs=min(cfg.n_envs, cfg.eval_episodes),
        eval_seed=cfg.eval_seed,
    )


def _run_setting(run: ArmDemo, setting: Setting, say: Any) -> None:
    cfg = run.config
    task = setting_task(setting, cfg)
    demos = int(getattr(cfg, setting.demos_field))
    folder = run.out / setting.name
    lines = (lambda s: say(f"[arm/{setting.name}] {s}")) if cfg.progress else None
    with timed(run.timings, setting.name, run.cpu_timings):
        result = engine.run(
            task,
            engine.policy_factory(task, hidden_sizes=cfg.hidden_sizes, **setting.policy),
            folder / "store",
            _dagger_config(cfg, setting),
            dagger.dagger_gate,
            method="dagger",
            run_dir=folder / "run",
            log=lines,
        )
        last = Policy.load(folder / "run" / "learners" / f"round_{cfg.rounds:03d}")
        final = evaluate(
            last,
            task,
            episodes=cfg.eval_episodes,
            n_envs=min(cfg.n_envs, cfg.eval_episodes),
            seed=cfg.eval_seed,
        )
    run.results[setting.name] = result
    run.final[setting.name] = final
    per_round, bc_by_step = _disagreement(Store.open(folder / "store"), cfg.rounds)
    run.disagreement[setting.name] = [*per_round, final.disagreement]
    if bc_by_step is not None:
        run.by_step[setting.name] = bc_by_step
    rows = result.rows
    run.notes[setting.title] = (
        f"{task.name}, {demos} demonstrations; success "
        + " → ".join(f"{r.success_rate:.0%}" for r in rows)
        + f" (BC, then {len(rows) - 1} DAgger rounds); {rows[-1].labels:,} labels"
    )
    say(f"[arm/{setting.name}] {run.notes[setting.title]}")


def _disagreement(
    store: Store, rounds: int
) -> tuple[list[float], tuple[np.ndarray, np.ndarray] | None]:
    """Mean ‖learner − expert‖ of learner r on its own states (round r+1's rollouts, every
    state labelled), for r = 0..rounds−1; and BC's (round 1's) by time step."""
    per_round: list[list[np.ndarray]] = [[] for _ in range(rounds)]
    for ep in store.episodes():
        if ep.round < 1 or ep.executed is None or ep.actor is None:
            continue
        mask = (ep.actor == LEARNER) & (ep.labeled if ep.labeled is not None else True)
        gap = np.linalg.norm(np.asarray(ep.executed) - np.asarray(ep.actions), axis=1)
        per_round[ep.round - 1].append(np.where(mask, gap, np.nan))
    means = [float(np.nanmean(np.concatenate(s))) if s else float("nan") for s in per_round]
    first = per_round[0] if per_round else []
    if not first:
        return means, None
    t_max = max(len(s) for s in first)
    total, count = np.zeros(t_max), np.zeros(t_max, np.int64)
    for s in first:
        ok = ~np.isnan(s)
        total[: len(s)][ok] += s[ok]
        count[: len(s)] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return means, (np.where(count > 0, total / np.maximum(count, 1), np.nan), count)


def _camera(task: Task) -> str:
    return str(task.env_kwargs.get("camera", "corner"))


def _gifs(run: ArmDemo) -> None:
    """BC and the last DAgger learner of each setting on the first evaluation episode."""
    cfg = run.config
    with timed(run.timings, "GIFs", run.cpu_timings):
        for name in run.results:
            setting = SETTINGS[name]
            task = setting_task(setting, cfg)
            learners = run.out / name / "run" / "learners"
            for label, r in (("BC", 0), (f"DAgger round {cfg.rounds}", cfg.rounds)):
                if r == 0 and label.startswith("DAgger"):
                    continue  # no DAgger round: BC is the last learner
                policy = Policy.load(learners / f"round_{r:03d}")
                file = f"{name}-round{r}.gif"
                clip = record_gif(
                    policy, task, run.out / file, seed=cfg.eval_seed, every=3, scale=1
                )
                run.gifs[f"{name}/{r}"] = pg.Figure(
                    file,
                    f"{setting.title}: {label}",
                    f"{label} on the first evaluation episode (seed {cfg.eval_seed}), "
                    f"{_camera(task)} camera, one frame in 3: {clip.length} steps; "
                    + (
                        "it succeeded (the episode ends at success)."
                        if clip.length < task.horizon
                        else f"no success in {task.horizon} steps."
                    ),
                )
