"""NiftyNet's own segmentation configs, as shipped, train through lrsearch or are refused up front.

The INI files under tests/fixtures/niftynet_configs are copied unmodified from NiftyNet 0.6.0
(see the README there). At test time only their data paths are rewritten, to tiny synthetic
NIfTI data shaped to fit each config (modalities, 2-D or 3-D, label classes, windows after
padding); then ``lrsearch optimize`` runs 1 trial of 2 iterations. Each config either trains
(a complete trial) or is refused before anything is written to the study: exit 2, one line on
stderr naming the reason. None may fail inside a trial.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from tests.tiny import TINY_SPACE, write_volumes

FIXTURES = Path(__file__).parent / "fixtures" / "niftynet_configs"
PARCELLATION = {"modalities": ("T1",), "label": "Label", "file": "s{k}_{name}"}
BRATS = {"modalities": ("T1", "T1c", "T2", "Flair"), "label": "Label", "file": "s{k}_{name}"}
VALIDATION = "lrsearch prunes on validation Dice"  # the config sets no validation_every_n
# lrsearch refuses keys NiftyNet ignores because they sit in the wrong section (queue_length in
# [SYSTEM], output_prob in [INFERENCE]); six shipped configs have one. Where such a key is
# to become a warning, the table gives the outcome after it, and the refusal meanwhile is
# an expected failure.


@dataclass(frozen=True)
class Shipped:
    """Synthetic data fitting a shipped config, and what lrsearch does with it."""

    data: dict
    shape: tuple[int, ...]
    refused: str | None  # a fragment of the one-line refusal; None: it trains
    classes: int = 2
    extra: tuple[str, ...] = ()
    wrong_section: bool = False  # has a key in the wrong section (warned, then ignored)


# Shapes: each training window, and the inference window where one is set, fits the image
# after NiftyNet's volume_padding_size on both sides and after scaling_percentage's shrinking,
# so a refusal is the config's, not the data's.
SHIPPED: dict[str, Shipped] = {
    "config/deepmedic_config.ini": Shipped(PARCELLATION, (171, 171, 171), VALIDATION, 160),
    "config/default_multimodal_segmentation.ini": Shipped(
        BRATS, (64, 64, 64), VALIDATION, 5, wrong_section=True),
    "config/default_segmentation.ini": Shipped(PARCELLATION, (42, 42, 42), VALIDATION, 160),
    "config/default_segmentation_bf.ini": Shipped(PARCELLATION, (42, 42, 42), VALIDATION, 160),
    "config/densevnet_config.ini": Shipped(
        {**BRATS, "modalities": ("T1c",)}, (16, 16, 16), VALIDATION, wrong_section=True),
    "config/highres3dnet_config.ini": Shipped(
        PARCELLATION, (32, 32, 32), "[INFERENCE] spatial_window_size = 0, 0, 3", 160),
    "config/holisticnet_config.ini": Shipped(
        BRATS, (22, 22, 22), VALIDATION, 5, wrong_section=True),
    "config/scalenet_config.ini": Shipped(
        BRATS, (22, 22, 22), VALIDATION, 5, wrong_section=True),
    "config/unet_config.ini": Shipped(
        PARCELLATION, (16, 16, 16), "[INFERENCE] spatial_window_size = 105, 105, 105", 160),
    "config/vnet_config.ini": Shipped(
        PARCELLATION, (32, 32, 32), "[INFERENCE] spatial_window_size = 0, 0, 3", 160),
    "demos/Learning_Rate_Decay/learning_rate_demo_train_config.ini": Shipped(
        {"modalities": ("img",), "label": "label", "file": "{name}_hippocampus_{k}"},
        (64, 64, 64), VALIDATION, 3, wrong_section=True),
    "demos/PROMISE12/promise12_balanced_train_config.ini": Shipped(
        {"modalities": ("",), "label": "_segmentation", "file": "Case0{k}{name}.mhd"},
        (72, 72, 10), VALIDATION),  # scaling_percentage -10 % shrinks 64 to 58 while sampling
    "demos/PROMISE12/promise12_demo_train_config.ini": Shipped(
        {"modalities": ("",), "label": "_segmentation", "file": "Case0{k}{name}.mhd"},
        (16, 16, 16), VALIDATION),
    "demos/unet/HeLa.ini": Shipped(
        {"modalities": ("img_",), "label": "bin_seg_", "file": "{name}{k}"},
        (388, 388), "loader = skimage", extra=("weight_",)),
    "demos/unet/U373.ini": Shipped(
        {"modalities": ("img_",), "label": "bin_seg_", "file": "{name}{k}"},
        (388, 388), "loader = skimage", extra=("weight_",)),
    "demos/unet_histology/config.ini": Shipped(
        {"modalities": ("",), "label": "_labels", "file": "input_{k}{name}"},
        (228, 228), "validation_every_n is 10", wrong_section=True),
}

_PATH_KEYS = ("path_to_search", "csv_file", "model_dir", "histogram_ref_file")


def rewrite_paths(text: str, data: Path, work: Path) -> str:
    """The config with only its data and output paths pointing into ``work``."""
    def replace(match: re.Match) -> str:
        key, value = match.group(1), match.group(3).strip()
        if not value:  # an empty key (csv_file=) stays empty: it means "none"
            return match.group(0)
        new = {"path_to_search": data, "csv_file": work / "list.csv",
               "model_dir": work / "models",
               "histogram_ref_file": work / "histogram.txt"}[key]
        return f"{key}{match.group(2)}{new}"

    pattern = rf"^({'|'.join(_PATH_KEYS)})([ \t]*=[ \t]*)(.*)$"
    return re.sub(pattern, replace, text, flags=re.MULTILINE)


def shipped_config(name: str, work: Path) -> Path:
    """Writes synthetic data for the shipped config ``name`` and its path-rewritten copy."""
    shipped = SHIPPED[name]
    layout = shipped.data
    data = work / "data"
    write_volumes(data, shipped.shape, subjects=3, modalities=layout["modalities"],
                  label=layout["label"], classes=shipped.classes, extra=shipped.extra,
                  file=layout["file"])
    config = work / "config" / name
    config.parent.mkdir(parents=True, exist_ok=True)
    original = (FIXTURES / name).read_text()
    rewritten = rewrite_paths(original, data, work)
    config.write_text(rewritten)
    return config


def test_fixtures_are_the_shipped_segmentation_configs():
    shipped = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.ini")}
    assert shipped == set(SHIPPED)


def test_rewrite_touches_only_data_paths(tmp_path):
    for name in SHIPPED:
        original = (FIXTURES / name).read_text().splitlines()
        rewritten = rewrite_paths("\n".join(original), tmp_path / "d", tmp_path).splitlines()
        changed = [(a, b) for a, b in zip(original, rewritten, strict=True) if a != b]
        assert changed, name
        for before, after in changed:
            assert before.split("=")[0].strip() in _PATH_KEYS, before
            assert str(tmp_path) in after


def test_a_loader_other_than_nibabel_is_refused_before_reading(tmp_path):
    from lrsearch.errors import ConfigError
    from lrsearch.nifty.config import load_config
    from lrsearch.nifty.dataset import scan_data

    cfg = load_config(shipped_config("demos/unet/HeLa.ini", tmp_path))
    with pytest.raises(ConfigError, match=r"HeLa.ini: \[cells\] loader = skimage: .*nibabel"):
        scan_data(cfg)
    plain = cfg.with_values({s: {"loader": None} for s in ("cells", "label", "xent_weights")})
    assert scan_data(plain).subjects


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_config_trains_or_is_refused_up_front(name, tmp_path, capsys):
    expected = SHIPPED[name]
    config = shipped_config(name, tmp_path)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    started = time.monotonic()
    code = cli.main(["optimize", "-c", str(config), "--space", str(TINY_SPACE),
                     "--storage", storage, "--study", "shipped", "--trials", "1",
                     "--max-iter", "2"])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    print(f"{name}: exit {code} in {seconds:.1f} s: {lines[-1] if lines else ''}")
    if expected.refused is None:
        assert code == 0, err[-3000:]
        (trial,) = optuna.load_study(study_name="shipped", storage=storage).get_trials()
        assert trial.state == optuna.trial.TrialState.COMPLETE, \
            trial.user_attrs.get("stop_reason")
        assert trial.user_attrs["iterations"] == 2
        return
    assert code == 2, err[-3000:]
    refusal = [line for line in lines if not line.startswith("lrsearch: warning:")]
    assert len(refusal) == 1, err
    # a known key in the wrong section is ignored, as NiftyNet does, with a warning
    warned = [line for line in lines if line.startswith("lrsearch: warning:")]
    assert bool(warned) == expected.wrong_section, err
    assert expected.refused in refusal[0], refusal[0]
    assert "Traceback" not in err
    studies = optuna.get_all_study_summaries(storage) if (tmp_path / "study.db").exists() \
        else []
    assert all(s.n_trials == 0 for s in studies)
