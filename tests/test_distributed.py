"""`protege train` under torchrun: two processes with gloo on this machine, loopback only.

torchrun's rendezvous store listens on every interface whatever --rdzv-endpoint says, so the
end-to-end test runs torchrun inside a private network namespace (``unshare -rn``) whose only
interface is ``lo``: nothing it starts is reachable from outside this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fakes import short_demo
from protege import tasks
from protege.algos import bc, distributed
from protege.algos.distributed import World, from_env
from protege.algos.optim import FlatAdamW, TorchAdamW
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.configs.bc import BCConfig
from protege.configs.policy import PolicyConfig
from protege.data.store import Store
from protege.errors import ConfigError
from protege.policies import Policy

TORCHRUN = Path(sys.executable).with_name("torchrun")
TRAIN = "--steps 20 --eval-every 10 --batch-size 32 --hidden-sizes 16 16 --seed 5 --no-progress"


def _private_network() -> bool:
    """True when this user may run a command in its own network namespace."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], timeout=30)
    return probe.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(argv: list[str], nproc: int = 2, timeout: float = 180) -> subprocess.Popen[str]:
    """Run ``torchrun ... -m protege.cli <argv>`` with ``nproc`` processes in a private
    network namespace; on timeout kill only its process group."""
    cmd = [
        str(TORCHRUN), "--nnodes", "1", "--nproc-per-node", str(nproc),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}",
        "-m", "protege.cli", *argv,
    ]  # fmt: skip
    script = 'ip link set lo up && exec "$@"'
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(bc.__file__).parents[2]), *sys.path])
    proc = subprocess.Popen(
        ["unshare", "-rn", "sh", "-c", script, "sh", *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "demos"
    short_demo(tasks.make("cartpole"), path, steps=120)
    return path


@pytest.mark.skipif(not _private_network(), reason="needs unshare -rn (loopback-only torchrun)")
def test_two_processes_train_the_same_weights_on_every_rank_and_every_run(
    demos: Path, tmp_path: Path
) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = torchrun(["train", "--data", str(demos), "--out", str(out), *TRAIN.split()])
        assert proc.returncode == 0, proc.stdout
        record = json.loads((out / "train.json").read_text())
        runs.append((Policy.load(out), record["result"]))
    (policy, result), (again, _) = runs
    # both ranks ended with the same weights (the trainer compares their hashes)
    assert result["world_size"] == 2 and len(result["rank_weights_sha256"]) == 2
    assert len(set(result["rank_weights_sha256"])) == 1
    # same seed, same world size: the same weights, bit for bit
    for (k, v), w in zip(policy.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    # a normal policy directory: it loads and acts
    obs = np.asarray(Store.open(demos).transitions().obs[:4], np.float32)
    assert policy.act(obs).shape == (4,)
    # two slices of the global batch, averaged: one process's run to float rounding
    alone = Policy(PolicyConfig.for_spaces(*tasks.make("cartpole").spaces, hidden_sizes=(16, 16)))
    alone.load_state_dict(Policy(alone.config, seed=5).state_dict())
    bc.fit(alone, Store.open(demos), BCConfig(steps=20, eval_every=10, batch_size=32, seed=5))
    for (k, v), w in zip(policy.state_dict().items(), alone.state_dict().values(), strict=True):
        torch.testing.assert_close(v, w, rtol=1e-4, atol=1e-4, msg=k)


def test_a_world_size_that_does_not_divide_the_batch_is_refused(
    demos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for key, value in {"RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    argv = ["train", "--data", str(demos), "--out", str(tmp_path / "p"), *TRAIN.split()]
    assert main(argv) == BAD_INPUT
    err = capsys.readouterr().err
    assert "--batch-size 32 does not split across 3 processes" in err, err
    assert not (tmp_path / "p").exists()


def test_world_from_torchrun_environment_and_batch_slices() -> None:
    assert from_env({}) is None
    world = from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert world == World(rank=1, size=2, local_rank=1) and not world.main
    rows = torch.arange(8)
    slices = [World(r, 4).shard(rows).tolist() for r in range(4)]
    assert slices == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ConfigError, match="inconsistent"):
        from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="not integers"):
        from_env({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="multiple of 4"):
        World(0, 4).check_batch(30)


@pytest.mark.parametrize("optimizer", [FlatAdamW, TorchAdamW])
def test_gradient_and_loss_are_averaged_in_one_all_reduce(
    optimizer: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ranks simulated: the other rank's gradient and loss are all ones."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = optimizer(net.parameters(), lr=1e-3)
    loss = net(torch.randn(5, 3)).square().mean()
    opt.zero_grad()
    loss.backward()
    mine = [p.grad.clone() for p in net.parameters()]
    calls = []

    def all_reduce(buf: torch.Tensor) -> None:
        calls.append(buf.numel())
        buf.add_(1.0)

    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    mean = World(0, 2).average_gradients(opt, loss)
    assert calls == [sum(g.numel() for g in mine) + 1]  # one collective: gradient + loss
    assert mean == pytest.approx((float(loss.detach()) + 1) / 2)
    for p, g in zip(net.parameters(), mine, strict=True):
        torch.testing.assert_close(p.grad, (g + 1) / 2)
    opt.release()


def test_ranks_with_different_weights_fail_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    net = torch.nn.Linear(3, 2)
    other = {"flip": False}

    def all_gather(out: list[torch.Tensor], mine: torch.Tensor) -> None:
        out[0].copy_(mine)
        out[1].copy_(mine if not other["flip"] else 255 - mine)

    monkeypatch.setattr(distributed.dist, "all_gather", all_gather)
    hashes = World(0, 2).weight_hashes(net)
    assert len(hashes) == 2 and hashes[0] == hashes[1] and len(hashes[0]) == 64
    other["flip"] = True
    with pytest.raises(RuntimeError, match="2 training processes ended with different weights"):
        World(0, 2).weight_hashes(net)
