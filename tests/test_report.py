"""Results of a study: info functions, figures, the HTML report, ``best`` and ``status``.

The studies are real SQLite studies built through Optuna with the attributes a trial stores
(tests/synthetic.py); the browser checks of the report are in test_browser.py.
"""

from __future__ import annotations

import json
import re

import optuna
import pytest

from lrsearch import cli
from lrsearch.monitor import figures as monitor_figures
from lrsearch.monitor import records
from tests.synthetic import add_trials, make_study

STATES = ["complete", "complete", "pruned", "complete", "failed", "pruned", "complete"]


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    url = f"sqlite:///{folder / 'study.db'}"
    add_trials(make_study(url, "demo", max_iter=400), len(STATES), states=STATES,
               validate_every=50)
    return url


@pytest.fixture(scope="module")
def study(storage):
    return optuna.load_study(study_name="demo", storage=storage)


def test_trial_info_reads_what_trials_store(study):
    info = records.study_info(study)
    assert [t.state for t in info.trials] == STATES
    assert info.max_iter == 400
    for trial, frozen in zip(info.trials, study.trials, strict=True):
        assert trial.family == frozen.params["family"]  # not "warmup" for a warmed-up one
        assert trial.schedule_text == frozen.user_attrs["schedule_text"]
        assert trial.dice == tuple(sorted(frozen.intermediate_values.items()))
        assert trial.lr_curve[0][0] == 1 and trial.lr_curve[-1][0] == 400
    complete = [t for t in info.trials if t.state == "complete"]
    assert all(t.iterations == 400 and 0 < t.value <= 1 for t in complete)
    pruned = [t for t in info.trials if t.state == "pruned"]
    assert all(t.iterations == 50 and "pruned at iteration 50" in t.stop_reason for t in pruned)


def test_best_is_highest_complete_value(study):
    info = records.study_info(study)
    values = sorted((t.value for t in info.trials if t.state == "complete"), reverse=True)
    assert [t.value for t in info.best(10)] == values
    assert info.best(1)[0].number == study.best_trial.number


def test_pruning_savings_counts_iterations_run_against_full_runs(study):
    info = records.study_info(study)
    savings = records.pruning_savings(info)
    ran = sum(t.user_attrs["iterations"] for t in study.trials)
    assert savings.trials == len(STATES)
    assert savings.iterations_full == 400 * len(STATES)
    assert savings.iterations_run == ran
    assert savings.not_run["pruned"] == 2 * (400 - 50)
    assert savings.fraction_pruned == pytest.approx(700 / 2800)
    assert savings.fraction_run == pytest.approx(ran / 2800)


def test_importances_need_enough_complete_trials(tmp_path, study):
    values = monitor_figures.parameter_importances(study)
    assert values.trials == 4 and not values.note
    assert set(values.values) >= {"family", "base_lr"}
    assert sum(values.values.values()) == pytest.approx(1.0)

    small = make_study(f"sqlite:///{tmp_path / 'small.db'}", "small")
    add_trials(small, 2, states=["complete", "pruned"])
    few = monitor_figures.parameter_importances(small)
    assert few.values == {} and "at least 3 complete trials" in few.note
    figure = monitor_figures.importance_figure(few)
    assert not figure.data and few.note in figure.layout.annotations[0].text


def test_figures_hold_the_study(study):
    info = records.study_info(study)
    importances = monitor_figures.parameter_importances(study)
    figures = dict(monitor_figures.study_figures(info, importances, k=3))
    assert list(figures) == ["top-lr", "dice-curves", "history", "families", "importances",
                             "savings"]
    top = figures["top-lr"]
    assert len(top.data) == 3 and top.layout.yaxis.type == "log"
    best = info.best(1)[0]
    assert list(top.data[0].y) == [lr for _, lr in best.lr_curve]
    # every trial's Dice curve is in the family traces (None separates trials)
    points = sum(sum(v is not None for v in trace.y) for trace in figures["dice-curves"].data)
    assert points == sum(len(t.dice) for t in info.trials)
    pruned_traces = [t for t in figures["dice-curves"].data if t.name.endswith("(pruned)")]
    assert pruned_traces and all(t.line.dash == "dot" for t in pruned_traces)
    history = figures["history"].data
    assert list(history[1].y) == sorted(history[1].y)  # best so far never decreases
    assert "pruned" in figures["families"].data[-1].name


def test_report_command_writes_one_offline_file(storage, tmp_path, capsys):
    target = tmp_path / "out" / "monitor_figures.html"
    assert cli.main(["report", "--storage", storage, "-o", str(target), "--top", "3"]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    text = target.read_text()
    assert text.count("Plotly.newPlot") == 6
    assert len(re.findall(r"<script[^>]*\bsrc=", text)) == 0  # nothing fetched: works offline
    assert text.count("plotly.js v") <= 2  # the library once (its banner names it)
    assert 'id="best-trials"' in text and text.count("<tr>") == 1 + 3


def test_best_prints_schedule_dice_and_model(storage, study, capsys):
    best = study.best_trial
    assert cli.main(["best", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert f"trial {best.number}" in out
    assert f"{best.value:.4f}" in out
    assert best.user_attrs["schedule_text"] in out
    assert f"{best.user_attrs['run_dir']}/model (not on this machine)" in out

    assert cli.main(["best", "--storage", storage, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trial"] == best.number and data["value"] == best.value
    assert data["schedule"] == best.user_attrs["schedule"]
    assert data["model_dir"] == f"{best.user_attrs['run_dir']}/model"
    assert data["seed"] == best.user_attrs["seed"]
    assert data["checkpoint"] is None


def test_status_lists_studies_and_states(storage, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    add_trials(make_study(url, "alpha"), 3, states=["complete", "pruned", "failed"])
    make_study(url, "beta")
    assert cli.main(["status", "--storage", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("2 studies")
    alpha = lines[2].split()
    assert alpha[:7] == ["alpha", "3", "1", "1", "1", "0", "0"]
    assert lines[3].split()[:2] == ["beta", "0"] and lines[3].endswith("-")


def test_study_choice_errors_are_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    make_study(url, "alpha")
    make_study(url, "beta")
    assert cli.main(["best", "--storage", url]) == 2
    assert capsys.readouterr().err.strip() == (
        f"lrsearch: error: {url} holds 2 studies (alpha, beta): choose one with --study NAME")
    assert cli.main(["report", "--storage", url, "--study", "alpah"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'alpha'?" in err and err.count("\n") == 1
    assert cli.main(["best", "--storage", url, "--study", "alpha"]) == 2
    assert "has no complete trial yet" in capsys.readouterr().err

    missing = tmp_path / "none.db"
    assert cli.main(["status", "--storage", f"sqlite:///{missing}"]) == 2
    assert "run `lrsearch optimize` first" in capsys.readouterr().err
    assert not missing.exists()  # reading never creates a storage
