"""protege import | export: stores to and from the datasets people already have (Minari,
LeRobotDataset v3.0, robomimic HDF5)."""

from __future__ import annotations

import argparse
from typing import Any

from protege.cli import output
from protege.cli.flags import progress_flag
from protege.cli.registry import command
from protege.errors import ConfigError

FORMATS = ("minari", "lerobot", "robomimic")


def _format_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="minari",
        help="dataset format: a Minari dataset id, a LeRobotDataset v3.0 directory or a "
        "robomimic HDF5 file (default: minari)",
    )


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="a protege store")
    p.add_argument(
        "dataset_id",
        metavar="ID",
        nargs="?",
        help="Minari dataset id, e.g. me/lunar-expert-v0 (--format minari)",
    )
    _format_flag(p)
    p.add_argument(
        "--out",
        metavar="PATH",
        help="the LeRobot directory or robomimic .hdf5 file to write (must not exist)",
    )
    p.add_argument(
        "--video",
        choices=("none", "h264", "av1"),
        default="none",
        help="LeRobot: camera images as PNG in the parquet files (none, lossless; default) or "
        "as mp4 video (h264 or av1; smaller, lossy)",
    )
    p.add_argument(
        "--fps",
        type=int,
        metavar="N",
        help="LeRobot: frames per second recorded in the dataset (default: the imported "
        "dataset's, else 30)",
    )
    p.add_argument("--root", metavar="DIR", help="datasets root (default: MINARI_DATASETS_PATH)")
    p.add_argument("--author", help="recorded in the Minari dataset's metadata")
    p.add_argument("--description", help="recorded in the Minari dataset's metadata")
    p.add_argument(
        "--jpeg-images",
        action="store_true",
        help="Minari: store image observations JPEG-encoded (smaller, lossy; default: lossless)",
    )
    progress_flag(p)


@command("export", _export_flags)
def export(args: argparse.Namespace) -> None:
    """Write a store as a Minari dataset, a LeRobotDataset v3.0 or a robomimic HDF5 file.

    Minari: the actions are the expert labels; executed actions, who acted and whether a step
    is labeled go into each episode's infos. LeRobot and robomimic: the actions are the labels;
    rewards and the terminal flag are kept (LeRobot's next.reward and next.done, robomimic's
    rewards and dones). A store imported from LeRobot or robomimic is written back with its
    original feature names, fps and task text. Nothing is uploaded anywhere.

    Example: protege export demos/lunar me/lunarlander-expert-v0
             protege export demos/arm --format lerobot --out arm-lerobot --video h264
             protege export demos/arm --format robomimic --out arm.hdf5
    """
    if args.format == "minari":
        from protege.data.minari_io import export_to_minari

        if args.dataset_id is None:
            raise ConfigError("--format minari needs a dataset ID (protege export STORE ID)")
        path = export_to_minari(
            args.store,
            args.dataset_id,
            root=args.root,
            author=args.author,
            description=args.description,
            progress=args.progress,
            jpeg_images=args.jpeg_images,
        )
        output.facts("Exported", {"dataset": args.dataset_id, "path": path})
        return
    from protege.data.interop import export_dataset

    if args.dataset_id is not None or args.out is None:
        raise ConfigError(f"--format {args.format} writes to --out PATH, not to a dataset ID")
    options = {"video": None if args.video == "none" else args.video}
    path = export_dataset(
        args.format,
        args.store,
        args.out,
        fps=args.fps,
        progress=args.progress,
        **(options if args.format == "lerobot" else {}),
    )
    output.facts("Exported", {"format": args.format, "path": path})


def _import_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="a local Minari dataset id, a LeRobotDataset v3.0 directory or a robomimic file",
    )
    _format_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="new protege store")
    p.add_argument("--root", metavar="DIR", help="datasets root (default: MINARI_DATASETS_PATH)")
    p.add_argument("--task", metavar="NAME", help="task to record in the store")
    p.add_argument(
        "--parts",
        metavar="NAME[,NAME]",
        help="LeRobot, robomimic: import only these observation parts, e.g. state (default: all)",
    )
    progress_flag(p)


@command(
    "import",
    _import_flags,
    interrupted="the new store {out} holds the episodes imported so far; delete it and run "
    "the command again",
)
def import_(args: argparse.Namespace) -> None:
    """Load a local dataset into a new protege store (nothing is downloaded).

    LeRobot's observation.* features and robomimic's obs/* become observation parts
    (observation.state → state, observation.images.top → top); a dataset with one part
    becomes a store with that observation. The final observation of an episode repeats the
    last LeRobot frame, or is robomimic's last next_obs.

    Example: protege import me/lunarlander-expert-v0 --out demos/from-minari --task lunarlander
             protege import --format lerobot path/to/dataset --out demos/from-lerobot
             protege import --format robomimic low_dim.hdf5 --out demos/from-robomimic
    """
    facts: dict[str, Any] = {}
    if args.format == "minari":
        from protege.data.minari_io import import_from_minari

        store = import_from_minari(
            args.source, args.out, root=args.root, task=args.task, progress=args.progress
        )
    else:
        from protege.data.interop import import_dataset

        parts = [p for p in (args.parts or "").split(",") if p]
        store, data = import_dataset(
            args.format,
            args.source,
            args.out,
            task=args.task,
            parts=parts or None,
            progress=args.progress,
        )
        facts["observation parts"] = ", ".join(f"{data.keys.get(p, p)} → {p}" for p in data.parts)
        facts.update({f"note {i + 1}": note for i, note in enumerate(data.notes)})
    output.facts(
        "Imported",
        {
            "store": store.path,
            "episodes": len(store),
            "transitions": f"{store.n_transitions:,}",
            **facts,
        },
    )
