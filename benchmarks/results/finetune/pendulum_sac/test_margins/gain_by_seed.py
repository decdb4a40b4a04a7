import sys, tempfile
from pathlib import Path
import protege
from protege.algos.finetune import finetune
from protege.configs.rl import FinetuneConfig, SACConfig
from protege.configs.bc import BCConfig
from protege.data.store import Store
from protege.configs.policy import PolicyConfig
from protege.policies.policy import Policy
seed=int(sys.argv[1]); steps=int(sys.argv[2]); kl=float(sys.argv[3])
tmp=Path(tempfile.mkdtemp())
pendulum = protege.tasks.make("pendulum")
protege.collect(pendulum, tmp / "demos", episodes=4, n_envs=4, seed=0)
data = Store.open(tmp / "demos").transitions()
config = PolicyConfig.for_spaces(*pendulum.spaces, hidden_sizes=(64, 64), head="gaussian")
bc = Policy(config, seed=0)
protege.bc.fit(bc, data, BCConfig(steps=500, batch_size=64, seed=0, progress=False))
start = bc.save(tmp / "bc")
sac = SACConfig(n_envs=2, seed=seed)
cfg = FinetuneConfig(steps=steps, kl=kl, value_warmup=0, eval_every=1000, eval_episodes=4)
r = finetune(Policy.load(start), pendulum, tmp / "o", cfg, sac=sac, demos=data, tensorboard=False)
print(seed, kl, [round(e["mean_return"]) for e in r.evals], flush=True)
