"""The payoff of a real tiny study: NiftyNet trains the user's config (the ``config`` baseline)
and one other schedule, saving a checkpoint every 3 of 12 iterations; every checkpoint segments
the validation subjects again. Checks what ``optimize`` stores when the study holds its budget,
and what ``best`` (text, --json, --payoff), ``status``, ``report`` and the dashboard note show.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.nifty.config import load_config
from lrsearch.search import payoff as payoff_maths
from tests.tiny import tiny_config

MAX_ITER = 12
SAVE_EVERY = 3  # checkpoints 3, 6, 9, 12: the fewest that resolve a speed-up
SPACE = f"""
[study]
families = ["constant"]
base_lr = [1e-6, 1e-2]
optimisers = ["adam"]
runtime = "tf2"
max_iter = {MAX_ITER}
repeats = 0

[pruner]
kind = "none"
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("payoff")
    config = tiny_config(tmp, validate_every=6, save_every=SAVE_EVERY)
    # the user's config trains at a hopeless rate (its trial 0, the config baseline, runs it);
    # the other schedule learns
    load_config(config).with_values({"TRAINING": {"lr": 1e-6}}).write(config)
    space = tmp / "space.toml"
    space.write_text(SPACE)
    url = f"sqlite:///{tmp / 'study.db'}"
    args = ["optimize", "-c", str(config), "--space", str(space), "--storage", url,
            "--study", "p", "--seed", "0", "--jobs", "1", "-q"]
    assert cli.main([*args, "--trials", "1"]) == 0  # the baseline alone: it is the best
    first = _best_json(url)
    # (a waiting trial is always run, so the second is enqueued only now)
    study = optuna.load_study(study_name="p", storage=url)
    study.enqueue_trial({"family": "constant", "base_lr": 1e-2, "optimiser": "adam"})
    assert cli.main([*args, "--trials", "2"]) == 0  # the study holds its budget: segmented
    return url, first


def _best_json(url: str) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["best", "--storage", url, "--json"]) == 0
    return json.loads(out.getvalue())


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="p", storage=url)


def test_a_study_whose_best_is_the_baseline_says_so(study_db):
    _, first = study_db
    assert first["trial"] == 0
    assert first["baseline"]["trial"] == 0
    assert first["vs_baseline"]["status"] == payoff_maths.BEST_IS_BASELINE
    assert first["vs_baseline"]["delta_dice"] == 0.0
    assert first["vs_baseline"]["iterations_to_baseline_dice"] is None


def test_optimize_stores_every_checkpoints_dice_once_the_budget_is_held(study_db):
    url, _ = study_db
    study = _study(url)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert study.best_trial.number == 1, [t.user_attrs["final_dice"] for t in trials]
    for trial in trials:
        stored = study.user_attrs[f"checkpoint_dice.{trial.number}"]
        assert list(stored["dice"]) == ["3", "6", "9", "12"]
        # the final model's is the trial's own score; the others were segmented again
        assert stored["dice"]["12"] == pytest.approx(trial.user_attrs["final_dice"], abs=1e-5)
        assert all(0.0 <= d <= 1.0 for d in stored["dice"].values())
        assert stored["seconds"] > 0
        model = Path(trial.user_attrs["run_dir"]) / "model"
        segmented = [p.name for p in model.glob("segmentation-*")]
        assert sorted(segmented) == ["segmentation-3", "segmentation-6", "segmentation-9"]
    assert study.user_attrs["payoff"] == {"baseline_trial": 0, "best_trial": 1, "trials": [0, 1]}


def test_best_json_has_the_baseline_and_the_speed_up(study_db):
    url, _ = study_db
    study = _study(url)
    base, best = (t.user_attrs["final_dice"] for t in study.get_trials())
    found = _best_json(url)
    assert found["baseline"] == {"trial": 0, "final_dice": base, "max_iter": MAX_ITER}
    vs = found["vs_baseline"]
    assert vs["delta_dice"] == pytest.approx(best - base)
    curve = payoff_maths.curve_from_json(study.user_attrs["checkpoint_dice.1"]["dice"])
    expected = payoff_maths.compare(0, base, 1, best, MAX_ITER, curve)
    assert vs["status"] == expected.status
    assert vs["iterations_to_baseline_dice"] == expected.iterations
    assert vs["fraction_of_budget"] == expected.fraction
    assert vs["checkpoint_seconds"] == pytest.approx(
        study.user_attrs["checkpoint_dice.0"]["seconds"]
        + study.user_attrs["checkpoint_dice.1"]["seconds"])


def test_best_prints_the_vs_your_config_line_and_payoff_recomputes_what_is_missing(
        study_db, capsys):
    url, _ = study_db
    assert cli.main(["best", "--storage", url]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "vs your config" in x)
    assert re.search(r"vs your config \(trial 0, Dice \d\.\d{3}\): [+-]\d\.\d{3} Dice at 12 "
                     r"iterations; .*\[checkpoints segmented in [\d,]+ s\]", line), line
    study = _study(url)
    before = study.user_attrs["checkpoint_dice.1"]["dice"]
    study.set_user_attr("checkpoint_dice.1", None)  # as if never segmented
    assert cli.main(["best", "--storage", url, "--payoff"]) == 0
    out = capsys.readouterr().out
    assert "Segmenting the validation subjects with every checkpoint" in out
    assert _study(url).user_attrs["checkpoint_dice.1"]["dice"] == before  # read back


def test_status_has_the_delta_vs_config_column(study_db, capsys):
    url, _ = study_db
    base, best = (t.user_attrs["final_dice"] for t in _study(url).get_trials())
    assert cli.main(["status", "--storage", url]) == 0
    header, row = capsys.readouterr().out.splitlines()[1:3]
    assert "Δ Dice vs config" in header
    assert f"{best - base:+.4f}" in row


def test_report_opens_with_the_vs_config_panel(study_db, tmp_path):
    url, _ = study_db
    target = tmp_path / "report.html"
    assert cli.main(["report", "--storage", url, "-o", str(target)]) == 0
    page = target.read_text()
    panel = page.index('<section id="vs-config">')
    assert panel < page.index('id="top-lr"')  # the headline, above every other figure
    section = page[panel:page.index("</section>", panel)]
    assert "Δ Dice at equal budget (12 iterations)" in section
    assert "iterations to your config&#x27;s final Dice" in section or \
        "iterations to your config's final Dice" in section
    assert 'id="payoff"' in section  # the Dice-vs-iteration figure
    assert "best (trial 1)" in section and "your config (trial 0)" in section


def test_the_best_trials_dashboard_note_has_the_line(study_db):
    from optuna_dashboard import get_note

    url, _ = study_db
    study = _study(url)
    note = get_note(optuna.trial.Trial(study, study.get_trials()[1]._trial_id))
    assert "vs your config" in note and "Best trial" in note
