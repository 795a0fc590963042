"""Bad input to ``lrsearch optimize``: one clear line, a non-zero exit, nothing in the study.

Each case starts from a valid tiny config over real NIfTI files, breaks one thing, runs the CLI
and checks stderr is exactly one ``lrsearch: error:`` line naming what is wrong, and that the
storage holds no study afterwards. No training runs: every check happens before the study.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import optuna
import pytest

from lrsearch import cli
from lrsearch.demo import write_demo_data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_demo_data(tmp_path / "demo_data", subjects=3, shape=(24, 24, 24))
    text = (REPO / "configs" / "demo.ini").read_text()
    text = text.replace("spatial_window_size = (40, 40, 40)", "spatial_window_size = (24, 24, 24)")
    text = text.replace("model_dir = models/demo", f"model_dir = {tmp_path / 'models'}")
    config = tmp_path / "cfg.ini"
    config.write_text(text)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    return tmp_path, config, storage


def run(config, storage, *extra):
    return cli.main(["optimize", "-c", str(config), "--storage", storage, "--trials", "1",
                     "--space", str(REPO / "studies" / "tiny.toml"), *extra])


def assert_one_line_error(capsys, code, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1, err
    assert err[0].startswith("lrsearch: error: "), err
    assert "Traceback" not in err[0]
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    return err[0]


def assert_no_study(storage):
    path = Path(storage[len("sqlite:///"):])
    if path.exists():
        assert optuna.get_all_study_names(storage=storage) == []


def edit(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new))


def test_malformed_ini(setup, capsys):
    _, config, storage = setup
    edit(config, "[SYSTEM]", "[SYSTEM\nthis line has no equals sign")
    line = assert_one_line_error(capsys, run(config, storage), str(config))
    assert ":" in line.split(str(config))[1][:8]  # file:LINE
    assert_no_study(storage)


def test_unknown_section_names_nearest(setup, capsys):
    _, config, storage = setup
    edit(config, "[TRAINING]", "[TRAINNG]")
    assert_one_line_error(capsys, run(config, storage), "TRAINNG", "TRAINING")
    assert_no_study(storage)


def test_unknown_key_names_nearest(setup, capsys):
    _, config, storage = setup
    edit(config, "validation_every_n = 10", "validation_evry_n = 10")
    assert_one_line_error(capsys, run(config, storage), "validation_evry_n",
                          "validation_every_n", "[TRAINING]")
    assert_no_study(storage)


def test_path_to_search_missing(setup, capsys):
    tmp, config, storage = setup
    edit(config, "[T1]\npath_to_search = demo_data", "[T1]\npath_to_search = no_such_dir")
    assert_one_line_error(capsys, run(config, storage), "no_such_dir", "T1")
    assert_no_study(storage)


def test_filename_contains_matches_nothing(setup, capsys):
    _, config, storage = setup
    edit(config, "filename_contains = _orig", "filename_contains = _t2w")
    assert_one_line_error(capsys, run(config, storage), "_t2w", "T1")
    assert_no_study(storage)


def test_image_without_label(setup, capsys):
    tmp, config, storage = setup
    (tmp / "demo_data" / "IXI001_brain.nii.gz").unlink()
    assert_one_line_error(capsys, run(config, storage), "IXI001")
    assert_no_study(storage)


def test_label_with_another_shape(setup, capsys):
    tmp, config, storage = setup
    path = tmp / "demo_data" / "IXI002_brain.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((24, 24, 20), np.uint8), np.eye(4)), str(path))
    # with the demo config's axcodes: shapes are compared as NiftyNet reorients them
    assert_one_line_error(capsys, run(config, storage), "IXI002", "24×24×20")
    assert_no_study(storage)


def test_corrupt_nifti(setup, capsys):
    tmp, config, storage = setup
    path = tmp / "demo_data" / "IXI000_orig.nii.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data)[: len(data) // 40])  # truncated
    assert_one_line_error(capsys, run(config, storage), "IXI000_orig.nii.gz")
    assert_no_study(storage)


def test_unwritable_model_dir(setup, capsys):
    tmp, config, storage = setup
    blocker = tmp / "a_file"
    blocker.write_text("not a directory")
    edit(config, f"model_dir = {tmp / 'models'}", f"model_dir = {blocker / 'models'}")
    assert_one_line_error(capsys, run(config, storage), str(blocker))
    assert_no_study(storage)


def test_checkpoint_store_that_cannot_be_written(setup, capsys):
    tmp, config, storage = setup
    blocker = tmp / "a_file"
    blocker.write_text("not a directory")
    code = run(config, storage, "--checkpoint-store", str(blocker / "store"))
    assert_one_line_error(capsys, code, "--checkpoint-store", str(blocker / "store"))
    assert_no_study(storage)


def test_storage_that_cannot_be_opened(setup, capsys):
    tmp, config, _ = setup
    missing = f"sqlite:///{tmp / 'no' / 'such' / 'dir' / 'x.db'}"
    assert_one_line_error(capsys, run(config, missing), "cannot open storage")
    refused = "postgresql+psycopg://lrsearch:s3cret@127.0.0.1:1/lr"
    line = assert_one_line_error(capsys, run(config, refused), "cannot open storage")
    assert "s3cret" not in line and "***" in line


def test_window_size_the_network_cannot_use(setup, capsys):
    _, config, storage = setup
    edit(config, "spatial_window_size = (16, 16, 16)\ninterp_order = 1",
         "spatial_window_size = (20, 20, 20)\ninterp_order = 1")
    edit(config, "spatial_window_size = (16, 16, 16)\ninterp_order = 0",
         "spatial_window_size = (20, 20, 20)\ninterp_order = 0")
    assert_one_line_error(capsys, run(config, storage), "spatial_window_size", "highres3dnet")
    assert_no_study(storage)


def test_bad_space_names_the_key(setup, capsys):
    tmp, config, storage = setup
    space = tmp / "bad.toml"
    space.write_text((REPO / "studies" / "tiny.toml").read_text()
                     .replace("families =", "familes ="))
    code = cli.main(["optimize", "-c", str(config), "--storage", storage, "--space", str(space)])
    assert_one_line_error(capsys, code, "familes", "families")
    assert_no_study(storage)


def test_debug_shows_the_traceback(setup):
    _, config, storage = setup
    edit(config, "[TRAINING]", "[TRAINNG]")
    from lrsearch.errors import ConfigError

    with pytest.raises(ConfigError):
        cli.main(["optimize", "-c", str(config), "--storage", storage, "--debug"])
