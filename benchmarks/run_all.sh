#!/usr/bin/env bash
# Re-measure every figure in BENCHMARKS.md, one benchmark after another (about 2.5 hours
# on 2 cores). Timing benchmarks run first; run nothing else meanwhile: they are ratios
# measured in the same run, but a busy machine still shifts them. Each benchmark's full
# output goes to benchmarks/results/<name>.log (the tables BENCHMARKS.md quotes).
#
#     benchmarks/run_all.sh                 # everything
#     benchmarks/run_all.sh bc_throughput   # named ones only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=benchmarks/results
mkdir -p "$OUT"
export SDL_VIDEODRIVER=dummy

declare -A CMD=(
  [bc_throughput]="$PY benchmarks/bc_throughput.py --json $OUT/bc_throughput.json"
  [eval_overhead]="$PY benchmarks/eval_overhead.py"
  [head_latency]="$PY benchmarks/head_latency.py --out $OUT/latency --seed 0"
  [store_load]="$PY benchmarks/store_load.py"
  [store_fuzz]="$PY benchmarks/store_fuzz.py 100000 --seed 0 --out $OUT/store_fuzz.json"
  [experts]="$PY benchmarks/experts.py"
  [carracing_speed]="$PY benchmarks/carracing_speed.py"
  [carracing_profile]="$PY benchmarks/carracing_profile.py"
  [image_pipeline]="$PY benchmarks/image_pipeline.py"
  [dagger_vs_imitation]="$PY benchmarks/dagger_vs_imitation.py --json $OUT/dagger_vs_imitation.json"
  [ensemble_speed]="$PY benchmarks/ensemble_speed.py --json $OUT/ensemble_speed.json"
  [horizon]=".venv/bin/protege experiment horizon --out $OUT/horizon --no-progress"
  [horizon_smile_aggrevate]="$PY benchmarks/horizon_smile_aggrevate.py --out $OUT/horizon_smile_aggrevate"
  [obstacle]="$PY benchmarks/obstacle.py --out $OUT/obstacle --seed 0 --episodes 200 --no-progress"
  [obstacle_8000]="$PY benchmarks/obstacle.py --out $OUT/obstacle_8000 --seed 0 --episodes 200 --steps 8000 --no-progress"
  [chunking]="$PY benchmarks/chunking.py --out $OUT/chunking --seed 0"
  [interop_io]="$PY benchmarks/interop_io.py"
  [ddp_train]="$PY benchmarks/ddp_train.py --json $OUT/ddp_train.json"
  [dagger_dev_sweep]="$PY benchmarks/dagger_dev_sweep.py"
  [dagger_lunar]="$PY benchmarks/dagger_lunar.py --seeds 0 1 2 3 4 --out $OUT/dagger_lunar"
  [demo_carracing]=".venv/bin/protege demo carracing --out $OUT/demo_carracing --no-progress"
  [adversarial_vs_imitation_cartpole]="$PY benchmarks/adversarial_vs_imitation.py --tasks cartpole --methods gail airl --seeds 0 1 2 3 4 --steps cartpole=36000 --eval-every 2048 --eval-episodes 10 --out $OUT/adversarial_vs_imitation/cartpole"
  [adversarial_vs_imitation_pendulum]="$PY benchmarks/adversarial_vs_imitation.py --tasks pendulum --methods gail --seeds 0 1 --steps pendulum=160000 --eval-every 8000 --eval-episodes 10 --learner rollout_steps=4000 n_envs=4 epochs=10 minibatch_size=64 lr=0.001 gamma=0.9 gae_lambda=0.95 clip=0.2 --out $OUT/adversarial_vs_imitation/pendulum"
  [adversarial_vs_imitation_lunarlander]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --methods gail --seeds 0 --steps lunarlander=80000 --eval-every 16384 --eval-episodes 10 --out $OUT/adversarial_vs_imitation/lunarlander"
  [finetune_lunarlander]="$PY benchmarks/finetune.py --task lunarlander --seeds 0 1 2 --arms scratch kl_soft nokl_soft --temperature 2 --kl-decay 0.7 --out $OUT/finetune_lunarlander"
  [finetune_lunarlander_demos10]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --seeds 0 1 2 --arms nokl_nowarm scratch --steps 40000 --out $OUT/finetune_lunarlander_demos10"
  [finetune_lunarlander_demos10_r2048]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --rollout-steps 2048 --seeds 0 1 2 --arms nokl_nowarm --steps 40000 --out $OUT/finetune_lunarlander_demos10_r2048"
  [finetune_lunarlander_sampled]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --rollout-steps 2048 --seeds 0 1 2 --arms nokl_nowarm --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_sampled"
  [finetune_lunarlander_sampled_scratch]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --seeds 0 1 2 --arms scratch --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_sampled_scratch"
  [finetune_lunarlander_sharp]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --rollout-steps 2048 --seeds 0 1 2 --arms nokl_temp --prefit-temperature 0.5 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_sharp"
  [finetune_lunarlander_prefit]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --rollout-steps 2048 --seeds 0 1 2 --arms nokl_prefit --critic-prefit 2000 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_prefit"
  [finetune_lunarlander_small]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms nokl_nowarm --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small"
  [finetune_lunarlander_small_scratch]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms scratch --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_scratch"
  [finetune_lunarlander_small_bc]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms bc_prefit --critic-prefit 0 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_bc"
  [finetune_lunarlander_small_kl]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms kl_prefit --critic-prefit 0 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_kl"
  [finetune_lunarlander_small_e10c03]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms nokl_nowarm --epochs 10 --clip 0.3 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_e10c03"
  [finetune_lunarlander_small_e10]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms nokl_nowarm --epochs 10 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_e10"
  [finetune_lunarlander_small_bc03]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms bc_prefit --critic-prefit 0 --bc-weight 0.3 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_bc03"
  [finetune_lunarlander_small_bcsi]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms bc_si --self-imitation 0.1 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_bcsi"
  [finetune_lunarlander_small_bcown]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms bc_prefit --critic-prefit 0 --critic-prefit-own 2000 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_bcown"
  [finetune_lunarlander_small_own]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms nokl_nowarm --critic-prefit-own 2000 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_own"
  [finetune_lunarlander_small_bc03own]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms bc_prefit --critic-prefit 0 --bc-weight 0.3 --critic-prefit-own 2000 --steps 60000 --eval-sampled --stop-at-level --out $OUT/finetune_lunarlander_small_bc03own"
  [finetune_lunarlander_e30_scratch]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --seeds 0 1 2 --arms scratch --scratch-steps 300000 --out $OUT/finetune_lunarlander_e30_scratch"
  [finetune_lunarlander_e30_bc]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --seeds 0 1 2 --arms bc_prefit --critic-prefit 0 --steps 60000 --out $OUT/finetune_lunarlander_e30_bc"
  [finetune_lunarlander_e30_fresh_scratch]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --seeds 3 4 5 6 7 8 9 10 11 12 23 25 27 --arms scratch --scratch-steps 300000 --out $OUT/finetune_lunarlander_e30_fresh_scratch"
  [finetune_lunarlander_e30_fresh_bc]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --arms bc_prefit --critic-prefit 0 --steps 60000 --seeds 3 4 5 6 7 8 9 10 11 12 23 25 27 --out $OUT/finetune_lunarlander_e30_fresh_bc"
  [finetune_lunarlander_e30_screen]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --bc-only --seeds $(seq 8 120) --out $OUT/finetune_lunarlander_e30_screen"
  [finetune_lunarlander_e30_dev_e10]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --arms bc_prefit --critic-prefit 0 --steps 60000 --seeds 8 23 25 27 --epochs 10 --out $OUT/finetune_lunarlander_e30_dev_e10"
  [finetune_lunarlander_e30_dev_e10c03]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --arms bc_prefit --critic-prefit 0 --steps 60000 --seeds 8 23 25 27 --epochs 10 --clip 0.3 --out $OUT/finetune_lunarlander_e30_dev_e10c03"
  [finetune_lunarlander_e30_dev_own]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --arms bc_prefit --critic-prefit 0 --steps 60000 --seeds 8 23 25 27 --critic-prefit-own 2000 --out $OUT/finetune_lunarlander_e30_dev_own"
  [finetune_lunarlander_e30_dev_e10own]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --arms bc_prefit --critic-prefit 0 --steps 60000 --seeds 8 23 25 27 --epochs 10 --critic-prefit-own 2000 --out $OUT/finetune_lunarlander_e30_dev_e10own"
  [finetune_lunarlander_e30_lowbc_scratch]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --seeds 53 109 111 --arms scratch --scratch-steps 300000 --out $OUT/finetune_lunarlander_e30_lowbc_scratch"
  [finetune_lunarlander_e30_lowbc_own]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --arms bc_prefit --critic-prefit 0 --steps 60000 --seeds 53 109 111 --critic-prefit-own 2000 --out $OUT/finetune_lunarlander_e30_lowbc_own"
  [finetune_lunarlander_e30_lowbc_e10]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --stop-at-level --n-envs 4 --rollout-steps 1024 --arms bc_prefit --critic-prefit 0 --steps 60000 --seeds 53 109 111 --epochs 10 --out $OUT/finetune_lunarlander_e30_lowbc_e10"
  [finetune_lunarlander_sac_screen]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --bc-only --seeds $(seq 121 220) --out $OUT/finetune_lunarlander_sac_screen"
  [finetune_lunarlander_sac_dev]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --eval-every 5000 --stop-at-level --steps 60000 --arms sac --seeds 8 23 25 27 53 109 111 --out $OUT/finetune_lunarlander_sac_dev"
  [finetune_lunarlander_sac_fresh]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --eval-every 5000 --stop-at-level --steps 60000 --arms sac --seeds 131 132 193 195 196 --out $OUT/finetune_lunarlander_sac_fresh"
  [finetune_lunarlander_sac_fresh_scratch]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --eval-every 5000 --stop-at-level --scratch-steps 300000 --arms scratch --seeds 131 132 193 195 196 --out $OUT/finetune_lunarlander_sac_fresh_scratch"
  [finetune_lunarlander_sac_controls]="$PY benchmarks/finetune.py --task lunarlander --demos 10 --eval-episodes 30 --eval-every 5000 --stop-at-level --steps 60000 --scratch-steps 100000 --arms sac_scratch sac_nodemos --seeds 8 25 --out $OUT/finetune_lunarlander_sac_controls"
  [finetune_pendulum_scratch]="$PY benchmarks/finetune.py --task pendulum --demos 10 --seeds 100 101 102 103 --arms scratch --stop-at-level --out $OUT/finetune_pendulum_scratch"
  [finetune_pendulum_r1000]="$PY benchmarks/finetune.py --task pendulum --demos 10 --seeds 100 101 102 103 --steps 20000 --stop-at-level --arms nokl_nowarm bc_prefit --critic-prefit 0 --rollout-steps 1000 --out $OUT/finetune_pendulum_r1000"
  [finetune_pendulum_kl]="$PY benchmarks/finetune.py --task pendulum --demos 10 --seeds 100 101 102 103 --steps 20000 --eval-every 2000 --stop-at-level --arms kl_prefit --critic-prefit 0 --out $OUT/finetune_pendulum_kl"
  [finetune_pendulum_sac]="$PY benchmarks/finetune.py --task pendulum --demos 10 --eval-every 1000 --stop-at-level --steps 20000 --arms sac --seeds 100 101 102 103 --out $OUT/finetune_pendulum_sac"
  [finetune_pendulum_sac_scratch]="$PY benchmarks/finetune.py --task pendulum --demos 10 --eval-every 1000 --stop-at-level --steps 20000 --scratch-steps 20000 --arms sac_scratch --seeds 100 101 --out $OUT/finetune_pendulum_sac_scratch"
  [finetune_lunarlander_long]="$PY benchmarks/finetune.py --task lunarlander --seeds 0 1 --arms nokl_soft --temperature 2 --steps 200000 --out $OUT/finetune_lunarlander_long"
  [adversarial_vs_imitation_pendulum_airl]="$PY benchmarks/adversarial_vs_imitation.py --tasks pendulum --methods airl --seeds 0 1 2 --steps pendulum=160000 --eval-every 8000 --eval-episodes 10 --learner rollout_steps=4000 n_envs=4 epochs=10 minibatch_size=64 lr=0.001 gamma=0.9 gae_lambda=0.95 clip=0.2 --out $OUT/adversarial_vs_imitation/pendulum_airl"
  [adversarial_vs_imitation_lunarlander_airl]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --methods airl --seeds 0 1 2 --steps lunarlander=80000 --eval-every 16384 --eval-episodes 10 --out $OUT/adversarial_vs_imitation/lunarlander_airl"
  [adversarial_dev_cartpole]="$PY benchmarks/adversarial_vs_imitation.py --sides protege --tasks cartpole --methods gail --seeds 100 101 102 103 104 --steps cartpole=28000 --eval-every 2048 --out $OUT/adversarial_vs_imitation/dev_cartpole_gail"
  [adversarial_profile_pendulum]="$PY benchmarks/adversarial_profile.py --task pendulum --steps 8000"
  [adversarial_dev_lunarlander]="$PY benchmarks/adversarial_vs_imitation.py --sides protege --tasks lunarlander --methods gail --seeds 100 --steps lunarlander=600000 --eval-every 25000 --eval-episodes 10 --out $OUT/adversarial_vs_imitation/dev_lunarlander_gail/defaults"
  [adversarial_vs_imitation_lunarlander_500k_s02]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 0 2 --out $OUT/adversarial_vs_imitation/lunarlander_500k_gail_s02"
  [adversarial_vs_imitation_lunarlander_500k_s1]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 1 --out $OUT/adversarial_vs_imitation/lunarlander_500k_gail_s1"
  [adversarial_vs_imitation_lunarlander_airl_500k_s0]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 0 --out $OUT/adversarial_vs_imitation/lunarlander_500k_airl_s0"
  [adversarial_vs_imitation_lunarlander_airl_500k_s1]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 1 --out $OUT/adversarial_vs_imitation/lunarlander_500k_airl_s1"
  [adversarial_vs_imitation_lunarlander_airl_500k_s2]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 2 --out $OUT/adversarial_vs_imitation/lunarlander_500k_airl_s2"
  [adversarial_dev_lunarlander_bcstart]="$PY benchmarks/adversarial_vs_imitation.py --sides protege --tasks lunarlander --methods gail --seeds 100 101 --steps lunarlander=250000 --eval-every 25000 --eval-episodes 10 --out $OUT/adversarial_vs_imitation/dev_lunarlander_gail5/defaults"
  [adversarial_vs_imitation_lunarlander_bcstart_gail_s0_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 0 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/gail_s0_protege"
  [adversarial_vs_imitation_lunarlander_bcstart_gail_s0_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 0 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/gail_s0_imitation"
  [adversarial_vs_imitation_lunarlander_bcstart_gail_s1_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 1 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/gail_s1_protege"
  [adversarial_vs_imitation_lunarlander_bcstart_gail_s1_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 1 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/gail_s1_imitation"
  [adversarial_vs_imitation_lunarlander_bcstart_gail_s2_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 2 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/gail_s2_protege"
  [adversarial_vs_imitation_lunarlander_bcstart_gail_s2_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods gail --seeds 2 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/gail_s2_imitation"
  [adversarial_vs_imitation_lunarlander_bcstart_airl_s0_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 0 --sides protege --adversarial airl_entropy=1 --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/airl_s0_protege"
  [adversarial_vs_imitation_lunarlander_bcstart_airl_s0_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 0 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/airl_s0_imitation"
  [adversarial_vs_imitation_lunarlander_bcstart_airl_s1_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 1 --sides protege --adversarial airl_entropy=1 --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/airl_s1_protege"
  [adversarial_vs_imitation_lunarlander_bcstart_airl_s1_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 1 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/airl_s1_imitation"
  [adversarial_vs_imitation_lunarlander_bcstart_airl_s2_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 2 --sides protege --adversarial airl_entropy=1 --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/airl_s2_protege"
  [adversarial_vs_imitation_lunarlander_bcstart_airl_s2_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 2 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_bcstart/airl_s2_imitation"
  [adversarial_vs_imitation_lunarlander_bcstart_report]="$PY benchmarks/adversarial_vs_imitation.py --report $OUT/adversarial_vs_imitation/lunarlander_bcstart/*/results.json --out $OUT/adversarial_vs_imitation/lunarlander_bcstart"
  [adversarial_dev_lunarlander_airl_noent]="$PY benchmarks/adversarial_vs_imitation.py --sides protege --tasks lunarlander --methods airl --seeds 100 101 --steps lunarlander=200000 --eval-every 25000 --eval-episodes 10 --out $OUT/adversarial_vs_imitation/dev_lunarlander_airl6/defaults"
  [adversarial_vs_imitation_lunarlander_airl_noent_s0_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 0 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_airl_noent/airl_s0_protege"
  [adversarial_vs_imitation_lunarlander_airl_noent_s1_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 1 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_airl_noent/airl_s1_protege"
  [adversarial_vs_imitation_lunarlander_airl_noent_s2_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 2 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_airl_noent/airl_s2_protege"
  [adversarial_vs_imitation_lunarlander_airl_noent_report]="$PY benchmarks/adversarial_vs_imitation.py --report $OUT/adversarial_vs_imitation/lunarlander_airl_noent/*/results.json $OUT/adversarial_vs_imitation/lunarlander_bcstart/airl_s*_imitation/results.json --out $OUT/adversarial_vs_imitation/lunarlander_airl_noent"
  [finetune_mountaincar]="$PY benchmarks/finetune.py --task mountaincar --seeds 0 1 2 --out $OUT/finetune_mountaincar"
  [preferences_pendulum]="$PY benchmarks/preferences_vs_imitation.py --task pendulum --seeds 0 1 --steps 80000 --budgets 25 100 400 --rollout-steps 4000 --gamma 0.9 --match-schedule --initial-fraction 0.25 --eval-every 8000 --true-reward-seeds 0 --out $OUT/preferences_pendulum"
  [iql_critics_ab]="$PY benchmarks/iql_critics_ab.py --store $OUT/offline_throughput_pendulum/pendulum/seed_0/store --rev 6a978d9 --steps 500 --reps 6"
  [ensemble_speed_td_fit]="$PY benchmarks/ensemble_speed.py --td-fit 3000"
  [ensemble_speed_threads_ab]="$PY benchmarks/ensemble_speed.py --td-fit 3000 --threads-ab --repeats 2"
  [member_threads_size]="$PY benchmarks/member_threads_size.py --json $OUT/member_threads_size.json"
  [ensemble_speed_procs]="$PY benchmarks/ensemble_speed.py --seeds 0 1 2 --methods thrifty ensemble --json $OUT/ensemble_speed_procs.json"
  [gail_vs_bc]="$PY benchmarks/gail_vs_bc.py --seeds 0 1 2 --steps 30000 --out $OUT/gail_vs_bc"
  [finetune]="$PY benchmarks/finetune.py --seeds 0 1 2 --steps 20000 --scratch-steps 60000 --out $OUT/finetune"
  [demo_finetune]=".venv/bin/protege demo finetune --out $OUT/demo_finetune --no-progress"
  [offline_dial_lunarlander]="$PY benchmarks/offline_dial.py --tasks lunarlander --steps 2000 --seeds 0 1 2 --eval-episodes 10 --no-d3rlpy --out $OUT/offline_dial_lunarlander"
  [offline_dial_pendulum]="$PY benchmarks/offline_dial.py --tasks pendulum --steps 2000 --seeds 0 1 2 --eval-episodes 10 --no-d3rlpy --out $OUT/offline_dial_pendulum"
  [offline_d3rlpy_pendulum]="$PY benchmarks/offline_dial.py --tasks pendulum --steps 2000 --seeds 0 1 2 --eval-episodes 10 --methods bc-all iql --out $OUT/offline_d3rlpy_pendulum"
  [offline_dial_lunarlander_10k]="$PY benchmarks/offline_dial.py --tasks lunarlander --steps 10000 --seeds 0 --eval-episodes 10 --no-d3rlpy --methods awr iql --out $OUT/offline_dial_lunarlander_10k"
  [ray_rollouts]="$PY benchmarks/ray_rollouts.py --repeats 6 --horizon 100 --scratch /dev/shm --json $OUT/ray_rollouts.json"
  [ray_rollouts_camera]="$PY benchmarks/ray_rollouts.py --task metaworld/pick-place-camera --horizon 100 --episodes 6 --repeats 6 --scratch /dev/shm --niced --in-task --json $OUT/ray_rollouts_camera.json"
  [store_group]="$PY benchmarks/store_load.py --no-load --groups 1 8 64 --blocks 5 --group-episodes 256 --json $OUT/store_group.json"
  [preferences]="$PY benchmarks/preferences_vs_imitation.py --seeds 0 1 2 --budgets 25 100 --steps 20000 --out $OUT/preferences/all"
  [preference_ranking]="$PY benchmarks/preference_ranking.py --seeds 0 1 2 --out $OUT/preference_ranking.json"
  [fleet]="$PY benchmarks/fleet.py --out $OUT/fleet --seeds 0 1 --steps 2000 --plot docs/fleet.png"
  [fleet_workers]="$PY benchmarks/fleet_workers.py --steps 400 --repeats 3 --json $OUT/fleet_workers.json"
  [scaling_model]="$PY benchmarks/scaling_model.py --json $OUT/scaling_model.json --plot docs/scaling_model.png"
  [lesson_dev_steady100]="$PY benchmarks/lesson_dev_sweep.py --candidates push0.2 --seeds 10 11 --methods hg-dagger --rounds 5 --eval-episodes 100 --bc-grid 250 500 750 1000 1500 2000 3000 4000"
  [lesson_dev_envelope]="$PY benchmarks/lesson_dev_sweep.py --candidates push0.2-env1.5 --seeds 10 --methods hg-dagger --rounds 5 --eval-episodes 100 --bc-grid 250 500 750 1000 1500 2000 3000 4000"
  [lesson_dev_last_engine_bc]="$PY benchmarks/lesson_dev_sweep.py --candidates push0.2-last --seeds 11 --methods --eval-episodes 30 --bc-grid 500 1000 2000 4000"
  [lesson_dev_noisy_bc]="$PY benchmarks/lesson_dev_sweep.py --candidates push0.2-noise0.05 --seeds 10 --methods --eval-episodes 30 --bc-grid 250 500 750 1000 1500 2000 3000 4000"
  [lesson_dev_noisy]="$PY benchmarks/lesson_dev_sweep.py --candidates push0.2-noise0.05 --seeds 10 --methods hg-dagger dagger --rounds 5 --eval-episodes 30 --bc-grid 1000 4000"
  [dagger_lunar_steady100]="$PY benchmarks/dagger_lunar.py --methods hg-dagger --seeds 0 --task lunarlander-steady --rounds 5 --eval-episodes 100 --out $OUT/dagger_lunar_steady100"
  [dagger_lunar_steady100_report]="$PY benchmarks/dagger_lunar.py --report --seeds 0 --task lunarlander-steady --rounds 5 --eval-episodes 100 --bc-grid 250 375 500 625 750 875 1000 1250 1500 2000 3000 4000 --out $OUT/dagger_lunar_steady100"
  [dagger_lunar_noisy]="$PY benchmarks/dagger_lunar.py --methods dagger --seeds 0 1 2 3 4 --task lunarlander-noisy --rounds 8 --eval-episodes 30 --out $OUT/dagger_lunar_noisy"
  [dagger_lunar_noisy_report]="$PY benchmarks/dagger_lunar.py --report --seeds 0 1 2 3 4 --task lunarlander-noisy --rounds 8 --eval-episodes 30 --bc-grid 12000 16000 --out $OUT/dagger_lunar_noisy"
  [lesson_dev_mild_noise_s10]="$PY benchmarks/lesson_dev_sweep.py --candidates push0.2-noise0.03 push0.2-noise0.02 --seeds 10 --methods dagger --rounds 6 --eval-episodes 30 --bc-grid 500 1000 2000 4000 8000"
  [lesson_dev_mild_noise_s11_12]="$PY benchmarks/lesson_dev_sweep.py --candidates push0.2-noise0.03 push0.2-noise0.02 --seeds 11 12 --methods dagger hg-dagger --rounds 6 --eval-episodes 30 --bc-grid 500 1000 2000 4000 8000"
  [dagger_lunar_noisy_mild]="$PY benchmarks/dagger_lunar.py --methods dagger hg-dagger --seeds 0 1 2 3 4 --task lunarlander-noisy-mild --rounds 6 --eval-episodes 30 --out $OUT/dagger_lunar_noisy_mild"
  [dagger_lunar_noisy_mild_thrifty]="$PY benchmarks/dagger_lunar.py --methods thrifty --seeds 0 1 2 3 4 --task lunarlander-noisy-mild --rounds 6 --eval-episodes 30 --out $OUT/dagger_lunar_noisy_mild"
  [dagger_lunar_noisy_mild_more]="$PY benchmarks/dagger_lunar.py --methods ensemble smile aggrevate --seeds 0 1 2 3 4 --task lunarlander-noisy-mild --rounds 6 --eval-episodes 30 --out $OUT/dagger_lunar_noisy_mild"
  [dagger_lunar_noisy_mild_report]="$PY benchmarks/dagger_lunar.py --report --seeds 0 1 2 3 4 --task lunarlander-noisy-mild --rounds 6 --eval-episodes 30 --bc-grid 4000 8000 12000 16000 --out $OUT/dagger_lunar_noisy_mild"
  [demo_lunarlander_dev_s10]="/usr/bin/time -v .venv/bin/protege demo --seed 10 --out $OUT/demo_lunarlander_dev/seed_10 --no-progress"
  [thrifty_round_cost]="$PY benchmarks/thrifty_round_cost.py $OUT/demo_lunarlander_dev/seed_10 --rounds 0 6"
  [demo_lunarlander_s0]="/usr/bin/time -v .venv/bin/protege demo --seed 0 --out $OUT/demo_lunarlander/seed_0 --no-progress"
  [demo_lunarlander_s1]="/usr/bin/time -v .venv/bin/protege demo --seed 1 --out $OUT/demo_lunarlander/seed_1 --no-progress"
  [demo_lunarlander_s2]="/usr/bin/time -v .venv/bin/protege demo --seed 2 --out $OUT/demo_lunarlander/seed_2 --no-progress"
  [demo_lunarlander_s3]="/usr/bin/time -v .venv/bin/protege demo --seed 3 --out $OUT/demo_lunarlander/seed_3 --no-progress"
  [demo_lunarlander_s4]="/usr/bin/time -v .venv/bin/protege demo --seed 4 --out $OUT/demo_lunarlander/seed_4 --no-progress"
  [demo_lunarlander_seeds]="$PY benchmarks/demo_seeds.py $OUT/demo_lunarlander"
  [offline_throughput_pendulum]="$PY benchmarks/offline_dial.py --tasks pendulum --steps 500 --seeds 0 1 2 --eval-episodes 5 --methods iql --out $OUT/offline_throughput_pendulum"
  [adversarial_vs_imitation_lunarlander_airl_paired_s0_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 0 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s0_protege"
  [adversarial_vs_imitation_lunarlander_airl_paired_s0_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 0 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s0_imitation"
  [adversarial_vs_imitation_lunarlander_airl_paired_s1_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 1 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s1_protege"
  [adversarial_vs_imitation_lunarlander_airl_paired_s1_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 1 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s1_imitation"
  [adversarial_vs_imitation_lunarlander_airl_paired_s2_protege]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 2 --sides protege --out $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s2_protege"
  [adversarial_vs_imitation_lunarlander_airl_paired_s2_imitation]="$PY benchmarks/adversarial_vs_imitation.py --tasks lunarlander --steps lunarlander=500000 --eval-every 25000 --eval-episodes 10 --methods airl --seeds 2 --sides imitation --out $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s2_imitation"
  [adversarial_vs_imitation_lunarlander_airl_paired_report]="$PY benchmarks/adversarial_vs_imitation.py --report $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s0_protege/results.json $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s0_imitation/results.json $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s1_protege/results.json $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s1_imitation/results.json $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s2_protege/results.json $OUT/adversarial_vs_imitation/lunarlander_airl_paired/airl_s2_imitation/results.json --out $OUT/adversarial_vs_imitation/lunarlander_airl_paired"
)
# One benchmark a line, in running order (a new benchmark adds a line: merges stay clean).
ORDER=(
  bc_throughput
  ddp_train
  eval_overhead
  head_latency
  store_load
  store_group
  store_fuzz
  carracing_speed
  carracing_profile
  image_pipeline
  dagger_vs_imitation
  ensemble_speed
  experts
  horizon
  horizon_smile_aggrevate
  obstacle
  obstacle_8000
  chunking
  dagger_lunar
  dagger_dev_sweep
  demo_carracing
  interop_io
  finetune
  demo_finetune
  offline_dial_lunarlander
  offline_dial_pendulum
  offline_d3rlpy_pendulum
  offline_throughput_pendulum
  offline_dial_lunarlander_10k
  ray_rollouts
  ray_rollouts_camera
  scaling_model
  preference_ranking
  preferences
  fleet
  fleet_workers
  adversarial_vs_imitation_cartpole
  adversarial_vs_imitation_pendulum
  adversarial_vs_imitation_lunarlander
  gail_vs_bc
  adversarial_dev_cartpole
  adversarial_profile_pendulum
  adversarial_vs_imitation_pendulum_airl
  adversarial_vs_imitation_lunarlander_airl
  finetune_mountaincar
  finetune_lunarlander
  finetune_lunarlander_long
  finetune_lunarlander_demos10
  finetune_lunarlander_demos10_r2048
  finetune_lunarlander_sampled
  finetune_lunarlander_sampled_scratch
  finetune_lunarlander_sharp
  finetune_lunarlander_prefit
  finetune_lunarlander_small
  finetune_lunarlander_small_scratch
  finetune_lunarlander_small_bc
  finetune_lunarlander_small_kl
  finetune_lunarlander_small_e10c03
  finetune_lunarlander_small_e10
  finetune_lunarlander_small_bc03
  finetune_lunarlander_small_bcsi
  finetune_lunarlander_small_bcown
  finetune_lunarlander_small_own
  finetune_lunarlander_small_bc03own
  finetune_lunarlander_e30_scratch
  finetune_lunarlander_e30_bc
  finetune_lunarlander_e30_fresh_scratch
  finetune_lunarlander_e30_fresh_bc
  finetune_lunarlander_e30_screen
  finetune_lunarlander_e30_dev_e10
  finetune_lunarlander_e30_dev_e10c03
  finetune_lunarlander_e30_dev_own
  finetune_lunarlander_e30_dev_e10own
  finetune_lunarlander_e30_lowbc_scratch
  finetune_lunarlander_e30_lowbc_own
  finetune_lunarlander_e30_lowbc_e10
  finetune_lunarlander_sac_screen
  finetune_lunarlander_sac_dev
  finetune_lunarlander_sac_fresh
  finetune_lunarlander_sac_fresh_scratch
  finetune_lunarlander_sac_controls
  finetune_pendulum_scratch
  finetune_pendulum_r1000
  finetune_pendulum_kl
  finetune_pendulum_sac
  finetune_pendulum_sac_scratch
  preferences_pendulum
  iql_critics_ab
  ensemble_speed_td_fit
  ensemble_speed_threads_ab
  member_threads_size
  ensemble_speed_procs
  adversarial_dev_lunarlander
  adversarial_vs_imitation_lunarlander_500k_s02
  adversarial_vs_imitation_lunarlander_500k_s1
  adversarial_vs_imitation_lunarlander_airl_500k_s0
  adversarial_vs_imitation_lunarlander_airl_500k_s1
  adversarial_vs_imitation_lunarlander_airl_500k_s2
  adversarial_dev_lunarlander_bcstart
  adversarial_vs_imitation_lunarlander_bcstart_gail_s0_protege
  adversarial_vs_imitation_lunarlander_bcstart_gail_s0_imitation
  adversarial_vs_imitation_lunarlander_bcstart_gail_s1_protege
  adversarial_vs_imitation_lunarlander_bcstart_gail_s1_imitation
  adversarial_vs_imitation_lunarlander_bcstart_gail_s2_protege
  adversarial_vs_imitation_lunarlander_bcstart_gail_s2_imitation
  adversarial_vs_imitation_lunarlander_bcstart_airl_s0_protege
  adversarial_vs_imitation_lunarlander_bcstart_airl_s0_imitation
  adversarial_vs_imitation_lunarlander_bcstart_airl_s1_protege
  adversarial_vs_imitation_lunarlander_bcstart_airl_s1_imitation
  adversarial_vs_imitation_lunarlander_bcstart_airl_s2_protege
  adversarial_vs_imitation_lunarlander_bcstart_airl_s2_imitation
  adversarial_vs_imitation_lunarlander_bcstart_report
  lesson_dev_steady100
  lesson_dev_envelope
  lesson_dev_last_engine_bc
  lesson_dev_noisy_bc
  lesson_dev_noisy
  dagger_lunar_steady100
  dagger_lunar_steady100_report
  dagger_lunar_noisy
  dagger_lunar_noisy_report
  lesson_dev_mild_noise_s10
  lesson_dev_mild_noise_s11_12
  dagger_lunar_noisy_mild
  dagger_lunar_noisy_mild_thrifty
  dagger_lunar_noisy_mild_more
  dagger_lunar_noisy_mild_report
  demo_lunarlander_dev_s10
  thrifty_round_cost
  demo_lunarlander_s0
  demo_lunarlander_s1
  demo_lunarlander_s2
  demo_lunarlander_s3
  demo_lunarlander_s4
  demo_lunarlander_seeds
  adversarial_dev_lunarlander_airl_noent
  adversarial_vs_imitation_lunarlander_airl_noent_s0_protege
  adversarial_vs_imitation_lunarlander_airl_noent_s1_protege
  adversarial_vs_imitation_lunarlander_airl_noent_s2_protege
  adversarial_vs_imitation_lunarlander_airl_noent_report
  adversarial_vs_imitation_lunarlander_airl_paired_s0_protege
  adversarial_vs_imitation_lunarlander_airl_paired_s0_imitation
  adversarial_vs_imitation_lunarlander_airl_paired_s1_protege
  adversarial_vs_imitation_lunarlander_airl_paired_s1_imitation
  adversarial_vs_imitation_lunarlander_airl_paired_s2_protege
  adversarial_vs_imitation_lunarlander_airl_paired_s2_imitation
  adversarial_vs_imitation_lunarlander_airl_paired_report
)
[ $# -gt 0 ] && ORDER=("$@")

for name in "${ORDER[@]}"; do
  cmd=${CMD[$name]:?unknown benchmark $name}
  echo "== $name: $cmd"
  start=$(date +%s)
  {
    echo "# command: $cmd"
    echo "# started: $(date -u +%FT%TZ) on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    $cmd
    echo "# wall seconds: $(( $(date +%s) - start ))"
  } > "$OUT/$name.log" 2>&1
  tail -n 3 "$OUT/$name.log"
done
