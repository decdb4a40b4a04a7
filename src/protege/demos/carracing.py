"""The pixels tutorial: BC from camera frames drifts off the road; DAgger and DART recover.

``run_carracing_demo`` reproduces, end to end and on a CPU, the tutorial the imitation-learning
lectures use (train a policy from expert driving, watch compounding errors take it off the road,
fix them by labelling the learner's own states):

1. **Expert laps.** The privileged pure-pursuit driver (:mod:`protege.experts.driving`) drives
   ``demos`` seeded tracks; every 96×96 frame goes into a compressed image store.
2. **BC.** A CNN policy (:class:`protege.policies.encoders.CNNEncoder`, random-shift
   augmentation) regresses the expert's (steer, gas, brake) on the frames.
3. **DAgger** (``protege.algos.dagger``, β = 0 after round 0): the BC policy drives fresh
   tracks, the expert labels every frame the *learner* reached, the policy is trained further
   on all labels so far; ``rounds`` times.
4. **DART** (``protege.algos.dart``): the expert drives again with Gaussian noise in the
   actions it *executes* (variance re-fitted to the learner's error each round) while its clean
   actions are stored; same rounds, same training.
5. **Evaluation** on the same fresh tracks for every method (none is a training track):
   return, the fraction of the track's tiles visited, and *off-track events*: the car's centre
   leaving the road (``|info["track_offset"]|`` > the road's half-width), when each happens,
   and the fraction of episodes off the road at each step.
6. **Report**: return against expert labels (every DAgger and DART round), the table, the
   off-track timeline, a GIF of each method driving, ``results.json``.

DAgger and DART start from the BC policy (round 0 is shared, not retrained) and continue
training it each round (warm start), so the three differ only in which labelled frames they
add. They also add *labels*: the figure shows return against labels, so BC is one point and
DAgger and DART are curves. What the run measures is reported as measured, whichever way it
goes.

The defaults fit in about 16 minutes on 2 shared CPU cores; ``CarRacingDemoConfig.smoke()``
runs a toy version (tiny budgets, a few seconds of driving) that checks the plumbing, not the
learning. How each method drove is measured in :mod:`protege.demos.carracing_driving`, the
report written by :mod:`protege.demos.carracing_report`.

Example:
    >>> result = run_carracing_demo("reports/demo-carracing", CarRacingDemoConfig(seed=0))
    >>> result.rows["DAgger"].mean_return, result.rows["BC"].mean_return
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege import tasks
from protege.algos import bc, dagger, dart, engine
from protege.algos.results import DAggerResult
from protege.configs.bc import BCConfig
from protege.configs.demos import CarRacingDemoConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import DARTConfig
from protege.data.store import Store, Transitions
from protege.demos.carracing_driving import CONTROL, Driving, drive
from protege.demos.carracing_report import write_report
from protege.demos.common import timed
from protege.device import resolve_device
from protege.errors import ConfigError
from protege.policies import Policy, PolicyConfig
from protege.report import page as pg
from protege.report.video import record_gif
from protege.rollout.collect import collect
from protege.tasks.base import Task


# ---------------------------------------------------------------------------- training
def _short_task(task: Task, max_steps: int | None) -> Task:
    """The task with its horizon cut to ``max_steps`` (smoke runs)."""
    if max_steps is None:
        return task
    return dataclasses.replace(task, horizon=max_steps)


class _ContinueFromBC(engine.PolicyTrainer):
    """DAgger's and DART's learner: round 0 is the BC policy already trained (shared by both
    methods, so it is not retrained); each later round continues training the previous
    round's policy on every label so far (a warm start, input scaling kept)."""

    def __init__(self, start: Policy, config: BCConfig) -> None:
        super().__init__(make_policy=lambda: copy.deepcopy(start), bc=config, retrain="warm")
        self.start = start

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> Policy:
        if round == 0:
            return copy.deepcopy(self.start)
        warm = previous if isinstance(previous, Policy) else self.start
        return super().fit(data, round, seed, warm)


# -------------------------------------------------------------------------------- run
@dataclass
class CarRacingDemo:
    """What :func:`run_carracing_demo` produced."""

    config: CarRacingDemoConfig
    out: Path
    rows: dict[str, Driving] = field(default_factory=dict)
    """Final evaluation of "expert", "BC", "DAgger", "DART" on the same tracks."""
    curves: dict[str, DAggerResult] = field(default_factory=dict)
    """Per-round rows (labels, return) of DAgger and DART."""
    policies: dict[str, Policy] = field(default_factory=dict)
    bc_result: bc.BCResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage."""
    cpu_timings: dict[str, float] = field(default_factory=dict)
    """CPU seconds of this process per stage (all its threads): on a shared machine, about
    the wall time the stage would take with a core to itself (the demo is mostly serial)."""
    notes: dict[str, str] = field(default_factory=dict)
    gifs: dict[str, pg.Figure] = field(default_factory=dict)
    page_paths: tuple[Path, Path] | None = None

    @property
    def wall_seconds(self) -> float:
        return sum(self.timings.values())

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_timings.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "methods": {k: v.summary() for k, v in self.rows.items()},
            "rounds": {k: v.to_dict() for k, v in self.curves.items()},
            "bc": self.bc_result.to_dict() if self.bc_result else None,
            "timings": self.timings,
            "wall_seconds": self.wall_seconds,
            "cpu_timings": self.cpu_timings,
            "cpu_seconds": self.cpu_seconds,
            "load_average": os.getloadavg(),
            "notes": self.notes,
            "command": pg.command_line(),
            "machine": pg.machine(),
        }


def run_carracing_demo(
    out: str | os.PathLike[str] = "reports/demo-carracing",
    config: CarRacingDemoConfig | None = None,
    *,
    task: str = "carracing",
    max_steps: int | None = None,
    log: Any = None,
) -> CarRacingDemo:
    """Expert laps → BC → DAgger and DART rounds → evaluation on fresh tracks → a report.

    Writes ``out/index.html``, ``out/report.md``, ``out/results.json``, the figures and GIFs,
    the stores (``demos/``, ``dagger/``, ``dart/``) and the policies (``policies/``). An
    existing report folder is replaced.

    Args:
        config: budgets (default :class:`CarRacingDemoConfig`; ``CarRacingDemoConfig.smoke()``
            for a toy run).
        task: ``"carracing"`` (continuous actions).
        max_steps: cut every episode to this many steps (smoke tests only).
        log: receives one line per finished stage (e.g. ``print``; default None: silent).
    """
    cfg = config or CarRacingDemoConfig()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    out = Path(out)
    if out.exists():
        if not (out / "results.json").exists() and any(out.iterdir()):
            raise ConfigError(f"{out}: exists and is not a carracing demo report; not replacing")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    the_task = _short_task(tasks.make(task), max_steps)
    run = CarRacingDemo(config=cfg, out=out)
    say = log or (lambda _: None)
    try:
        _collect_and_train_bc(run, the_task, say)
        for method in ("DAgger", "DART"):
            _interactive(run, the_task, method, say)
        _evaluate(run, the_task, say)
        if cfg.gif:
            _gifs(run, the_task)
        write_report(run)
    finally:
        torch.set_num_threads(threads)
    say(f"[demo] report: {run.page_paths[0] if run.page_paths else out}")
    return run


def _policy(task: Task, cfg: CarRacingDemoConfig) -> Policy:
    obs_space, act_space = task.spaces
    pcfg = PolicyConfig.for_spaces(
        obs_space,
        act_space,
        hidden_sizes=cfg.hidden_sizes,
        n_obs_steps=cfg.n_obs_steps,
        random_shift=cfg.random_shift,
        encoder_kwargs={"channels": list(cfg.channels)},
    )
    return Policy(pcfg, seed=cfg.seed)


def _bc_config(cfg: CarRacingDemoConfig, steps: int) -> BCConfig:
    return BCConfig(
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        val_fraction=0.0,
        eval_every=max(1, steps // 20),
        seed=cfg.seed,
        progress=cfg.progress,
        device=cfg.device,
        precision=cfg.precision,
    )


def _collect_and_train_bc(run: CarRacingDemo, task: Task, say: Any) -> None:
    cfg = run.config
    demos = run.out / "demos"
    with timed(run.timings, "collect expert laps", run.cpu_timings):
        res = collect(
            task,
            demos,
            cfg.demos,
            n_envs=min(cfg.n_envs, cfg.demos),
            seed=cfg.seed,
            progress="expert laps" if cfg.progress else False,
        )
    store = Store.open(demos)
    size = sum(f.stat().st_size for f in demos.iterdir() if f.is_file())
    frames = store.n_transitions + len(store)
    frame_bytes = (demos / "obs.bin").stat().st_size + (demos / "obs.idx").stat().st_size
    run.notes["demonstrations"] = (
        f"{len(store)} expert laps (seeds from {cfg.seed}), {store.n_transitions:,} labeled "
        f"frames, mean return {np.mean(res.returns):.1f}; store {size / 1e6:.1f} MB on disk, "
        f"frames {frame_bytes / frames / 1e3:.1f} kB each compressed (27.6 kB raw)"
    )
    say(f"[demo] {run.notes['demonstrations']}")
    policy = _policy(task, cfg)
    with timed(run.timings, "train BC", run.cpu_timings):
        run.bc_result = bc.fit(policy, store, _bc_config(cfg, cfg.bc_steps))
    policy.save(run.out / "policies" / "bc", extra={"task": task.name})
    run.policies["BC"] = policy
    r = run.bc_result
    run.notes["BC"] = (
        f"CNN {'-'.join(map(str, cfg.channels))} + MLP {'×'.join(map(str, cfg.hidden_sizes))}, "
        f"n_obs_steps {cfg.n_obs_steps}, random shift ±{cfg.random_shift} px, MSE head; "
        f"{r.steps} steps of batch {cfg.batch_size}, lr {cfg.lr} (cosine); "
        f"{r.samples_per_s:,.0f} samples/s with {cfg.torch_threads} torch thread(s)"
    )
    say(f"[demo] BC: {r.steps} steps in {r.train_seconds:.0f} s")
    extra = cfg.rounds * cfg.round_steps
    if cfg.bc_control and extra:
        longer = copy.deepcopy(policy)
        bcfg = dataclasses.replace(_bc_config(cfg, extra), fit_normalization=False)
        with timed(run.timings, "train BC + steps", run.cpu_timings):
            bc.fit(longer, store, bcfg)
        longer.save(run.out / "policies" / "bc-steps", extra={"task": task.name})
        run.policies[CONTROL] = longer
        run.notes[CONTROL] = (
            f"the BC policy trained {extra} more steps on the demonstrations only (same "
            "schedule as a DAgger round): as many gradient steps as DAgger's and DART's final "
            "policies, none of their extra labels"
        )


def rounds_config(cfg: CarRacingDemoConfig) -> DAggerConfig:
    """The interactive rounds after BC (DAgger or DART): the demo's own settings ``cfg``,
    round 0 = the demonstrations already stored, the expert in control whenever it labels."""
    return DAggerConfig(
        rounds=cfg.rounds,
        episodes_per_round=cfg.episodes_per_round,
        initial_demos=0,
        beta="indicator",
        retrain="warm",
        bc=_bc_config(cfg, cfg.round_steps),
        n_envs=min(cfg.n_envs, cfg.episodes_per_round),
        seed=cfg.seed,
        eval_episodes=cfg.eval_episodes,
        eval_envs=min(cfg.n_envs, cfg.eval_episodes),
        eval_seed=cfg.eval_seed,
    )


def _interactive(run: CarRacingDemo, task: Task, method: str, say: Any) -> None:
    """DAgger or DART rounds starting from the BC policy (round 0 = the demonstrations)."""
    cfg = run.config
    folder = run.out / method.lower()
    store_path = folder / "store"
    shutil.copytree(run.out / "demos", store_path, ignore=shutil.ignore_patterns(".lock"))
    dcfg = rounds_config(cfg)
    trainer = _ContinueFromBC(run.policies["BC"], dcfg.bc)
    lines = (lambda s: say(f"[demo] {s}")) if cfg.progress else None
    with timed(run.timings, method, run.cpu_timings):
        if method == "DAgger":
            result = engine.run(
                task,
                None,
                store_path,
                dcfg,
                dagger.dagger_gate,
                trainer=trainer,
                method="dagger",
                run_dir=folder / "run",
                log=lines,
            )
        else:
            result = dart.run(
                task,
                store_path,
                dcfg,
                DARTConfig(initial_noise=cfg.dart_noise),
                trainer=trainer,
                method="dart",
                run_dir=folder / "run",
                log=lines,
            )
    run.curves[method] = result
    last = Policy.load(folder / "run" / "learners" / f"round_{cfg.rounds:03d}")
    run.policies[method] = last.to(resolve_device(cfg.device))
    say(
        f"[demo] {method}: {result.rows[-1].labels:,} labels, final return "
        f"{result.rows[-1].mean_return:.1f}"
    )


def _evaluate(run: CarRacingDemo, task: Task, say: Any) -> None:
    cfg = run.config
    kw: dict[str, Any] = {"episodes": cfg.eval_episodes, "seed": cfg.eval_seed}
    kw["n_envs"] = min(cfg.n_envs, cfg.eval_episodes)
    n_demo = Store.open(run.out / "demos").n_labels
    labels = {"BC": n_demo, CONTROL: n_demo}
    for method, curve in run.curves.items():
        labels[method] = curve.rows[-1].labels
    with timed(run.timings, "evaluate", run.cpu_timings):
        run.rows["expert"] = drive("expert", task, None, **kw)
        for name, policy in run.policies.items():
            run.rows[name] = drive(name, task, policy, labels=labels[name], **kw)
    for name, d in run.rows.items():
        say(
            f"[demo] {name}: return {d.mean_return:.1f} ± {d.std_return:.1f}, tiles "
            f"{np.mean(d.tiles):.0%}, off-track events {sum(len(e) for e in d.events())}"
        )


def _gifs(run: CarRacingDemo, task: Task) -> None:
    cfg = run.config
    with timed(run.timings, "GIFs", run.cpu_timings):
        for name, policy in run.policies.items():
            if name == CONTROL:
                continue
            file = f"{name.lower()}.gif"
            clip = record_gif(
                policy, task, run.out / file, seed=cfg.eval_seed, every=cfg.gif_every, scale=3
            )
            run.gifs[name] = pg.Figure(
                file,
                f"{name} driving",
                f"{name} on the first evaluation track (seed {cfg.eval_seed}): return "
                f"{clip.episode_return:.1f} in {clip.length} steps (one frame in "
                f"{cfg.gif_every}).",
            )
