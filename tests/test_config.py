"""lrsearch.nifty.config against real INI files, real NIfTI files and NiftyNet's own parser."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lrsearch.errors import ConfigError, DataError
from lrsearch.nifty import config, dataset, locations, windows
from lrsearch.nifty import ini as nifty_ini
from lrsearch.nifty import split as nifty_split

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "configs" / "ixi_highres3dnet.ini"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def private_niftynet_home(tmp_path_factory, monkeypatch):
    """Keep every test away from the real ~/niftynet: NiftyNet home = an empty temp folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("niftynet_config_home", raising=False)
    return home


def write_nifti(path: Path, shape=(24, 24, 24), label: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    if label:
        data = np.zeros(shape, dtype=np.uint8)
        data[tuple(slice(n // 4, 3 * n // 4) for n in shape)] = 1
    else:
        data = rng.random(shape, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def demo_files(folder: Path, subjects=("000", "001", "002"), shape=(24, 24, 24)) -> None:
    """The demo naming: IXI000_orig.nii.gz (image) and IXI000_brain.nii.gz (label)."""
    for i, s in enumerate(subjects):
        write_nifti(folder / f"IXI{s}_orig.nii.gz", shape, seed=i)
        write_nifti(folder / f"IXI{s}_brain.nii.gz", shape, label=True)


IXI_NAMES = ("IXI002-Guys-0828", "IXI012-HH-1211", "IXI013-HH-1212")


def ixi_files(folder: Path, names=IXI_NAMES, shape=(24, 24, 24)) -> None:
    """IXI naming: IXI002-Guys-0828-T1.nii.gz and IXI002-Guys-0828-brain-mask.nii.gz."""
    for i, name in enumerate(names):
        write_nifti(folder / f"{name}-T1.nii.gz", shape, seed=i)
        write_nifti(folder / f"{name}-brain-mask.nii.gz", shape, label=True)


DEMO_INI = """\
[T1]
path_to_search = {data}
filename_contains = {image_kw}
spatial_window_size = {window}

[brain]
path_to_search = {data}
filename_contains = {label_kw}
spatial_window_size = {label_window}
interp_order = 0

[SYSTEM]
cuda_devices = ""
model_dir = {model_dir}

[NETWORK]
name = {network}
batch_size = 2
whitening = True

[TRAINING]
lr = 0.001
max_iter = 150
validation_every_n = 10

[SEGMENTATION]
image = T1
label = brain
num_classes = 2
"""


def demo_config(folder: Path, **overrides) -> Path:
    values = dict(data="demo_data", image_kw="orig", label_kw="brain", window="16, 16, 16",
                  label_window="16, 16, 16", model_dir="models/demo", network="highres3dnet")
    values.update(overrides)
    path = folder / "demo.ini"
    path.write_text(DEMO_INI.format(**values))
    return path


def ini(folder: Path, text: str, name: str = "cfg.ini") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = """\
[T1]
path_to_search = data
filename_contains = T1
spatial_window_size = 16, 16, 16

[SEGMENTATION]
image = T1
num_classes = 2
"""


# ---------------------------------------------------------------------------------------------
# the seed config
# ---------------------------------------------------------------------------------------------

def test_seed_config_values_are_typed():
    cfg = config.load_config(SEED)
    assert cfg.path == SEED
    assert cfg.network_name == "highres3dnet"
    assert cfg.get("NETWORK", "activation_function") == "prelu"
    assert (cfg.batch_size, cfg.lr, cfg.optimiser, cfg.loss_type) == (1, 0.001, "adam", "Dice")
    assert cfg.get("NETWORK", "decay") == 1e-5 and cfg.get("NETWORK", "reg_type") == "L2"
    assert cfg.get("NETWORK", "window_sampling") == "uniform"
    assert (cfg.max_iter, cfg.validation_every_n, cfg.num_classes) == (200000, 10, 2)
    assert cfg.get("SYSTEM", "cuda_devices") == '""'
    assert cfg.image_sections == ("T1",) and cfg.label_sections == ("brain_mask",)
    for name in ("T1", "brain_mask"):
        assert cfg.inputs[name].spatial_window_size == (80, 80, 80)
        assert cfg.inputs[name].path_to_search == ("data/IXI",)
    # a key the file does not set comes back as NiftyNet's default
    assert cfg.get("NETWORK", "volume_padding_mode") == "minimum"
    assert "volume_padding_mode" not in cfg.values["NETWORK"]


def test_seed_config_passes_the_static_checks():
    cfg = config.load_config(SEED)
    windows.check_training(cfg)
    windows.check_window(cfg)


def test_seed_config_pairs_ixi_file_names(tmp_path, monkeypatch):
    ixi_files(tmp_path / "data" / "IXI")
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(SEED)
    # 24^3 test volumes cannot hold the seed's 80^3 window
    with pytest.raises(DataError, match=r"smaller than the spatial_window_size 80, 80, 80"):
        dataset.scan_data(cfg)
    small = cfg.with_values({"T1": {"spatial_window_size": (16, 16, 16)},
                             "brain_mask": {"spatial_window_size": (16, 16, 16)}})
    data = dataset.scan_data(small)
    assert data.subjects == ("IXI002Guys0828", "IXI012HH1211", "IXI013HH1212")
    assert data.files["T1"]["IXI002Guys0828"] == tmp_path / "data/IXI/IXI002-Guys-0828-T1.nii.gz"
    assert data.files["brain_mask"]["IXI002Guys0828"].name == "IXI002-Guys-0828-brain-mask.nii.gz"
    assert data.shapes["IXI013HH1212"] == (24, 24, 24)


# ---------------------------------------------------------------------------------------------
# subject ids
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("files", "contains", "not_contains", "remove", "expected"),
    [
        # demo naming, keyword only: the underscore is a word character and stays
        (["IXI000_orig.nii.gz"], ("orig",), (), "", {"IXI000_orig.nii.gz": "IXI000_"}),
        (["IXI000_brain.nii.gz"], ("brain",), (), "", {"IXI000_brain.nii.gz": "IXI000_"}),
        # NIFTYNET.md's '000_' needs 'IXI' among the keywords too
        (["IXI000_orig.nii.gz"], ("IXI", "orig"), (), "", {"IXI000_orig.nii.gz": "000_"}),
        # IXI naming: '-' is dropped with the keyword
        (["IXI002-Guys-0828-T1.nii.gz"], ("T1",), (), "",
         {"IXI002-Guys-0828-T1.nii.gz": "IXI002Guys0828"}),
        (["IXI002-Guys-0828-brain-mask.nii.gz"], ("brain-mask",), (), "",
         {"IXI002-Guys-0828-brain-mask.nii.gz": "IXI002Guys0828"}),
        # a regular expression replaces the keyword rule (no character stripping)
        (["IXI002-Guys-0828-T1.nii.gz"], ("T1",), (), "-Guys.*",
         {"IXI002-Guys-0828-T1.nii.gz": "IXI002"}),
        # pieces met more than once are dropped; the first piece left is the id
        (["s1_T1_scan.nii.gz", "s2_T1_scan.nii.gz", "x_T1x_.nii.gz"], ("T1",), (), "",
         {"s1_T1_scan.nii.gz": "s1_", "s2_T1_scan.nii.gz": "s2_", "x_T1x_.nii.gz": "x_x_"}),
        # filename_not_contains and filename_contains filter on the whole name
        (["a_T1.nii.gz", "a_T1_mask.nii.gz", "b_T2.nii.gz"], ("T1",), ("mask",), "",
         {"a_T1.nii.gz": "a_"}),
    ],
)
def test_subject_id_rule(files, contains, not_contains, remove, expected):
    assert dataset.match_subjects(files, contains, not_contains, remove) == expected


def test_subject_ids_must_be_unique():
    with pytest.raises(DataError, match=r"a_T1\.nii\.gz and a_T1\.nii both give subject id 'a_'"):
        dataset.match_subjects(["a_T1.nii.gz", "a_T1.nii"], ("T1",))
    # the first piece decides, before shared pieces are dropped (NiftyNet refuses this too)
    with pytest.raises(DataError, match=r"both give subject id 'scan_'"):
        dataset.match_subjects(["scan_T1_s1.nii.gz", "scan_T1_s2.nii.gz"], ("T1",))


def test_demo_config_scan(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data")
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(demo_config(tmp_path))
    data = dataset.scan_data(cfg)
    assert data.subjects == ("IXI000_", "IXI001_", "IXI002_")
    assert set(data.files) == {"T1", "brain"}
    assert data.files["brain"]["IXI001_"] == tmp_path / "demo_data" / "IXI001_brain.nii.gz"
    assert data.shapes == {s: (24, 24, 24) for s in data.subjects}


# ---------------------------------------------------------------------------------------------
# malformed and invalid configs
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("lr = 0.1\n[TRAINING]\n", [":1:", "before any [SECTION]"]),
        (MINIMAL + "[TRAINING]\nlr 0.1\n", [":10:", "cannot parse 'lr 0.1'"]),
        (MINIMAL + "[TRAINING]\nlr = 0.1\nlr = 0.2\n", [":11:", "[TRAINING] lr is set twice"]),
        (MINIMAL + "[TRAINING]\n[TRAINING]\n", [":10:", "[TRAINING] appears twice"]),
    ],
)
def test_malformed_ini_names_file_and_line(tmp_path, text, pieces):
    path = ini(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load_config(path)
    assert str(err.value).startswith(str(path))
    for piece in pieces:
        assert piece in str(err.value)


@pytest.mark.parametrize(
    ("extra", "pieces"),
    [
        # a section that is neither NiftyNet's nor named in [SEGMENTATION]
        ("[T2]\n", [":9:", "unknown section [T2]"]),
        ("[TRAINNG]\nlr = 0.1\n", [":9:", "unknown section [TRAINNG]", "did you mean [TRAINING]"]),
        ("[NETWORK]\nqueue_lenght = 4\n", [":10:", "[NETWORK] unknown key 'queue_lenght'",
                                           "did you mean 'queue_length'"]),
        # a real key in the wrong section, which NiftyNet would silently ignore
        ("[TRAINING]\nlr = fast\n", [":10:", "[TRAINING] lr = fast", "expected a number"]),
        ("[TRAINING]\nmax_iter = 1e4\n", ["[TRAINING] max_iter", "expected an integer"]),
        ("[TRAINING]\nlr = 0.1  # high\n", ["expected a number", "comment must be on its own"]),
        ("[NETWORK]\nwhitening = maybe\n", ["[NETWORK] whitening", "expected a boolean"]),
        ("[NETWORK]\nwindow_sampling = unifrom\n", ["window_sampling = unifrom",
                                                    "did you mean 'uniform'"]),
        ("[NETWORK]\nname = highres3dnett\n", ["did you mean 'highres3dnet'"]),
        ("[SYSTEM]\nmodel_dir = 100%\n", [":10:", "[SYSTEM] model_dir", "write a literal % as %%"]),
    ],
)
def test_invalid_keys_and_values(tmp_path, extra, pieces):
    path = ini(tmp_path, MINIMAL + extra)
    with pytest.raises(ConfigError) as err:
        config.load_config(path)
    message = str(err.value)
    assert message.startswith(str(path))
    for piece in pieces:
        assert piece in message, message


def test_bad_input_section_values(tmp_path):
    path = ini(tmp_path, MINIMAL.replace("16, 16, 16", "16x16x16"))
    with pytest.raises(ConfigError, match=r"\[T1\] spatial_window_size = 16x16x16: expected "
                                          r"comma-separated integers"):
        config.load_config(path)
    path = ini(tmp_path, MINIMAL.replace("filename_contains = T1", "filename_contans = T1"))
    with pytest.raises(ConfigError, match=r"\[T1\] unknown key 'filename_contans'; did you mean "
                                          r"'filename_contains'"):
        config.load_config(path)


def test_referenced_input_section_must_exist(tmp_path):
    path = ini(tmp_path, MINIMAL.replace("image = T1", "image = T1\nlabel = labels"))
    with pytest.raises(ConfigError, match=r"\[SEGMENTATION\] label names section \[labels\], "
                                          r"which the config does not define"):
        config.load_config(path)


def test_segmentation_section_is_required(tmp_path):
    path = ini(tmp_path, "[TRAINING]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match=r"no \[SEGMENTATION\] section"):
        config.load_config(path)


def test_input_section_without_a_source(tmp_path):
    path = ini(tmp_path, MINIMAL.replace("path_to_search = data\n", ""))
    with pytest.raises(ConfigError, match=r"\[T1\] sets neither path_to_search nor csv_file"):
        config.load_config(path)


# ---------------------------------------------------------------------------------------------
# data problems
# ---------------------------------------------------------------------------------------------

def scan_failure(folder: Path, **overrides) -> str:
    """The DataError message scan_data gives for the demo config (with overrides) in folder."""
    cfg = config.load_config(demo_config(folder, **overrides))
    with pytest.raises(DataError) as err:
        dataset.scan_data(cfg)
    return str(err.value)


def test_missing_path_to_search(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = scan_failure(tmp_path, data="no_such_folder")
    assert "[T1] path_to_search 'no_such_folder' does not exist" in message
    assert str(tmp_path / "no_such_folder") in message and str(tmp_path / "demo.ini") in message


def test_filename_contains_matching_nothing(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data")
    monkeypatch.chdir(tmp_path)
    message = scan_failure(tmp_path, image_kw="T1w")
    assert "[T1] filename_contains T1w matches no file in" in message
    assert str(tmp_path / "demo_data") in message and "IXI000_brain.nii.gz" in message


def test_image_subjects_without_label(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data", subjects=("000", "001", "002", "003", "004"))
    for s in ("001", "003", "004"):
        (tmp_path / "demo_data" / f"IXI{s}_brain.nii.gz").unlink()
    monkeypatch.chdir(tmp_path)
    message = scan_failure(tmp_path)
    assert "[brain] (label) has no file for 3 of 5 subjects of [T1]" in message
    assert "'IXI001_', 'IXI003_', 'IXI004_'" in message


def test_label_ids_that_never_match_are_shown(tmp_path, monkeypatch):
    ixi_files(tmp_path / "demo_data")
    monkeypatch.chdir(tmp_path)
    # 'T1' and 'mask' leave different ids: 'IXI002Guys0828' vs 'IXI002Guys0828brain'
    assert "look like 'IXI002Guys0828brain'" in scan_failure(tmp_path, image_kw="T1",
                                                              label_kw="mask")


def test_image_and_label_shapes_must_agree(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data")
    label = write_nifti(tmp_path / "demo_data" / "IXI001_brain.nii.gz", (24, 24, 20), label=True)
    monkeypatch.chdir(tmp_path)
    message = scan_failure(tmp_path)
    assert "subject 'IXI001_'" in message and "24×24×24" in message and "24×24×20" in message
    assert str(label) in message


def test_truncated_gzip_fails_on_data_not_header(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data")
    broken = tmp_path / "demo_data" / "IXI002_orig.nii.gz"
    payload = broken.read_bytes()
    broken.write_bytes(payload[: len(payload) // 2])
    assert nib.load(str(broken)).shape == (24, 24, 24)  # the header still reads
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(demo_config(tmp_path))
    assert dataset.scan_data(cfg, read_data=False).subjects[-1] == "IXI002_"
    with pytest.raises(DataError) as err:
        dataset.scan_data(cfg)
    assert f"cannot read {broken}" in str(err.value) and "[T1]" in str(err.value)


def _damage_keeping_size_and_mtime(path: Path) -> None:
    stat = path.stat()
    payload = path.read_bytes()
    half = len(payload) // 2
    path.write_bytes(payload[:half] + bytes(b ^ 0xFF for b in payload[half:]))  # bad deflate
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_images_read_in_full_once_are_remembered_until_they_change(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    demo_files(tmp_path / "demo_data")
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(demo_config(tmp_path))
    first = dataset.scan_data(cfg)
    remembered = json.loads((tmp_path / "cache" / "lrsearch" / "verified-images.json")
                            .read_text())
    assert sorted(remembered) == sorted(str(p) for f in first.files.values() for p in f.values())
    broken = tmp_path / "demo_data" / "IXI001_orig.nii.gz"
    _damage_keeping_size_and_mtime(broken)
    # unchanged size and mtime: taken as verified (what rsync and make assume, too)
    assert dataset.scan_data(cfg).shapes == first.shapes
    os.utime(broken)  # now it looks changed: read again, and the damage shows
    with pytest.raises(DataError, match=f"cannot read {broken}"):
        dataset.scan_data(cfg)
    # a failed scan still remembers the files it read, but never the broken one
    remembered = json.loads((tmp_path / "cache" / "lrsearch" / "verified-images.json")
                            .read_text())
    assert str(broken) in remembered  # the old entry, with the old mtime ...
    assert remembered[str(broken)][1] != broken.stat().st_mtime_ns  # ... so it is read again


def test_first_full_read_of_many_images_is_announced(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    demo_files(tmp_path / "demo_data", subjects=[f"{i:03d}" for i in range(10)], shape=(8, 8, 8))
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(demo_config(tmp_path, window="8, 8, 8", label_window="8, 8, 8"))
    heard: list[str] = []
    dataset.scan_data(cfg, report=heard.append)
    assert len(heard) == 1 and heard[0].startswith("reading 20 image files in full")
    assert str(tmp_path / "cache" / "lrsearch" / "verified-images.json") in heard[0]
    heard.clear()
    dataset.scan_data(cfg, report=heard.append)
    assert heard == []  # nothing to read the second time


def test_unwritable_cache_does_not_stop_a_scan(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    demo_files(tmp_path / "demo_data")
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(demo_config(tmp_path))
    assert dataset.scan_data(cfg).subjects == ("IXI000_", "IXI001_", "IXI002_")
    assert dataset.scan_data(cfg).subjects == ("IXI000_", "IXI001_", "IXI002_")


def test_matched_file_that_is_not_an_image(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data", subjects=("000",))
    (tmp_path / "demo_data" / "IXI001_orig.txt").write_text("notes")
    (tmp_path / "demo_data" / "IXI001_brain.txt").write_text("notes")
    monkeypatch.chdir(tmp_path)
    assert re.search(r"cannot read .*IXI001_(orig|brain)\.txt", scan_failure(tmp_path))


def test_two_files_with_one_subject_id(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data")
    write_nifti(tmp_path / "demo_data" / "IXI001_orig.nii")
    monkeypatch.chdir(tmp_path)
    assert re.search(r"\[T1\] .*IXI001_orig\.nii(\.gz)? and .*IXI001_orig\.nii(\.gz)? both "
                     r"give subject id 'IXI001_'", scan_failure(tmp_path))


def test_volume_padding_makes_room_for_the_window(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data", shape=(24, 24, 12))
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(demo_config(tmp_path))
    with pytest.raises(DataError, match=r"24×24×12 voxels .* smaller than the spatial_window_size"):
        dataset.scan_data(cfg)
    padded = cfg.with_values({"NETWORK": {"volume_padding_size": (0, 0, 2)}})
    assert len(dataset.scan_data(padded).subjects) == 3


# ---------------------------------------------------------------------------------------------
# window sizes
# ---------------------------------------------------------------------------------------------

def window_config(tmp_path, network, image, label=None):
    return config.load_config(demo_config(tmp_path, network=network, window=image,
                                      label_window=label or image))


def test_highres3dnet_window_must_be_a_multiple_of_8(tmp_path):
    cfg = window_config(tmp_path, "highres3dnet", "20, 20, 20")
    with pytest.raises(ConfigError) as err:
        windows.check_window(cfg)
    message = str(err.value)
    for piece in (str(cfg.path), "[T1] spatial_window_size = 20, 20, 20", "highres3dnet",
                  "a multiple of 8", "16 or 24"):
        assert piece in message


@pytest.mark.parametrize(
    ("network", "image", "label"),
    [
        ("highres3dnet", "16, 16, 16", None),
        ("highres3dnet", "64, 64, 1", None),  # length-1 axes are squeezed away
        ("highres3dnet_large", "8, 16, 24", None),
        ("dense_vnet", "24, 24, 24", None),
        ("vnet", "32, 32, 32", None),
        ("unet", "96, 96, 96", "8, 8, 8"),
        ("deepmedic", "57, 57, 57", "9, 9, 9"),
        ("holisticnet", "12, 12, 12", None),
        ("toynet", "13, 7, 5", None),
        ("unet_2d", "188, 188, 1", "4, 4, 1"),
        ("mypackage.nets.MyNet", "13, 13, 13", None),  # custom networks keep their own rules
    ],
)
def test_windows_networks_accept(tmp_path, network, image, label):
    windows.check_window(window_config(tmp_path, network, image, label))


@pytest.mark.parametrize(
    ("network", "image", "label", "pieces"),
    [
        ("vnet", "24, 24, 24", None, ["a multiple of 16", "16 or 32"]),
        ("unet", "88, 88, 88", None, ["at least 96", "96"]),
        ("deepmedic", "54, 54, 54", None, ["odd, a multiple of 3", "51 or 57"]),
        ("holisticnet", "10, 12, 12", None, ["a multiple of 4", "8 or 12"]),
        ("dense_vnet", "20, 20, 20", None, ["a multiple of 8"]),
        # the label window must equal the network's output
        ("highres3dnet", "32, 32, 32", "16, 16, 16",
         ["[brain] spatial_window_size = 16, 16, 16", "output of 32, 32, 32"]),
        ("unet", "96, 96, 96", "96, 96, 96", ["output of 8, 8, 8"]),
        ("deepmedic", "57, 57, 57", "57, 57, 57", ["output of 9, 9, 9"]),
    ],
)
def test_windows_networks_refuse(tmp_path, network, image, label, pieces):
    cfg = window_config(tmp_path, network, image, label)
    with pytest.raises(ConfigError) as err:
        windows.check_window(cfg)
    for piece in (network, *pieces):
        assert piece in str(err.value), str(err.value)


def test_unet_2d_output_lengths_match_graph_construction():
    # Verified by building NiftyNet's UNet2D graph: 173 → 4, 188 → 4, 189 → 20, 204 → 20;
    # 124, 140 and 172 fail inside the network.
    out = windows.WINDOW_RULES["unet_2d"].output
    assert [out(n) for n in (173, 188, 189, 204)] == [4, 4, 20, 20]
    assert [out(n) for n in (124, 140, 172)] == [0, 0, 0]


def test_window_sizes_must_be_set_and_consistent(tmp_path):
    cfg = config.load_config(demo_config(tmp_path))
    missing = cfg.with_values({"brain": {"spatial_window_size": None}})
    with pytest.raises(ConfigError, match=r"\[brain\] \(SEGMENTATION label\) sets no "
                                          r"spatial_window_size"):
        windows.check_window(missing)
    two = cfg.with_values({
        "SEGMENTATION": {"image": ("T1", "T2")},
        "T2": {"path_to_search": "demo_data", "filename_contains": ("T2",),
               "spatial_window_size": (24, 24, 24)},
    })
    with pytest.raises(ConfigError, match=r"\[T1\] and \[T2\] are both in \[SEGMENTATION\] image"):
        windows.check_window(two)
    unnamed = cfg.with_values({"NETWORK": {"name": None}})
    with pytest.raises(ConfigError, match=r"\[NETWORK\] name is not set"):
        windows.check_window(unnamed)


def test_check_training(tmp_path):
    cfg = config.load_config(demo_config(tmp_path))
    windows.check_training(cfg)
    with pytest.raises(ConfigError, match=r"num_classes = 1; segmentation needs at least 2"):
        windows.check_training(cfg.with_values({"SEGMENTATION": {"num_classes": 1}}))


# ---------------------------------------------------------------------------------------------
# with_values and write
# ---------------------------------------------------------------------------------------------

def test_with_values_and_write_round_trip(tmp_path, monkeypatch):
    demo_files(tmp_path / "demo_data")
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(SEED).with_values({
        "T1": {"path_to_search": "demo_data", "filename_contains": "orig",
               "filename_not_contains": None, "spatial_window_size": "16, 16, 16"},
        "brain_mask": {"path_to_search": "demo_data", "filename_contains": ("brain",),
                       "spatial_window_size": [16, 16, 16]},
    })
    trial_dir = tmp_path / "trial 7"
    trial = cfg.with_values({
        "SYSTEM": {"model_dir": str(trial_dir / "model"), "dataset_split_file": "split.csv"},
        "TRAINING": {"max_iter": 40, "lr": 0.0123, "starting_iter": 0},
        "INFERENCE": {"save_seg_dir": "segmentation"},
    })
    assert cfg.max_iter == 200000 and trial.max_iter == 40  # the original is unchanged
    written = trial_dir / "trial.ini"
    trial.write(written)

    parser = configparser.ConfigParser()  # what NiftyNet's launch config is
    assert parser.read(written)
    for section in parser.sections():
        table = nifty_ini.SCHEMA[section if section in nifty_ini.FIXED_SECTIONS
                                 else nifty_ini.INPUT]
        assert set(parser.options(section)) <= set(table), section

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the trial runs in another working directory
    again = config.load_config(written)
    assert again.model_dir == trial_dir / "model"
    assert again.dataset_split_file == trial_dir / "model" / "split.csv"
    assert again.model_path("INFERENCE", "save_seg_dir") == trial_dir / "model" / "segmentation"
    assert again.get("T1", "path_to_search") == str(tmp_path / "demo_data")
    assert (again.max_iter, again.lr) == (40, 0.0123)
    paths = {("SYSTEM", "model_dir"), ("SYSTEM", "dataset_split_file"),
             ("INFERENCE", "save_seg_dir"), ("T1", "path_to_search"),
             ("brain_mask", "path_to_search")}
    for section, keys in trial.values.items():
        for key, value in keys.items():
            if (section, key) not in paths:
                assert again.values[section][key] == value, (section, key)
    assert {s: set(k) for s, k in again.values.items()} == {
        s: set(k) for s, k in trial.values.items()}
    assert dataset.scan_data(again).subjects == ("IXI000_", "IXI001_", "IXI002_")


def test_write_adds_the_default_model_dir_and_escapes_percent(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    cfg = config.load_config(ini(folder, MINIMAL))
    assert cfg.model_dir == folder / "model"  # NiftyNet: <config folder>/model
    copy = tmp_path / "copy" / "copy.ini"
    cfg.write(copy)
    assert config.load_config(copy).model_dir == folder / "model"
    odd = cfg.with_values({"SYSTEM": {"model_dir": str(tmp_path / "100% done")}})
    odd.write(copy)
    assert "100%% done" in copy.read_text()
    assert config.load_config(copy).model_dir == tmp_path / "100% done"


def test_with_values_is_validated(tmp_path):
    cfg = config.load_config(demo_config(tmp_path))
    with pytest.raises(ConfigError, match=r"\(with_values\): \[TRAINING\] max_iter = many: "
                                          r"expected an integer"):
        cfg.with_values({"TRAINING": {"max_iter": "many"}})
    with pytest.raises(ConfigError, match=r"\[TRAINING\] lr = True: expected a number"):
        cfg.with_values({"TRAINING": {"lr": True}})
    with pytest.raises(ConfigError, match=r"unknown key 'max_iters'; did you mean 'max_iter'"):
        cfg.with_values({"TRAINING": {"max_iters": 3}})
    with pytest.raises(ConfigError, match=r"unknown section \[T3\]"):
        cfg.with_values({"T3": {"path_to_search": "x"}})
    assert cfg.with_values({"TRAINING": {"lr": 1}}).lr == 1.0


# ---------------------------------------------------------------------------------------------
# path resolution
# ---------------------------------------------------------------------------------------------

def test_relative_paths_resolve_like_niftynet(tmp_path, monkeypatch):
    cfg = config.load_config(demo_config(tmp_path))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.chdir(a)
    assert cfg.model_dir == a / "models" / "demo"  # relative to the working directory
    assert cfg.dataset_split_file == a / "models" / "demo" / "dataset_split.csv"
    monkeypatch.chdir(b)
    assert cfg.model_dir == b / "models" / "demo"
    split = cfg.with_values({"SYSTEM": {"dataset_split_file": "splits/s.csv"}})
    assert split.dataset_split_file == b / "models" / "demo" / "splits" / "s.csv"
    absolute = cfg.with_values({"SYSTEM": {"dataset_split_file": str(a / "s.csv")}})
    assert absolute.dataset_split_file == a / "s.csv"
    assert cfg.with_values({"SYSTEM": {"dataset_split_file": ""}}).dataset_split_file is None
    # NiftyNet quirk: a model_dir naming an existing file means that file's folder
    (b / "notes.txt").write_text("")
    assert cfg.with_values({"SYSTEM": {"model_dir": "notes.txt"}}).model_dir == b


def test_path_to_search_falls_back_to_the_niftynet_home(tmp_path, monkeypatch):
    home = tmp_path / "nn_home"
    config_home = tmp_path / "nn_config"
    config_home.mkdir()
    (config_home / "config.ini").write_text(f"[global]\nhome = {home}\n")
    monkeypatch.setenv("niftynet_config_home", str(config_home))
    assert locations.niftynet_home() == home
    demo_files(home / "demo_data")
    (home / "models" / "demo").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = config.load_config(demo_config(tmp_path))
    assert cfg.search_dirs("T1") == (home / "demo_data",)
    found = dataset.scan_data(cfg).files["T1"]["IXI000_"]
    assert found == home / "demo_data" / "IXI000_orig.nii.gz"
    assert cfg.model_dir == home / "models" / "demo"  # exists only under the home folder
    # a folder of that name in the working directory wins
    demo_files(work / "demo_data")
    assert cfg.search_dirs("T1") == (work / "demo_data",)


# ---------------------------------------------------------------------------------------------
# model folder
# ---------------------------------------------------------------------------------------------

def test_check_model_dir(tmp_path):
    config.check_model_dir(tmp_path / "new" / "deeper")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"cannot create .*file/runs: .*file is a file"):
        config.check_model_dir(tmp_path / "file" / "runs")
    cfg = config.load_config(demo_config(tmp_path, model_dir=str(tmp_path / "file" / "m")))
    with pytest.raises(ConfigError, match=r"demo\.ini: \[SYSTEM\] model_dir: cannot create"):
        config.check_model_dir(cfg)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_check_model_dir_read_only(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match=r"cannot write in .*locked"):
            config.check_model_dir(locked / "model")
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------------------------
# split files
# ---------------------------------------------------------------------------------------------

def test_write_split_is_deterministic_and_well_formed(tmp_path):
    subjects = [f"IXI{i:03d}_" for i in range(10)]
    first = nifty_split.write_split(tmp_path / "a.csv", subjects, 0.2, seed=3)
    second = nifty_split.write_split(tmp_path / "b.csv", list(reversed(subjects)), 0.2, seed=3)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert first == second
    rows = (tmp_path / "a.csv").read_text().splitlines()
    assert len(rows) == 10 and all(len(r.split(",")) == 2 for r in rows)
    assert not rows[0].startswith("subject")  # no header
    assert sorted(first.values()).count("validation") == 2
    assert set(first.values()) == {"training", "validation"}
    assert nifty_split.read_split(tmp_path / "a.csv") == first
    splits = {tuple(sorted(
        nifty_split.write_split(tmp_path / "s.csv", subjects, 0.2, seed=s).items()))
              for s in range(5)}
    assert len(splits) > 1  # the seed matters


def test_write_split_small_sets_and_counts(tmp_path):
    assert nifty_split.write_split(tmp_path / "1.csv", ["only"]) == {"only": "training"}
    two = nifty_split.write_split(tmp_path / "2.csv", ["a", "b"], 0.01)
    assert sorted(two.values()) == ["training", "validation"]
    counted = nifty_split.write_split(tmp_path / "3.csv", list("abcdef"), 3)
    assert list(counted.values()).count("validation") == 3
    with pytest.raises(ValueError, match="must be in"):
        nifty_split.write_split(tmp_path / "4.csv", ["a", "b"], 1.5)


def test_read_split_rejects_what_niftynet_rejects(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text("subject_id,phase\nIXI000_,training\n")
    with pytest.raises(DataError, match=r"split\.csv:1: phase 'phase' for 'subject_id'"):
        nifty_split.read_split(path)
    path.write_text("IXI000_,training\nIXI001_,valid\n")
    with pytest.raises(DataError, match=r"split\.csv:2: phase 'valid'"):
        nifty_split.read_split(path)
    path.write_text("IXI000_,Training\n")
    assert nifty_split.read_split(path) == {"IXI000_": "training"}


# ---------------------------------------------------------------------------------------------
# NiftyNet's own parser, as the cross-check (needs TensorFlow to import NiftyNet)
# ---------------------------------------------------------------------------------------------

NIFTYNET_PROBE = r"""
import argparse, contextlib, io, json, os, sys
from lrsearch.engines.child import tf2compat
tf2compat.install()
from niftynet.utilities import user_parameters_parser as upp
from niftynet.utilities.user_parameters_default import (
    SUPPORTED_DEFAULT_SECTIONS, add_input_data_args)
from niftynet.utilities.user_parameters_custom import add_customised_args
from niftynet.io.misc_io import resolve_module_dir, to_absolute_path
from niftynet.utilities.filename_matching import KeywordsMatching
from niftynet.utilities.util_csv import match_and_write_filenames_to_csv

request = json.loads(sys.argv[1])
plain = lambda ns: {k: list(v) if isinstance(v, tuple) else v for k, v in vars(ns).items()}

def defaults(add):
    return plain(add(argparse.ArgumentParser()).parse_known_args([])[0])

out = {"defaults": {s: defaults(f) for s, f in SUPPORTED_DEFAULT_SECTIONS.items()}}
out["defaults"]["SEGMENTATION"] = defaults(lambda p: add_customised_args(p, "SEGMENTATION"))
out["defaults"]["INPUT"] = defaults(add_input_data_args)

out["configs"] = []
for path in request["configs"]:
    sys.argv = ["net_segment", "train", "-c", path]
    with contextlib.redirect_stdout(io.StringIO()):
        system, inputs = upp.run()
    model_dir = resolve_module_dir(system["SYSTEM"].model_dir, create_new=True)
    sections = {s: plain(ns) for s, ns in {**system, **inputs}.items() if s != "CONFIG_FILE"}
    sections["SEGMENTATION"] = sections.pop("CUSTOM")
    out["configs"].append({
        "model_dir": model_dir,
        "split": to_absolute_path(system["SYSTEM"].dataset_split_file, model_dir),
        "sections": sections})

out["ids"] = []
for n, (folder, contains, not_contains, remove) in enumerate(request["matches"]):
    matcher = KeywordsMatching.from_dict({
        "path_to_search": folder, "filename_contains": tuple(contains),
        "filename_not_contains": tuple(not_contains), "filename_removefromid": remove})
    rows = match_and_write_filenames_to_csv([matcher], os.path.join(os.getcwd(), f"{n}.csv"))
    out["ids"].append({os.path.basename(f): s for s, f in rows})
print("PROBE:" + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def niftynet_view(tmp_path_factory):
    """Runs NiftyNet's parser, path resolution and file matcher once, in a child process."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed, so NiftyNet cannot be imported")
    work = tmp_path_factory.mktemp("niftynet_view")
    demo_files(work / "demo_data")
    ixi_files(work / "ixi_data")
    (work / "mixed").mkdir()
    for name in ("s1_T1_scan.nii.gz", "s2_T1_scan.nii.gz", "x_T1x_.nii.gz", "a_T1_mask.nii.gz"):
        (work / "mixed" / name).write_bytes(b"")
    seed = work / "seed.ini"
    seed.write_text(SEED.read_text())
    env = {**os.environ, "HOME": str(work), "niftynet_config_home": str(work / ".niftynet"),
           "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with pytest.MonkeyPatch.context() as mp:  # our side sees what the child sees
        mp.setenv("HOME", str(work))
        mp.setenv("niftynet_config_home", str(work / ".niftynet"))
        mp.chdir(work)
        ours = config.load_config(seed)
        written = work / "written" / "copy.ini"
        ours.with_values({
            "SYSTEM": {"model_dir": "runs/trial_0", "dataset_split_file": "split.csv"},
            "TRAINING": {"max_iter": 7, "lr": 0.25},
        }).write(written)
        copy = config.load_config(written)
        expected_paths = [(ours.model_dir, ours.dataset_split_file),
                          (copy.model_dir, copy.dataset_split_file)]
    matches = [
        ["demo_data", ["orig"], [], ""], ["demo_data", ["brain"], [], ""],
        ["demo_data", ["IXI", "orig"], [], ""],
        ["ixi_data", ["T1"], ["brain-mask"], ""], ["ixi_data", ["brain-mask"], [], ""],
        ["ixi_data", ["T1"], [], "-Guys.*|-HH.*"],
        ["mixed", ["T1"], ["mask"], ""],
    ]
    request = {"configs": [str(seed), str(written)], "matches": matches}
    result = subprocess.run(
        [sys.executable, "-c", NIFTYNET_PROBE, json.dumps(request)], cwd=work, env=env,
        capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE:")]
    assert lines, result.stderr[-3000:]
    view = json.loads(lines[0][len("PROBE:"):])
    return {"view": view, "work": work, "seed": seed, "written": written, "matches": matches,
            "paths": expected_paths}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def test_schema_matches_niftynet_defaults(niftynet_view):
    theirs = niftynet_view["view"]["defaults"]
    for section, table in nifty_ini.SCHEMA.items():
        assert set(table) == set(theirs[section]), section
        for key, spec in table.items():
            if (section, key) in {("INPUT", "filename_contains"),  # None: no constraint
                                  ("NETWORK", "weight_initializer_args"),  # yaml.load → {}
                                  ("NETWORK", "bias_initializer_args")}:
                continue
            assert _plain(spec.default) == theirs[section][key], (section, key)


def test_niftynet_parses_our_configs_to_the_same_values(niftynet_view, monkeypatch):
    work = niftynet_view["work"]
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(work))
    for path, parsed in zip((niftynet_view["seed"], niftynet_view["written"]),
                            niftynet_view["view"]["configs"], strict=True):
        cfg = config.load_config(path)
        for section in cfg.values:
            theirs = parsed["sections"][section]
            table = nifty_ini.SCHEMA[section if section in nifty_ini.FIXED_SECTIONS
                                 else nifty_ini.INPUT]
            for key in table:
                if key in {"weight_initializer_args", "bias_initializer_args"}:
                    continue
                if key == "filename_contains" and theirs[key] is None:
                    assert cfg.get(section, key) == ()
                    continue
                assert _plain(cfg.get(section, key)) == theirs[key], (path, section, key)
    for (model_dir, split), parsed in zip(niftynet_view["paths"],
                                          niftynet_view["view"]["configs"], strict=True):
        assert str(model_dir) == parsed["model_dir"]
        assert str(split) == parsed["split"]


def test_subject_ids_match_niftynet(niftynet_view):
    work = niftynet_view["work"]
    for (folder, contains, not_contains, remove), theirs in zip(
            niftynet_view["matches"], niftynet_view["view"]["ids"], strict=True):
        names = sorted(os.listdir(work / folder))
        ours = dataset.match_subjects(names, contains, not_contains, remove)
        assert ours == theirs, (folder, contains)
