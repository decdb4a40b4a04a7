"""BC under torchrun: step time and samples/s with 1 and 2 processes (issue 17, part 5).

Two models, on synthetic data of the sizes that matter (the numbers are training speed, not
quality): an MLP (2×256, categorical head) on LunarLander-sized data (8-dim observations,
4 actions, 50,000 labeled steps, global batch 256), and protege's default CNN on 84×84×3
uint8 frames (CarRacing-sized, 5 actions, 2,000 steps, global batch 64). Three set-ups, run
interleaved ``--repeats`` times (on a shared machine speed drifts over minutes):

- ``1 proc``: plain ``bc.fit`` in one process (no torchrun, no collectives);
- ``torchrun 1``: the same under ``torchrun --nproc-per-node 1`` (the all-reduce is a no-op
  across one rank: the cost of the distributed code path);
- ``torchrun 2``: two processes, each on half of every batch, gradients averaged by gloo.

Each process uses one torch thread (torchrun sets OMP_NUM_THREADS=1); two processes use both
cores of this machine, so on a loaded machine they compete with other jobs for the second one.
Step time = seconds of gradient steps / steps (warm-up excluded; includes the all-reduce);
samples/s counts the global batch. torchrun runs in a private network namespace with only
``lo`` (``unshare -rn``): its rendezvous store listens on every interface otherwise.

    .venv/bin/python benchmarks/ddp_train.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODELS = {
    # name: (obs shape, obs dtype, n actions, steps of data, global batch, measured steps)
    "mlp": ((8,), np.float32, 4, 50_000, 256, 400),
    "cnn": ((84, 84, 3), np.uint8, 5, 2_000, 64, 20),
}
WARMUP = {"mlp": 50, "cnn": 3}


def synthetic(model: str, seed: int = 0):  # -> (Transitions, obs space, action space)
    import gymnasium as gym

    from protege.data.transitions import Transitions

    shape, dtype, n_act, n, _, _ = MODELS[model]
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        obs = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        space = gym.spaces.Box(0, 255, shape, np.uint8)
    else:
        obs = rng.standard_normal((n, *shape)).astype(np.float32)
        space = gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
    actions = rng.integers(0, n_act, n).astype(np.int64)
    ep_len = 500 if n >= 5000 else 100
    lengths = np.full(n // ep_len, ep_len, np.int64)
    data = Transitions.labeled_steps(obs, actions, lengths)
    return data, space, gym.spaces.Discrete(n_act)


def worker(model: str, out: Path) -> None:
    """One training process (under torchrun, or alone): warm up, measure, rank 0 writes."""
    import torch

    from protege.algos import bc, distributed
    from protege.configs.bc import BCConfig
    from protege.policies import Policy, PolicyConfig

    torch.set_num_threads(1)
    data, obs_space, act_space = synthetic(model)
    hidden = {"hidden_sizes": (256, 256)} if model == "mlp" else {}
    policy = Policy(PolicyConfig.for_spaces(obs_space, act_space, **hidden), seed=0)
    _, _, _, _, batch, steps = MODELS[model]
    cfg = dict(batch_size=batch, lr_schedule="constant", val_fraction=0.0, eval_every=10**9)
    world = distributed.from_env()

    def fit(n: int) -> bc.BCResult:
        return bc.fit(policy, data, BCConfig(steps=n, **cfg), world)

    if world is None:
        fit(WARMUP[model])
        res = fit(steps)
    else:
        with distributed.process_group(world, torch.device("cpu")):
            fit(WARMUP[model])
            res = fit(steps)
    if world is None or world.main:
        out.write_text(json.dumps({"step_ms": 1e3 * res.train_seconds / res.steps,
                                   "samples_per_s": res.samples_per_s,
                                   "world_size": res.world_size}))  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(model: str, setup: str, tmp: Path) -> dict[str, float]:
    out = tmp / f"{model}-{setup}.json"
    me = [str(Path(__file__).resolve()), "--worker", model, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    if setup == "1 proc":
        cmd = [sys.executable, *me]
    else:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        endpoint = f"127.0.0.1:{_free_port()}"
        nproc = setup.split()[-1]
        launch = [torchrun, "--nnodes", "1", "--nproc-per-node", nproc,
                  "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, *me]  # fmt: skip
        cmd = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *launch]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{setup} {model} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs; medians reported")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--worker", choices=list(MODELS), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.out)
        return
    from store_load import machine

    setups = ["1 proc", "torchrun 1", "torchrun 2"]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for model in args.models:
                for setup in setups:
                    r = run(model, setup, Path(tmp))
                    runs.setdefault((model, setup), []).append(r)
                    print(f"# repeat {i} {model} {setup}: {r}", file=sys.stderr, flush=True)
    print(f"machine: {machine()} (shared, loaded); medians of {args.repeats} interleaved runs")
    print("| model | set-up | global batch | step (ms) | samples/s | vs 1 proc |")
    print("|---|---|---|---|---|---|")
    rows = []
    for model in args.models:
        base = float(np.median([r["samples_per_s"] for r in runs[(model, "1 proc")]]))
        for setup in setups:
            step = float(np.median([r["step_ms"] for r in runs[(model, setup)]]))
            sps = float(np.median([r["samples_per_s"] for r in runs[(model, setup)]]))
            rows.append({"model": model, "setup": setup, "step_ms": step, "samples_per_s": sps})
            print(
                f"| {model} | {setup} | {MODELS[model][4]} | {step:.2f} | {sps:,.0f} "
                f"| {sps / base:.2f}× |"
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
