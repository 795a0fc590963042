"""``lrsearch export``: the study's NiftyNet config with a trial's schedule, and its command.

Real SQLite studies made through Optuna (tests/synthetic.py) over a real config and demo data;
the exported config is read back by lrsearch's NiftyNet config parser. Training it for real is
in test_live_niftynet.py.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.nifty.config import load_config
from lrsearch.nifty.dataset import scan_data
from lrsearch.paths import DEFAULT_SPACE
from lrsearch.search.schedules import from_dict
from lrsearch.search.space import load_space
from tests.synthetic import add_trials, make_study
from tests.tiny import tiny_config

MAX_ITER = 400


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    config = tiny_config(folder)
    split = folder / "split.csv"
    split.write_text("".join(f"IXI00{i},{'validation' if i == 0 else 'training'}\n"
                             for i in range(5)))
    url = f"sqlite:///{folder / 'study.db'}"
    study = make_study(url, "exp", max_iter=MAX_ITER, config=config, split_file=split)
    study.enqueue_trial({"family": "cosine", "warmup.enabled": True})
    add_trials(study, 3, states=["complete", "complete", "pruned"])
    return url, split


def setup_config(url: str) -> str:
    return optuna.load_study(study_name="exp", storage=url).user_attrs["config"]


def _export(url, *args, capsys) -> list[str]:
    assert cli.main(["export", "--storage", url, *args]) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_export_writes_config_schedule_and_command(setup, tmp_path, capsys):
    url, split = setup
    trial = optuna.load_study(study_name="exp", storage=url).trials[1]
    target = tmp_path / "out" / "trial1.ini"
    lines = _export(url, "--trial", "1", "-o", str(target), capsys=capsys)
    schedule = from_dict(trial.user_attrs["schedule"])
    cfg = load_config(target)
    assert cfg.lr == schedule.lr(0)
    assert cfg.max_iter == MAX_ITER
    assert cfg.optimiser == trial.user_attrs["optimiser"]
    assert cfg.get("TRAINING", "starting_iter") == 0
    assert cfg.model_dir == tmp_path / "out" / "trial1-model"
    assert cfg.dataset_split_file == split
    assert "model_dir = /" in target.read_text()  # absolute in the file itself
    spec = json.loads((tmp_path / "out" / "trial1.schedule.json").read_text())
    assert spec == {"schedule": trial.user_attrs["schedule"], "history": []}
    # its own file lists beside it: NiftyNet would otherwise write them next to the study's
    # split file, shared by every exported run and the study's own trials
    data = scan_data(load_config(setup_config(url)), read_data=False).files
    assert set(cfg.inputs) == set(data)
    for section, files in data.items():
        listed = cfg.inputs[section].csv_file
        assert Path(listed) == tmp_path / "out" / f"trial1.{section}.csv"
        rows = dict(line.split(",") for line in Path(listed).read_text().splitlines())
        assert {subject: Path(path) for subject, path in rows.items()} == files

    words = shlex.split(lines[-1])
    assert words[0] == f"LRSEARCH_SCHEDULE={tmp_path / 'out' / 'trial1.schedule.json'}"
    assert words[1] == f"LRSEARCH_SEED={trial.user_attrs['seed']}"  # the same run again
    assert words[2].startswith("PYTHONPATH=")
    python = trial.user_attrs["command"].split()[0]
    assert words[3:] == [python, "-m", "lrsearch.engines.child.main", "train", "-a",
                         "lrsearch.engines.child.application.ScheduledSegmentationApplication",
                         "-c", str(target)]


def test_export_validates_on_the_study_windows(tmp_path, capsys):
    """A study that fixed its validation windows passes its validation seed on."""
    config = tiny_config(tmp_path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = make_study(url, "exp", max_iter=MAX_ITER, config=config)
    study.set_user_attr("validation_seed", 1234)
    add_trials(study, 1, states=["complete"])
    words = shlex.split(_export(url, "--trial", "0", "-o", str(tmp_path / "t.ini"),
                                capsys=capsys)[-1])
    assert "LRSEARCH_VALIDATION_SEED=1234" in words[:words.index("-m")]


def test_max_iter_rebuilds_the_schedule_for_a_longer_run(setup, tmp_path, capsys):
    url, _ = setup
    trial = optuna.load_study(study_name="exp", storage=url).trials[0]  # cosine with warm-up
    _export(url, "--trial", "0", "-o", str(tmp_path / "long.ini"), "--max-iter", "4000",
            capsys=capsys)
    spec = json.loads((tmp_path / "long.schedule.json").read_text())["schedule"]
    expected = load_space(DEFAULT_SPACE).suggest(optuna.trial.FixedTrial(trial.params), 4000)
    assert spec == expected.schedule.to_dict()
    short = trial.user_attrs["schedule"]
    assert spec["family"] == short["family"] == "warmup"
    # positions are fractions of the run: ten times the iterations, ten times the lengths
    assert spec["schedule"]["total_iters"] + spec["warmup_iters"] == 4000
    assert abs(spec["warmup_iters"] - 10 * short["warmup_iters"]) <= 5
    assert spec["schedule"]["base_lr"] == short["schedule"]["base_lr"]
    assert load_config(tmp_path / "long.ini").max_iter == 4000


def test_default_is_the_best_trial(setup, tmp_path, monkeypatch, capsys):
    url, _ = setup
    monkeypatch.chdir(tmp_path)
    best = optuna.load_study(study_name="exp", storage=url).best_trial
    lines = _export(url, capsys=capsys)
    assert lines[0].startswith(f"wrote {tmp_path / 'best.ini'}")
    assert f"(trial {best.number}, {MAX_ITER} iterations" in lines[0]
    assert json.loads((tmp_path / "best.schedule.json").read_text())["schedule"] == \
        best.user_attrs["schedule"]


def test_export_errors_are_one_line(setup, tmp_path, capsys):
    url, _ = setup
    assert cli.main(["export", "--storage", url, "--trial", "7"]) == 2
    assert capsys.readouterr().err == \
        "lrsearch: error: study 'exp' has no trial 7 (trials 0–2)\n"

    # a stored schedule its parameters do not rebuild cannot be rescaled
    study = optuna.load_study(study_name="exp", storage=url)
    source = study.trials[1]
    attrs = dict(source.user_attrs, schedule={"family": "constant", "base_lr": 0.5})
    study.add_trial(optuna.trial.create_trial(
        params=source.params, distributions=source.distributions, value=0.1,
        user_attrs=attrs))
    assert cli.main(["export", "--storage", url, "--trial", "3", "--max-iter", "800",
                     "-o", str(tmp_path / "x.ini")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrsearch: error: cannot rescale trial 3: rebuilding its schedule")
    assert err.count("\n") == 1 and not (tmp_path / "x.ini").exists()


def test_relative_data_paths_are_read_where_export_runs(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = tmp_path / "relative.ini"
    config.write_text(tiny_config(tmp_path).read_text().replace(str(tmp_path / "demo_data"),
                                                                "demo_data"))
    add_trials(make_study(url, "rel", config=config), 1, states=["complete"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["export", "--storage", url, "-o", "b.ini"]) == 2
    err = capsys.readouterr().err
    assert "path_to_search 'demo_data' does not exist" in err
    assert err.rstrip().endswith("run `lrsearch export` where the study ran)")
    assert not (elsewhere / "b.ini").exists()
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", "--storage", url, "-o", "b.ini"]) == 0
    assert f"path_to_search = {tmp_path / 'demo_data'}" in (tmp_path / "b.ini").read_text()
