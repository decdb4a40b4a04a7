import sys, tempfile
from pathlib import Path
import numpy as np, torch
import protege
from protege.algos.finetune import finetune
from protege.configs.bc import BCConfig
from protege.configs.policy import PolicyConfig
from protege.configs.rl import FinetuneConfig, SACConfig
from protege.data.store import Store
from protege.policies.policy import Policy
seed=int(sys.argv[1]); steps=int(sys.argv[2]); kl=float(sys.argv[3]); eps=int(sys.argv[4])
tmp=Path(tempfile.mkdtemp())
pendulum = protege.tasks.make("pendulum")
protege.collect(pendulum, tmp / "demos", episodes=4, n_envs=4, seed=0)
data = Store.open(tmp / "demos").transitions()
config = PolicyConfig.for_spaces(*pendulum.spaces, hidden_sizes=(64, 64), head="gaussian")
bc = Policy(config, seed=0)
protege.bc.fit(bc, data, BCConfig(steps=500, batch_size=64, seed=0, progress=False))
start = bc.save(tmp / "bc")
cfg = FinetuneConfig(steps=steps, kl=kl, value_warmup=0, eval_every=1000, eval_episodes=eps)
r = finetune(Policy.load(start), pendulum, tmp / "o", cfg, sac=SACConfig(n_envs=2, seed=seed), demos=data, tensorboard=False)
p = Policy.load(tmp / "o"); b = Policy.load(start)
obs = np.asarray(data.obs)
d = np.abs(p.act(obs, deterministic=True) - b.act(obs, deterministic=True)).mean()
print(seed, kl, eps, [round(e["mean_return"]) for e in r.evals], f"mean|a-a_bc| {d:.3f}", flush=True)
