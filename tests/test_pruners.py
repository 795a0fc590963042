"""The pruners lrsearch writes (learning-curve extrapolation, one rung keeping the top-k) and the
ones it configures (Hyperband): real in-memory Optuna studies fed stored curves with known
answers."""

from __future__ import annotations

import math
import time

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from lrsearch.errors import SpaceError
from lrsearch.monitor.records import HOLD_KEYS
from lrsearch.paths import DEFAULT_SPACE
from lrsearch.search.pruners import CurvePruner, TopKRungPruner, forecast
from lrsearch.search.space import load_space, parse_space
from lrsearch.search.strategy import make_pruner, pruned_because

optuna.logging.set_verbosity(optuna.logging.WARNING)

MAX_ITER = 200
STEPS = list(range(10, MAX_ITER + 1, 10))  # a validation round every 10 iterations
# the validation noise NiftyNet's few random windows give: ±0.07 alternating, mean 0
NOISE = [0.07 * (-1) ** k for k in range(len(STEPS))]


def curve(level: float, rise: float = 0.0, rate: float = 4.0, noise: list[float] | None = None,
          until: int = MAX_ITER) -> dict[int, float]:
    """A saturating Dice curve ``level - rise * exp(-rate * t)`` with ``t = step / MAX_ITER``."""
    noise = noise or [0.0] * len(STEPS)
    return {s: level - rise * math.exp(-rate * s / MAX_ITER) + e
            for s, e in zip(STEPS, noise, strict=True) if s <= until}


def study_with(complete: list[dict[int, float]], pruner: optuna.pruners.BasePruner
               ) -> optuna.Study:
    """A study holding ``complete`` trials (each valued its mean of the last three rounds)."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for values in complete:
        last = [values[s] for s in sorted(values)[-3:]]
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(np.mean(last)),
                                     intermediate_values=values))
    return study


def verdict(study: optuna.Study, values: dict[int, float]) -> bool:
    """Does the study's pruner stop a running trial that has reported ``values``?"""
    trial = study.ask()
    for step, value in sorted(values.items()):
        trial.report(value, step)
    return trial.should_prune()


def curve_study(startup: int = 3) -> optuna.Study:
    # the best complete trial ends at 0.80; two worse ones
    done = [curve(0.80, 0.5), curve(0.70, 0.5, noise=NOISE), curve(0.60, 0.4)]
    return study_with(done, CurvePruner(MAX_ITER, warmup_steps=50, startup_trials=startup))


def test_forecast_recovers_a_clean_saturating_curve():
    points = sorted(curve(0.85, 0.6, until=100).items())
    seen = forecast(points, MAX_ITER)
    assert seen is not None
    truth = 0.85 - 0.6 * math.exp(-4)
    assert seen.models["exp3"] == pytest.approx(truth, abs=1e-4)  # the curve's own model
    # the other models extrapolate differently: their spread is the forecast's uncertainty
    assert set(seen.models) == {"pow3", "exp3", "log_power"}
    assert abs(seen.mean - truth) < seen.sigma < 0.05
    assert forecast(points[:3], MAX_ITER) is None  # no spare point to measure the noise


def test_curve_heading_below_the_best_is_pruned():
    study = curve_study()
    assert verdict(study, curve(0.45, 0.3, until=100))
    reason = pruned_because(study, study.trials[-1])
    assert "below the best trial's 0.789" in reason and "learning-curve" in reason


def test_rising_curve_forecast_to_beat_the_best_is_kept():
    rising = curve(0.88, 0.8, until=100)
    assert rising[100] < 0.80  # its last round is still below the best trial's end
    assert not verdict(curve_study(), rising)


def test_curve_seen_only_while_it_rises_is_too_uncertain_to_prune():
    """Six rounds of a slow climb, the last at 0.50, far below the best trial's 0.79: the fits
    do not pin its ceiling down (pow3 says 0.61, exp3 0.79), so the forecast's sigma is wide."""
    slow = curve(0.9, 0.7, rate=2, noise=[0.02 * (-1) ** k for k in range(len(STEPS))], until=60)
    assert max(slow.values()) < 0.5
    seen = forecast(sorted(slow.items()), MAX_ITER)
    assert seen is not None and seen.sigma > 0.2
    assert not verdict(curve_study(), slow)


def test_noisy_flat_curve_within_sigma_is_kept_and_the_same_curve_without_noise_is_not():
    assert not verdict(curve_study(), curve(0.74, noise=NOISE, until=100))
    assert verdict(curve_study(), curve(0.74, until=100))


def test_curve_pruner_waits_for_startup_trials_warmup_and_spares_the_last_round():
    bad = curve(0.3, 0.2)
    assert not verdict(curve_study(startup=4), {s: v for s, v in bad.items() if s <= 100})
    assert not verdict(curve_study(), {s: v for s, v in bad.items() if s < 50})
    assert verdict(curve_study(), {s: v for s, v in bad.items() if s <= 50})
    study = curve_study()
    trial = study.ask()
    for step, value in bad.items():
        trial.report(value, step)
    assert not study.pruner.prune(study, study.trials[-1])  # at MAX_ITER: nothing to save


def test_top_k_rung_keeps_exactly_the_top_k_at_the_rung():
    pruner = make_pruner(MAX_ITER, warmup_fraction=0.25, kind="top_k_rung", top_k=3)
    assert isinstance(pruner, TopKRungPruner) and pruner.rung_step == 50
    at_rung = [0.50, 0.72, 0.31, 0.90, 0.66, 0.80, 0.45, 0.58]
    study = study_with([], pruner)
    for value in at_rung:  # every trial has reached the rung, none judged yet
        study.add_trial(create_trial(state=TrialState.RUNNING,
                                     intermediate_values={40: 0.1, 50: value}))
    kept = [t.intermediate_values[50] for t in study.trials if not pruner.prune(study, t)]
    assert sorted(kept) == [0.72, 0.80, 0.90]
    pruned = next(t for t in study.trials if t.intermediate_values[50] == 0.31)
    assert pruned_because(study, pruned).startswith("ranked 8 of the 8 trials at the rung")


def test_top_k_rung_judges_once_and_by_share_without_top_k():
    pruner = make_pruner(MAX_ITER, warmup_fraction=0.25, kind="top_k_rung", reduction_factor=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    decisions = {}
    for number, dice in enumerate([0.9, 0.5, 0.95, 0.4, 0.3, 0.2, 0.85, 0.97, 0.1]):
        trial = study.ask()
        trial.report(dice, 40)
        early = trial.should_prune()
        trial.report(dice, 50)
        at_rung = trial.should_prune()
        trial.report(0.0, 60)  # past the rung: never judged again
        decisions[number] = (early, at_rung, trial.should_prune())
        study.tell(trial, state=TrialState.PRUNED) if at_rung else study.tell(trial, dice)
    assert not any(early or later for early, _, later in decisions.values())
    # each kept trial is within the best third (at least the best) of those at the rung then
    assert [n for n, (_, pruned, _) in decisions.items() if not pruned] == [0, 2, 7]


def test_top_k_rung_counts_a_failed_trial_and_its_retry_as_one_rival(tmp_path):
    # Optuna's own retry, as a dead worker's trial gets it: a heartbeat goes stale, Optuna
    # fails the trial and queues a retry that inherits its reports (a real SQLite storage).
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1,
        failed_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            inherit_intermediate_values=True))
    pruner = TopKRungPruner(rung_step=50, max_iter=MAX_ITER, top_k=2)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    dead = study.ask()
    dead.report(0.90, 50)  # reached the rung, went on, then its worker died
    storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    failed, retry = study.get_trials(deepcopy=False)
    assert failed.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.intermediate_values == {50: 0.90}  # the same run, once
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.85,
                                 intermediate_values={50: 0.85}))
    trial = study.ask()  # the retry is taken first; a new trial after it
    assert trial.number == retry.number
    newcomer = study.ask()
    newcomer.report(0.87, 50)
    # rivals: 0.90 (the retry; its failed original is not a second one) and 0.85: 2nd of 3
    assert not newcomer.should_prune()
    low = study.ask()
    low.report(0.86, 50)
    assert low.should_prune()
    frozen = study.get_trials(deepcopy=False)[-1]
    assert pruned_because(study, frozen).startswith("ranked 3 of the 4 trials at the rung")


@pytest.mark.parametrize(("factor", "brackets"), [(2, 3), (3, 2), (4, 2)])
def test_hyperband_has_brackets_from_the_warmup_to_the_last_iteration(factor, brackets):
    pruner = make_pruner(MAX_ITER, warmup_fraction=0.25, kind="hyperband",
                         reduction_factor=factor)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    trial.report(0.5, 10)
    assert not trial.should_prune()  # the first call sets the brackets up
    assert pruner._n_brackets == brackets
    first_rungs = [50 * factor ** p._min_early_stopping_rate for p in pruner._pruners]
    assert first_rungs == [50 * factor ** b for b in range(brackets)]
    assert all(p._min_resource == 50 and p._reduction_factor == factor for p in pruner._pruners)


@pytest.mark.parametrize(("table", "message"), [
    ('kind = "hyperbnd"', "[pruner] kind must be one of 'asha', 'hyperband', 'median', 'curve', "
                          "'top_k_rung', 'none', but got 'hyperbnd' (did you mean 'hyperband'?)"),
    ("sigmas = -1", "[pruner] sigmas must be a number >= 0, but got -1"),
    ('sigmas = "two"', "[pruner] sigmas must be a number >= 0, but got 'two'"),
    ("sigmas = nan", "[pruner] sigmas must be a number >= 0, but got nan"),
    ("top_k = 0", "[pruner] top_k must be a positive integer, but got 0"),
    ("top_k = true", "[pruner] top_k must be a positive integer, but got True"),
    ("top_k = 2.5", "[pruner] top_k must be a positive integer, but got 2.5"),
    ("sigma = 1", "unknown key 'sigma' in [pruner] (did you mean 'sigmas'?)"),
    ("after_warmup = 1", "[pruner] after_warmup must be true or false, but got 1"),
    ("hold_until = -1", "[pruner] hold_until must be a non-negative integer, but got -1"),
    ('kind = "median"\nhold_until = 10',
     "[pruner] hold_until is a top_k_rung option, but kind is 'median': remove it or set "
     "kind = \"top_k_rung\""),
    ('kind = "asha"\nafter_warmup = true',
     "[pruner] after_warmup is a top_k_rung option, but kind is 'asha': remove it or set "
     "kind = \"top_k_rung\""),
])
def test_bad_pruner_values_get_one_line(table, message):
    import tomllib

    doc = tomllib.loads(f'[study]\nfamilies = ["constant"]\nbase_lr = [1e-5, 1e-1]\n'
                        f'[pruner]\n{table}\n')
    with pytest.raises(SpaceError) as info:
        parse_space(doc, "space.toml")
    assert str(info.value) == f"space.toml: {message}"


def test_new_pruner_keys_load():
    doc = {"study": {"families": ["constant"], "base_lr": [1e-5, 1e-1]},
           "pruner": {"kind": "curve", "sigmas": 2, "top_k": 4}}
    space = parse_space(doc)
    assert (space.pruner, space.pruner_sigmas, space.pruner_top_k) == ("curve", 2.0, 4)
    pruner = make_pruner(MAX_ITER, space.pruner_startup_trials, space.pruner_warmup_fraction,
                         space.pruner, space.pruner_reduction_factor, space.pruner_sigmas,
                         space.pruner_top_k)
    assert isinstance(pruner, CurvePruner)
    assert (pruner.sigmas, pruner.warmup_steps, pruner.startup_trials) == (2.0, 50, 5)


@pytest.mark.slow
def test_curve_study_on_niftynet_prunes_a_searched_trial_and_never_the_baseline(tmp_path, capsys):
    """A real study with ``kind = "curve"``: a stored trial ended at Dice 1.0 and no sigma of
    slack is given, so every forecast falls short of it. The config baseline (trial 1) still
    trains through, the searched trial (trial 2) is stopped by the forecast."""
    from lrsearch import cli
    from tests.tiny import TINY_SPACE, tiny_config

    max_iter, every = 10, 2  # rounds at 2, 4, 6, 8, 10: judged at 8 (four rounds)
    config = tiny_config(tmp_path, validate_every=every)
    space = tmp_path / "curve.toml"
    text = TINY_SPACE.read_text().replace('kind = "median"', 'kind = "curve"\nsigmas = 0')
    space.write_text(text.replace("startup_trials = 1 ", "startup_trials = 0 "))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="c", storage=storage, direction="maximize")
    study.add_trial(create_trial(value=1.0, intermediate_values={i: 1.0 for i in range(1, 11)}))

    code = cli.main(["optimize", "-c", str(config), "--space", str(space), "--storage", storage,
                     "--study", "c", "--trials", "3", "--max-iter", str(max_iter), "--jobs", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    trials = optuna.load_study(study_name="c", storage=storage).trials
    baseline, searched = trials[1], trials[2]
    assert baseline.user_attrs["baseline"] == "config"
    assert baseline.state == TrialState.COMPLETE, baseline.user_attrs.get("stop_reason")
    assert sorted(baseline.intermediate_values) == [2, 4, 6, 8, 10]
    assert searched.state == TrialState.PRUNED, searched.intermediate_values
    reason = searched.user_attrs["stop_reason"]
    assert reason.startswith("pruned at iteration 8: ") and "learning-curve" in reason, reason


def test_no_trial_is_judged_at_its_last_iteration():
    """Successive halving with its first rung at the last iteration (warmup_fraction 1) would
    stop a trial that has already trained to the end; the trial's reporting never asks there."""
    from lrsearch.monitor.progress import QUIET, Progress
    from lrsearch.run.trial import _Progress, _report

    study = optuna.create_study(direction="maximize", pruner=make_pruner(
        MAX_ITER, warmup_fraction=1.0, kind="asha"))
    observer = Progress(3, QUIET)
    first = study.ask()  # judged (no last iteration known): the best so far, it goes on
    assert _report(first, (MAX_ITER, 0.9), _Progress(), observer) is None
    study.tell(first, 0.9)
    worse = study.ask()
    assert _report(worse, (MAX_ITER, 0.5), _Progress(max_iter=MAX_ITER), observer) is None
    # asked there, the pruner would have stopped it
    assert _report(study.ask(), (MAX_ITER, 0.5), _Progress(), observer).startswith(
        f"pruned at iteration {MAX_ITER}: validation Dice 0.5000 not within the best 1/3")


def test_top_k_rung_judges_a_trial_still_warming_up_once_it_has_warmed_up():
    """With ``not_before``, a trial whose schedule peaks after the rung is judged at its first
    report once warmed up, against the others there (or, stopped earlier, at their last)."""
    warm_up = {0: 1, 1: 1, 2: 1, 3: 1, 4: 30, 5: 30, 6: 30}  # by trial number
    pruner = make_pruner(MAX_ITER, warmup_fraction=0.05, kind="top_k_rung", top_k=2,
                         not_before=lambda t: warm_up[t.number])
    study = study_with([], pruner)
    # two went on from the rung (10) and reached 30; two were stopped at the rung
    for values in ({10: 0.6, 20: 0.7, 30: 0.75, 200: 0.8}, {10: 0.5, 20: 0.6, 30: 0.7, 200: 0.75},
                   {10: 0.3}, {10: 0.2}):
        study.add_trial(create_trial(state=TrialState.COMPLETE if 200 in values else
                                     TrialState.PRUNED, value=values.get(200),
                                     intermediate_values=values))
    rounds = {4: {10: 0.1, 20: 0.4, 30: 0.72}, 5: {10: 0.1, 20: 0.4, 30: 0.65},
              6: {10: 0.25, 20: 0.35}}
    for number, values in rounds.items():
        trial = study.ask()
        assert trial.number == number
        for step, value in sorted(values.items()):
            trial.report(value, step)
            judged = pruner.standing(study, study._storage.get_trial(trial._trial_id))
            assert (judged is not None) == (step == 30)  # not at the rung: still warming up
        pruned = trial.should_prune()
        frozen = study._storage.get_trial(trial._trial_id)
        if number == 5:
            assert pruned_because(study, frozen) == (
                "ranked 4 of the 6 trials at the rung (iteration 30, once its schedule had "
                "warmed up); only the best 2 go on (one rung, top-k)")
        study.tell(trial, state=TrialState.PRUNED) if pruned else study.tell(trial, 0.7)
        # 0.72 ranks 2nd of 0.75, 0.70, 0.30, 0.20; then 0.65 4th (trial 4 went on, at 0.72);
        # trial 6 is still warming up at its last report
        assert pruned == (number == 5)
    # without it, the same trial is judged at the rung (10), where it ranks last
    plain = make_pruner(MAX_ITER, warmup_fraction=0.05, kind="top_k_rung", top_k=2)
    study = study_with([], plain)
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.8,
                                 intermediate_values={10: 0.6, 30: 0.75, 200: 0.8}))
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={10: 0.3}))
    assert verdict(study, {10: 0.1})


def test_a_trials_warm_up_ends_where_its_schedule_first_peaks():
    space = load_space(DEFAULT_SPACE)
    study = optuna.create_study()
    cases = [({"family": "constant", "base_lr": 1e-3, "warmup.enabled": False}, 0),
             ({"family": "constant", "base_lr": 1e-3, "warmup.enabled": True,
               "warmup.iters_frac": 0.05, "warmup.start_factor": 0.1}, 10),
             ({"family": "one_cycle", "base_lr": 1e-2, "one_cycle.pct_start": 0.3,
               "one_cycle.anneal_strategy": "cos", "one_cycle.div_factor": 25.0,
               "one_cycle.final_div_factor": 1e4, "one_cycle.three_phase": False}, 59),
             ({"family": "cyclic", "base_lr": 1e-2, "cyclic.mode": "triangular",
               "cyclic.lower_ratio": 0.1, "cyclic.step_frac": 0.1}, 20)]
    for params, warmed_up in cases:
        study.enqueue_trial(params)
        trial = study.ask()
        space.suggest(trial, MAX_ITER)
        study.tell(trial, 0.5)
        assert space.warmed_up(study.trials[-1], MAX_ITER) == warmed_up, params


def test_a_study_with_after_warmup_judges_by_its_own_space(tmp_path):
    """``after_warmup = true`` in a study's [pruner] gives its pruner the space's warm-up
    lengths at the study's iterations; the default leaves it without."""
    from lrsearch.run import study as run_study
    from lrsearch.run.plan import StudyOptions
    from tests.tiny import TINY_SPACE, tiny_config

    config = tiny_config(tmp_path)
    studies = []
    for name, extra in (("plain", ""), ("after", "after_warmup = true\n")):
        space = tmp_path / f"{name}.toml"
        space.write_text(TINY_SPACE.read_text().split("[pruner]")[0] + "[warmup]\n"
                         "enabled = [true]\niters_frac = [0.2, 0.2]\nstart_factor = [0.1, 0.1]\n"
                         '[pruner]\nkind = "top_k_rung"\nwarmup_fraction = 0.1\n' + extra)
        plan = run_study.prepare(StudyOptions(config, space, study_name=name,
                                              storage_url=f"sqlite:///{tmp_path / 's.db'}"))
        studies.append(run_study.load_or_create(plan))
    plain, after = studies
    assert plain.pruner.not_before is None
    trial = after.ask()
    load_space(tmp_path / "after.toml").suggest(trial, 20)
    frozen = after._storage.get_trial(trial._trial_id)
    assert after.pruner.judged_at(frozen) == 4  # a warm-up of 20 % of the tiny study's 20
    assert after.pruner.rung_step == 2


def _run_to_rung(study: optuna.Study, dice: float, step: int = 10) -> tuple[int, str]:
    """One trial as lrsearch runs it, to the rung: reports ``dice`` there, and is held (marked
    ``held_at``), pruned or goes on (and completes); its number and what happened."""
    from lrsearch.search.strategy import is_held

    trial = study.ask()
    trial.set_user_attr("seed", 1000 + trial.number)
    trial.report(dice, step)
    if not trial.should_prune():
        study.tell(trial, dice)
        return trial.number, "on"
    frozen = study._storage.get_trial(trial._trial_id)
    outcome = "held" if is_held(study, frozen) else "pruned"
    if outcome == "held":
        trial.set_user_attr("held_at", step)
    study.tell(trial, state=TrialState.PRUNED)
    return trial.number, outcome


def test_top_k_rung_holds_the_first_trials_and_continues_the_best_once_enough_reached():
    from lrsearch.run.workers import budget, enqueue_continuations

    pruner = make_pruner(MAX_ITER, warmup_fraction=0.05, kind="top_k_rung", top_k=2,
                         hold_until=4, keys=HOLD_KEYS)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    # the first three reach the rung with fewer than 4 there: the top 2 are held, not let on
    assert _run_to_rung(study, 0.5) == (0, "held")
    assert pruned_because(study, study.trials[0]) == (
        "ranked 1 of the 1 trials at the rung (iteration 10), too few to judge: it goes on, "
        "re-run with its seed, if among the best 2 once 4 have reached the rung")
    assert [_run_to_rung(study, d) for d in (0.7, 0.3)] == [(1, "held"), (2, "pruned")]
    assert enqueue_continuations(study) == []
    # the fourth is judged among 4: second, it goes on; of the held two, only 0.7 is in the
    # top 2 now (0.7, 0.6), and it is queued again with its parameters and seed
    assert _run_to_rung(study, 0.6) == (3, "on")
    assert enqueue_continuations(study) == [1]
    assert enqueue_continuations(study) == []  # queued once
    continuation = study.ask()
    assert continuation.user_attrs == {"continues": 1, "seed": 1001}
    assert continuation.params == study.trials[1].params
    continuation.report(0.7, 10)  # the same run to the rung: not judged, and not a rival
    assert not continuation.should_prune()
    study.tell(continuation, 0.75)
    assert budget(study)[0] == {"complete": 1, "pruned": 3, "failed": 0}  # not a trial of its own
    # later trials are judged among all that reached the rung, the continuation not counted
    assert [_run_to_rung(study, d) for d in (0.8, 0.65)] == [(5, "on"), (6, "pruned")]
    assert enqueue_continuations(study) == []


def test_held_trials_of_a_study_too_short_to_judge_them_are_continued_at_its_end():
    from lrsearch.run.workers import enqueue_continuations

    pruner = make_pruner(MAX_ITER, warmup_fraction=0.05, kind="top_k_rung", top_k=2,
                         hold_until=10, keys=HOLD_KEYS)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    assert [_run_to_rung(study, d)[1] for d in (0.5, 0.7, 0.3, 0.6, 0.4)] == [
        "held", "held", "pruned", "held", "pruned"]
    assert enqueue_continuations(study) == []
    assert enqueue_continuations(study, final=True) == [1, 3]  # the top 2 of the 5
    assert not make_pruner(MAX_ITER, kind="top_k_rung").continuations(study, final=True)


def _holding_study(tmp_path, name: str, trials: int) -> tuple[list[str], str]:
    """A tiny real config searched with top_k_rung (top 2 at 25 % of 20 iterations, the first
    validation) holding until 4 trials reached the rung, and a study ``name`` holding two
    trials stopped there at Dice 0: ``lrsearch optimize``'s arguments for ``trials``, its
    storage."""
    from tests.tiny import TINY_SPACE, tiny_config

    config = tiny_config(tmp_path, validate_every=5)
    space = tmp_path / "hold.toml"
    space.write_text(TINY_SPACE.read_text().split("[pruner]")[0] + '[pruner]\nkind = '
                     '"top_k_rung"\nwarmup_fraction = 0.25\ntop_k = 2\nhold_until = 4\n')
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for _ in range(2):
        study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={5: 0.0}))
    return (["optimize", "-c", str(config), "--space", str(space), "--storage", storage,
             "--study", name, "--trials", str(trials), "--max-iter", "20", "--jobs", "1",
             "--baselines", "none", "--seed", "3"], storage)


@pytest.mark.slow
def test_a_held_trial_is_continued_on_niftynet_repeating_its_run(tmp_path, capsys):
    """A real study with ``hold_until``: two stored trials stopped at the rung (Dice 0) make
    three with the first trial that runs, too few for 4, so it is held; the next one is judged
    among 4 and goes on, and the budget is then spent: the held trial, in the top 2, is
    continued, repeating its run to the rung exactly (its seed) and training to the end."""
    from lrsearch import cli

    command, storage = _holding_study(tmp_path, "h", trials=4)
    code = cli.main(command)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    trials = optuna.load_study(study_name="h", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 3 + [TrialState.COMPLETE] * 2
    held, judged, continued = trials[2], trials[3], trials[4]
    assert held.user_attrs["held_at"] == 5
    assert held.user_attrs["stop_reason"].startswith("held at iteration 5: "), held.user_attrs
    assert "held_at" not in judged.user_attrs and sorted(judged.intermediate_values)[-1] == 20
    assert continued.user_attrs["continues"] == 2
    assert continued.params == held.params
    assert continued.user_attrs["seed"] == held.user_attrs["seed"]
    assert continued.intermediate_values[5] == held.intermediate_values[5]  # the same run
    assert sorted(continued.intermediate_values) == [5, 10, 15, 20]
    assert "Trial 2 goes on" in captured.out + captured.err


@pytest.mark.slow
def test_a_timeout_names_the_held_trials_and_the_same_command_continues_them(tmp_path, capsys):
    """A real study with ``hold_until`` stopped by ``--timeout`` after its first trial, which
    was held (three at the rung, too few for 4): the timeout names it; the same command again,
    whose budget is then spent, continues it."""
    from lrsearch import cli

    command, storage = _holding_study(tmp_path, "t", trials=3)

    assert cli.main([*command, "--timeout", "1"]) == 0  # one trial, then the time is up
    first = capsys.readouterr()
    trials = optuna.load_study(study_name="t", storage=storage).trials
    assert len(trials) == 3 and trials[2].user_attrs["held_at"] == 5
    assert ("Held at the rung and not continued before the timeout: trial 2 (among the best "
            "there). The same command again continues it once 4 trials have reached the rung "
            "or --trials are spent.") in first.out + first.err

    assert cli.main(command) == 0  # 3 trials spent: the held one is continued
    again = capsys.readouterr()
    trials = optuna.load_study(study_name="t", storage=storage).trials
    assert len(trials) == 4 and trials[3].user_attrs["continues"] == 2
    assert trials[3].state == TrialState.COMPLETE
    assert "Trial 2 goes on" in again.out + again.err
    assert "not continued" not in again.out + again.err
