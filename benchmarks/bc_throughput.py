"""BC training throughput: protege against the `imitation` package (v1.0.1), same run.

Both train the same network (a 2×256 ReLU MLP to 4 logits; imitation's ActorCriticPolicy with
``net_arch=dict(pi=[256, 256], vf=[])``), on the same LunarLander-v3 expert transitions
(collected here with protege's scripted expert), with Adam at lr 1e-3 and the same batch size
and number of torch threads. imitation runs in its own throw-away venv (see imitation_peer.py);
protege in this one. Reported: training samples per second (batches × batch size / seconds of
gradient steps, warm-up excluded), the median of ``--repeats`` alternating runs of each, and the
ratio of the medians. Target (issue 2): protege ≥ 5× imitation.

    .venv/bin/python benchmarks/bc_throughput.py [--batch-sizes 32 256] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

import protege
from imitation_peer import run_in_venv
from protege.algos import bc
from protege.policies import Policy, PolicyConfig
from store_load import machine


def protege_samples_per_s(data, task, batch_size: int, n_batches: int, seed: int) -> float:
    torch.manual_seed(seed)
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(256, 256)))
    cfg = dict(
        batch_size=batch_size,
        lr=1e-3,
        lr_schedule="constant",
        val_fraction=0.0,
        progress=False,
        seed=seed,
    )
    bc.fit(policy, data, bc.BCConfig(steps=50, eval_every=10**9, **cfg))  # warm-up
    res = bc.fit(policy, data, bc.BCConfig(steps=n_batches, eval_every=10**9, **cfg))
    return res.samples_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n-batches", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5, help="alternating runs; medians reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    task = protege.tasks.make("lunarlander")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        protege.collect(task, Path(tmp) / "demos", episodes=args.episodes, seed=args.seed)
        data = protege.Store.open(Path(tmp) / "demos").transitions()
        npz = Path(tmp) / "demos.npz"
        np.savez(npz, obs=data.obs, acts=data.actions.astype(np.int64))
        for threads in args.threads:
            torch.set_num_threads(threads)
            for bs in args.batch_sizes:
                # Alternate the two, several times: on a shared machine the speed drifts by
                # 20-30% over minutes, and alternating exposes both to the same drift.
                peer_runs, our_runs = [], []
                for _ in range(args.repeats):
                    peer = run_in_venv(
                        "bc_train.py",
                        [
                            "--data",
                            npz,
                            "--batch-size",
                            bs,
                            "--n-batches",
                            args.n_batches,
                            "--torch-threads",
                            threads,
                            "--seed",
                            args.seed,
                            "--net-arch",
                            "256,256",
                        ],
                    )
                    peer_runs.append(peer["samples_per_s"])
                    our_runs.append(
                        protege_samples_per_s(data, task, bs, args.n_batches, args.seed)
                    )
                theirs, ours = float(np.median(peer_runs)), float(np.median(our_runs))
                rows.append(
                    {
                        "threads": threads,
                        "batch_size": bs,
                        "transitions": len(data),
                        "imitation": theirs,
                        "imitation_runs": peer_runs,
                        "protege_runs": our_runs,
                        "protege": ours,
                        "ratio": ours / theirs,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {machine()}; seed {args.seed}; {len(data):,} LunarLander-v3 transitions")
    print(f"medians of {args.repeats} alternating runs each")
    print("| torch threads | batch | imitation 1.0.1 samples/s | protege samples/s | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['threads']} | {r['batch_size']} | {r['imitation']:,.0f} | "
            f"{r['protege']:,.0f} | {r['ratio']:.1f}× |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
