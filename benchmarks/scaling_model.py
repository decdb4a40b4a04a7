"""A model of collection, labelling and training throughput at 8, 64 and 512 workers.

No cluster is available here, so this script measures the per-unit costs on this machine and
projects them with the assumptions below, naming the resource that binds at each scale.

**Measured here** (one process, one torch thread, medians of ``--repeats``):

* env step: LunarLander-v3 (Box2D) and CartPole-v1, one env, random actions;
* policy forward: protege's 2×256 MLP policy acting on one observation (what a worker does
  each step) and on a batch of 256 (per row: what a batched expert service does);
* scripted expert query: LunarLander's expert on one observation;
* store append: LunarLander-sized episodes (``--episode-length`` steps of 8 floats) appended
  to a protege store by one writer, durably: committed in groups of ``MAX_GROUP``
  (:meth:`protege.data.store.Store.append_group`, one fsync per file per group: what the
  driver does with the episodes that arrived together), and, for comparison, one at a time
  (``Store.append``, every episode's files and index line fsynced: what the driver did
  before group commit); the per-episode commit also on ``/dev/shm``, where fsync costs
  almost nothing;
* weights: the 2×256 policy's safetensors bytes and the time to serialize them;
* training: one BC gradient step at batch 256 on that policy (protege's CPU fast path).

**Assumed** (edit the constants below; every figure of the table follows from them):

* one worker = one core running one env and a copy of the policy, stepping as fast as the
  measured env step + policy forward allow (no vector env; no simulator slower than Box2D);
* the driver alone writes the store, committing what has arrived from the workers as one
  group of up to ``MAX_GROUP`` episodes (as protege does now); where the driver's writes
  bind, episodes arrive faster than it commits, so the queue holds a full group each time;
  it receives each step's observation, action, label and reward over a ``DRIVER_NIC`` link;
* DAgger-style labelling asks the expert at every step (``LABEL_FRACTION_DAGGER`` = 1); a
  gated method (ThriftyDAgger, HG-DAgger) at ``LABEL_FRACTION_GATED`` of the steps;
* a *cheap* expert (scripted) runs inside each worker; an *expensive* one (a large learned
  policy, a planner) is one shared batched service of ``EXPERT_SERVICE_CORES`` cores, each
  answering at the measured batched-forward rate of a network ``EXPENSIVE_EXPERT_FACTOR``
  times the 2×256 MLP's cost;
* after each round of ``ROUND_SECONDS`` the learner's weights go to every worker: either the
  driver sends one copy per worker (naive), or the copy is put once in Ray's object store and
  fetched node to node (a broadcast tree of depth log2(nodes), ``WORKERS_PER_NODE`` per node);
  two policy sizes: the 2×256 MLP (measured) and a ResNet-18-sized vision policy
  (``VISION_PARAMS`` float32 parameters);
* training: one learner process, or DDP over ``DDP_RANKS`` ranks each on a batch of 256,
  whose gradient all-reduce costs ``ALLREDUCE_LATENCY_S`` plus 2·(G−1)/G of the weights per
  step over ``DDP_LINK``; a step's compute grows with the
  parameter count (the vision policy's step = the MLP's × the size ratio: crude, CPU-bound);
  each label is seen ``EPOCHS_PER_LABEL`` times.

**What protege does about each limit** (the code, not the model):

* *Driver store writes.* The driver alone writes the store, and counts an episode (progress,
  result, the ``after_episode`` hook) only once it is on disk, which is what lets a
  ``kill -9`` of the driver lose only the episodes in flight, which ``--resume`` re-runs with
  their seeds. It commits by *group*: the workers' messages that arrived together (up to
  ``MAX_GROUP``, :class:`protege.rollout.ray_workers.RayWorkers`) are put in the
  single-process order by the mergers and appended with one
  :meth:`~protege.data.store.Store.append_group` (:class:`protege.rollout.remote.GroupCommit`,
  :mod:`protege.data.store_commit`): each file fsynced once per group, then the group's index
  lines in one write and one fsync. A crash loses at most the group being committed. The
  limit moves from one fsync round per episode to the encoding, CRC and writing of the
  episodes themselves (the ``Store.append_group`` rate). Past that: shard the store (one
  writer per node on shared storage, merged by (round, episode) index, which protege's
  ordering already uses): not built.
* *The expert.* Each worker holds its own expert (the task's, made on the worker, or the
  object passed in Python): the built-in experts are scripted and answer in microseconds,
  less than a round trip to a shared service. There is no expert service; gated methods
  (HG-DAgger, EnsembleDAgger, ThriftyDAgger, fleet mode) ask the expert only where they
  label, which is what keeps an expensive expert from binding.
* *The learner's weights.* Every call that sends rollout units to the workers (a round's
  batches, an evaluation) puts what the units share (the learner and its weights, the gate,
  the expert) in Ray's object store once (``ray.put``) and passes each unit its ref
  (:func:`protege.rollout.remote.split_shared`); Ray moves the object node to node, so the
  model's "tree" column is what protege does, and the "naive" column what it no longer does.

    .venv/bin/python benchmarks/scaling_model.py [--json benchmarks/results/scaling_model.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import save

from protege import tasks
from protege.algos import bc
from protege.configs.bc import BCConfig
from protege.data.episode import Episode
from protege.data.store import Store
from protege.data.transitions import Transitions
from protege.policies import Policy, PolicyConfig
from protege.rollout.ray_workers import MAX_GROUP
from store_load import machine

WORKERS = (8, 64, 512)
DRIVER_NIC = 10e9 / 8
"""Bytes/s into (and out of) the driver: a 10 Gbit/s link."""
DDP_LINK = 10e9 / 8
"""Bytes/s between DDP ranks."""
WORKERS_PER_NODE = 32
LABEL_FRACTION_DAGGER = 1.0
LABEL_FRACTION_GATED = 0.1
EXPERT_SERVICE_CORES = 8
EXPENSIVE_EXPERT_FACTOR = 50.0
"""An expensive expert costs this many times the 2×256 MLP's batched forward per query."""
ROUND_SECONDS = 60.0
VISION_PARAMS = 11_700_000
DDP_RANKS = 8
ALLREDUCE_LATENCY_S = 0.004
"""A gloo all-reduce's fixed cost per step, as measured on this machine (BENCHMARKS.md,
"Training with torchrun": torchrun 1 against 1 proc, ~4 ms)."""
EPOCHS_PER_LABEL = 4.0
STEP_BYTES_EXTRA = 4 + 4 + 4 + 2
"""Per stored step besides the observation: label, executed action, reward, flags."""


def median_time(fn: Callable[[], Any], repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean seconds per call over ``inner`` calls."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def env_step_seconds(env_id: str, repeats: int) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset(seed=int(rng.integers(1 << 30)))

    env.action_space.seed(0)
    out = median_time(step, repeats, 2000)
    env.close()
    return out


def measure(repeats: int, episode_length: int) -> dict[str, float]:
    task = tasks.make("lunarlander")
    obs_space, act_space = task.spaces
    policy = Policy(PolicyConfig.for_spaces(obs_space, act_space))
    policy.eval()
    one = np.zeros((1, 8), np.float32)
    batch = np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32)
    expert = task.make_expert()
    m: dict[str, float] = {}
    m["env_step_lunarlander_s"] = env_step_seconds("LunarLander-v3", repeats)
    m["env_step_cartpole_s"] = env_step_seconds("CartPole-v1", repeats)
    m["policy_forward_1_s"] = median_time(lambda: policy.act(one), repeats, 500)
    m["policy_forward_256_per_row_s"] = median_time(lambda: policy.act(batch), repeats, 50) / 256
    m["expert_query_1_s"] = median_time(lambda: expert.act(one), repeats, 500)

    rng = np.random.default_rng(1)
    t = episode_length
    ep = Episode(
        obs=rng.normal(size=(t + 1, 8)).astype(np.float32),
        actions=rng.integers(0, 4, t),
        rewards=rng.normal(size=t).astype(np.float32),
        terminated=True,
    )
    # One episode per commit on the working disk (fsync waits for it) and on a RAM file
    # system (fsync nearly free); MAX_GROUP episodes per commit on the disk, per episode.
    shm = Path("/dev/shm")
    for key, where in (("", None), ("_tmpfs", shm if shm.is_dir() else None)):
        if key and where is None:
            continue
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            store = Store.create(Path(tmp) / "s", obs_space, act_space, task=task.name)
            m[f"store_append_episode{key}_s"] = median_time(
                lambda store=store: store.append(ep), repeats, 20
            )
            store.close()
    group = [ep] * MAX_GROUP
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.create(Path(tmp) / "s", obs_space, act_space, task=task.name)
        m["store_append_group_per_episode_s"] = (
            median_time(lambda store=store: store.append_group(group), repeats, 2) / MAX_GROUP
        )
        store.close()

    state = {k: v.contiguous() for k, v in policy.state_dict().items()}
    blob = save(state)
    m["weights_bytes_mlp"] = float(len(blob))
    m["weights_serialize_s"] = median_time(lambda: save(state), repeats, 20)

    n = 4096
    data = Transitions.labeled_steps(
        np.random.default_rng(2).normal(size=(n, 8)).astype(np.float32),
        np.random.default_rng(3).integers(0, 4, n),
        [n],
    )
    steps = 200
    cfg = BCConfig(steps=steps, batch_size=256, lr=1e-3, val_fraction=0.0, progress=False)
    train = Policy(PolicyConfig.for_spaces(obs_space, act_space))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        bc.fit(train, data, cfg)
        times.append((time.perf_counter() - t0) / steps)
    m["train_step_256_s"] = statistics.median(times)
    m["obs_bytes"] = 8 * 4.0
    m["episode_length"] = float(episode_length)
    return m


def project(m: dict[str, float]) -> list[dict[str, Any]]:
    """Throughputs and the binding resource per (workers, labelling, policy size)."""
    rows = []
    worker_step = m["env_step_lunarlander_s"] + m["policy_forward_1_s"]
    step_bytes = m["obs_bytes"] + STEP_BYTES_EXTRA
    ep_len = m["episode_length"]
    for w in WORKERS:
        for expert_kind, label_fraction in (
            ("scripted, DAgger", LABEL_FRACTION_DAGGER),
            ("expensive, DAgger", LABEL_FRACTION_DAGGER),
            ("expensive, gated", LABEL_FRACTION_GATED),
        ):
            cheap = expert_kind.startswith("scripted")
            per_worker = 1.0 / (worker_step + (m["expert_query_1_s"] if cheap else 0.0))
            caps = {"workers": w * per_worker}
            caps["driver store writes"] = ep_len / m["store_append_group_per_episode_s"]
            caps["driver network"] = DRIVER_NIC / step_bytes
            if not cheap:
                per_query = m["policy_forward_256_per_row_s"] * EXPENSIVE_EXPERT_FACTOR
                caps["expert service"] = EXPERT_SERVICE_CORES / per_query / label_fraction
            bottleneck = min(caps, key=lambda k: caps[k])
            steps_per_s = caps[bottleneck]
            before = {**caps, "driver store writes": ep_len / m["store_append_episode_s"]}
            before_bottleneck = min(before, key=lambda k: before[k])
            labels_per_s = steps_per_s * label_fraction
            train_capacity = 256 / m["train_step_256_s"]
            row: dict[str, Any] = {
                "workers": w,
                "expert": expert_kind,
                "collect_steps_per_s": steps_per_s,
                "labels_per_s": labels_per_s,
                "bottleneck": bottleneck,
                "caps": caps,
                "per_episode_commit_steps_per_s": before[before_bottleneck],
                "per_episode_commit_bottleneck": before_bottleneck,
                "train_samples_needed_per_s": labels_per_s * EPOCHS_PER_LABEL,
                "train_capacity_1_proc": train_capacity,
            }
            for name, size in (("mlp", m["weights_bytes_mlp"]), ("vision", VISION_PARAMS * 4.0)):
                nodes = max(1, math.ceil(w / WORKERS_PER_NODE))
                row[f"broadcast_naive_s_{name}"] = w * size / DRIVER_NIC
                depth = math.ceil(math.log2(nodes)) + 1
                row[f"broadcast_tree_s_{name}"] = size / DRIVER_NIC * depth
                allreduce = ALLREDUCE_LATENCY_S + 2 * (DDP_RANKS - 1) / DDP_RANKS * size / DDP_LINK
                step = m["train_step_256_s"] * size / m["weights_bytes_mlp"]
                row[f"ddp_capacity_{name}"] = DDP_RANKS * 256 / (step + allreduce)
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--episode-length", type=int, default=250)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, default=Path("docs/scaling_model.png"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}, torch {torch.__version__}, 1 thread; shared, loaded machine")
    m = measure(args.repeats, args.episode_length)
    print("\nmeasured per-unit costs:")
    for k, v in m.items():
        unit = "" if k.endswith(("bytes", "bytes_mlp", "length")) else " s"
        print(f"  {k:32s} {v:.6g}{unit}")
    rows = project(m)
    print(
        "\n| workers | expert | workers could step/s | collected steps/s | labels/s | "
        "bottleneck | before group commit: steps/s, bottleneck | training needs samples/s "
        "| 1 proc / 8-rank DDP can (MLP) | weights to workers, naive / tree (MLP; vision) |"
    )
    print("|---:|---|---:|---:|---:|---|---|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['expert']} | {r['caps']['workers']:,.0f} | "
            f"{r['collect_steps_per_s']:,.0f} | "
            f"{r['labels_per_s']:,.0f} | {r['bottleneck']} | "
            f"{r['per_episode_commit_steps_per_s']:,.0f}, "
            f"{r['per_episode_commit_bottleneck']} | "
            f"{r['train_samples_needed_per_s']:,.0f} | "
            f"{r['train_capacity_1_proc']:,.0f} / {r['ddp_capacity_mlp']:,.0f} | "
            f"{r['broadcast_naive_s_mlp']:.3f} / {r['broadcast_tree_s_mlp']:.4f} s; "
            f"{r['broadcast_naive_s_vision']:.1f} / {r['broadcast_tree_s_vision']:.2f} s |"
        )
    if args.json:
        raw = {"machine": machine(), "measured": m, "rows": rows}
        args.json.write_text(json.dumps(raw, indent=1))
    plot(rows, args.plot)
    print(f"plot: {args.plot}")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    kinds = ("scripted, DAgger", "expensive, DAgger", "expensive, gated")
    for ax, kind in zip(axes, kinds, strict=True):
        sel = [r for r in rows if r["expert"] == kind]
        ws = [r["workers"] for r in sel]
        for cap in sel[0]["caps"]:
            ax.plot(ws, [r["caps"][cap] for r in sel], "--", marker=".", label=f"cap: {cap}")
        got = [r["collect_steps_per_s"] for r in sel]
        ax.plot(ws, got, "k-", marker="o", lw=2, label="collection (group commit)")
        before = [r["per_episode_commit_steps_per_s"] for r in sel]
        ax.plot(ws, before, "k:", marker="s", lw=2, label="collection, a commit per episode")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ws, [str(w) for w in ws])
        ax.set_xlabel("workers")
        ax.set_title(f"expert: {kind}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="center right")
    axes[0].set_ylabel("env steps per second")
    fig.suptitle("Projected from per-unit costs measured on a 2-core AMD EPYC VM (shared, loaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
