"""Behavioral cloning: supervised learning on (observation, expert action) pairs.

The loss is the head's: mean squared error for the deterministic head, cross-entropy for the
categorical head, negative log-likelihood for the Gaussian, a denoising loss for diffusion...
BC trains on the labeled steps of a store only (DAgger and HG-DAgger store unlabeled learner
steps too). For chunked policies the target of step t is the next H labels of its episode;
targets that run past the episode's end are padded and masked out of the loss.

With ``n_obs_steps = K > 1`` the input of step t is the observations t−K+1..t of its episode
(the episode's first one repeated before its start). A store of compressed image frames is not
decompressed up front: each batch decompresses only the frames it samples, in a background
thread that keeps a few batches ready while the network trains.

Speed: an MLP policy whose head is one linear layer (``mse``, ``categorical``, ``gaussian``)
trains through :class:`~protege.algos.mlp_step.MLPStep`, the same loss and gradients without
autograd's overhead; every other policy through autograd; all with the flat fused AdamW of
:class:`~protege.algos.optim.FlatAdamW`. ``BCConfig.fast_path=False`` (or
``PROTEGE_FAST_PATH=0``) trains every policy through autograd and ``torch.optim.AdamW``
instead. While training, subnormal floats
are flushed to zero (``torch.set_flush_denormal``): Adam's moments of units that stop
getting gradient decay through the subnormal range, where arithmetic on them is many times
slower, and a long run would slow down by half or more for values below 1e-38.

Device: ``BCConfig.device`` (:mod:`protege.device`). The policy moves there and the whole step
runs there: the store's arrays are moved once, compressed frames are decompressed per batch on
the host and copied over (pinned on CUDA); rows are drawn by the seeded host generator, so a
seed draws the same batches on any device. The fast paths above run on the CPU in fp32 only;
``BCConfig.precision="bf16"`` runs the loss under bfloat16 autocast through autograd.

Judge the result on rollouts (``protege.evaluate``), never on the training loss.
"""

from __future__ import annotations

import contextlib
import copy
import math
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from protege.algos.mlp_step import MLPStep
from protege.algos.optim import FlatAdamW, TorchAdamW
from protege.configs.bc import BCConfig
from protege.data.frames import FrameArray
from protege.data.obs import take as obs_take
from protege.data.store import Store, Transitions
from protege.device import autocast, fast_paths_apply, pinned, resolve_device
from protege.errors import ConfigError, DataError, TrainingError
from protege.policies import mlp
from protege.policies.heads.base import Metrics
from protege.policies.policy import Policy

if TYPE_CHECKING:
    from protege.algos.distributed import World


@dataclass
class BCResult:
    """What a BC run did: loss curves, best step, throughput, data size, seed."""

    seed: int
    steps: int
    n_train: int
    n_val: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    best_val_loss: float = float("nan")
    stopped_early: bool = False
    train_seconds: float = 0.0
    samples_per_s: float = 0.0
    world_size: int = 1
    """Training processes (torchrun); ``samples_per_s`` counts the global batch."""
    rank_weights_sha256: list[str] = field(default_factory=list)
    """With several processes: each rank's hash of its final weights (all equal)."""
    device: str = "cpu"
    """Where it trained (``BCConfig.device`` resolved)."""
    precision: str = "fp32"
    """``BCConfig.precision``: fp32 or bf16."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bc_loss(
    policy: Policy, obs_B: Any, actions_BHA: torch.Tensor, mask_BH: torch.Tensor | None
) -> tuple[torch.Tensor, Metrics]:
    """The BC objective: the head's loss. ``obs_B`` and ``actions_BHA`` are already normalized
    (``_Samples`` stores them so); normalizing here again scaled the head's targets twice."""
    features = policy.features(obs_B)
    return policy.head.loss(features, actions_BHA, mask_BH)


class _Samples:
    """Labeled steps as tensors, with chunk targets and observation histories gathered per
    batch. Compressed frames (a :class:`FrameArray`) stay compressed: a batch decompresses
    only its rows."""

    def __init__(
        self,
        policy: Policy,
        data: Transitions,
        episodes: np.ndarray,
        weights: np.ndarray | None = None,
        sample_by_weight: bool = False,
    ):
        keep = np.isin(np.arange(len(data.episode_lengths)), episodes)
        sub = data.select_episodes(keep)
        cfg = policy.config
        # Everything but compressed frames moves to the policy's device once; a batch of
        # frames is decompressed on the host and copied over (pinned memory, on CUDA). With
        # frames, the row indices stay on the host, where decompression needs them.
        self.device = dev = policy.device
        is_frames = isinstance(sub.obs, FrameArray) or (
            isinstance(sub.obs, dict) and any(isinstance(v, FrameArray) for v in sub.obs.values())
        )
        host = torch.device("cpu") if is_frames else dev
        self.H = cfg.chunk_size
        self.K = cfg.n_obs_steps
        self.policy = policy
        self.frames: FrameArray | None = sub.obs if isinstance(sub.obs, FrameArray) else None
        # Observation parts: each part's raw rows (a tensor, or lazy frames), normalized per
        # batch (image parts stay uint8 for their CNN).
        self.parts: dict[str, torch.Tensor | FrameArray] | None = None
        if isinstance(sub.obs, dict):
            self.parts = {
                name: v if isinstance(v, FrameArray) else torch.as_tensor(np.asarray(v), device=dev)
                for name, v in sub.obs.items()
            }
        elif self.frames is None:
            self.obs = policy.normalize_obs(torch.as_tensor(sub.obs, device=dev))
        if self.K > 1:
            starts = np.repeat(sub.episode_starts, sub.episode_lengths)
            self.first = torch.as_tensor(starts, device=host)
            self.back = torch.arange(1 - self.K, 1, device=host)
        acts = np.asarray(sub.actions, np.float32).reshape(len(sub), -1)
        self.actions = policy.normalize_actions(torch.as_tensor(acts, device=dev))
        self.labeled = torch.as_tensor(sub.labeled, device=host)
        ends = np.repeat(sub.episode_starts + sub.episode_lengths, sub.episode_lengths)
        self.ends = torch.as_tensor(ends, device=host)
        self.index = torch.as_tensor(np.flatnonzero(sub.labeled), device=host)
        self.offsets = torch.arange(self.H, device=host)
        # Per-step weights (weighted BC): each row's loss counts w / Σw over its batch.
        self.weights: torch.Tensor | None = None
        if weights is not None:
            self.weights = torch.as_tensor(
                weights[keep[data.episode_of_step()]], dtype=torch.float32, device=host
            )
        # One action per step from one observation (the common case): keep just the labeled
        # rows, so a batch is two row gathers.
        self.compact = self.H == 1 and self.K == 1 and self.frames is None and self.parts is None
        if self.compact:
            self.obs = self.obs[self.index]
            self.actions = self.actions[self.index][:, None]
            if self.weights is not None:
                self.weights = self.weights[self.index]
        w = self.weights if self.compact or self.weights is None else self.weights[self.index]
        self.cdf = torch.cumsum(w.double(), 0) if sample_by_weight and w is not None else None
        self.weights = None if self.cdf is not None else self.weights  # drawn ∝ w: unweighted

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lazy(self) -> bool:
        """True when observations are decompressed per batch."""
        if self.parts is not None:
            return any(isinstance(v, FrameArray) for v in self.parts.values())
        return self.frames is not None

    def observations(self, i: torch.Tensor) -> Any:
        """Encoder inputs of steps ``i``: ``(B, *obs)``, or ``(B, K, *obs)`` with history
        (for observation parts, a dict of those)."""
        rows = i if self.K == 1 else torch.maximum(i[:, None] + self.back, self.first[i][:, None])
        if self.parts is not None:
            batch = {
                name: self._frames(v, rows) if isinstance(v, FrameArray) else v[rows.to(v.device)]
                for name, v in self.parts.items()
            }
            return self.policy.normalize_obs(batch)
        if self.frames is None:
            return self.obs[rows]
        return self.policy.normalize_obs(self._frames(self.frames, rows))

    def _frames(self, frames: FrameArray, rows: torch.Tensor) -> torch.Tensor:
        """Rows of compressed frames, decompressed on the host, on the device."""
        host = torch.from_numpy(frames.take(rows.cpu().numpy()))
        return pinned(host, self.device).to(self.device, non_blocking=True)

    def draw(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        """Rows of a batch: uniform, or ∝ weight (no batch spent on rows of weight ≈ 0)."""
        if self.cdf is None:
            return torch.randint(len(self), (batch_size,), generator=gen)
        u = torch.rand(batch_size, generator=gen, dtype=torch.float64) * self.cdf[-1]
        return torch.searchsorted(self.cdf, u, right=True).clamp_(max=len(self) - 1)

    def batch(self, rows: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
        """(obs_B, actions_BHA, pad_mask_BH or None when every target step is valid); ``rows``
        may be on the host (the seeded generator's draw)."""
        rows = rows.to(self.index.device)
        if self.compact:
            obs, acts = self.obs.index_select(0, rows), self.actions.index_select(0, rows)
            w = None if self.weights is None else self.weights.index_select(0, rows)[:, None]
            return obs, acts, w
        i = self.index[rows]
        w = None if self.weights is None else self.weights[i][:, None]
        if self.H == 1:
            w_dev = None if w is None else w.to(self.device)
            return self.observations(i), self.actions[i.to(self.device)][:, None], w_dev
        target = i[:, None] + self.offsets
        end = self.ends[i][:, None]
        valid = target < end
        target = torch.minimum(target, end - 1)
        valid &= self.labeled[target]
        dev = self.device
        valid_dev = valid.to(dev) if w is None else valid.to(dev) * w.to(dev)
        return self.observations(i), self.actions[target.to(dev)], valid_dev


Batch = tuple[Any, torch.Tensor, torch.Tensor | None]


class _Prefetcher:
    """Draws and gathers training batches in a background thread, ``depth`` batches ahead.

    Rows are drawn from ``gen`` in the same order as without prefetching, so a run gives the
    same batches either way. Decompression (zlib) and torch both release the GIL, so on two
    cores the next batch is decompressed while the network trains on this one.
    """

    def __init__(
        self,
        samples: _Samples,
        batch_size: int,
        gen: torch.Generator,
        world: World | None = None,
        depth: int = 3,
    ):
        self._samples, self._batch_size, self._gen, self._world = samples, batch_size, gen, world
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bc-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                rows = self._samples.draw(self._batch_size, self._gen)
                if self._world is not None:
                    rows = self._world.shard(rows)
                item: Batch | BaseException = self._samples.batch(rows)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the training loop, which re-raises it
            self._queue.put(exc)

    def next(self) -> Batch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()


def split_episodes(
    n_episodes: int, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, val) episode indices; at least one training episode."""
    order = rng.permutation(n_episodes)
    n_val = round(val_fraction * n_episodes) if n_episodes > 1 else 0
    n_val = min(n_val, n_episodes - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def fit(
    policy: Policy,
    data: Transitions | Store,
    config: BCConfig | None = None,
    world: World | None = None,
    weights: np.ndarray | None = None,
) -> BCResult:
    """Train ``policy`` by behavioral cloning on the labeled steps of ``data``.

    ``world``: this process's place among torchrun's processes (inside their process group;
    :mod:`protege.algos.distributed`), None for one process.

    ``weights`` (N,), one finite number ≥ 0 per step of ``data``, makes it weighted BC: the
    objective ``Σ w·loss / Σ w``, training batches drawn ∝ ``w`` (validation: losses weighted),
    as the advantage-weighted methods of :mod:`protege.algos.offline` extract their policies.

    Example:
        >>> policy = Policy(PolicyConfig.for_spaces(env.observation_space, env.action_space))
        >>> result = bc.fit(policy, Store.open("demos"), BCConfig(steps=5000, seed=0))
    """
    config = config or BCConfig()
    if world is not None:
        world.check_batch(config.batch_size)
    if isinstance(data, Store):
        data = data.transitions()
    if data.n_labels == 0:
        raise DataError("no labeled steps to train on")
    if weights is not None:
        weights = np.asarray(weights, np.float32)
        bad = weights.shape != (len(data),) or not np.isfinite(weights).all() or (weights < 0).any()
        if bad or not weights[np.asarray(data.labeled, bool)].any():
            raise DataError(f"weights: {len(data)} finite numbers ≥ 0 (one per step), some > 0")
    device = resolve_device(config.device)
    policy.to(device)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)  # on the host: the same rows anywhere
    # stochastic losses (diffusion, flow) draw from torch's RNG: other noise on each rank
    torch.manual_seed(config.seed + (world.rank if world is not None else 0))
    train_eps, val_eps = split_episodes(len(data.episode_lengths), config.val_fraction, rng)
    if config.fit_normalization:
        lab = data.select_episodes(np.isin(np.arange(len(data.episode_lengths)), train_eps))
        policy.set_normalization(obs_take(lab.obs, lab.labeled), lab.actions[lab.labeled])
    train = _Samples(policy, data, train_eps, weights, sample_by_weight=True)
    val = _Samples(policy, data, val_eps, weights) if len(val_eps) else None
    if len(train) == 0:
        raise DataError("the training split has no labeled steps")

    steps = config.steps or max(1, math.ceil(config.epochs * len(train) / config.batch_size))
    # The CPU fast paths: on the CPU in fp32 only; anywhere else autograd and torch's AdamW.
    fast = config.fast_path and mlp.FAST_PATHS and fast_paths_apply(device)
    fast = fast and config.precision == "fp32"
    if world is not None:
        world.broadcast(policy)  # rank 0's initial weights everywhere
    optimizer = FlatAdamW if fast else TorchAdamW
    opt = optimizer(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    main = world is None or world.main
    writer = _tensorboard(config.tensorboard_dir) if main else None
    result = BCResult(seed=config.seed, steps=0, n_train=len(train), n_val=len(val or []))
    if world is not None:
        result.world_size = world.size
    result.device, result.precision = str(device), config.precision
    best_state: dict[str, torch.Tensor] | None = None
    finite_state, finite_step = _snapshot(policy), 0
    bad_evals = 0
    running: list[float] = []
    train_time = 0.0
    policy.train()
    fused = MLPStep(policy) if fast and MLPStep.applies(policy) else None
    bar = tqdm(range(1, steps + 1), desc="bc", disable=not (config.progress and main), leave=False)
    prefetch = _Prefetcher(train, config.batch_size, gen, world) if train.lazy else None
    try:
        torch.set_flush_denormal(True)
        for step in bar:
            t0 = time.perf_counter()
            if prefetch is None:
                rows = train.draw(config.batch_size, gen)
                if world is not None:
                    rows = world.shard(rows)
                obs, acts, mask = train.batch(rows)
            else:
                obs, acts, mask = prefetch.next()
            if fused is not None:
                loss = fused(obs, acts, mask)
            else:
                with autocast(device, config.precision):
                    loss, _ = bc_loss(policy, obs, acts, mask)
                opt.zero_grad()
                loss.backward()
            if world is not None:  # the gradient and the loss, averaged over ranks
                mean_loss = world.average_gradients(opt, loss)
            if config.grad_clip:
                opt.clip_grad_norm(config.grad_clip)
            opt.step(_lr(config, step, steps))
            train_time += time.perf_counter() - t0
            running.append(float(loss.detach()) if world is None else mean_loss)
            if not math.isfinite(running[-1]):
                raise _diverged(policy, running[-1], step, finite_state, finite_step)
            if step % config.eval_every == 0 or step == steps:
                row = {"step": step, "train_loss": float(np.mean(running))}
                running = []
                if val is not None:
                    row["val_loss"] = _validate(policy, val, config.precision)
                    policy.train()
                    if not row["val_loss"] >= result.best_val_loss:  # also true for the first (nan)
                        result.best_val_loss, result.best_step = row["val_loss"], step
                        if config.restore_best:
                            best_state = copy.deepcopy(policy.state_dict())
                        bad_evals = 0
                    else:
                        bad_evals += 1
                if not math.isfinite(row.get("val_loss", 0.0)):
                    raise _diverged(policy, row["val_loss"], step, finite_state, finite_step)
                state = _snapshot(policy)
                if not all(t.isfinite().all() for t in state.values() if t.is_floating_point()):
                    raise _diverged(policy, math.nan, step, finite_state, finite_step, "weights")
                finite_state, finite_step = state, step
                result.history.append(row)
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k != "step"})
                if writer is not None:
                    for key, value in row.items():
                        if key != "step":
                            writer.add_scalar(f"bc/{key}", value, step)
                if config.patience is not None and bad_evals >= config.patience:
                    result.stopped_early = True
                    break
    finally:
        torch.set_flush_denormal(False)
        opt.release()
        if prefetch is not None:
            prefetch.close()
    result.steps = step
    if config.restore_best and best_state is not None:
        policy.load_state_dict(best_state)
    policy.eval()
    if world is not None:
        result.rank_weights_sha256 = world.weight_hashes(policy)
    if writer is not None:
        writer.close()
    result.train_seconds = train_time
    result.samples_per_s = result.steps * config.batch_size / max(train_time, 1e-9)
    return result


def _snapshot(policy: Policy) -> dict[str, torch.Tensor]:
    """A copy of the policy's weights (kept at each validation point: the weights a diverged
    run falls back to)."""
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def _diverged(
    policy: Policy,
    loss: float,
    step: int,
    state: dict[str, torch.Tensor],
    kept: int,
    what: str = "loss",
) -> TrainingError:
    """Restore the last finite weights and say where training diverged."""
    with torch.no_grad():
        policy.load_state_dict(state)
    policy.eval()
    found = "are not finite" if what == "weights" else f"is {loss}"
    return TrainingError(
        f"training diverged: the {what} {found} at step {step}; kept the weights of step {kept} "
        "(lower --lr, set --grad-clip, or check the data for huge values)",
        step=step,
        kept_step=kept,
    )


def _lr(config: BCConfig, step: int, steps: int) -> float:
    """Learning rate of gradient step ``step`` (1-based): constant, or cosine from ``lr`` at
    the first step to 0 after the last (``CosineAnnealingLR`` with ``T_max = steps``)."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))


@torch.no_grad()
def _validate(
    policy: Policy, val: _Samples, precision: str = "fp32", max_rows: int = 8192
) -> float:
    policy.eval()
    device = policy.device
    rows = torch.arange(len(val))
    if len(rows) > max_rows:  # a fixed subset keeps validation cheap and comparable
        rows = rows[torch.linspace(0, len(val) - 1, max_rows).long()]
    losses, weights = [], []
    for chunk in rows.split(2048):
        obs, acts, mask = val.batch(chunk)
        # Stochastic losses (diffusion, flow) use the same noise each time.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            with autocast(device, precision):
                loss, _ = bc_loss(policy, obs, acts, mask)
        losses.append(float(loss))
        weights.append(float(mask.sum()) if mask is not None else float(len(chunk)))
    return float(np.average(losses, weights=weights))


def _tensorboard(log_dir: str | None) -> Any:
    if log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "tensorboard_dir needs the tensorboard package: pip install 'protege[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir)
