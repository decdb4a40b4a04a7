"""Where the datasets written by other projects' code are: ``tests/fixtures/external/``, a
copy of the team's ``../shared/fixtures/`` (see its README: LeRobot v3.0 written by LeRobot
0.4.4, robomimic HDF5 read by robomimic 0.3.0), kept in the repository so a clone tests the
same files anywhere; ``PROTEGE_FIXTURES`` points elsewhere."""

import os
from pathlib import Path

FIXTURES = Path(
    os.environ.get("PROTEGE_FIXTURES") or Path(__file__).resolve().parent / "fixtures" / "external"
)
LEROBOT_IMAGE = FIXTURES / "lerobot-v3-image"
LEROBOT_AV1 = FIXTURES / "lerobot-v3-video-av1"
ROBOMIMIC = FIXTURES / "robomimic-toy.hdf5"
