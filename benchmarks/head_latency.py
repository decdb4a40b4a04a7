"""Inference latency of every head: milliseconds per ``policy.predict_chunk`` call (issue 4).

Policies for the obstacle course's spaces (2-D observations, 2-D actions), encoder MLP 256×256,
each head with its default network, sampling (``deterministic=False``, a seeded generator).
Batch 1 (one robot) and 64 (a vector env); chunk sizes 1, 8 and 16; diffusion with 1, 2, 5, 10
and 100 DDIM steps, flow with 1, 2, 5, 10 and 20 Euler steps (its maximum) and midpoint at 5
and 10 (two network calls per step). Each cell is the median over ``--repeats`` timed calls
after warm-up. Target: flow and DDIM with ≤ 10 steps, chunk 16, batch 1 under 5 ms (50 Hz
control with chunking leaves 20 ms per step; a chunk is computed once per 8 or 16 steps).

    .venv/bin/python benchmarks/head_latency.py --out reports/latency --seed 0 [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege.policies import Policy, PolicyConfig
from protege.report.page import machine

CHUNKS = (1, 8, 16)
BATCHES = (1, 64)
TARGET_MS = 5.0


def variants() -> list[tuple[str, str, dict[str, Any]]]:
    """(row label, head, head_kwargs)."""
    rows: list[tuple[str, str, dict[str, Any]]] = [
        (head, head, {}) for head in ("mse", "gaussian", "mog", "binned")
    ]
    rows += [
        (f"diffusion DDIM {k}", "diffusion", {"num_inference_steps": k}) for k in (1, 2, 5, 10, 100)
    ]
    rows += [(f"flow Euler {k}", "flow", {"num_steps": k}) for k in (1, 2, 5, 10, 20)]
    rows += [
        (f"flow midpoint {k}", "flow", {"num_steps": k, "integrator": "midpoint"}) for k in (5, 10)
    ]
    return rows


def latency_ms(policy: Policy, batch: int, repeats: int, seed: int) -> float:
    obs = np.random.default_rng(seed).uniform(-0.2, 1.0, (batch, 2)).astype(np.float32)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(5):
        policy.predict_chunk(obs, deterministic=False, generator=gen)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        policy.predict_chunk(obs, deterministic=False, generator=gen)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/latency"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}", flush=True)

    results: dict[str, dict[str, float]] = {}
    for label, head, kwargs in variants():
        results[label] = {}
        for chunk in CHUNKS:
            torch.manual_seed(args.seed)
            config = PolicyConfig(
                obs_shape=(2,),
                act_dim=2,
                action_low=[-1.0, -1.0],
                action_high=[1.0, 1.0],
                head=head,
                chunk_size=chunk,
                action_norm="minmax",
                head_kwargs=kwargs,
            )
            policy = Policy(config).eval()
            for batch in BATCHES:
                # fewer repeats for the slowest cells; the median is stable long before
                reps = args.repeats if "100" not in label else max(10, args.repeats // 5)
                ms = latency_ms(policy, batch, reps, args.seed)
                results[label][f"chunk{chunk}/batch{batch}"] = ms
        cells = "  ".join(f"{k}={v:.2f}" for k, v in results[label].items())
        print(f"{label}: {cells}", flush=True)

    columns = [f"chunk{c}/batch{b}" for c in CHUNKS for b in BATCHES]
    lines = [
        "# Head latency: ms per predict_chunk call",
        "",
        f"Machine: {machine()}. Encoder MLP 256×256, 2-D observations and actions, sampling "
        f"with a seeded generator; median of {args.repeats} calls after 5 warm-up calls "
        f"(10 for 100 steps). Target: ≤ {TARGET_MS:.0f} ms for flow / DDIM ≤ 10 steps at chunk 16, "
        "batch 1.",
        "",
        "| head | "
        + " | ".join(c.replace("chunk", "H=").replace("/batch", ", B=") for c in columns)
        + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label, row in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    checked = {
        label: row["chunk16/batch1"]
        for label, row in results.items()
        if label.startswith(("diffusion", "flow"))
        and int(label.split()[-1]) * (2 if "midpoint" in label else 1) <= 10
    }
    worst = max(checked, key=lambda k: checked[k])
    verdict = "met" if checked[worst] < TARGET_MS else "NOT met"
    lines += [
        "",
        f"Target {verdict}: slowest of flow/DDIM with ≤ 10 network calls at chunk 16, batch 1 is "
        f"{worst} at {checked[worst]:.2f} ms.",
    ]
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.md").write_text(table + "\n")
    (args.out / "latency.json").write_text(
        json.dumps({"machine": machine(), "threads": args.threads, "ms": results}, indent=2)
    )
    print(table)


if __name__ == "__main__":
    main()
