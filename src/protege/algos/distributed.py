"""Behavioral cloning on several processes under ``torchrun`` (data parallel, one model copy
per process).

``protege train`` started by ``torchrun --nproc-per-node N`` finds the variables torchrun sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; :func:`from_env`), joins the process group (gloo on
CPU, NCCL on CUDA; :func:`process_group`) and trains with :func:`protege.algos.bc.fit`
given the :class:`World`:

- **Data.** Every rank opens the same store (shared storage readable by every rank) and makes
  the same train/validation split from the seed. Each step's global batch of ``batch_size``
  rows is drawn from one generator seeded identically on every rank; rank r trains on slice r
  of it (``batch_size / world_size`` rows; :meth:`World.shard`). The effective batch is the
  single-process batch (and ``batch_size`` reported as samples/s
  counts it once), and a store of compressed frames is decompressed only for a rank's
  own rows. A world size that does not divide the batch is refused.
- **Gradients.** Averaged across ranks by an explicit all-reduce of the gradient
  (:meth:`World.average_gradients`), not by wrapping the policy in
  ``DistributedDataParallel``: DDP averages through autograd hooks, and BC's CPU fast path
  (:class:`~protege.algos.mlp_step.MLPStep`) writes gradients without autograd, so the hooks
  would never fire. With :class:`~protege.algos.optim.FlatAdamW` the gradient is one
  contiguous buffer: one collective per step, as DDP's bucketing would give. The same code
  serves the autograd path (``fast_path=False``, CNNs, every head).
- **Determinism.** Rank 0's initial weights are broadcast; every rank then applies the same
  averaged gradient, so the ranks hold the same weights at every step. At the end the ranks
  compare SHA-256 hashes of their weights (:meth:`World.weight_hashes`) and training fails if
  any differ. Same seed and same world size → the same weights. Another world size averages
  the slices' gradients in another order (float rounding), and stochastic losses (diffusion,
  flow) draw their noise per rank (``seed + rank``), so its weights differ slightly.
- **Output.** Only rank 0 writes: the policy directory, train.json, logs, tensorboard.

Everything here binds what torchrun and ``MASTER_ADDR`` name; on one machine, give torchrun
``--rdzv-endpoint 127.0.0.1:PORT`` (README, "torchrun").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from protege.algos.optim import FlatAdamW, TorchAdamW
from protege.errors import ConfigError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""What torchrun sets in every process it starts."""


@dataclass
class World:
    """This process's place among ``size`` training processes."""

    rank: int
    size: int
    local_rank: int = 0
    _buffer: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def main(self) -> bool:
        """True on rank 0, the one rank that writes checkpoints and logs."""
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """Where this rank trains: ``cuda`` without an index means this node's GPU number
        ``LOCAL_RANK`` (one GPU per process); any other device as requested."""
        if requested.type == "cuda" and requested.index is None:
            return torch.device("cuda", self.local_rank)
        return requested

    def check_batch(self, batch_size: int) -> None:
        """Refuse a batch that does not split evenly across the ranks."""
        if batch_size % self.size:
            raise ConfigError(
                f"--batch-size {batch_size} does not split across {self.size} processes "
                f"(torchrun --nproc-per-node × --nnodes): use a multiple of {self.size}, "
                f"e.g. {max(1, batch_size // self.size) * self.size}"
            )

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch's row indices."""
        n = len(rows) // self.size
        return rows[self.rank * n : (self.rank + 1) * n]

    def broadcast(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers."""
        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, 0)

    def average_gradients(self, opt: FlatAdamW | TorchAdamW, loss: torch.Tensor) -> float:
        """Replace each rank's gradient by the mean over ranks (in place) and return the mean
        of the ranks' losses: one all-reduce of the gradient with the loss appended (on a
        loaded machine each collective costs a thread hand-off, so one, not two)."""
        if isinstance(opt, FlatAdamW):
            grads = [opt.grad]
        else:
            grads = [p.grad for p in opt.params if p.grad is not None]
        n = sum(g.numel() for g in grads)
        buf = self._buffer
        if buf is None or buf.numel() != n + 1:
            buf = self._buffer = grads[0].new_empty(n + 1)
        torch.cat([*(g.reshape(-1) for g in grads), loss.detach().reshape(1)], out=buf)
        dist.all_reduce(buf)
        buf.div_(self.size)
        offset = 0
        for g in grads:
            g.copy_(buf[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        return float(buf[n])

    def weight_hashes(self, module: torch.nn.Module) -> list[str]:
        """Every rank's SHA-256 of ``module``'s weights, in rank order; raises RuntimeError
        when the ranks' weights differ."""
        digest = hashlib.sha256()
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        mine = torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8)
        everyone = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(everyone, mine)
        hashes = [bytes(t.tolist()).hex() for t in everyone]
        if len(set(hashes)) > 1:
            raise RuntimeError(  # a bug, not bad input: exits as an internal error
                f"the {self.size} training processes ended with different weights "
                f"(SHA-256 per rank: {', '.join(h[:12] for h in hashes)})"
            )
        return hashes


def from_env(environ: Mapping[str, str] = os.environ) -> World | None:
    """The :class:`World` torchrun describes in ``environ``; None outside torchrun."""
    if "WORLD_SIZE" not in environ:
        return None
    try:
        rank, size, local = (int(environ.get(k, "0")) for k in ENV_VARS)
    except ValueError:
        found = ", ".join(f"{k}={environ.get(k)!r}" for k in ENV_VARS)
        raise ConfigError(f"torchrun's environment is not integers: {found}") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ConfigError(f"torchrun's environment is inconsistent: RANK={rank}, WORLD_SIZE={size}")
    return World(rank, size, local)


def backend(device: torch.device) -> str:
    """The collective library for tensors on ``device``: NCCL on CUDA, gloo on CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the duration (``MASTER_ADDR``/``MASTER_PORT`` come
    from torchrun), and leave it after."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend(device), rank=world.rank, world_size=world.size)
    try:
        yield
    finally:
        dist.destroy_process_group()
