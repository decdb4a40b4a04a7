"""When do a stacked fit's members gain from threads of their own? Wall and CPU time per step,
one thread against two, by the size of the products.

:mod:`protege.policies.member_threads` runs groups of a stacked network's members in parallel
threads; torch releases the GIL only inside each product, so with small products the thread
hand-offs and the Python between the products cost more than the second CPU gives. This
script times, with the member threads fixed at 1 and at 2 (torch on one thread, as protege
runs), the stacked BC of 5 LunarLander members at several widths and batch sizes, and the
success critic's TD fit (2 twins) at its default and smaller batches; per row the largest
product's multiply-adds (what :data:`~protege.policies.member_threads.MIN_WORK` is compared
with), ms per step (the best of ``--repeats``), the ratio, whether the weights are
bit-identical, and the threads the automatic rule now picks; first, one thread's matrix-product
rate at 256×256×256 (the peak the products are held against).

    .venv/bin/python benchmarks/member_threads_size.py [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ensemble_speed import td_batch
from store_load import machine

BC_SIZES = [((64, 64), 64), ((256, 256), 64), ((256, 256), 128), ((384, 384), 64)]
BC_SIZES += [((256, 256), 256), ((512, 512), 64)]
CRITIC_BATCHES = [64, 128, 256]


def layer_shapes(hidden: tuple[int, ...]) -> list[tuple[int, int]]:
    """Weight shapes (outputs, inputs) of an MLP from LunarLander's 8 inputs to 4 outputs."""
    sizes = [8, *hidden, 4]
    return [(o, i) for i, o in itertools.pairwise(sizes)]


def gemm_gflops(n: int = 256, calls: int = 2000) -> float:
    """One thread's float32 matrix-product rate at ``n``×``n``×``n``: the peak the fits'
    products are held against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(50):
        a @ b
    t = time.perf_counter()
    for _ in range(calls):
        a @ b
    return 2 * n**3 * calls / (time.perf_counter() - t) / 1e9


def timed(run: Callable[[], torch.Tensor], repeats: int) -> dict[int, Any]:
    """``run()`` (returns the trained weights, flattened) with member threads fixed at 1
    and 2, interleaved ``repeats`` times: best wall and CPU seconds, and the weights."""
    from protege.policies import member_procs, member_threads

    member_procs.set_forks(False)  # threads are what this measures, not forked processes
    out: dict[int, Any] = {}
    for _ in range(repeats):
        for n in (1, 2):
            member_threads.set_threads(n)
            t, c = time.perf_counter(), time.process_time()
            weights = run()
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            old = out.get(n, {"wall": float("inf"), "cpu": float("inf")})
            out[n] = {
                "wall": min(old["wall"], wall),
                "cpu": min(old["cpu"], cpu),
                "weights": weights,
            }
    member_threads.set_threads(None)
    return out


def bc_rows(repeats: int, steps: int) -> list[dict[str, Any]]:
    import protege
    from protege.algos import stacked_bc
    from protege.configs.bc import BCConfig
    from protege.configs.policy import PolicyConfig
    from protege.data.store import Store
    from protege.policies.policy import Policy

    task = protege.tasks.make("lunarlander")
    with tempfile.TemporaryDirectory() as tmp:
        protege.collect(task, Path(tmp) / "d", episodes=4, n_envs=4, seed=0)
        data = Store.open(Path(tmp) / "d").transitions()
    rows = []
    for hidden, batch in BC_SIZES:
        cfg = PolicyConfig.for_spaces(*task.spaces, hidden_sizes=hidden)
        bcs = [
            BCConfig(steps=steps, batch_size=batch, seed=k, progress=False, val_fraction=0.0)
            for k in range(5)
        ]

        def run(cfg: PolicyConfig = cfg, bcs: list[BCConfig] = bcs) -> torch.Tensor:
            policies = [Policy(cfg, seed=k) for k in range(5)]
            assert stacked_bc.applies(policies, [data] * 5, bcs)
            stacked_bc.fit(policies, [data] * 5, bcs)
            return torch.cat([p.detach().flatten() for q in policies for p in q.parameters()])

        shapes = layer_shapes(hidden)
        rows.append(
            row(
                f"stacked BC ×5, {hidden}, batch {batch}",
                batch,
                shapes,
                5,
                timed(run, repeats),
                steps,
            )
        )
    return rows


def critic_rows(repeats: int, steps: int) -> list[dict[str, Any]]:
    import dataclasses

    from protege.algos import success_td
    from protege.configs.methods import ThriftyConfig
    from protege.policies.success_q import SuccessQ

    batch, positives = td_batch(3000)
    rows = []
    for b in CRITIC_BATCHES:
        cfg = dataclasses.replace(ThriftyConfig(), q_steps=steps, q_batch=b)
        hidden = cfg.q_hidden

        def run(cfg: ThriftyConfig = cfg) -> torch.Tensor:
            torch.manual_seed(0)
            critic = SuccessQ(8, 1, 4, cfg.q_hidden)
            n_pos = round(cfg.pos_fraction * cfg.q_batch)
            success_td.td_fit(critic, batch, positives, n_pos, cfg, torch.Generator())
            return torch.cat([p.detach().flatten() for p in critic.parameters()])

        shapes = layer_shapes(hidden)
        rows.append(
            row(
                f"success critic's TD fit, {hidden}, batch {b}",
                b,
                shapes,
                2,
                timed(run, repeats),
                steps,
            )
        )
    return rows


def row(
    name: str,
    batch: int,
    shapes: list[tuple[int, int]],
    members: int,
    t: dict[int, Any],
    steps: int,
) -> dict[str, Any]:
    from protege.policies import member_threads

    work = member_threads.product_work(batch, shapes)
    r = {
        "setting": name,
        "work": work,
        "ms_1": 1e3 * t[1]["wall"] / steps,
        "ms_2": 1e3 * t[2]["wall"] / steps,
        "cpu_ms_1": 1e3 * t[1]["cpu"] / steps,
        "cpu_ms_2": 1e3 * t[2]["cpu"] / steps,
        "identical": bool(torch.equal(t[1]["weights"], t[2]["weights"])),
        "rule": member_threads.threads(members, work),
    }
    print(
        f"| {name} | {work / 1e6:.1f} M | {r['ms_1']:.2f} / {r['ms_2']:.2f} | "
        f"{r['ms_2'] / r['ms_1']:.2f}× | {r['cpu_ms_1']:.2f} / {r['cpu_ms_2']:.2f} | "
        f"{'yes' if r['identical'] else 'NO'} | {r['rule']} |",
        flush=True,
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--bc-steps", type=int, default=400)
    ap.add_argument("--critic-steps", type=int, default=400)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    print(f"# command: python benchmarks/member_threads_size.py {' '.join(sys.argv[1:])}")
    print(f"# machine: {machine()}; load average {load:.2f} at start; torch threads 1")
    print(f"# one thread's float32 product 256×256×256: {gemm_gflops():.0f} GFLOP/s\n")
    print(
        "| fit | largest product (multiply-adds) | wall ms per step, 1 / 2 threads "
        "| 2 threads' time ÷ 1's | CPU ms per step, 1 / 2 | bits identical "
        "| threads the rule picks |\n"
        "|---|---:|---:|---:|---:|---|---:|"
    )
    rows = bc_rows(args.repeats, args.bc_steps) + critic_rows(args.repeats, args.critic_steps)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
