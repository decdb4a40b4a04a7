"""Prototype: discrete soft actor-critic from a BC policy, demonstrations in replay (RLPD-style),
actor regularized by KL to the BC prior. Judged like benchmarks/finetune.py."""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, "/work/main/benchmarks")
import protege
from protege.algos.ppo import PPO, renormalize_obs
from protege.algos.rl_rollout import derived_seed
from protege.configs.demos import EVAL_SEED_OFFSET
from protege.configs.rl import PPOConfig
from protege.data.store import Store
from protege.demos.finetune_arms import bc_from_demos
from protege.experts.adapters import ExpertActor
from protege.experts.noisy import EpsilonExpert
from protege.policies.policy import Policy
from protege.rollout.evaluate import evaluate, evaluate_expert

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=8)
p.add_argument("--steps", type=int, default=60000)
p.add_argument("--alpha", type=float, default=1.0)
p.add_argument("--alpha-decay", type=float, default=1.0, help="per 1000 env steps")
p.add_argument("--prior", default="bc", choices=["bc", "uniform"])
p.add_argument("--utd", type=float, default=1.0)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--demo-frac", type=float, default=0.5)
p.add_argument("--gamma", type=float, default=0.99)
p.add_argument("--lr", type=float, default=3e-4)
p.add_argument("--qlr", type=float, default=3e-4)
p.add_argument("--tau", type=float, default=0.005)
p.add_argument("--hidden", type=int, default=256)
p.add_argument("--warmup", type=int, default=0, help="env steps critic-only")
p.add_argument("--qpre", type=int, default=0, help="critic grad steps before, on demos+1st batch")
p.add_argument("--nenvs", type=int, default=1)
p.add_argument("--eval-every", type=int, default=5000)
p.add_argument("--scratch", action="store_true")
p.add_argument("--reward-scale", type=float, default=0.1)
p.add_argument("--temperature", type=float, default=1.0)
p.add_argument("--ln", action="store_true")
p.add_argument("--nstep", type=int, default=1)
args = p.parse_args()


def nstep(obs, rew, nxt, term, last, n, gamma):
    """n-step returns within episodes: (R, next obs, done, discount)."""
    N = len(rew)
    R = np.zeros(N, np.float32); NX = np.empty_like(nxt); D = np.zeros(N, np.float32); G = np.zeros(N, np.float32)
    ends = np.flatnonzero(last)
    start = 0
    for end in ends:
        for k in range(start, end + 1):
            m = min(n, end + 1 - k)
            R[k] = sum(gamma ** j * rew[k + j] for j in range(m))
            NX[k] = nxt[k + m - 1]
            D[k] = term[end] if k + m - 1 == end else 0.0
            G[k] = gamma ** m
        start = end + 1
    return R, NX, D, G

torch.set_num_threads(1)
torch.manual_seed(args.seed)
task = protege.tasks.make("lunarlander")
import os
out = Path(f"/work/R/sac/s{args.seed}-{os.getpid()}")
seed = args.seed
eval_seed = seed + EVAL_SEED_OFFSET
expert = evaluate_expert(task, episodes=30, n_envs=8, seed=eval_seed).mean_return
rand = evaluate(ExpertActor(EpsilonExpert(task.make_expert(), 1.0, task.spaces[1])), task, 30, 8,
                eval_seed, measure_disagreement=False).mean_return
level = max(rand + 0.95 * (expert - rand), 0.95 * expert)
start, demos_path = bc_from_demos(task, out, 10, "expert", seed, 2000, (64, 64))
if args.scratch:
    start = Policy(start.config, seed=seed)
policy = start
if args.temperature != 1:
    from protege.algos.finetune import soften
    soften(policy, args.temperature)
prior = copy.deepcopy(policy).eval().requires_grad_(False)
demos = Store.open(demos_path).transitions()
# demo transitions
d_obs = np.asarray(demos.obs, np.float32)
d_act = np.asarray(demos.actions).reshape(len(d_obs), -1)[:, 0].astype(np.int64)
d_rew = np.asarray(demos.rewards, np.float32)
ends = demos.episode_starts + demos.episode_lengths - 1
d_next = np.concatenate([d_obs[1:], d_obs[:1]])
d_term = np.zeros(len(d_obs), np.float32)
d_last = np.zeros(len(d_obs), bool)
for e, end in enumerate(ends):
    d_next[end] = demos.final_obs[e]
    d_term[end] = float(demos.terminated[e])
    d_last[end] = True
d_rew, d_next, d_term, d_disc = nstep(d_obs, d_rew, d_next, d_term, d_last, args.nstep, args.gamma)
print(f"seed {seed}: expert {expert:.1f} random {rand:.1f} level {level:.1f} demos {len(d_obs)}", flush=True)


ppo = PPO(policy, task, PPOConfig(rollout_steps=1, n_envs=args.nenvs, seed=seed, renormalize_obs=False))
n_act = 4
obs_dim = 8


def qnet():
    layers = [nn.Linear(obs_dim, args.hidden)]
    if args.ln:
        layers.append(nn.LayerNorm(args.hidden))
    layers += [nn.ReLU(), nn.Linear(args.hidden, args.hidden)]
    if args.ln:
        layers.append(nn.LayerNorm(args.hidden))
    layers += [nn.ReLU(), nn.Linear(args.hidden, n_act)]
    return nn.Sequential(*layers)


q1, q2 = qnet(), qnet()
t1, t2 = copy.deepcopy(q1), copy.deepcopy(q2)
qopt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=args.qlr)
popt = torch.optim.Adam(policy.parameters(), lr=args.lr)
mu = d_obs.mean(0)
sd = d_obs.std(0) + 1e-2
mu_t, sd_t = torch.tensor(mu), torch.tensor(sd)


def qn(x):
    return (x - mu_t) / sd_t


buf = {k: [] for k in ("o", "a", "r", "n", "t")}


def logits_of(pol, obs):
    return pol.head.logits(pol.features(pol.normalize_obs(obs)))[:, 0]


def sample(n_online, g):
    parts = []
    nd = args.batch - n_online
    if nd > 0 and args.demo_frac > 0:
        i = torch.randint(len(d_obs), (nd,), generator=g).numpy()
        parts.append((d_obs[i], d_act[i], d_rew[i], d_next[i], d_term[i], d_disc[i]))
    if n_online > 0:
        i = torch.randint(len(B["o"]), (n_online,), generator=g).numpy()
        parts.append((B["o"][i], B["a"][i], B["r"][i], B["n"][i], B["t"][i], B["g"][i]))
    o, a, r, n, t, gg = (np.concatenate([x[k] for x in parts]) for k in range(6))
    return (torch.from_numpy(o), torch.from_numpy(a), torch.from_numpy(r) * args.reward_scale,
            torch.from_numpy(n), torch.from_numpy(t), torch.from_numpy(gg))


def alpha_at(steps):
    return args.alpha * args.alpha_decay ** (steps / 1000)


def update(g, steps, train_actor):
    has_online = "o" in B
    n_online = int(round(args.batch * (1 - args.demo_frac))) if has_online else 0
    if args.demo_frac == 0:
        n_online = args.batch
    o, a, r, n, t, gg = sample(n_online, g)
    alpha = alpha_at(steps)
    with torch.no_grad():
        lp = F.log_softmax(logits_of(policy, n), -1)
        pi = lp.exp()
        lq = F.log_softmax(logits_of(prior, n), -1) if args.prior == "bc" else -np.log(n_act)
        qt = torch.min(t1(qn(n)), t2(qn(n)))
        v = (pi * (qt - alpha * (lp - lq))).sum(-1)
        y = r + gg * (1 - t) * v
    qa1 = q1(qn(o)).gather(1, a[:, None])[:, 0]
    qa2 = q2(qn(o)).gather(1, a[:, None])[:, 0]
    assert y.shape == qa1.shape, (y.shape, r.shape, t.shape, v.shape, lp.shape, qt.shape)
    ql = F.mse_loss(qa1, y) + F.mse_loss(qa2, y)
    qopt.zero_grad()
    ql.backward()
    qopt.step()
    with torch.no_grad():
        for net, tn in ((q1, t1), (q2, t2)):
            for pp, tp in zip(net.parameters(), tn.parameters()):
                tp.mul_(1 - args.tau).add_(pp, alpha=args.tau)
    if train_actor:
        lp = F.log_softmax(logits_of(policy, o), -1)
        with torch.no_grad():
            qs = torch.min(q1(qn(o)), q2(qn(o)))
            lq = F.log_softmax(logits_of(prior, o), -1) if args.prior == "bc" else -np.log(n_act)
        al = (lp.exp() * (alpha * (lp - lq) - qs)).sum(-1).mean()
        popt.zero_grad()
        al.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        popt.step()
    return ql.item()


B = {}
evals = []
env_steps, upd, grad_steps = 0, 0, 0
g = torch.Generator().manual_seed(derived_seed(seed, 99))
t0 = time.time()


def run_eval():
    ev = evaluate(policy, task, 30, 8, eval_seed, measure_disagreement=False).mean_return
    evals.append((env_steps, ev))
    print(f"  {env_steps:6d} steps: eval {ev:7.1f}  ({time.time()-t0:.0f}s, alpha {alpha_at(env_steps):.3g})", flush=True)
    return ev


run_eval()
next_eval = args.eval_every
while env_steps < args.steps:
    batch = ppo.collect(upd)
    if upd == 0:
        renormalize_obs(policy, batch.obs)
        if args.prior == "bc":
            pass  # prior keeps its own normalization (separate module)
    acts = np.asarray(batch.actions).reshape(len(batch), -1)[:, 0].astype(np.int64)
    R, NX, D, G = nstep(batch.obs, batch.env_rewards.astype(np.float32), batch.next_obs,
                        batch.terminal.astype(np.float32), batch.last, args.nstep, args.gamma)
    new = dict(o=batch.obs, a=acts, r=R, n=NX, t=D, g=G)
    for k, v in new.items():
        B[k] = np.concatenate([B[k], v]) if k in B else v
    if upd == 0 and args.qpre:
        for _ in range(args.qpre):
            update(g, env_steps, False)
    env_steps += len(batch)
    n_grad = int(round(args.utd * len(batch)))
    for _ in range(n_grad):
        update(g, env_steps, env_steps > args.warmup)
    upd += 1
    if env_steps >= next_eval:
        next_eval += args.eval_every
        ev = run_eval()
        if ev >= level:
            break
hit = next((s for s, e in evals if e >= level), None)
print(f"RESULT seed {seed} steps_to_level {hit} final {evals[-1][1]:.1f} wall {time.time()-t0:.0f}s args {vars(args)}", flush=True)
