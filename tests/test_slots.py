"""Where trials run: --jobs / --gpus slots, and what a GPU slot changes in a trial's files.

There is no GPU on the test machines: these tests check what lrsearch hands NiftyNet (the
trial's INI and environment), not a GPU run.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from lrsearch.engines.runtime import get_runtime
from lrsearch.errors import LRSearchError
from lrsearch.nifty.config import load_config
from lrsearch.nifty.dataset import scan_data
from lrsearch.run.plan import Slot, make_slots
from lrsearch.run.trial import TrialContext, write_trial_files
from lrsearch.search.schedules import Constant
from lrsearch.search.space import TrialSetup
from tests.tiny import tiny_config


def test_gpus_give_one_slot_per_gpu():
    assert make_slots(gpus="0,2,3") == (Slot(0, "0"), Slot(1, "2"), Slot(2, "3"))
    assert make_slots(jobs=3) == (Slot(0), Slot(1), Slot(2))
    assert make_slots(jobs=2, gpus="4,5") == (Slot(0, "4"), Slot(1, "5"))


@pytest.mark.parametrize("jobs,gpus,fragment", [
    (None, "0,0", "distinct"), (None, "a,b", "GPU indices"), (None, "", "GPU indices"),
    (3, "0,1", "contradicts"), (0, None, "at least 1"),
])
def test_bad_slots(jobs, gpus, fragment):
    with pytest.raises(LRSearchError, match=fragment):
        make_slots(jobs, gpus)


def _context(tmp_path: Path) -> TrialContext:
    cfg = load_config(tiny_config(tmp_path))
    dataset = scan_data(cfg)
    split = tmp_path / "split.csv"
    split.write_text("".join(f"{s},training\n" for s in dataset.subjects))
    return TrialContext(cfg, dataset, split, dataset.subjects[:1], tmp_path / "runs", 20,
                        get_runtime("tf2"))


def test_gpu_slot_pins_niftynet(tmp_path):
    ctx = _context(tmp_path)
    setup = TrialSetup(Constant(base_lr=1e-3), "adam")
    config_path, schedule, _ = write_trial_files(ctx, 7, setup, gpu="3")
    ini = configparser.ConfigParser()
    ini.read(config_path)
    assert ini["SYSTEM"]["cuda_devices"] == "3"
    assert ini["SYSTEM"]["num_gpus"] == "1"
    assert ini["SYSTEM"]["model_dir"] == str(ctx.runs_dir / "trial-0007" / "model")
    assert ini["TRAINING"]["max_iter"] == "20"
    cpu_path, _, _ = write_trial_files(ctx, 8, setup)
    cpu = configparser.ConfigParser()
    cpu.read(cpu_path)
    assert cpu["SYSTEM"].get("cuda_devices", "") in ("", '""')


def test_a_new_trial_clears_a_stale_model_folder_and_a_resumed_one_keeps_it(tmp_path):
    from lrsearch.run.trial import Resume

    ctx = _context(tmp_path)
    setup = TrialSetup(Constant(base_lr=1e-3), "adam")
    stale = ctx.trial_dir(0) / "model" / "segmentation" / "inferred.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("IXI000,/old/seg.nii.gz\n")  # a deleted study's trial 0
    (ctx.trial_dir(0) / "console.log").write_text("the deleted study's console\n")
    write_trial_files(ctx, 0, setup)
    assert not stale.exists()
    assert not (ctx.trial_dir(0) / "console.log").exists()  # the new trial starts its own

    checkpoint = ctx.trial_dir(1) / "model" / "models" / "checkpoint"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text('model_checkpoint_path: "model.ckpt-10"\n')
    write_trial_files(ctx, 2, setup, Resume(ctx.trial_dir(1), 10, ()))
    assert checkpoint.exists()


def test_each_trial_lists_its_own_files(tmp_path):
    """NiftyNet would otherwise write one list per section next to the study's split file at
    every start; trials starting together then read each other's half-written lists."""
    ctx = _context(tmp_path)
    config_path, _, _ = write_trial_files(ctx, 3, TrialSetup(Constant(base_lr=1e-3), "adam"))
    ini = configparser.ConfigParser()
    ini.read(config_path)
    assert set(ctx.dataset.files) == set(ctx.config.input_sections)
    for section, files in ctx.dataset.files.items():
        listed = Path(ini[section]["csv_file"])
        assert listed == ctx.trial_dir(3) / f"{section}.csv"
        rows = [line.split(",") for line in listed.read_text().splitlines()]
        assert {subject: Path(path) for subject, path in rows} == files
        assert len(rows) == len(ctx.dataset.subjects)
