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


def config_or_demo(config: Path | None, demo: str = "brain") -> Path:
    """The user's config, or the built-in ``demo`` task's config with its data written on
    first use."""
    if config is not None:
        return config
    from lrsearch.demo import ensure_demo_data

    demo_config, data_dir = DEMOS[demo]
    ensure_demo_data(data_dir, task=demo)
    return demo_config
