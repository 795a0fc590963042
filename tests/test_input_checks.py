"""What NiftyNet would reject minutes into every trial is refused before the study starts.

Real NIfTI files with real affines: shapes after NiftyNet's reorientation (axcodes) and
resampling (pixdim) come from the headers and are cross-checked against NiftyNet's own reader;
label values against num_classes; the inference window against every validation subject; a
known key in the wrong section warns, and the config still trains in NiftyNet.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import optuna
import pytest

from lrsearch import cli
from lrsearch.errors import ConfigError, DataError
from lrsearch.nifty import config as nifty_config
from lrsearch.nifty import dataset, images, windows
from lrsearch.run import study as run_study
from lrsearch.run.plan import StudyOptions
from tests.test_config import _damage_keeping_size_and_mtime, demo_config, demo_files
from tests.tiny import TINY_SPACE, tiny_config

REPO = Path(__file__).resolve().parents[1]

# File axis 0 runs along A (1.5 mm), axis 1 along R (1.0 mm), axis 2 along S (3.0 mm): RAS
# reorientation swaps the first two axes.
PERMUTED = np.array([[0, 1.0, 0, 0], [1.5, 0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory, monkeypatch):
    """NiftyNet home and lrsearch's image cache in temp folders."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("niftynet_config_home", raising=False)


def save(path: Path, data: np.ndarray, affine=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def label_volume(shape, values=(0, 1)) -> np.ndarray:
    data = np.full(shape, values[0], dtype=np.uint8)
    for i, value in enumerate(values[1:], start=1):
        data[tuple(slice(i, i + 4) for _ in shape)] = value
    return data


def pair(folder: Path, subject: str, shape, affine=None, label_shape=None, label_affine=None,
         values=(0, 1)) -> None:
    """IXI<subject>_orig.nii.gz and IXI<subject>_brain.nii.gz (the demo config's naming)."""
    rng = np.random.default_rng(0)
    save(folder / f"IXI{subject}_orig.nii.gz", rng.random(shape, dtype=np.float32), affine)
    save(folder / f"IXI{subject}_brain.nii.gz", label_volume(label_shape or shape, values),
         label_affine if label_affine is not None else affine)


def with_input_keys(config: Path, **keys: str) -> Path:
    """Adds keys to both input sections of the demo config."""
    text = config.read_text()
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    for section in ("[T1]\n", "[brain]\n"):
        text = text.replace(section, section + extra)
    config.write_text(text)
    return config


def refusal(cfg: nifty_config.NiftyNetConfig) -> str:
    with pytest.raises(DataError) as err:
        dataset.scan_data(cfg)
    return str(err.value)


# ---------------------------------------------------------------------------------------------
# shapes after axcodes and pixdim
# ---------------------------------------------------------------------------------------------

GEOMETRY_CASES = [((), ("R", "A", "S")), ((1.0, 1.0, 1.0), ("R", "A", "S")),
                  ((1.1, 0.7, 2.3), ()), ((1.1, 0.7, 2.3), ("L", "P", "S")),
                  ((0.8, 0.8, 0.8), ("S", "R", "A")),
                  ((3.0, 4.0, 6.0), ())]  # 14 × 1/4 = 3.5 and 9 × 3/6 = 4.5: both round to 4

NIFTYNET_READER = r"""
import json, sys
from lrsearch.engines.child import tf2compat
tf2compat.install()
from niftynet.io.image_type import ImageFactory
out = []
for pixdim, axcodes in json.loads(sys.argv[2]):
    image = ImageFactory.create_instance(
        file_path=(sys.argv[1],), name=("x",), interp_order=(0,), loader=None,
        output_pixdim=(tuple(pixdim) or None,), output_axcodes=(tuple(axcodes) or None,))
    out.append([list(map(int, image.shape[:3])), list(image.get_data().shape[:3])])
print("READER:" + json.dumps(out))
"""


def test_shapes_after_axcodes_and_pixdim_are_niftynets(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed, so NiftyNet cannot be imported")
    path = save(tmp_path / "a.nii.gz", label_volume((20, 14, 9)), PERMUTED)
    info = images._read_image(path, "x", "s", read_data=False)
    assert info.axcodes == ("A", "R", "S") and info.zooms == (1.5, 1.0, 3.0)
    ours = []
    for pixdim, axcodes in GEOMETRY_CASES:
        section = nifty_config.InputSection("x", (), (), (), "", (), pixdim, axcodes, 0, None, "")
        ours.append(list(images._niftynet_grid(None, section, info, path)))
    assert ours[0] == [14, 20, 9]  # reoriented: axes swapped, no resampling
    assert ours[-1] == [10, 4, 4]  # scipy.ndimage.zoom's round(): halves to even
    result = subprocess.run(
        [sys.executable, "-c", NIFTYNET_READER, str(path), json.dumps(GEOMETRY_CASES)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("READER:")]
    assert lines, result.stderr[-2000:]
    theirs = json.loads(lines[0][len("READER:"):])
    # NiftyNet's header shape and the array its reader really returns, for every case
    assert [t[0] for t in theirs] == ours and [t[1] for t in theirs] == ours


def test_window_too_large_after_reorientation_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for s in ("000", "001"):
        pair(tmp_path / "demo_data", s, (32, 16, 16), PERMUTED)
    config = demo_config(tmp_path, window="32, 16, 16", label_window="32, 16, 16")
    assert dataset.scan_data(nifty_config.load_config(config)).shapes["IXI000_"] == (32, 16, 16)
    cfg = nifty_config.load_config(with_input_keys(config, axcodes="R, A, S"))
    message = refusal(cfg)
    assert "subject 'IXI000_'" in message and "IXI000_orig.nii.gz" in message
    assert "32×16×16 (NiftyNet reads 16×32×16 after axcodes/pixdim)" not in message  # one file
    assert "16×32×16 voxels (after axcodes/pixdim and after volume padding)" in message
    assert "smaller than the spatial_window_size 32, 16, 16" in message
    assert str(config) in message


def test_label_on_another_grid_after_resampling_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    half = np.diag([2.0, 2.0, 2.0, 1.0])
    # 24³ at 1 mm and 12³ at 2 mm both become 24³ at pixdim 1 mm: accepted
    pair(tmp_path / "demo_data", "000", (24, 24, 24), label_shape=(12, 12, 12),
         label_affine=half)
    config = with_input_keys(demo_config(tmp_path), pixdim="1.0, 1.0, 1.0")
    assert dataset.scan_data(nifty_config.load_config(config)).shapes == {"IXI000_": (24, 24, 24)}
    # 12³ at 2.1 mm becomes round(12 × 2.1) = 25 per axis
    pair(tmp_path / "demo_data", "001", (24, 24, 24), label_shape=(12, 12, 12),
         label_affine=np.diag([2.1, 2.1, 2.1, 1.0]))
    message = refusal(nifty_config.load_config(config))
    assert "subject 'IXI001_'" in message and "IXI001_brain.nii.gz" in message
    assert "12×12×12 (NiftyNet reads 25×25×25 after axcodes/pixdim)" in message
    assert "check pixdim and axcodes" in message


def test_malformed_axcodes_and_pixdim_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = demo_config(tmp_path)
    text = base.read_text()
    with_input_keys(base, axcodes="R, A")
    with pytest.raises(ConfigError, match=r"\[T1\] axcodes = R, A: NiftyNet needs three"):
        windows.check_training(nifty_config.load_config(base))
    base.write_text(text)
    with_input_keys(base, pixdim="1.0")
    with pytest.raises(ConfigError, match=r"\[T1\] pixdim = 1.0: .* give three"):
        windows.check_training(nifty_config.load_config(base))


# ---------------------------------------------------------------------------------------------
# the inference window
# ---------------------------------------------------------------------------------------------

def inference_case(tmp_path, depth: int, window: str
                   ) -> tuple[nifty_config.NiftyNetConfig, dataset.Dataset]:
    for s in ("000", "001"):
        pair(tmp_path / "demo_data", s, (24, 24, 24 if s == "000" else depth))
    config = demo_config(tmp_path)
    config.write_text(config.read_text().replace(
        "[SEGMENTATION]", f"[INFERENCE]\nspatial_window_size = {window}\n\n[SEGMENTATION]"))
    cfg = nifty_config.load_config(config)
    return cfg, dataset.scan_data(cfg)


def test_inference_window_longer_than_a_validation_image_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, data = inference_case(tmp_path, 23, "24, 24, 24")
    dataset.check_inference_window(cfg, data, ["IXI000_"])  # only inferred subjects count
    with pytest.raises(DataError) as err:
        dataset.check_inference_window(cfg, data, ["IXI000_", "IXI001_"])
    message = str(err.value)
    assert "subject 'IXI001_'" in message and "IXI001_orig.nii.gz is 24×24×23 voxels" in message
    assert "[INFERENCE] spatial_window_size = 24, 24, 24" in message
    assert "use a window of at most 24, 24, 23" in message
    resized = cfg.with_values({"NETWORK": {"window_sampling": "resize"}})
    dataset.check_inference_window(resized, data, ["IXI001_"])  # the resize sampler scales instead


def test_whole_image_inference_window_the_network_cannot_take_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, data = inference_case(tmp_path, 20, "0, 0, 0")
    dataset.check_inference_window(cfg, data, ["IXI000_"])  # 24 is a multiple of 8
    with pytest.raises(DataError) as err:
        dataset.check_inference_window(cfg, data, ["IXI001_"])
    message = str(err.value)
    assert "has 0, the whole image" in message and "24×24×20 voxels" in message
    assert "highres3dnet needs each length to be a multiple of 8, 20 is not" in message
    assert "such as 16" in message


def test_prepare_checks_the_inference_window_on_the_validation_subjects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inference_case(tmp_path, 20, "0, 0, 0")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    (tmp_path / "models").mkdir()
    split = tmp_path / "models" / "split.csv"
    config = tmp_path / "demo.ini"
    config.write_text(config.read_text().replace(
        "[SYSTEM]\n", f"[SYSTEM]\ndataset_split_file = {split}\n"))
    split.write_text("IXI000_,validation\nIXI001_,training\n")
    options = StudyOptions(config, TINY_SPACE, storage_url=storage, trials=1, runtime="tf2")
    run_study.prepare(options)
    split.write_text("IXI000_,training\nIXI001_,validation\n")
    with pytest.raises(DataError, match=r"subject 'IXI001_'.*20 is not"):
        options = StudyOptions(config, TINY_SPACE, storage_url=storage, trials=1, runtime="tf2")
        run_study.prepare(options)


# ---------------------------------------------------------------------------------------------
# label values against num_classes
# ---------------------------------------------------------------------------------------------

def label_case(tmp_path, values_by_subject, classes: int, normalise: bool) -> Path:
    for s, values in values_by_subject.items():
        pair(tmp_path / "demo_data", s, (24, 24, 24), values=values)
    config = demo_config(tmp_path)
    text = config.read_text().replace("num_classes = 2", f"num_classes = {classes}")
    if normalise:
        text += "label_normalisation = True\n"
    config.write_text(text)
    return config


def test_label_values_outside_the_classes_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = label_case(tmp_path, {"000": (0, 1), "001": (0, 1, 2)}, 2, normalise=False)
    cfg = nifty_config.load_config(config)
    data = dataset.scan_data(cfg)
    with pytest.raises(DataError) as err:
        dataset.check_labels(cfg, data)
    message = str(err.value)
    assert "subject 'IXI001_'" in message
    assert "IXI001_brain.nii.gz holds the values 0, 1, 2" in message
    assert "num_classes = 2 takes the integers 0..1" in message
    assert "label_normalisation = True" in message and str(config) in message
    # three classes take them
    cfg = nifty_config.load_config(label_case(tmp_path, {}, 3, normalise=False))
    dataset.check_labels(cfg, data)


def test_label_normalisation_needs_as_many_values_as_classes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = label_case(tmp_path, {"000": (0, 5), "001": (0, 5, 7)}, 2, normalise=True)
    cfg = nifty_config.load_config(config)
    data = dataset.scan_data(cfg)
    # values 0 and 5 map to 0..1: two classes are right when only IXI000_ trains
    dataset.check_labels(cfg, data, training=["IXI000_"])
    with pytest.raises(DataError) as err:
        dataset.check_labels(cfg, data, training=["IXI000_", "IXI001_"])
    message = str(err.value)
    assert "num_classes = 2, but label_normalisation maps the 3 distinct values" in message
    assert "(0, 5, 7)" in message and "set num_classes = 3" in message


def test_a_stored_label_mapping_must_have_as_many_values_as_classes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = label_case(tmp_path, {"000": (0, 1), "001": (0, 1)}, 2, normalise=True)
    mapping = tmp_path / "mapping.txt"
    config.write_text(config.read_text().replace(
        "[NETWORK]\n", f"[NETWORK]\nhistogram_ref_file = {mapping}\n"))
    cfg = nifty_config.load_config(config)
    data = dataset.scan_data(cfg)
    # as NiftyNet writes it after learning three values from other labels
    mapping.write_text("label_brain-from 0.0 1.0 2.0\nlabel_brain-to 0 1 2\n")
    with pytest.raises(DataError) as err:
        dataset.check_labels(cfg, data)
    assert f"{mapping} holds a label mapping of 3 values for [brain]" in str(err.value)
    assert "delete the file" in str(err.value)
    mapping.write_text("label_brain-from 0.0 1.0 2.0\n")  # incomplete: NiftyNet learns anew
    dataset.check_labels(cfg, data)


def test_label_values_come_from_the_cache_when_the_file_is_known(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = label_case(tmp_path, {"000": (0, 1), "001": (0, 1, 2)}, 3, normalise=False)
    cfg = nifty_config.load_config(config)
    dataset.check_labels(cfg, dataset.scan_data(cfg))  # reads every file and remembers its values
    label = tmp_path / "demo_data" / "IXI001_brain.nii.gz"
    _damage_keeping_size_and_mtime(label)  # a re-read would now fail with "cannot read"
    fewer = nifty_config.load_config(label_case(tmp_path, {}, 2, normalise=False))
    with pytest.raises(DataError, match=r"IXI001_brain\.nii\.gz holds the values 0, 1, 2"):
        dataset.check_labels(fewer, dataset.scan_data(fewer))


def test_cache_written_before_label_values_is_still_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = label_case(tmp_path, {"000": (0, 1), "001": (0, 3)}, 2, normalise=False)
    cfg = nifty_config.load_config(config)
    dataset.scan_data(cfg)
    cache = images.verified_images_path()
    old = {path: entry[:3] for path, entry in json.loads(cache.read_text()).items()}
    cache.write_text(json.dumps(old))  # [size, mtime, shape]: the earlier format
    image = tmp_path / "demo_data" / "IXI000_orig.nii.gz"
    _damage_keeping_size_and_mtime(image)  # still taken as verified: not read in full again
    data = dataset.scan_data(cfg)
    with pytest.raises(DataError, match=r"IXI001_brain\.nii\.gz holds the values 0, 3"):
        dataset.check_labels(cfg, data)  # labels re-read once for their values
    entries = json.loads(cache.read_text())
    assert entries[str(image)][3]["zooms"] == [1.0, 1.0, 1.0]  # header details added


# ---------------------------------------------------------------------------------------------
# keys in the wrong section
# ---------------------------------------------------------------------------------------------

NIFTYNET_PARSER = r"""
import contextlib, io, sys
from lrsearch.engines.child import tf2compat
tf2compat.install()
from niftynet.utilities import user_parameters_parser as upp
sys.argv = ["net_segment", "train", "-c", sys.argv[1]]
with contextlib.redirect_stdout(io.StringIO()):
    system, inputs = upp.run()
print("PARSED:", system["NETWORK"].queue_length, system["CUSTOM"].output_prob)
"""


def test_known_key_in_the_wrong_section_warns_and_is_left_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = demo_config(tmp_path)
    text = config.read_text().replace("[SYSTEM]\n", "[SYSTEM]\nqueue_length = 3\n")
    config.write_text(text + "\n[INFERENCE]\noutput_prob = True\n")
    cfg = nifty_config.load_config(config)
    lines = config.read_text().splitlines()
    system, inference = lines.index("queue_length = 3") + 1, lines.index("output_prob = True") + 1
    assert cfg.warnings == (
        f"{config}:{system}: [SYSTEM] queue_length is ignored: NiftyNet reads queue_length "
        "only in [NETWORK] (its default 5 applies); move it there to use it",
        f"{config}:{inference}: [INFERENCE] output_prob is ignored: NiftyNet reads "
        "output_prob only in [SEGMENTATION] (its default False applies); move it there to use it",
    )
    assert cfg.get("NETWORK", "queue_length") == 5  # as in NiftyNet
    # a key no section knows is still refused, with the nearest valid key
    config.write_text(text.replace("queue_length", "queue_lenght"))
    with pytest.raises(ConfigError, match=r"unknown key 'queue_lenght'; did you mean"):
        nifty_config.load_config(config)
    config.write_text(text + "\n[INFERENCE]\noutput_prob = True\n")
    written = tmp_path / "trial.ini"
    cfg.with_values({"TRAINING": {"max_iter": 3}}).write(written)
    assert "queue_length" not in nifty_config.load_config(written).values.get("SYSTEM", {})
    assert nifty_config.load_config(written).warnings == ()
    if importlib.util.find_spec("tensorflow") is None:
        return
    parsers = [(subprocess.Popen(  # side by side: each spends its time importing TensorFlow
        [sys.executable, "-c", NIFTYNET_PARSER, str(path)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}), expected)
        for path, expected in ((config, "PARSED: 5 False"), (written, "PARSED: 5 False"))]
    for parser, expected in parsers:
        stdout, stderr = parser.communicate(timeout=300)
        assert expected in stdout, stderr[-2000:]


@pytest.mark.slow
def test_config_with_a_misplaced_key_trains_in_niftynet(tmp_path, monkeypatch, capsys):
    """One real (short) NiftyNet trial from a config NiftyNet ships this way."""
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, subjects=3, validate_every=2)
    config.write_text(config.read_text().replace("[SYSTEM]\n", "[SYSTEM]\nqueue_length = 2\n"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    code = cli.main(["optimize", "-c", str(config), "--space", str(TINY_SPACE), "--storage",
                     storage, "--study", "misplaced", "--trials", "1", "--max-iter", "4",
                     "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "queue_length is ignored" in line]
    assert len(warnings) == 1 and warnings[0].startswith("lrsearch: warning: ")
    trial = optuna.load_study(study_name="misplaced", storage=storage).trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")


# ---------------------------------------------------------------------------------------------
# check_training runs before a study
# ---------------------------------------------------------------------------------------------

def test_prepare_refuses_a_single_class(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    demo_files(tmp_path / "demo_data")
    config = demo_config(tmp_path)
    config.write_text(config.read_text().replace("num_classes = 2", "num_classes = 1"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    code = cli.main(["optimize", "-c", str(config), "--space", str(TINY_SPACE), "--storage",
                     storage, "--trials", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert "[SEGMENTATION] num_classes = 1; segmentation needs at least 2" in err[0]
    assert optuna.get_all_study_names(storage=storage) == []
