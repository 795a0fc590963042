"""Built-in files and default locations."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEMO_CONFIG = PACKAGE_DATA / "demo.ini"  # configs/demo.ini
DEFAULT_SPACE = PACKAGE_DATA / "default.toml"  # studies/default.toml
DEMO_DATA_DIR = Path("demo_data")  # relative to the working directory, as demo.ini says
DEMO_TISSUE_CONFIG = PACKAGE_DATA / "demo_tissue.ini"  # configs/demo_tissue.ini
DEMO_TISSUE_DATA_DIR = Path("demo_data_tissue")  # as demo_tissue.ini says
# The built-in demos by task (lrsearch.demo.TASKS): config, and where its data is written.
DEMOS = {
    "brain": (DEMO_CONFIG, DEMO_DATA_DIR),
    "tissue": (DEMO_TISSUE_CONFIG, DEMO_TISSUE_DATA_DIR),
}


def cache_dir() -> Path:
    """lrsearch's per-user cache: ``$XDG_CACHE_HOME/lrsearch`` (``~/.cache`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lrsearch"

