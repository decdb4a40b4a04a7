"""Where one ThriftyDAgger round's training time goes (issue 13, part 1): the five BC members
against the success critic Q, on the data of an early and a late round of a ``protege demo``
run, in CPU seconds of this process (``time.process_time``: less sensitive to a shared
machine's load than wall time).

    protege demo --seed 10 --out /tmp/demo-s10 --no-progress          # any demo run with thrifty
    .venv/bin/python benchmarks/thrifty_round_cost.py /tmp/demo-s10 --rounds 1 6

Each timed fit is ``ThriftyTrainer.fit``'s two parts with the demo's settings (the round's
BC config from the run's ``results.json``, ``ThriftyConfig()`` defaults, the run's seed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from protege import tasks
from protege.algos import engine, rounds, thrifty
from protege.algos.ensemble_dagger import EnsembleTrainer
from protege.configs.bc import BCConfig
from protege.configs.methods import ThriftyConfig
from protege.data.store import Store
from protege.policies.success_q import SuccessQ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="a protege demo report folder (with thrifty)")
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 6])
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = json.loads((args.report / "results.json").read_text())
    run = results["interactive"]["ThriftyDAgger"]
    task = tasks.make(results["task"])
    bc_fields = run["config"]["bc"]
    bc = BCConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in bc_fields.items()})
    tc = ThriftyConfig()
    seed = int(run["seed"])
    data_all = Store.open(args.report / "interactive" / "thrifty" / "store").transitions()
    print(
        f"task {task.name}, seed {seed}; BC {bc.steps} steps × {bc.batch_size} per member, "
        f"{tc.members} members; Q {tc.q_steps} steps × {tc.q_batch}"
    )
    print("| round | transitions | labels | members CPU s | Q CPU s | Q share |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in args.rounds:
        data = data_all.select_episodes(data_all.rounds <= r)
        ens_trainer = EnsembleTrainer(engine.policy_factory(task), bc, tc.members, tc.bootstrap)
        round_seed = rounds.train_seed(seed, r)
        t0 = time.process_time()
        ens = ens_trainer.fit(data, r, round_seed, None)
        t_members = time.process_time() - t0
        m = ens.members[0].config
        torch.manual_seed(rounds.derive_seed(round_seed, 998))
        critic = SuccessQ(m.obs_size, m.act_dim, m.n_actions if m.discrete else 0, tc.q_hidden)
        t0 = time.process_time()
        thrifty.fit_success_q(
            critic,
            data,
            thrifty.episode_success(task, data),
            ens.act,
            tc,
            rounds.derive_seed(round_seed, 999),
        )
        t_q = time.process_time() - t0
        print(
            f"| {r} | {len(data):,} | {int(data.labeled.sum()):,} | {t_members:.1f} | {t_q:.1f} | "
            f"{t_q / (t_q + t_members):.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
