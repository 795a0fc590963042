"""A tiny real NiftyNet set-up for tests: demo NIfTI data at 24³, configs/demo.ini scaled down."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_SPACE = REPO / "studies" / "tiny.toml"


def tiny_config(tmp_path: Path, subjects: int = 5, validate_every: int = 5,
                save_every: int = 50) -> Path:
    """Writes demo data (24³ volumes) and a config training 16³ windows, batch 1."""
    from lrsearch.demo import write_demo_data

    write_demo_data(tmp_path / "demo_data", subjects=subjects, shape=(24, 24, 24))
    text = (REPO / "configs" / "demo.ini").read_text()
    replacements = {
        "path_to_search = demo_data": f"path_to_search = {tmp_path / 'demo_data'}",
        "model_dir = models/demo": f"model_dir = {tmp_path / 'models'}",
        "spatial_window_size = (40, 40, 40)": "spatial_window_size = (24, 24, 24)",
        "validation_every_n = 10": f"validation_every_n = {validate_every}",
        "save_every_n = 50": f"save_every_n = {save_every}",
        "batch_size = 2": "batch_size = 1",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "tiny.ini"
    config.write_text(text)
    return config
