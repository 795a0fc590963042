"""Built-in files and default locations."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEMO_CONFIG = PACKAGE_DATA / "demo.ini"  # configs/demo.ini
DEFAULT_SPACE = PACKAGE_DATA / "default.toml"  # studies/default.toml
DEMO_DATA_DIR = Path("demo_data")  # relative to the working directory, as demo.ini says


def cache_dir() -> Path:
    """lrsearch's per-user cache: ``$XDG_CACHE_HOME/lrsearch`` (``~/.cache`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lrsearch"


def config_or_demo(config: Path | None) -> Path:
    """The user's config, or the built-in demo config with its data written on first use."""
    if config is not None:
        return config
    from lrsearch.demo import ensure_demo_data

    ensure_demo_data(DEMO_DATA_DIR)
    return DEMO_CONFIG
