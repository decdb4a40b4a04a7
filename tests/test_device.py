"""Devices: ``--device`` resolved (and refused clearly when missing), the whole training step
and acting on the policy's device, the CPU fast paths on the CPU only, bf16 autocast.

This machine has no GPU. The plumbing is checked on the CPU, and on torch's ``meta`` device:
a policy moved to ``meta`` computes shapes only, and any tensor the training step or acting
creates on the CPU instead (a ``torch.zeros(...)`` without ``device=``) meets the policy's
meta tensors in an operation and raises "Expected all tensors to be on the same device"."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from fakes import OBS, make_episode
from protege import BCConfig, Policy, PolicyConfig, Store
from protege import device as devices
from protege.algos import bc
from protege.algos.optim import TorchAdamW
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.data.episode import Episode
from protege.data.obs import take
from protege.errors import ConfigError
from protege.policies.stacked import stackable

META = torch.device("meta")
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
CAM = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
PARTS = gym.spaces.Dict({"cam": CAM, "state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)})
SMALL_CNN = {"channels": [4], "kernels": [3], "strides": [1]}
SMALL_PARTS = {**SMALL_CNN, "image_sizes": [8]}
HEAD_KWARGS = {
    "binned": {"hidden_sizes": [8]},
    "diffusion": {"hidden_dim": 8, "num_inference_steps": 2},
    "flow": {"hidden_dim": 8},
}


def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


def _store(path: Path, obs_space: gym.Space, act_space: gym.Space, n: int = 4) -> Store:
    rng = np.random.default_rng(0)
    episodes = []
    for e in range(n):
        t = 6 + e
        if isinstance(obs_space, gym.spaces.Dict):
            obs: object = {
                "cam": rng.integers(0, 256, (t + 1, 8, 8, 3), dtype=np.uint8),
                "state": rng.normal(size=(t + 1, 3)).astype(np.float32),
            }
        else:
            obs = rng.normal(size=(t + 1, 3)).astype(np.float32)
        if isinstance(act_space, gym.spaces.Discrete):
            acts = rng.integers(0, int(act_space.n), t)
        else:
            acts = rng.uniform(-1, 1, (t, 2)).astype(np.float32)
        episodes.append(Episode(obs=obs, actions=acts, rewards=np.zeros(t, np.float32), seed=e))
    with Store.create(path, obs_space, act_space) as store:
        store.extend(episodes)
    return Store.open(path)


# ------------------------------------------------------------------------ resolving
def test_auto_is_the_best_device_there_is_and_cpu_is_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    _no_cuda(monkeypatch)
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("cuda", "CUDA is not available on this machine (torch "),
        ("cuda:1", "CUDA is not available on this machine"),
        ("mps", "MPS is not available on this machine"),
    ],
)
def test_a_missing_device_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, spec: str, says: str
) -> None:
    _no_cuda(monkeypatch)
    with pytest.raises(ConfigError, match="use --device cpu or auto") as err:
        devices.resolve_device(spec)
    assert says in str(err.value) and torch.__version__ in str(err.value)


def test_a_cuda_index_past_the_last_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        devices.resolve_device("cuda:2")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "CPU", "", "cuda:"])
def test_a_misspelled_device_or_precision_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda, cuda:N or mps"):
        BCConfig(device=spec)
    with pytest.raises(ConfigError, match="precision must be one of"):
        BCConfig(precision="fp16")


def test_training_on_a_missing_device_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_cuda(monkeypatch)
    store = _store(tmp_path / "s", OBS, BOX)
    policy = Policy(PolicyConfig.for_spaces(OBS, BOX, hidden_sizes=(8,)), seed=0)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    with pytest.raises(ConfigError, match="CUDA is not available"):
        bc.fit(policy, store, BCConfig(steps=2, device="cuda"))
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


def test_the_command_line_says_so_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _no_cuda(monkeypatch)
    _store(tmp_path / "s", OBS, BOX)
    train = ["train", "--data", str(tmp_path / "s"), "--out", str(tmp_path / "p"), "--steps", "2"]
    assert main([*train, "--device", "cuda"]) == BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"protege train: error: CUDA is not available on this machine (torch {torch.__version__} "
        "build); use --device cpu or auto"
    ]
    assert not (tmp_path / "p").exists()
    assert main([*train, "--device", "gpu"]) == BAD_INPUT
    assert (
        "argument --device: must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"
        in capsys.readouterr().err
    )
    assert main([*train, "--device", "cpu", "--val-fraction", "0"]) == 0
    capsys.readouterr()
    evaluate = ["eval", "--policy", str(tmp_path / "p"), "--task", "cartpole", "--episodes", "1"]
    assert main([*evaluate, "--device", "mps"]) == BAD_INPUT
    assert "MPS is not available on this machine" in capsys.readouterr().err


# ---------------------------------------------------------------- the same numbers
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "autograd"])
def test_device_cpu_gives_the_numbers_of_the_default(tmp_path: Path, fast_path: bool) -> None:
    store = Store.create(tmp_path / "s", OBS, BOX)
    store.extend([make_episode(12, seed=i, act_space=BOX) for i in range(6)])
    weights = []
    for extra in ({}, {"device": "cpu", "precision": "fp32"}):
        policy = Policy(PolicyConfig.for_spaces(OBS, BOX, hidden_sizes=(16, 16)), seed=3)
        cfg = BCConfig(steps=30, batch_size=16, seed=1, eval_every=10, fast_path=fast_path)
        result = bc.fit(policy, Store.open(tmp_path / "s"), BCConfig(**{**vars(cfg), **extra}))
        assert (result.device, result.precision) == ("cpu", "fp32")
        weights.append(policy.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# ------------------------------------------------------------------- meta device
CASES = {
    "mse": (OBS, BOX, {}),
    "categorical-chunk": (OBS, gym.spaces.Discrete(3), {"chunk_size": 3}),
    "gaussian-history": (OBS, BOX, {"head": "gaussian", "n_obs_steps": 2}),
    "mog-chunk": (OBS, BOX, {"head": "mog", "chunk_size": 3}),
    "binned-chunk": (OBS, BOX, {"head": "binned", "chunk_size": 2}),
    "diffusion-chunk": (OBS, BOX, {"head": "diffusion", "chunk_size": 3}),
    "flow-chunk": (OBS, BOX, {"head": "flow", "chunk_size": 3}),
    "cnn-shift": (CAM, BOX, {"encoder_kwargs": SMALL_CNN, "random_shift": 1}),
    "parts-diffusion": (
        PARTS,
        BOX,
        {
            "head": "diffusion",
            "chunk_size": 2,
            "n_obs_steps": 2,
            "random_shift": 1,
            "encoder_kwargs": SMALL_PARTS,
        },
    ),
}


def _image_store(path: Path) -> Store:
    rng = np.random.default_rng(0)
    with Store.create(path, CAM, BOX) as store:
        for e in range(3):
            t = 5 + e
            frames = rng.integers(0, 256, (t + 1, 8, 8, 3), dtype=np.uint8)
            acts = rng.uniform(-1, 1, (t, 2)).astype(np.float32)
            store.append(Episode(obs=frames, actions=acts, rewards=np.zeros(t, np.float32)))
    return Store.open(path)


def _on_meta(x: object) -> bool:
    if isinstance(x, dict):
        return all(_on_meta(v) for v in x.values())
    return x is None or (isinstance(x, torch.Tensor) and x.device == META)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_training_step_and_acting_create_every_tensor_on_the_policy_device(
    tmp_path: Path, case: str
) -> None:
    """On ``meta``: batch gather (history, chunk targets, masks, compressed frames),
    augmentation, every head's loss, backward, the optimizer, and acting's tensors."""
    obs_space, act_space, kw = CASES[case]
    head = kw.get("head")
    kw = {**kw, "hidden_sizes": (8,), "head_kwargs": HEAD_KWARGS.get(str(head), {})}
    store = (
        _image_store(tmp_path / "s")
        if obs_space is CAM
        else _store(tmp_path / "s", obs_space, act_space)
    )
    data = store.transitions()
    policy = Policy(PolicyConfig.for_spaces(obs_space, act_space, **kw), seed=0)
    policy.set_normalization(take(data.obs, data.labeled), data.actions[data.labeled])
    policy.to(META)
    assert policy.device == META and policy._fast_plan() is None
    samples = bc._Samples(policy, data, np.arange(len(data.episode_lengths)))
    rows = torch.randint(len(samples), (5,), generator=torch.Generator().manual_seed(0))
    obs, acts, mask = samples.batch(rows)  # rows drawn on the host, as bc.fit draws them
    assert _on_meta(obs) and _on_meta(acts) and _on_meta(mask)
    policy.train()
    loss, _ = bc.bc_loss(policy, obs, acts, mask)  # (torch has no autocast on meta)
    assert loss.device == META
    opt = TorchAdamW(policy.parameters(), lr=1e-3)
    opt.zero_grad()
    loss.backward()
    opt.step(1e-3)
    assert all(p.device == META for p in policy.parameters())
    policy.eval()
    new = store.transitions().obs
    batch = take(new, np.arange(2))
    if policy.config.n_obs_steps > 1:  # what act() hands predict_chunk: (N, K, ...) per part
        batch = (
            {k: np.stack([v, v], axis=1) for k, v in batch.items()}
            if isinstance(batch, dict)
            else np.stack([batch, batch], axis=1)
        )
    with torch.inference_mode():
        feats = policy.features(policy.normalize_obs(policy.obs_tensors(batch)))
        assert feats.device == META
        outs = [policy.head.mode(feats), policy.head.sample(feats, None)]
        if head in ("diffusion", "flow", "gaussian"):
            # A host generator's noise moves to the device (a categorical draw with one
            # copies the probabilities to the host, which meta tensors cannot do).
            outs.append(policy.head.sample(feats, torch.Generator().manual_seed(0)))
        assert all(out.device == META for out in outs)


def test_the_cpu_fast_paths_stay_off_on_another_device(tmp_path: Path) -> None:
    cfg = PolicyConfig.for_spaces(OBS, BOX, hidden_sizes=(8,))
    cpu, meta = Policy(cfg, seed=0), Policy(cfg, seed=1)
    assert cpu._fast_plan() is not None and stackable([cpu, Policy(cfg, seed=2)])
    meta.to(META)
    assert meta._fast_plan() is None and not stackable([meta, Policy(cfg, seed=2).to(META)])
    assert devices.fast_paths_apply(torch.device("cpu"))
    assert not devices.fast_paths_apply(torch.device("cuda"))


# ------------------------------------------------------------------------------ bf16
@pytest.mark.parametrize(
    "kw",
    [
        {"head": "diffusion", "chunk_size": 2, "head_kwargs": {"hidden_dim": 32}},
        {"encoder_kwargs": SMALL_CNN},
    ],
    ids=["diffusion", "cnn"],
)
def test_bf16_autocast_trains_and_learns_on_the_cpu(tmp_path: Path, kw: dict) -> None:
    """A tiny task (the action is a fixed linear function of the observation): the loss
    under bf16 autocast falls to well under its start, and the policy acts in fp32."""
    rng = np.random.default_rng(0)
    image = "encoder_kwargs" in kw
    space = CAM if image else OBS
    w = rng.normal(size=(3, 2)).astype(np.float32)
    with Store.create(tmp_path / "s", space, BOX) as store:
        for e in range(8):
            t = 30
            x = rng.uniform(-1, 1, (t + 1, 3)).astype(np.float32)
            obs = (
                np.broadcast_to(((x + 1) * 127)[:, None, None, :], (t + 1, 8, 8, 3)).astype(
                    np.uint8
                )
                if image
                else x
            )
            acts = np.tanh(x[:-1] @ w).astype(np.float32)
            store.append(Episode(obs=obs, actions=acts, rewards=np.zeros(t, np.float32), seed=e))
    data = Store.open(tmp_path / "s").transitions()
    obs, truth = take(data.obs, np.arange(64)), data.actions[:64]
    finals, errors = {}, {}
    for precision in ("fp32", "bf16"):
        policy = Policy(PolicyConfig.for_spaces(space, BOX, hidden_sizes=(32,), **kw), seed=0)
        untrained = float(np.mean((policy.act(obs) - truth) ** 2))
        cfg = BCConfig(
            steps=150,
            batch_size=32,
            lr=3e-3,
            seed=0,
            eval_every=15,
            val_fraction=0,
            precision=precision,
        )
        result = bc.fit(policy, Store.open(tmp_path / "s"), cfg)
        losses = [row["train_loss"] for row in result.history]
        assert result.precision == precision and np.isfinite(losses).all()
        finals[precision] = losses[-1]
        acts = policy.act(obs)
        assert acts.dtype == np.float32
        errors[precision] = float(np.mean((acts - truth) ** 2)) / untrained
    print(finals, errors)
    assert finals["bf16"] < 1.25 * finals["fp32"], finals
    assert errors["bf16"] < 0.5 and errors["bf16"] < 1.5 * errors["fp32"] + 0.05, errors
