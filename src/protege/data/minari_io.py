"""Interoperate with Minari, the Farama standard for gymnasium datasets.

``export_to_minari`` writes a protege store as a Minari dataset (``minari.load_dataset`` then
opens it); ``import_from_minari`` loads a Minari dataset into a protege store. Writing goes
through ``minari.create_dataset_from_buffers`` so it needs only ``minari[hdf5]``, not jax.

Where protege stores more than Minari has fields for (executed vs labeled actions, who acted),
those go into the per-step ``infos`` of the Minari episode; Minari's ``actions`` are the labels.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from protege.data.episode import Episode
from protege.data.store import Store
from protege.errors import DataError


@contextlib.contextmanager
def _datasets_root(root: str | os.PathLike | None) -> Iterator[None]:
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def export_to_minari(
    store: Store | str | os.PathLike,
    dataset_id: str,
    root: str | os.PathLike | None = None,
    env: gym.Env | None = None,
    author: str | None = None,
    description: str | None = None,
    progress: bool = False,
    jpeg_images: bool = False,
) -> Path:
    """Write every episode of ``store`` as the Minari dataset ``dataset_id``; returns its path.

    Image observations are stored losslessly unless ``jpeg_images`` (Minari's own default,
    smaller on disk, but frames then come back only close to what was recorded).

    ``root`` overrides ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``). ``env`` is
    recorded in the dataset so ``recover_environment()`` works; by default it is made from the
    store's task when that task is registered.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    if not isinstance(store, Store):
        store = Store.open(store)
    if len(store) == 0:
        raise DataError(f"{store.path}: the store is empty; nothing to export")
    if env is None and store.task:
        from protege import tasks

        with contextlib.suppress(Exception):
            env = tasks.make(store.task).make_env()
    buffers = []
    for i, ep in enumerate(tqdm(store.episodes(), total=len(store), disable=not progress)):
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=ep.seed,
                # A Dict space's observations are a dict of per-part lists, as Minari's own
                # collector builds them.
                observations=(
                    {name: list(part) for name, part in ep.obs.items()}
                    if isinstance(ep.obs, dict)
                    else list(ep.obs)
                ),
                actions=list(ep.actions),
                rewards=[float(r) for r in ep.rewards],
                terminations=[False] * (len(ep) - 1) + [ep.terminated],
                truncations=[False] * (len(ep) - 1) + [ep.truncated],
                infos={
                    "executed_action": np.asarray(ep.executed_actions),
                    "learner_acted": np.asarray(ep.actors == 1),
                    "labeled": np.asarray(ep.label_mask),
                },
            )
        )
    with _datasets_root(root), warnings.catch_warnings():
        # minari nags about optional metadata (permalink, e-mail, eval env); not errors.
        warnings.filterwarnings("ignore", category=UserWarning, module="minari")
        try:
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=env,
                observation_space=store.observation_space,
                action_space=store.action_space,
                algorithm_name="protege",
                author=author,
                description=description or f"exported from protege store {store.path}",
                data_format="hdf5",
                jpeg_encoding=jpeg_images,
            )
        except ValueError as exc:
            raise DataError(f"minari refused dataset {dataset_id!r}: {exc}") from None
        return Path(dataset.spec.data_path).parent


def import_from_minari(
    dataset_id: str,
    out: str | os.PathLike,
    root: str | os.PathLike | None = None,
    task: str | None = None,
    progress: bool = False,
) -> Store:
    """Load the local Minari dataset ``dataset_id`` into a new protege store at ``out``.

    Nothing is downloaded: the dataset must already be under ``root`` (or
    ``MINARI_DATASETS_PATH``). Box and Discrete spaces are supported, and Dict observation
    spaces of Box parts (not nested).
    """
    import minari

    with _datasets_root(root):
        try:
            dataset = minari.load_dataset(dataset_id)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise DataError(f"cannot open Minari dataset {dataset_id!r}: {exc}") from None
        store = Store.create(out, dataset.observation_space, dataset.action_space, task=task)
        for ep in tqdm(
            dataset.iterate_episodes(), total=dataset.total_episodes, disable=not progress
        ):
            infos = ep.infos if isinstance(ep.infos, dict) else {}
            executed = infos.get("executed_action")
            learner = infos.get("learner_acted")
            labeled = infos.get("labeled")
            t = len(ep.rewards)
            store.append(
                Episode(
                    obs=(
                        {name: np.asarray(part) for name, part in ep.observations.items()}
                        if isinstance(ep.observations, dict)
                        else np.asarray(ep.observations)
                    ),
                    actions=np.asarray(ep.actions),
                    rewards=np.asarray(ep.rewards, np.float32),
                    terminated=bool(ep.terminations[-1]),
                    truncated=bool(ep.truncations[-1]),
                    executed=None if executed is None else np.asarray(executed)[:t],
                    actor=None if learner is None else np.asarray(learner)[:t].astype(np.uint8),
                    labeled=None if labeled is None else np.asarray(labeled)[:t].astype(bool),
                    seed=None,
                )
            )
    return store
