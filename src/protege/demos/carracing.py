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

The defaults fit in about 16 minutes on 2 shared CPU cores; ``smoke=True`` runs a toy version
(tiny budgets, a few seconds of driving) that checks the plumbing, not the learning.

Example:
    >>> result = run_carracing_demo(out="reports/demo-carracing", seed=0)
    >>> result.rows["DAgger"].mean_return, result.rows["BC"].mean_return
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.envs.box2d.car_racing import TRACK_WIDTH

from protege import tasks
from protege.algos import bc, dagger, dart, engine
from protege.algos.results import DAggerResult
from protege.configs.bc import BCConfig
from protege.configs.demos import CarRacingDemoConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import DARTConfig
from protege.data.store import Store, Transitions
from protege.errors import ConfigError
from protege.policies import Policy, PolicyConfig
from protege.report import page as pg
from protege.report import plots
from protege.report.video import record_gif
from protege.rollout.collect import collect
from protege.rollout.gates import ExpertGate, LearnerGate
from protege.rollout.loop import Actor, rollout
from protege.rollout.observers import EpisodeEnd, Observer, Step
from protege.tasks.base import Task

CONTROL = "BC + steps"
"""The control: BC trained as many steps as DAgger's final policy, on the demonstrations only."""

OFF_TRACK = float(TRACK_WIDTH)
"""Half-width of CarRacing's road (40/6 ≈ 6.67 world units): the car's centre farther than this
from the centreline is off the road."""


# ----------------------------------------------------------------------------- driving
@dataclass
class Driving:
    """How one method drove the evaluation tracks, one entry per track in the same order for
    every method (sorted by sub-env, then by episode within it: the track's identity)."""

    name: str
    labels: int
    """Expert labels the method trained on (0 for the expert)."""
    returns: np.ndarray
    lengths: np.ndarray
    tiles: np.ndarray
    """Fraction of each track's tiles visited."""
    offsets: list[np.ndarray] = field(default_factory=list)
    """Per episode, ``|track_offset|`` at every step (before the step's action)."""
    wall_seconds: float = 0.0

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    def paired_difference(self, other: Driving) -> tuple[float, float]:
        """Mean per-track return difference ``self − other`` and its standard error (both
        drove the same tracks, so the track-to-track spread cancels)."""
        diff = self.returns - other.returns
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        return float(np.mean(diff)), se

    def events(self) -> list[np.ndarray]:
        """Per episode, the steps at which the car left the road (on → off transitions)."""
        out = []
        for off in self.offsets:
            outside = off > OFF_TRACK
            starts = np.flatnonzero(outside & ~np.concatenate([[False], outside[:-1]]))
            out.append(starts)
        return out

    @property
    def first_off(self) -> np.ndarray:
        """Step of each episode's first off-track event (NaN if it never left the road)."""
        return np.array([e[0] if len(e) else np.nan for e in self.events()], float)

    @property
    def off_fraction(self) -> float:
        """Fraction of all steps driven with the car's centre off the road."""
        flat = np.concatenate(self.offsets) if self.offsets else np.zeros(0)
        return float(np.mean(flat > OFF_TRACK)) if flat.size else float("nan")

    def off_by_step(self, horizon: int) -> np.ndarray:
        """(horizon,) fraction of episodes off the road at each step (an ended episode counts
        as on the road: it finished its lap or left the playfield, see ``lengths``)."""
        grid = np.zeros((len(self.offsets), horizon))
        for i, off in enumerate(self.offsets):
            n = min(len(off), horizon)
            grid[i, :n] = off[:n] > OFF_TRACK
        return grid.mean(0) if len(grid) else np.zeros(horizon)

    def summary(self) -> dict[str, Any]:
        events = self.events()
        return {
            "labels": self.labels,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "returns": self.returns.tolist(),
            "lengths": self.lengths.tolist(),
            "tiles_visited": self.tiles.tolist(),
            "mean_tiles_visited": float(np.mean(self.tiles)),
            "off_track_events": [e.tolist() for e in events],
            "episodes_with_off_track": int(sum(len(e) > 0 for e in events)),
            "first_off_track_step": [None if np.isnan(v) else int(v) for v in self.first_off],
            "off_track_step_fraction": self.off_fraction,
            "wall_seconds": self.wall_seconds,
        }


class _Monitor(Observer):
    """Records ``|track_offset|`` at every step of every counted episode and the tiles
    visited at its end, with which sub-env and which of its episodes it was (its track)."""

    def __init__(self) -> None:
        self.trace: dict[int, list[float]] = {}
        self.offsets: list[np.ndarray] = []
        self.tiles: list[float] = []
        self.keys: list[tuple[int, int]] = []
        """(sub-env, episode of that sub-env) of every finished episode: which track it was."""
        self._count: dict[int, int] = {}

    def on_episode_start(self, env_index: int) -> None:
        self.trace[env_index] = []

    def on_step(self, step: Step) -> None:
        offset = np.abs(np.asarray(step.infos["track_offset"], float))
        for i in np.flatnonzero(step.active).tolist():
            self.trace[i].append(float(offset[i]))

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        self.offsets.append(np.array(self.trace.pop(env_index), float))
        info = end.outcome.final_info
        total = float(np.asarray(info.get("track_tiles", np.nan)))
        visited = float(np.asarray(info.get("tiles_visited", np.nan)))
        self.tiles.append(visited / total if total > 0 else float("nan"))
        self.keys.append((env_index, self._count.get(env_index, 0)))
        self._count[env_index] = self._count.get(env_index, 0) + 1


def drive(
    name: str,
    task: Task,
    learner: Actor | None,
    episodes: int,
    seed: int,
    n_envs: int,
    labels: int = 0,
) -> Driving:
    """Run ``learner`` (or, if None, the task's expert) on seeded tracks and record how it
    drove. The tracks are those :func:`protege.evaluate` with the same ``seed`` and
    ``n_envs`` uses (DAgger's per-round evaluation)."""
    env = task.make_vec_env(min(n_envs, episodes))
    expert = task.make_expert()
    monitor = _Monitor()
    t0 = time.perf_counter()
    try:
        r = rollout(
            env,
            episodes,
            gate=ExpertGate() if learner is None else LearnerGate(label=False),
            seed=seed,
            learner=learner,
            expert=expert if learner is None else None,
            observers=[monitor],
        )
    finally:
        env.close()
    # Episodes finish in an order that depends on how each method drives; sort them by track.
    order = sorted(range(len(monitor.keys)), key=lambda j: monitor.keys[j])
    return Driving(
        name=name,
        labels=labels,
        returns=np.asarray(r.returns, float)[order],
        lengths=np.asarray(r.lengths)[order],
        tiles=np.asarray(monitor.tiles, float)[order],
        offsets=[monitor.offsets[j] for j in order],
        wall_seconds=time.perf_counter() - t0,
    )


def _short_task(task: Task, max_steps: int | None) -> Task:
    """The task with its horizon cut to ``max_steps`` (smoke runs)."""
    if max_steps is None:
        return task
    return dataclasses.replace(task, horizon=max_steps)


# ---------------------------------------------------------------------------- training
@dataclass
class _ContinueFromBC:
    """DAgger's and DART's learner: round 0 is the BC policy already trained (shared by both
    methods, so it is not retrained); each later round continues training the previous
    round's policy on every label so far (warm start, input scaling kept)."""

    start: Policy
    config: BCConfig

    def fit(self, data: Transitions, round: int, seed: int, previous: Any | None) -> Policy:
        if round == 0:
            return copy.deepcopy(self.start)
        policy = copy.deepcopy(previous if isinstance(previous, Policy) else self.start)
        bc.fit(policy, data, dataclasses.replace(self.config, seed=seed, fit_normalization=False))
        return policy

    def save(self, learner: Any, path: Path) -> None:
        learner.save(path)

    def load(self, path: Path) -> Policy:
        return Policy.load(path)


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


@contextmanager
def _timed(run: CarRacingDemo, step: str) -> Iterator[None]:
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        run.timings[step] = run.timings.get(step, 0.0) + time.perf_counter() - t0
        run.cpu_timings[step] = run.cpu_timings.get(step, 0.0) + time.process_time() - c0


def run_carracing_demo(
    out: str | os.PathLike[str] = "reports/demo-carracing",
    config: CarRacingDemoConfig | None = None,
    *,
    task: str = "carracing",
    max_steps: int | None = None,
    log: Any = print,
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
        log: receives one line per finished stage (None: silent).
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
    )


def _collect_and_train_bc(run: CarRacingDemo, task: Task, say: Any) -> None:
    cfg = run.config
    demos = run.out / "demos"
    with _timed(run, "collect expert laps"):
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
    with _timed(run, "train BC"):
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
        with _timed(run, "train BC + steps"):
            bc.fit(longer, store, bcfg)
        longer.save(run.out / "policies" / "bc-steps", extra={"task": task.name})
        run.policies[CONTROL] = longer
        run.notes[CONTROL] = (
            f"the BC policy trained {extra} more steps on the demonstrations only (same "
            "schedule as a DAgger round): as many gradient steps as DAgger's and DART's final "
            "policies, none of their extra labels"
        )


def _interactive(run: CarRacingDemo, task: Task, method: str, say: Any) -> None:
    """DAgger or DART rounds starting from the BC policy (round 0 = the demonstrations)."""
    cfg = run.config
    folder = run.out / method.lower()
    store_path = folder / "store"
    shutil.copytree(run.out / "demos", store_path, ignore=shutil.ignore_patterns(".lock"))
    dcfg = DAggerConfig(
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
    trainer = _ContinueFromBC(run.policies["BC"], dcfg.bc)
    lines = (lambda s: say(f"[demo] {s}")) if cfg.progress else None
    with _timed(run, method):
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
    run.policies[method] = Policy.load(folder / "run" / "learners" / f"round_{cfg.rounds:03d}")
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
    with _timed(run, "evaluate"):
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
    with _timed(run, "GIFs"):
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


# ------------------------------------------------------------------------------ report
def _plot_return_vs_labels(run: CarRacingDemo, path: Path) -> Path:
    import matplotlib.pyplot as plt

    colors = plots.method_colors(list(run.rows) or ["expert", "BC", *run.curves])
    fig, ax = plt.subplots(figsize=(6.8, 4.0))
    expert = run.rows.get("expert")
    if expert is not None:
        ax.axhline(expert.mean_return, color=colors["expert"], ls="--", lw=1, label="expert")
    for name, res in run.curves.items():
        x = [r.labels for r in res.rows]
        y = [r.mean_return for r in res.rows]
        e = [r.std_return for r in res.rows]
        ax.errorbar(x, y, yerr=e, fmt="-o", ms=4, capsize=3, color=colors[name], label=name)
    for name, label, marker in (("BC", "BC (round 0 of both)", "s"), (CONTROL, CONTROL, "^")):
        if name in run.rows:
            b = run.rows[name]
            ax.errorbar(
                [b.labels],
                [b.mean_return],
                yerr=[b.std_return],
                fmt=marker,
                ms=8,
                capsize=3,
                color=plots.method_colors(list(run.rows))[name],
                label=label,
                zorder=5,
            )
    ax.set_xlabel("expert labels trained on")
    ax.set_ylabel(f"return on {run.config.eval_episodes} fresh tracks (mean ± std)")
    ax.set_title("Return against expert labels")
    ax.grid(alpha=0.3)
    ax.legend(frameon=True, framealpha=0.85, fontsize=8.5, loc="best")
    return plots._save(fig, path)


def _plot_off_track(run: CarRacingDemo, path: Path) -> Path:
    import matplotlib.pyplot as plt

    names = list(run.rows)
    colors = plots.method_colors(names)
    horizon = max((int(d.lengths.max()) for d in run.rows.values()), default=1)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(7.2, 5.2), sharex=True, gridspec_kw={"height_ratios": [2, 1.3]}
    )
    t = np.arange(horizon)
    for name in names:
        frac = run.rows[name].off_by_step(horizon)
        # 20-step moving average, averaged over the steps inside the episode window only
        # (no dip at the ends from zero padding).
        box = np.ones(min(20, horizon))
        smooth = np.convolve(frac, box, "same") / np.convolve(np.ones(horizon), box, "same")
        ax.plot(t, smooth, color=colors[name], lw=1.6, label=name)
    ax.set_ylabel("episodes off the road")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("When the car leaves the road (same tracks for every method)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8.5, ncol=len(names))
    for row, name in enumerate(names):
        for events in run.rows[name].events():
            ax2.scatter(events, np.full(len(events), row), marker="|", s=80, color=colors[name])
    ax2.set_yticks(range(len(names)), names)
    ax2.set_ylim(-0.6, len(names) - 0.4)
    ax2.invert_yaxis()
    ax2.set_xlabel("step of the episode")
    ax2.set_title("off-track events (the step the car's centre left the road)", fontsize=9)
    ax2.grid(axis="x", alpha=0.3)
    return plots._save(fig, path)


def results_table(run: CarRacingDemo) -> pg.Table:
    expert = run.rows["expert"].mean_return
    bc_row = run.rows.get("BC")
    rows = []
    for name, d in run.rows.items():
        events = d.events()
        first = d.first_off
        vs_bc = "–"
        if bc_row is not None and name not in ("expert", "BC"):
            mean, se = d.paired_difference(bc_row)
            vs_bc = f"{mean:+.1f} ± {se:.1f}"
        rows.append(
            [
                name,
                "–" if name == "expert" else f"{d.labels:,}",
                f"{d.mean_return:.1f} ± {d.std_return:.1f}",
                vs_bc,
                f"{100 * d.mean_return / expert:.0f}%" if expert else "–",
                f"{100 * np.mean(d.tiles):.0f}%",
                f"{sum(len(e) for e in events)} in {sum(len(e) > 0 for e in events)}/{len(events)}",
                "–" if np.isnan(first).all() else f"{np.nanmedian(first):.0f}",
                f"{100 * d.off_fraction:.1f}%",
            ]
        )
    return pg.Table(
        [
            "method",
            "expert labels",
            "return (mean ± std)",
            "vs BC, same tracks (mean ± s.e.)",
            "% of expert",
            "tiles visited",
            "off-track events (episodes)",
            "first off-track step (median)",
            "steps off the road",
        ],
        rows,
        notes=[
            f"Every method drove the same {run.config.eval_episodes} fresh tracks (seeds "
            f"{run.config.eval_seed}+), none of which it was trained on.",
            "off-track event: the car's centre farther than the road's half-width "
            f"({OFF_TRACK:.2f}) from the centreline (``info['track_offset']``), counted each "
            "time it leaves the road.",
            "vs BC: the mean over tracks of (method's return − BC's return) on the same track, "
            "± its standard error; a difference within about two standard errors of 0 is not "
            "distinguishable from track-to-track luck at this number of tracks.",
            "DAgger and DART start from the BC policy and add labels each round; compare them "
            "with BC in the figure of return against labels, and with BC + steps (as many "
            "gradient steps, no new labels).",
        ],
    )


def write_report(run: CarRacingDemo) -> None:
    """Figures, ``report.md``, ``index.html`` and ``results.json`` into ``run.out``."""
    t0 = time.perf_counter()
    figures = [
        pg.Figure(
            _plot_return_vs_labels(run, run.out / "return_vs_labels.png").name,
            "Return against expert labels",
            "Each DAgger and DART point is one round's policy on the evaluation tracks; round 0 "
            "is the BC policy both start from. Error bars: std over tracks.",
        ),
        pg.Figure(
            plots.plot_returns(
                {k: v.returns for k, v in run.rows.items()},
                run.out / "returns.png",
                title=f"Return on {run.config.eval_episodes} fresh tracks",
            ).name,
            "Return per track",
            "Each dot is one evaluation track; every method drove the same tracks.",
        ),
        pg.Figure(
            _plot_off_track(run, run.out / "off_track.png").name,
            "Off-track events over time",
            "Top: fraction of episodes whose car is off the road at each step (20-step moving "
            "average). Bottom: every event, one row per method.",
        ),
    ]
    figures += list(run.gifs.values())
    bc_row, rows = run.rows.get("BC"), run.rows
    headline = ""
    if bc_row is not None and "DAgger" in rows and "DART" in rows:
        headline = (
            f"From pixels, BC drives {bc_row.mean_return:.0f} ± {bc_row.std_return:.0f} "
            f"({100 * np.mean(bc_row.tiles):.0f}% of the tiles) on "
            f"{bc_row.labels:,} expert labels; DAgger "
            f"{rows['DAgger'].mean_return:.0f} ± {rows['DAgger'].std_return:.0f} "
            f"({100 * np.mean(rows['DAgger'].tiles):.0f}%) on {rows['DAgger'].labels:,}; "
            f"DART {rows['DART'].mean_return:.0f} ± {rows['DART'].std_return:.0f} "
            f"({100 * np.mean(rows['DART'].tiles):.0f}%) on {rows['DART'].labels:,}; the "
            f"expert {rows['expert'].mean_return:.0f}."
        )
    page = pg.Page(
        title="protege demo: learning to drive CarRacing from pixels (BC, DAgger, DART)",
        headline=headline,
        intro=(
            "A CNN learns to drive from 96×96 camera frames by imitating a driving expert that "
            "reads the car's pose and the track from the simulator (the learner never sees "
            "them). BC learns from the expert's laps only; DAgger lets the BC policy drive and "
            "has the expert label the frames it reached; DART has the expert drive with noise "
            "in its actions and stores its clean actions."
        ),
        table=results_table(run),
        figures=figures,
    )
    run.timings["report"] = time.perf_counter() - t0
    run.cpu_timings["report"] = 0.0
    facts = {"seed": f"{run.config.seed} (evaluation tracks: {run.config.eval_seed}+)"}
    facts.update(run.notes)
    for name, res in run.curves.items():
        facts[f"{name} rounds"] = ", ".join(
            f"r{r.round}: {r.labels:,} labels → {r.mean_return:.0f}" for r in res.rows
        )
    for step, s in run.timings.items():
        facts[f"wall time: {step}"] = (
            f"{pg.seconds(s)} ({pg.seconds(run.cpu_timings.get(step, 0.0))} CPU)"
        )
    load = os.getloadavg()
    facts["wall time: total"] = (
        f"{pg.seconds(run.wall_seconds)} ({pg.seconds(run.cpu_seconds)} of CPU time in this "
        f"process; load average {load[0]:.1f} / {load[2]:.1f} over 1 / 15 min at the end)"
    )
    facts["command"] = pg.command_line()
    facts["machine"] = pg.machine()
    page.run = facts
    run.page_paths = pg.write_page(page, run.out)
    (run.out / "results.json").write_text(json.dumps(_no_nan(run.to_dict()), indent=2))


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> CarRacingDemo:
    """``python -m protege.demo_carracing [--out DIR] [--seed N] [--smoke]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", default="reports/demo-carracing", help="report folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a toy run (seconds)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.smoke:
        cfg = CarRacingDemoConfig.smoke(seed=args.seed)
        return run_carracing_demo(args.out, cfg, max_steps=60)
    cfg = CarRacingDemoConfig(seed=args.seed, progress=not args.quiet)
    return run_carracing_demo(args.out, cfg)


if __name__ == "__main__":
    main()
