"""The tissue demo: multi-class phantom labels, its config, and ``optimize --demo tissue``."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import optuna
import pytest

from lrsearch import cli, demo
from lrsearch.demo import TISSUE_CLASSES, config_or_demo, ensure_demo_data, write_demo_data
from lrsearch.errors import DataError
from lrsearch.nifty import config as nifty_config
from lrsearch.nifty import dataset
from lrsearch.paths import DEFAULT_SPACE, DEMO_TISSUE_CONFIG, DEMO_TISSUE_DATA_DIR, DEMOS
from lrsearch.run import study
from lrsearch.run.plan import StudyOptions

REPO = DEMO_TISSUE_CONFIG.parents[2]
SHAPE = (24, 24, 24)


def volumes(image_path):
    label_path = image_path.with_name(image_path.name.replace("_orig", "_tissue"))
    image, label = nib.load(image_path), nib.load(label_path)
    return image, label, image.get_fdata(dtype=np.float32), np.asanyarray(label.dataobj)


@pytest.fixture(scope="module")
def tissue_set(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tissue")
    return directory, write_demo_data(directory, subjects=3, shape=SHAPE, task="tissue")


@pytest.fixture(scope="module")
def demo_cwd(tmp_path_factory):
    """A working directory where the tissue demo's data has been written as optimize does."""
    directory = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        config = config_or_demo(None, "tissue")
    return directory, config


def test_files_are_named_like_ixi_with_tissue_labels(tissue_set):
    directory, images = tissue_set
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [f"IXI00{i}_orig.nii.gz" for i in range(3)] + [f"IXI00{i}_tissue.nii.gz" for i in range(3)]
    )


def test_every_subject_has_csf_grey_and_white_matter(tissue_set):
    for path in tissue_set[1]:
        image, label, _, classes = volumes(path)
        assert label.get_data_dtype() == np.uint8
        assert classes.shape == image.shape == SHAPE
        np.testing.assert_array_equal(image.affine, label.affine)
        assert set(np.unique(classes)) == {0, 1, 2, 3}
        counts = np.bincount(classes.ravel(), minlength=4)
        assert (counts[1:] > 0.005 * classes.size).all(), counts  # each class is a real target


def test_tissue_is_the_brain_of_the_brain_task_split_in_three(tmp_path, tissue_set):
    """Same anatomy as the brain task: its foreground is the brain, but for border voxels: a
    tissue label is the class most of a voxel's sub-voxel points fall in, a brain mask the
    class of its centre."""
    for path, brain_path in zip(tissue_set[1], write_demo_data(tmp_path, 3, SHAPE), strict=True):
        classes = volumes(path)[3]
        brain = np.asanyarray(nib.load(str(brain_path).replace("_orig", "_brain")).dataobj)
        overlap = 2 * np.sum((classes > 0) & (brain == 1)) / (np.sum(classes > 0) + brain.sum())
        assert 0.97 < overlap < 1


def test_borders_are_partial_volume(tissue_set):
    """T1 order CSF < grey < white, but CSF voxels (thin sulci) sit mostly between pure CSF and
    grey matter: a border voxel's intensity mixes its tissues, so no threshold separates them."""
    for path in tissue_set[1]:
        voxels, classes = volumes(path)[2:]
        means = [voxels[classes == c].mean() for c in range(1, 4)]
        assert means[0] < means[1] < means[2]
        csf, grey = voxels[classes == 1], voxels[classes == 2]
        pure_csf = demo._TISSUE["csf"]
        assert np.median(csf) > pure_csf * 1.5  # blended with the grey matter around it
        overlap = np.mean(csf > np.quantile(grey, 0.1))  # CSF voxels brighter than 10 % of GM
        assert overlap > 0.2


def test_same_arguments_give_identical_tissue_files(tmp_path, tissue_set):
    (again,) = write_demo_data(tmp_path, subjects=1, shape=SHAPE, task="tissue")
    first = tissue_set[1][0]
    assert again.read_bytes() == first.read_bytes()
    name = "IXI000_tissue.nii.gz"
    assert (tmp_path / name).read_bytes() == (tissue_set[0] / name).read_bytes()


def test_ensure_switches_a_brain_set_to_the_tissue_task(tmp_path):
    target = tmp_path / "demo"
    ensure_demo_data(target, subjects=2, shape=SHAPE)
    ensure_demo_data(target, subjects=2, shape=SHAPE, task="tissue")
    assert sorted(p.name for p in target.iterdir()) == [
        "IXI000_orig.nii.gz", "IXI000_tissue.nii.gz", "IXI001_orig.nii.gz", "IXI001_tissue.nii.gz"]
    assert set(np.unique(volumes(target / "IXI000_orig.nii.gz")[3])) == {0, 1, 2, 3}


@pytest.mark.parametrize("function", [write_demo_data, ensure_demo_data])
def test_unknown_task_is_a_data_error_and_writes_nothing(tmp_path, function):
    with pytest.raises(DataError, match="task must be one of brain, tissue, but got 'lesion'"):
        function(tmp_path / "demo", subjects=1, shape=SHAPE, task="lesion")
    assert not (tmp_path / "demo").exists()


def test_demo_data_command_writes_the_tissue_task(tmp_path, capsys):
    assert cli.main(["demo-data", str(tmp_path), "--task", "tissue", "--subjects", "1",
                     "--size", "20"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IXI000_orig.nii.gz",
                                                          "IXI000_tissue.nii.gz"]
    assert "tissue labels" in capsys.readouterr().out


def test_every_demo_task_has_a_config_shipped_in_the_package():
    assert tuple(DEMOS) == demo.TASKS
    for task, (config, _) in DEMOS.items():
        assert config.read_text() == (REPO / "configs" / config.name).read_text(), task


def test_tissue_config_passes_the_up_front_checks(demo_cwd, tmp_path, monkeypatch):
    directory, config = demo_cwd
    assert config == DEMO_TISSUE_CONFIG
    monkeypatch.chdir(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = StudyOptions(config, DEFAULT_SPACE, storage_url="sqlite:///:memory:", trials=1,
                               runs_dir=tmp_path / "runs", runtime="tf2")
        plan = study.prepare(options)
    cfg = plan.context.config
    assert cfg.num_classes == len(TISSUE_CLASSES) == 4
    assert cfg.label_sections == ("tissue",)
    assert cfg.get("TRAINING", "loss_type") == "Dice"
    assert cfg.get("TRAINING", "optimiser") == "adam"
    assert plan.context.max_iter == 200
    assert len(plan.context.dataset.subjects) == demo.DEFAULT_SUBJECTS
    labels = plan.context.dataset.files["tissue"]
    assert all(p.parent == directory / DEMO_TISSUE_DATA_DIR for p in labels.values())
    assert dataset.scan_data(cfg).shapes  # every image and label has one shape


def test_demo_and_config_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["optimize", "-c", "x.ini", "--demo", "tissue"])
    assert exit_info.value.code == 2
    assert "--demo: not allowed with argument -c/--config" in capsys.readouterr().err


@pytest.mark.slow
def test_optimize_demo_tissue_trains(demo_cwd, monkeypatch, capsys):
    """One short trial; 10 iterations, the config's validation_every_n (a trial must validate
    at least once, so fewer is refused up front)."""
    directory, _ = demo_cwd
    monkeypatch.chdir(directory)
    storage = f"sqlite:///{directory / 'lrsearch.db'}"
    code = cli.main(["optimize", "--demo", "tissue", "--trials", "1", "--max-iter", "10",
                     "--storage", storage, "--jobs", "1", "--repeats", "0"])
    assert code == 0, capsys.readouterr().err
    (trial,) = optuna.load_study(study_name="demo_tissue", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")
    assert 0.0 <= trial.value <= 1.0
    assert trial.user_attrs["iterations"] == 10
    trial_ini = nifty_config.load_config(directory / trial.user_attrs["run_dir"] / "trial.ini")
    assert trial_ini.num_classes == 4
