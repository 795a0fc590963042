"""Baselines: every study first runs the config as the user wrote it, never pruned.

The real run trains NiftyNet 0.6.0 (TensorFlow 2) on tiny demo data against a SQLite study;
queueing is tested on real SQLite studies without training.
"""

from __future__ import annotations

import dataclasses
import io
import threading

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import cli
from lrsearch.errors import SpaceError
from lrsearch.monitor.figures import history_figure, top_lr_figure
from lrsearch.monitor.progress import Progress
from lrsearch.monitor.records import study_info
from lrsearch.nifty.config import load_config
from lrsearch.results.report import render_html
from lrsearch.run import study as run_study
from lrsearch.run.plan import StudyOptions
from lrsearch.run.workers import _requeue, trial_setup
from lrsearch.search.baselines import baseline_schedule, parse_baselines
from lrsearch.search.range_test import RangeTest
from lrsearch.search.schedules import Constant, OneCycle, Polynomial
from lrsearch.search.space import TrialSetup, parse_space
from tests.tiny import TINY_SPACE, tiny_config

MAX_ITER = 4
VALIDATE_EVERY = 2
INI_LR = 7e-4  # not the space's or NiftyNet's default: the baseline must take it from the INI


def _config(tmp_path):
    config = tiny_config(tmp_path, validate_every=VALIDATE_EVERY)
    text = config.read_text()
    assert "\nlr = 0.001\n" in text
    config.write_text(text.replace("\nlr = 0.001\n", f"\nlr = {INI_LR}\n"))
    return config


def test_names_schedules_and_the_space_key():
    assert parse_baselines("config,poly") == ("config", "poly")
    assert parse_baselines("none") == ()
    with pytest.raises(ValueError, match=r"'polly' \(did you mean 'poly'\?\); valid: config, "
                                         r"poly, one-cycle, none"):
        parse_baselines("config,polly")
    assert baseline_schedule("config", 1e-3, 50) == Constant(1e-3)
    assert baseline_schedule("poly", 1e-3, 50) == Polynomial(1e-3, total_iters=50, power=0.9,
                                                             end_lr=0.0)
    assert baseline_schedule("one-cycle", 1e-3, 50, 0.02) == OneCycle(0.02, total_steps=50)
    doc = {"study": {"families": ["constant"], "base_lr": [1e-4, 1e-2],
                     "baselines": ["config", "poly"]}}
    assert parse_space(doc).baselines == ("config", "poly")
    assert parse_space({"study": {**doc["study"], "baselines": []}}).baselines == ()
    assert parse_space({"study": {"families": ["constant"], "base_lr": [1e-4, 1e-2]}}
                       ).baselines is None
    with pytest.raises(SpaceError, match=r"s.toml: \[study\] baselines: unknown baseline 'cfg'"):
        parse_space({"study": {**doc["study"], "baselines": ["cfg"]}}, "s.toml")


def test_export_rescales_a_baseline_from_its_own_lr():
    from lrsearch.results.export import rescaled_schedule

    for name, trained in (("poly", Polynomial(3e-4, total_iters=20, power=0.9)),
                          ("one-cycle", OneCycle(0.02, total_steps=20)),
                          ("config", Constant(3e-4))):
        trial = optuna.trial.create_trial(value=0.5, user_attrs={
            "baseline": name, "schedule": trained.to_dict(), "max_iter": 20})
        assert rescaled_schedule(trial, 40) == baseline_schedule(name, trained.base_lr, 40,
                                                                  trained.base_lr)


def test_progress_names_a_baseline_your_config():
    stream = io.StringIO()
    progress = Progress(3, stream=stream)
    progress.trial_started(0, "constant, base lr 7e-4", "your config")
    progress.trial_finished(0, "complete", 0.5, params={}, label="your config")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("Trial 0 (your config) started: constant, base lr 7e-4")
    assert lines[1].endswith("Trial 0 (your config) finished with value: 0.5000 and schedule: "
                             "constant, base lr 7e-4. Best is trial 0 (your config) with "
                             "value: 0.5000.")



def test_progress_never_names_a_finalist_repeat_best():
    stream = io.StringIO()
    progress = Progress(3, stream=stream)
    progress.trial_finished(2, "complete", 0.5, params={})
    progress.trial_finished(7, "complete", 0.9, params={}, label="repeat 1 of trial 2",
                            ranked=False)
    assert progress.best == (2, 0.5)
    assert stream.getvalue().splitlines()[-1].endswith("Best is trial 2 with value: 0.5000.")


def test_bad_names_are_refused_up_front_with_one_line(tmp_path, capsys):
    config = _config(tmp_path)
    db = tmp_path / "b.db"
    code = cli.main(["optimize", "-c", str(config), "--storage", f"sqlite:///{db}",
                     "--baselines", "config,polly"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["lrsearch: error: --baselines: unknown baseline 'polly' (did you mean "
                   "'poly'?); valid: config, poly, one-cycle, none"]
    assert not db.exists()

    code = cli.main(["optimize", "-c", str(config), "--storage", f"sqlite:///{db}",
                     "--baselines", "config,one-cycle"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2
    assert len(err) == 1 and "study 'tiny' has no range test: add --lr-bounds auto" in err[0]
    assert optuna.get_all_study_names(f"sqlite:///{db}") == []


def _plan(tmp_path, storage, baselines, trials=10):
    options = StudyOptions(_config(tmp_path), TINY_SPACE, study_name="q", storage_url=storage,
                           trials=trials, baselines=baselines)
    return run_study.prepare(options)


def _baselines(study) -> list[tuple[int, str | None]]:
    return [(t.number, t.user_attrs.get("baseline")) for t in study.get_trials()]


def test_queued_once_in_order_and_continued_with_the_missing_ones(tmp_path):
    storage = f"sqlite:///{tmp_path / 'q.db'}"
    assert _plan(tmp_path, storage, None).baselines == ("config",)  # the default
    assert _plan(tmp_path, storage, "none").baselines == ()
    plan = _plan(tmp_path, storage, "config,poly")
    study = run_study.load_or_create(plan)
    assert run_study.enqueue_baselines(study, plan) == ["config", "poly"]
    assert _baselines(study) == [(0, "config"), (1, "poly")]
    assert study.user_attrs["baselines"] == ["config", "poly"]
    assert all(t.state == TrialState.WAITING for t in study.get_trials())
    assert run_study.enqueue_baselines(study, plan) == []  # a second worker adds nothing

    # a study of one baseline, continued with two: only the missing one is added
    other = dataclasses.replace(plan, name="r", baselines=("config",))
    study = run_study.load_or_create(other)
    assert run_study.enqueue_baselines(study, other) == ["config"]
    trial = study.ask()  # the config baseline runs and fails: it is not queued again
    assert trial.user_attrs["baseline"] == "config"
    study.tell(trial, state=TrialState.FAIL)
    assert run_study.enqueue_baselines(study, dataclasses.replace(
        other, baselines=("config", "poly"))) == ["poly"]
    assert _baselines(study) == [(0, "config"), (1, "poly")]
    assert study.user_attrs["baselines"] == ["config", "poly"]
    # poly's worker is stopped: its retry is the same baseline, and none is queued besides
    trial = study.ask()
    _requeue(study, trial, "interrupted; the worker was stopped (re-queued)")
    assert run_study.enqueue_baselines(study, dataclasses.replace(
        other, baselines=("config", "poly"))) == []
    assert _baselines(study) == [(0, "config"), (1, "poly"), (2, "poly")]
    assert study.get_trials()[2].state == TrialState.WAITING

    # baselines count toward --trials: one that no longer fits is left out, and said so
    said = []
    full = dataclasses.replace(plan, name="s", trials=1)
    study = run_study.load_or_create(full)
    assert run_study.enqueue_baselines(study, full, said.append) == ["config"]
    assert said[-1] == ("Baseline poly not queued: --trials 1 leaves no room (baselines count "
                        "toward it); raise --trials to run it.")
    assert study.user_attrs["baselines"] == ["config"]


def test_workers_starting_together_queue_each_baseline_once(tmp_path):
    """Four workers (each its own storage connection) open one new study at the same moment."""
    storage = f"sqlite:///{tmp_path / 't.db'}"
    plan = _plan(tmp_path, storage, "config,poly")
    run_study.load_or_create(plan)
    studies = [run_study.load_or_create(plan) for _ in range(4)]
    start = threading.Barrier(len(studies))
    queued: list[list[str]] = []

    def worker(study):
        start.wait()
        queued.append(run_study.enqueue_baselines(study, plan))

    threads = [threading.Thread(target=worker, args=(s,)) for s in studies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(queued) == [[], [], [], ["config", "poly"]]
    assert _baselines(studies[0]) == [(0, "config"), (1, "poly")]


def test_a_worker_builds_the_baseline_instead_of_sampling(tmp_path):
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    plan = _plan(tmp_path, storage, "config,poly")
    study = run_study.load_or_create(plan)
    found = RangeTest(min_lr=1e-7, max_lr=1.0, iterations=3, smoothing=0.98, points=(),
                      stopped="test", steepest_lr=0.02, last_stable_lr=0.5)
    study.set_user_attr("lr_find", found.to_dict())  # as --lr-bounds auto stores it
    run_study.enqueue_baselines(study, dataclasses.replace(
        plan, baselines=("config", "poly", "one-cycle")))
    setups = [trial_setup(study, study.ask(), plan) for _ in range(4)]
    assert [s.baseline for s in setups] == ["config", "poly", "one-cycle", None]
    assert setups[0] == TrialSetup(Constant(INI_LR), optimiser=None, baseline="config")
    assert setups[1].schedule == Polynomial(INI_LR, total_iters=20, power=0.9, end_lr=0.0)
    assert setups[2].schedule == OneCycle(0.02, total_steps=20)  # tiny.toml: max_iter 20
    assert setups[3].schedule.family in ("constant", "cosine", "step")  # sampled
    assert [t.params for t in study.get_trials()][:3] == [{}, {}, {}]


def test_the_config_runs_as_written_and_is_never_pruned(tmp_path, capsys):
    """A study whose only other trial reported a perfect Dice at every validation: the median
    pruner (no start-up trials, no warm-up) prunes any trial below it at its first report, so
    the baseline trains through only because baselines are never pruned."""
    config = _config(tmp_path)
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE.read_text().replace("startup_trials = 1", "startup_trials = 0")
                     .replace("warmup_fraction = 0.25", "warmup_fraction = 0.0"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="b", storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        value=0.0, intermediate_values={i: 1.0 for i in range(1, MAX_ITER + 1)}))

    code = cli.main(["optimize", "-c", str(config), "--space", str(space), "--storage", storage,
                     "--study", "b", "--trials", "2", "--max-iter", str(MAX_ITER)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    study = optuna.load_study(study_name="b", storage=storage)
    baseline = study.trials[1]
    assert baseline.state == TrialState.COMPLETE, baseline.user_attrs.get("stop_reason")
    assert baseline.user_attrs["baseline"] == "config"
    assert study.user_attrs["baselines"] == ["config"]
    assert baseline.params == {}
    reported = baseline.intermediate_values
    assert sorted(reported) == [2, 4] and all(v < 1.0 for v in reported.values())
    cfg = load_config(config)
    assert baseline.user_attrs["schedule"] == {"family": "constant", "base_lr": INI_LR}
    assert baseline.user_attrs["optimiser"] == cfg.optimiser
    trial_ini = load_config(f"{baseline.user_attrs['run_dir']}/trial.ini")
    assert (trial_ini.lr, trial_ini.optimiser) == (INI_LR, cfg.optimiser)
    assert "Trial 1 (your config) started: constant, base lr 7e-4" in captured.err
    assert "Trial 1 (your config) finished with value:" in captured.err
    assert "The best is your config: trial 1" in captured.out

    # lrsearch best, the report and the dashboard note say it plainly
    assert cli.main(["best", "--storage", storage, "--study", "b"]) == 0
    out = capsys.readouterr().out
    assert "trial 1 (your config)" in out
    assert "the best is your config: trial 1, Dice " in out
    info = study_info(study)
    page = render_html(info, [])
    assert "the best is your config: trial 1" in page
    assert "your config: constant, base lr 7e-4" in page
    names = [trace.name for trace in history_figure(info).data]
    assert f"your config (trial 1): {baseline.value:.4f}" in names
    assert [t.name for t in top_lr_figure(info).data][0].startswith("#1 trial 1, your config")
    from optuna_dashboard import get_note

    note = get_note(optuna.trial.Trial(study, baseline._trial_id))
    assert note.startswith("### Trial 1 (your config): constant, base lr 7e-4")
