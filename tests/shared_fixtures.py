"""Where the datasets written by other projects' code are (``../shared/fixtures/``; see its
README): next to the repository, or where ``PROTEGE_FIXTURES`` says."""

import os
from pathlib import Path

FIXTURES = Path(
    os.environ.get("PROTEGE_FIXTURES")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures"
)
LEROBOT_IMAGE = FIXTURES / "lerobot-v3-image"
LEROBOT_AV1 = FIXTURES / "lerobot-v3-video-av1"
ROBOMIMIC = FIXTURES / "robomimic-toy.hdf5"
