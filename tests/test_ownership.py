"""Run folders belong to one study: a study of another storage (or an older lrsearch's unrecorded
one) is refused its folder up front; the study's own workers, resumes and retries are not; a
deleted and recreated study of the same storage takes its folder over.

Real SQLite files throughout; the first test trains real NiftyNet trials (tests/tiny.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.errors import LRSearchError
from lrsearch.nifty.contract import checkpoint_iteration
from lrsearch.run import owners, workers
from lrsearch.run import plan as run_plan
from lrsearch.run import study as run_study
from lrsearch.run.plan import StudyOptions
from lrsearch.run.storage import fingerprint
from lrsearch.run.trial import find_resume, write_trial_files
from lrsearch.search.schedules import Constant
from lrsearch.search.space import TrialSetup
from tests.tiny import TINY_SPACE, tiny_config

MAX_ITER = 6


def _optimize(config: Path, storage: str, *extra: str) -> int:
    return cli.main(["optimize", "-c", str(config), "--space", str(TINY_SPACE),
                     "--storage", storage, "--study", "s", "--trials", "1", "--seed", "0",
                     "--max-iter", str(MAX_ITER), "--jobs", "1", *extra])


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _studies(url: str) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(url)]


@pytest.mark.slow
def test_another_storage_is_refused_the_folder_and_a_recreated_study_takes_it_over(
        tmp_path, capsys):
    config = tiny_config(tmp_path)
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    assert _optimize(config, a) == 0, capsys.readouterr().err
    capsys.readouterr()
    runs = tmp_path / "models" / "s"
    trial = runs / "trial-0000"
    first = optuna.load_study(study_name="s", storage=a)
    assert first.trials[0].user_attrs["run_dir"] == str(trial)
    me = owners.Owner(f"sqlite:///{tmp_path / 'a.db'}", "s", first.user_attrs["study_uid"])
    assert owners.read(runs) == owners.read(trial) == me
    before = _files(runs)

    assert _optimize(config, b) == 2
    assert capsys.readouterr().err == (
        f"lrsearch: error: {runs}/ belongs to study 's' in sqlite:///{tmp_path / 'a.db'}; this "
        f"is study 's' in sqlite:///{tmp_path / 'b.db'}: give --runs-dir another folder or "
        "--study another name\n")
    assert _studies(b) == []  # nothing written to the refused study's storage
    assert _files(runs) == before  # the first study's model untouched

    # the same study deleted and recreated in the same storage takes its folder over
    with (trial / "console.log").open("a") as log:
        log.write("a line of the deleted study's trial\n")
    optuna.delete_study(study_name="s", storage=a)
    assert _optimize(config, a) == 0, capsys.readouterr().err
    second = optuna.load_study(study_name="s", storage=a)
    assert second.user_attrs["study_uid"] != me.uid
    assert owners.read(runs) == owners.read(trial) == owners.Owner(
        me.storage, "s", second.user_attrs["study_uid"])
    log = (trial / "console.log").read_text()
    assert "deleted study's trial" not in log  # a fresh trial starts a new console.log
    iterations = [line for line in (trial / "model" / "training_niftynet_log").read_text()
                  .splitlines() if "training iter 1," in line]
    assert len(iterations) == 1  # NiftyNet's log is the new trial's only


def _plan(tmp_path: Path, url: str, **kwargs) -> run_plan.StudyPlan:
    options = StudyOptions(tiny_config(tmp_path), TINY_SPACE, study_name="s", storage_url=url,
                           trials=1, max_iter=MAX_ITER, runtime="tf2", **kwargs)
    return run_study.prepare(options)


def _opened(plan: run_plan.StudyPlan) -> tuple[optuna.Study, run_plan.StudyPlan]:
    """What ``run_study.optimize`` does before its workers start."""
    study = run_study.load_or_create(plan)
    return study, run_study._claim_runs_dir(study, plan)


def test_storage_fingerprint_is_the_database_not_the_spelling(tmp_path, monkeypatch):
    pg = "postgresql://db.example/lr"
    assert fingerprint("postgresql+psycopg://lr:secret@DB.example:5432/lr") == pg
    assert fingerprint("postgresql://lr@db.example/lr") == pg
    assert fingerprint("postgresql://lr@db.example:5433/lr") == "postgresql://db.example:5433/lr"
    assert fingerprint("postgresql://lr@db.example/other") != pg
    monkeypatch.chdir(tmp_path)
    here = fingerprint("sqlite:///lrsearch.db")
    assert here == f"sqlite:///{tmp_path / 'lrsearch.db'}" == \
        fingerprint(f"sqlite:///{tmp_path / 'lrsearch.db'}")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert fingerprint("sqlite:///lrsearch.db") != here  # same words, another file
    assert fingerprint("sqlite:///../lrsearch.db") == here


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell, as lrsearch's workers
def test_workers_of_one_study_pass_and_a_retry_resumes_its_own_checkpoint(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study, plan = _opened(_plan(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", heartbeat=1))
    ctx = plan.context
    trial = study.ask()
    config_path, _, _ = write_trial_files(ctx, trial.number, TrialSetup(Constant(base_lr=1e-3)))
    folder = config_path.parent
    trial.set_user_attr("run_dir", str(folder))
    models = folder / "model" / "models"
    models.mkdir(parents=True)
    (models / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-5"\n')
    (folder / "console.log").write_text("the original's console\n")
    workers._requeue(study, trial, "worker stopped")

    # another worker, the storage spelt relative to its working directory
    other_plan = _plan(tmp_path, "sqlite:///a.db")  # prepare passes
    other_study, other_plan = _opened(other_plan)
    assert other_plan.context.owner == plan.context.owner
    retry = other_study.ask()
    resume = find_resume(retry, other_plan.context)
    assert resume is not None and resume.directory == folder and resume.iteration == 5
    write_trial_files(other_plan.context, retry.number, TrialSetup(Constant(base_lr=1e-3)),
                      resume)
    assert checkpoint_iteration(folder / "model") == 5  # kept
    assert (folder / "console.log").read_text() == (
        "the original's console\n"
        f"--- lrsearch: trial {retry.number} resumes from the checkpoint of iteration 5 ---\n")

    # a folder that another study has taken since is not this trial's to resume from
    owners.write(folder, owners.Owner("sqlite:////elsewhere.db", "s", "other"))
    assert find_resume(retry, other_plan.context) is None


def test_a_recreated_study_of_the_same_storage_may_take_over_another_may_not(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    _opened(_plan(tmp_path, url))
    runs = tmp_path / "models" / "s"
    assert owners.read(runs).study == "s"
    optuna.delete_study(study_name="s", storage=url)
    _opened(_plan(tmp_path, url))  # deleted: taken over
    uid = optuna.load_study(study_name="s", storage=url).user_attrs["study_uid"]
    assert owners.read(runs).uid == uid

    # a study of another name in the same storage: refused while the owner exists
    with pytest.raises(owners.FolderTaken, match=r"belongs to study 's' in sqlite:.*this is "
                                                 r"study 't' in .*: give --runs-dir another "
                                                 r"folder$"):
        options = StudyOptions(tiny_config(tmp_path), TINY_SPACE, study_name="t", storage_url=url,
                               trials=1, runs_dir=runs, runtime="tf2")
        run_study.prepare(options)
    assert _studies(url) == ["s"]


def test_a_folder_of_an_older_lrsearch_goes_only_to_the_study_that_records_it(tmp_path):
    runs = tmp_path / "models" / "s"
    (runs / "trial-0000" / "model").mkdir(parents=True)  # no owner.json: an older lrsearch's
    other = f"sqlite:///{tmp_path / 'b.db'}"
    with pytest.raises(LRSearchError) as refused:
        _plan(tmp_path, other)
    assert str(refused.value) == (
        f"{runs}/ holds trials of a study an older lrsearch did not record, and study 's' in "
        f"{other} does not name it as its runs folder: give --runs-dir another folder or "
        "--study another name (or delete the folder if those trials are not needed)")
    assert _studies(other) == []

    url = f"sqlite:///{tmp_path / 'a.db'}"
    older = optuna.create_study(study_name="s", storage=url, direction="maximize")
    older.set_user_attr("runs_dir", os.path.relpath(runs))  # as an older lrsearch recorded it
    _opened(_plan(tmp_path, url))
    assert owners.read(runs).uid == optuna.load_study(study_name="s", storage=url) \
        .user_attrs["study_uid"]
    assert (runs / "trial-0000" / "model").is_dir()  # adopted, nothing cleared
