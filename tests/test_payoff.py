"""The speed-up arithmetic of the best trial against the user's config, on stored checkpoint
Dice with known answers (no training: lrsearch.search.payoff does no I/O)."""

from __future__ import annotations

import pytest

from lrsearch.search import payoff
from lrsearch.search.payoff import compare, curve_from_json, curve_to_json

MAX_ITER = 200
BASELINE = 0.781


def _compare(curve, best_trial=3, best_dice=0.827, seconds=None):
    return compare(0, BASELINE, best_trial, best_dice, MAX_ITER, curve, seconds)


def test_reaches_the_baseline_dice_at_the_first_checkpoint_that_does():
    result = _compare({50: 0.61, 100: 0.781, 150: 0.80, 200: 0.827}, seconds=42.0)
    assert result.status == payoff.MEASURED
    assert result.iterations == 100  # equal counts as reached
    assert result.fraction == pytest.approx(0.5)
    assert result.delta_dice == pytest.approx(0.046)
    assert result.line() == (
        "vs your config (trial 0, Dice 0.781): +0.046 Dice at 200 iterations; reaches 0.781 "
        "at iteration 100 (50% of the budget) [checkpoints segmented in 42 s]")
    as_json = result.to_json()
    assert as_json["baseline"] == {"trial": 0, "final_dice": BASELINE, "max_iter": MAX_ITER}
    assert as_json["vs_baseline"]["iterations_to_baseline_dice"] == 100
    assert as_json["vs_baseline"]["fraction_of_budget"] == pytest.approx(0.5)
    assert as_json["vs_baseline"]["delta_dice"] == pytest.approx(0.046)
    assert as_json["vs_baseline"]["checkpoint_seconds"] == 42.0


def test_not_reached_is_an_answer():
    result = _compare({50: 0.5, 100: 0.7, 150: 0.75, 200: 0.77}, best_dice=0.77)
    assert result.status == payoff.NOT_REACHED
    assert result.iterations is None and result.fraction is None
    assert result.delta_dice == pytest.approx(-0.011)
    assert "does not reach 0.781 at any of its 4 checkpoints" in result.line()


def test_fewer_than_four_checkpoints_within_the_budget_are_too_sparse():
    # a checkpoint past max_iter (a longer run's) does not count
    result = _compare({100: 0.79, 150: 0.80, 200: 0.827, 400: 0.9})
    assert result.status == payoff.TOO_SPARSE
    assert result.iterations is None and result.fraction is None
    assert "3 within 200 iterations, 4 needed" in result.reason
    assert "save_every_n <= 50" in result.reason
    assert result.to_json()["vs_baseline"]["delta_dice"] == pytest.approx(0.046)


def test_reached_at_the_first_checkpoint_is_too_sparse_to_time():
    result = _compare({50: 0.79, 100: 0.80, 150: 0.81, 200: 0.827})
    assert result.status == payoff.TOO_SPARSE
    assert result.iterations is None
    assert "already at its first checkpoint (iteration 50)" in result.reason
    assert "save_every_n < 50" in result.reason


def test_best_is_the_baseline_has_no_speed_up():
    result = compare(0, BASELINE, 0, BASELINE, MAX_ITER, None)
    assert result.status == payoff.BEST_IS_BASELINE
    assert result.delta_dice == 0.0 and result.iterations is None
    assert "the best trial is your config itself" in result.line()


def test_without_segmented_checkpoints_only_the_delta_is_known():
    result = _compare(None)
    assert result.status == payoff.NOT_COMPUTED
    assert result.delta_dice == pytest.approx(0.046)
    assert "lrsearch best --payoff" in result.line()


def test_stored_curves_round_trip_through_json_string_keys():
    stored = curve_to_json({100: 0.8123456, 50: 0.5})
    assert stored == {"50": 0.5, "100": 0.81235}
    assert list(stored) == ["50", "100"]
    assert curve_from_json(stored) == {50: 0.5, 100: 0.81235}
    assert curve_from_json({"x": 1}) is None and curve_from_json(None) is None


def test_the_read_model_finds_the_baseline_and_the_stored_checkpoint_dice(tmp_path):
    """A real SQLite study with what trials and the payoff store (no training)."""
    import optuna

    from lrsearch.monitor.records import study_info

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    study.set_user_attr("max_iter", MAX_ITER)
    for dice, attrs in [(0.70, {}), (BASELINE, {"baseline": "config"}), (0.827, {})]:
        trial = study.ask()
        for key, value in {"final_dice": dice, **attrs}.items():
            trial.set_user_attr(key, value)
        study.tell(trial, dice)
    info = study_info(study)
    assert info.config_baseline().number == 1
    assert info.payoff().status == payoff.NOT_COMPUTED
    study.set_user_attr("checkpoint_dice.1", {"dice": {"50": 0.5}, "seconds": 10.0})
    study.set_user_attr("checkpoint_dice.2", {"dice": curve_to_json(
        {50: 0.6, 100: 0.79, 150: 0.8, 200: 0.827}), "seconds": 12.5})
    result = study_info(study).payoff()
    assert (result.baseline_trial, result.best_trial) == (1, 2)
    assert result.status == payoff.MEASURED and result.iterations == 100
    assert result.seconds == pytest.approx(22.5)  # both trials' checkpoints


# --- on means, once the best schedule and the config have repeats ------------------------------

CONFIG_RUNS = {0: 0.78, 1: 0.76, 2: 0.80}  # mean 0.78


def test_on_means_the_mean_curve_times_the_config_mean_and_each_seed_its_own_run():
    best_runs = {0: 0.83, 1: 0.81, 2: 0.82}  # mean 0.82
    curves = {0: {50: 0.60, 100: 0.79, 150: 0.80, 200: 0.83},
              1: {50: 0.55, 100: 0.74, 150: 0.77, 200: 0.81},
              2: {50: 0.62, 100: 0.78, 150: 0.81, 200: 0.82}}
    # mean curve: 50: 0.59, 100: 0.77, 150: 0.7933, 200: 0.82 → reaches 0.78 at 150
    result = payoff.compare_means(0, CONFIG_RUNS, 4, best_runs, MAX_ITER, curves, seconds=90.0)
    assert result.on_means and (result.best_runs, result.baseline_runs) == (3, 3)
    assert result.baseline_dice == pytest.approx(0.78)
    assert result.delta_dice == pytest.approx(0.04)
    assert result.status == payoff.MEASURED and result.iterations == 150
    assert result.fraction == pytest.approx(0.75)
    # seed by seed: run 0 reaches 0.78 at 100, run 1 reaches 0.76 at 150, run 2 0.80 at 150
    assert result.by_round == ((0, 100), (1, 150), (2, 150))
    assert result.line() == (
        "vs your config (trial 0, mean Dice 0.780 over 3 runs): +0.040 mean Dice at 200 "
        "iterations; the mean of trial 4's 3 runs reaches 0.780 at iteration 150 (75% of the "
        "budget); seed by seed, each run reaches your config's run: 100, 150, 150 "
        "[checkpoints segmented in 90 s]")
    vs = result.to_json()["vs_baseline"]
    assert vs["basis"] == "means" and vs["runs"] == 3 and vs["baseline_runs"] == 3
    assert vs["iterations_to_baseline_dice"] == 150
    assert vs["iterations_to_baseline_dice_by_round"] == {"0": 100, "1": 150, "2": 150}
    assert result.to_json()["baseline"]["final_dice"] == pytest.approx(0.78)


def test_on_means_not_reached_and_a_run_that_reaches_at_its_first_checkpoint():
    best_runs = {0: 0.79, 1: 0.77, 2: 0.76}  # mean 0.7733
    curves = {0: {50: 0.79, 100: 0.70, 150: 0.75, 200: 0.79},
              1: {50: 0.50, 100: 0.70, 150: 0.75, 200: 0.77},
              2: {50: 0.55, 100: 0.70, 150: 0.74, 200: 0.76}}
    result = payoff.compare_means(0, CONFIG_RUNS, 4, best_runs, MAX_ITER, curves)
    assert result.status == payoff.NOT_REACHED and result.iterations is None
    assert result.by_round == ((0, 50), (1, 200), (2, None))
    assert result.line().endswith(
        "the mean of trial 4's 3 runs does not reach 0.780 at any of its 4 checkpoints; seed "
        "by seed, each run reaches your config's run: ≤50, 200, not reached")


def test_on_means_a_run_not_segmented_yet_leaves_the_speed_up_not_computed():
    curves = {0: {50: 0.6, 100: 0.79, 150: 0.8, 200: 0.83}, 1: None}
    result = payoff.compare_means(0, {0: 0.78, 1: 0.76}, 4, {0: 0.83, 1: 0.81}, MAX_ITER,
                                  curves)
    assert result.status == payoff.NOT_COMPUTED
    assert result.delta_dice == pytest.approx(0.05)  # the means are known without checkpoints
    assert "checkpoints of 1 of its 2 runs not segmented yet" in result.reason


def test_on_means_the_config_leading_has_no_speed_up():
    result = payoff.compare_means(0, CONFIG_RUNS, 0, CONFIG_RUNS, MAX_ITER, {})
    assert result.status == payoff.BEST_IS_BASELINE and result.delta_dice == 0
