"""How well the Bradley–Terry reward model ranks held-out segments like the true reward, against
the number of preferences it was trained on (Pendulum; no RL: the reward model alone).

Per seed: 20 training and 20 held-out Pendulum episodes of uniformly random actions (200 steps,
reset seeds disjoint); N pairs of 25-step segments from the training episodes, answered by the
exact oracle and by a noisy one (Boltzmann, temperature 10, error rate 0.1); a reward model
(2×64, 30 epochs) trained on them; Spearman's rank correlation between its return and the true
return of 200 held-out segments. Also the untrained model's (N = 0).

    python benchmarks/preference_ranking.py --seeds 0 1 2 \
        --out benchmarks/results/preference_ranking.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from protege import tasks
from protege.algos.rl_rollout import RolloutBatch
from protege.rewards.oracle import SyntheticOracle
from protege.rewards.preference_data import Preference, sample_pairs
from protege.rewards.preference_model import RewardSpec, new_model, train
from store_load import machine


def random_batch(task, episodes: int, first_seed: int, rng: np.random.Generator) -> RolloutBatch:
    env = task.make_env()
    cols: dict[str, list] = {k: [] for k in ("obs", "next", "act", "rew", "last")}
    for e in range(episodes):
        obs, _ = env.reset(seed=first_seed + e)
        done = False
        while not done:
            action = rng.uniform(-2, 2, size=1).astype(np.float32)
            nxt, r, term, trunc, _ = env.step(action)
            done = term or trunc
            for k, v in zip(cols, (obs, nxt, action, r, done), strict=True):
                cols[k].append(v)
            obs = nxt
    env.close()
    n = len(cols["obs"])
    return RolloutBatch(
        obs=np.array(cols["obs"], np.float32),
        next_obs=np.array(cols["next"], np.float32),
        actions=np.array(cols["act"], np.float32),
        raw_actions=torch.zeros(n, 1, 1),
        logp=torch.zeros(n),
        values=torch.zeros(n),
        env_rewards=np.array(cols["rew"], np.float64),
        terminal=np.zeros(n, bool),
        last=np.array(cols["last"], bool),
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budgets", type=int, nargs="+", default=[0, 10, 25, 50, 100, 200])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/preference_ranking.json"))
    a = p.parse_args()
    torch.set_num_threads(1)
    task = tasks.make("pendulum")
    spec = RewardSpec.for_spaces(*task.spaces)
    oracles = {
        "exact": lambda s: SyntheticOracle(s),
        "noisy (T 10, errors 0.1)": lambda s: SyntheticOracle(
            s, noisy=True, temperature=10.0, error_rate=0.1
        ),
    }
    rows = []
    for seed in a.seeds:
        rng = np.random.default_rng(seed)
        train_batch = random_batch(task, 20, 1000 * seed, rng)
        test_batch = random_batch(task, 20, 1000 * seed + 500, rng)
        held_out = [s for pair in sample_pairs(test_batch, 100, 25, rng) for s in pair]
        truth = np.array([s.true_return for s in held_out])
        pool = sample_pairs(train_batch, max(a.budgets), 25, rng)
        for name, make in oracles.items():
            oracle = make(seed)
            prefs = [
                Preference(0, k, oracle.ask(x, y, 0, k)[0], oracle.source, x, y)
                for k, (x, y) in enumerate(pool)
            ]
            for n in a.budgets:
                model = new_model(spec, (64, 64), 1, seed)
                t0 = time.perf_counter()
                if n:
                    train(model, prefs[:n], seed=seed, epochs=30)
                rho = spearman(model.segment_returns(held_out)[0].numpy(), truth)
                rows.append({"seed": seed, "oracle": name, "preferences": n, "spearman": rho,
                             "train_seconds": time.perf_counter() - t0})  # fmt: skip
                print(f"seed {seed} {name} {n:4d} prefs: Spearman {rho:+.3f}", flush=True)
    print("\n| oracle | " + " | ".join(f"{n} prefs" for n in a.budgets) + " |")
    print("|---|" + "---|" * len(a.budgets))
    for name in oracles:
        cells = []
        for n in a.budgets:
            v = [r["spearman"] for r in rows if r["oracle"] == name and r["preferences"] == n]
            cells.append(f"{statistics.median(v):+.2f} [{min(v):+.2f}, {max(v):+.2f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
