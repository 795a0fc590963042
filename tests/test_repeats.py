"""Finalist repeats and the verdict with uncertainty, without training: the paired arithmetic
on known answers, what a real SQLite study stores and shows (``best --json``), queueing
(linked, seed-paired, idempotent) and the sampler that never sees a repeat.

The trained end of it (real NiftyNet, a kill in the middle of a repeat) is in
tests/test_repeats_study.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from lrsearch import cli
from lrsearch.errors import SpaceError
from lrsearch.monitor.records import study_info
from lrsearch.results.report import render_html
from lrsearch.run import repeats as run_repeats
from lrsearch.run import study as run_study
from lrsearch.run.plan import StudyOptions
from lrsearch.run.workers import _requeue, budget, is_repeat, trial_setup
from lrsearch.search import repeats
from lrsearch.search.schedules import Constant
from lrsearch.search.space import parse_space
from lrsearch.search.strategy import BlindSampler, make_sampler
from tests.tiny import TINY_SPACE, tiny_config

T_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (any t table)
T_975_1 = 12.706204736174705  # ... 1 degree of freedom


# --- arithmetic ---------------------------------------------------------------------------------

def test_mean_spread_and_runs():
    runs = repeats.Runs(4, {0: 0.81, 1: 0.73, 2: 0.79})
    assert runs.runs == 3
    assert runs.mean == pytest.approx(0.7766666666)
    assert runs.spread == pytest.approx(0.08)
    assert repeats.Runs(4, {0: 0.5}).spread == 0.0


def test_a_gain_whose_paired_interval_lies_above_zero():
    best = repeats.Runs(5, {0: 0.80, 1: 0.82, 2: 0.84}, "cosine, base lr 3e-3")
    mine = repeats.Runs(0, {0: 0.78, 1: 0.79, 2: 0.80}, "constant, base lr 1e-3",
                        "your config")
    verdict = repeats.decide([best], mine)
    half = T_975_2 * 0.01 / math.sqrt(3)  # differences 0.02, 0.03, 0.04: sd 0.01
    assert verdict.status == repeats.GAIN
    assert verdict.winner == best
    assert verdict.delta_mean == pytest.approx(0.03)
    assert verdict.comparison.rounds == (0, 1, 2)
    low, high = verdict.comparison.interval
    assert (low, high) == (pytest.approx(0.03 - half), pytest.approx(0.03 + half))
    assert verdict.line() == (
        f"trial 5 beats your config: mean Dice 0.8200 over 3 runs vs your config's 0.7900 over "
        f"3; Δ +0.0300, 95% paired t-interval [{0.03 - half:+.4f}, {0.03 + half:+.4f}] over 3 "
        f"seed-paired rounds")


def test_no_measurable_gain_names_no_winner():
    best = repeats.Runs(5, {0: 0.85, 1: 0.80, 2: 0.81})
    mine = repeats.Runs(0, {0: 0.80, 1: 0.81, 2: 0.79}, label="your config")
    verdict = repeats.decide([best, repeats.Runs(7, {0: 0.70})], mine)
    half = T_975_2 * 0.03 / math.sqrt(3)  # differences 0.05, -0.01, 0.02: sd 0.03
    assert verdict.status == repeats.NO_GAIN
    assert verdict.winner is None
    assert verdict.comparison.interval == (pytest.approx(0.02 - half),
                                           pytest.approx(0.02 + half))
    assert verdict.line().startswith("no measurable gain over your config at this budget "
                                     "(highest mean: trial 5, mean Dice 0.8200 over 3 runs")
    assert "includes 0" in verdict.line()
    assert [r.trial for r in verdict.ranked] == [5, 0, 7]
    found = verdict.to_json()
    assert found["verdict"]["winner"] is None
    assert found["vs_baseline"]["delta_dice_interval"] == [pytest.approx(0.02 - half),
                                                           pytest.approx(0.02 + half)]


def test_one_run_each_has_no_interval_and_says_so():
    verdict = repeats.decide([repeats.Runs(3, {0: 0.9})],
                             repeats.Runs(0, {0: 0.8}, label="your config"))
    assert verdict.status == repeats.SINGLE_RUN
    assert verdict.comparison.interval is None
    assert verdict.delta_mean == pytest.approx(0.1)
    assert "1 seed-paired round: no interval" in verdict.line()
    assert verdict.to_json()["vs_baseline"]["delta_dice_interval"] is None


def test_only_rounds_both_ran_are_paired_and_the_config_may_lead():
    # the winner's round-2 repeat failed: two pairs remain, t with 1 degree of freedom
    verdict = repeats.decide([repeats.Runs(5, {0: 0.90, 1: 0.86})],
                             repeats.Runs(0, {0: 0.80, 1: 0.80, 2: 0.95}))
    assert verdict.comparison.rounds == (0, 1)
    assert verdict.comparison.differences == (pytest.approx(0.10), pytest.approx(0.06))
    half = T_975_1 * statistics_sd(0.10, 0.06) / math.sqrt(2)
    assert verdict.comparison.interval[0] == pytest.approx(0.08 - half)
    assert verdict.delta_mean == pytest.approx(0.88 - 0.85)  # of the means, not the pairs
    lead = repeats.decide([repeats.Runs(5, {0: 0.7, 1: 0.8})],
                          repeats.Runs(0, {0: 0.8, 1: 0.8}, label="your config"))
    assert lead.status == repeats.CONFIG_LEADS and lead.winner is None
    assert lead.line().startswith("the best mean is your config: trial 0 (your config)")


def statistics_sd(*values: float) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def test_space_keys_and_flags():
    doc = {"study": {"families": ["constant"], "base_lr": [1e-4, 1e-2]}}
    assert (parse_space(doc).finalists, parse_space(doc).repeats) == (3, 2)
    space = parse_space({"study": {**doc["study"], "finalists": 1, "repeats": 0}})
    assert (space.finalists, space.repeats) == (1, 0)
    with pytest.raises(SpaceError, match=r"s.toml: \[study\] repeats must be an integer >= 0, "
                                         r"but got -1"):
        parse_space({"study": {**doc["study"], "repeats": -1}}, "s.toml")


# --- a stored study ------------------------------------------------------------------------------

DIST = {"family": CategoricalDistribution(("constant", "cosine")),
        "base_lr": FloatDistribution(1e-6, 1e-2, log=True)}


def _trial(value, *, baseline=None, repeat_of=None, round_=None, seed=None, params=None,
           state=TrialState.COMPLETE):
    attrs = {"final_dice": value, "schedule": Constant(1e-3).to_dict(),
             "schedule_text": "constant, base lr 1e-3", "wall_seconds": 30.0}
    if baseline:
        attrs["baseline"] = baseline
    if repeat_of is not None:
        attrs.update(repeat_of=repeat_of, repeat_round=round_)
    if seed is not None:
        attrs["seed"] = seed
    params = params if params is not None else ({} if baseline else
                                                {"family": "constant", "base_lr": 1e-3})
    return optuna.trial.create_trial(
        state=state, value=value if state == TrialState.COMPLETE else None, params=params,
        distributions={k: DIST[k] for k in params}, user_attrs=attrs)


@pytest.fixture
def plan(tmp_path):
    options = StudyOptions(tiny_config(tmp_path), TINY_SPACE, study_name="r",
                           storage_url=f"sqlite:///{tmp_path / 'r.db'}", trials=4, seed=7)
    return run_study.prepare(options)


def _stored(plan, values):
    """A study holding ``values``: trial 0 the config baseline, the others searched."""
    study = run_study.load_or_create(plan)
    study.add_trial(_trial(values[0], baseline="config", seed=11))
    for i, value in enumerate(values[1:]):
        study.add_trial(_trial(value, seed=12 + i, params={
            "family": "cosine" if i == 0 else "constant", "base_lr": 1e-3 * (i + 1)}))
    return study


def test_repeats_are_linked_seed_paired_per_round_and_queued_once(plan):
    study = _stored(plan, [0.80, 0.84, 0.70, 0.82])  # searched: 1, 2, 3
    queued = run_repeats.enqueue_repeats(study, plan, k=2, rounds=2)
    # top-2 searched (1: 0.84, 3: 0.82) and the baseline, round by round
    assert queued == [(1, 1), (3, 1), (0, 1), (1, 2), (3, 2), (0, 2)]
    waiting = [t for t in study.get_trials() if is_repeat(t)]
    assert all(t.state == TrialState.WAITING for t in waiting)
    assert [(t.user_attrs["repeat_of"], t.user_attrs["repeat_round"]) for t in waiting] == \
        queued
    seeds = study.user_attrs["repeat_seeds"]
    assert len(set(seeds)) == 2 and not set(seeds) & {11, 12, 13, 14}
    assert [t.user_attrs["seed"] for t in waiting] == [seeds[0]] * 3 + [seeds[1]] * 3
    assert waiting[2].user_attrs["baseline"] == "config"
    assert study.get_trials()[4].system_attrs["fixed_params"] == study.get_trials()[1].params

    # nothing twice: again, or with another worker's connection
    assert run_repeats.enqueue_repeats(study, plan, k=2, rounds=2) == []
    other = run_study.load_or_create(plan)
    assert run_repeats.enqueue_repeats(other, plan, k=2, rounds=2) == []
    # a third round: only it is queued, on a seed of its own; rounds 1 and 2 keep theirs
    assert run_repeats.enqueue_repeats(study, plan, k=2, rounds=3) == [(1, 3), (3, 3), (0, 3)]
    assert study.user_attrs["repeat_seeds"][:2] == seeds
    # repeats do not count toward --trials, and the budget sees them waiting
    counts, running, waiting_count = budget(study)
    assert sum(counts.values()) == 4 and running == 0 and waiting_count == 9

    # a repeat whose worker is stopped is re-queued as the same (trial, round) with its seed
    trial = study.ask()
    assert trial.user_attrs["repeat_of"] == 1
    setup = trial_setup(study, trial, plan)
    assert setup.repeat_of == 1 and not setup.prunable
    assert setup.schedule == Constant(1e-3)  # the original's stored schedule
    assert trial.params == study.get_trials()[1].params
    _requeue(study, trial, "interrupted; the worker was stopped (re-queued)")
    retry = study.get_trials()[-1]
    assert retry.state == TrialState.WAITING
    assert (retry.user_attrs["repeat_of"], retry.user_attrs["repeat_round"],
            retry.user_attrs["seed"]) == (1, 1, seeds[0])
    assert run_repeats.enqueue_repeats(study, plan, k=2, rounds=3) == []
    line = run_repeats.cost_line(study, 20, 2)
    assert line.startswith("Repeating the finalists on fresh seeds (trial 0 (your config), "
                           "trial 1, trial 3): 9 runs × 20 iterations = 180 iterations, about "
                           "270 s of training (mean 30 s per complete trial; 135 s on 2 slots)")


def test_a_baseline_repeat_builds_the_baseline_and_is_never_pruned(plan):
    study = _stored(plan, [0.80, 0.84])
    run_repeats.enqueue_repeats(study, plan, k=1, rounds=1)
    setups = [trial_setup(study, study.ask(), plan) for _ in range(2)]
    assert [(s.repeat_of, s.baseline, s.prunable) for s in setups] == [
        (1, None, False), (0, "config", False)]
    assert setups[1].schedule == Constant(plan.context.config.lr)


def _best_json(url: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["best", "--storage", url, "--json"]) == 0
    return json.loads(out.getvalue())


def test_the_verdict_on_stored_runs_in_best_json_best_and_the_report(plan, capsys):
    study = _stored(plan, [0.78, 0.80, 0.81])  # config 0; searched 1 (0.80), 2 (0.81)
    # single runs: the best single run, no interval
    found = _best_json(plan.storage_url)
    assert found["trial"] == 2
    assert found["vs_baseline"]["delta_dice"] == pytest.approx(0.03)  # the payoff's, kept
    assert found["vs_baseline"]["delta_dice_mean"] == pytest.approx(0.03)
    assert found["vs_baseline"]["delta_dice_interval"] is None
    assert found["verdict"]["status"] == repeats.SINGLE_RUN

    # trial 2 was the lucky draw: repeated, trial 1 has the best mean and a measurable gain
    for number, round_, value in ((1, 1, 0.82), (2, 1, 0.70), (0, 1, 0.79),
                                  (1, 2, 0.84), (2, 2, 0.72), (0, 2, 0.80)):
        study.add_trial(_trial(value, repeat_of=number, round_=round_,
                               baseline="config" if number == 0 else None))
    found = _best_json(plan.storage_url)
    assert found["trial"] == 1  # the best mean, not the best single run (trial 2's 0.81)
    by_trial = {f["trial"]: f for f in found["finalists"]}
    assert [f["trial"] for f in found["finalists"]] == [1, 0, 2]
    assert by_trial[1]["runs"] == 3 and by_trial[1]["mean"] == pytest.approx(0.82)
    assert by_trial[1]["spread"] == pytest.approx(0.04)
    assert by_trial[2]["mean"] == pytest.approx(0.7433333)
    assert by_trial[0]["label"] == "your config"
    vs = found["vs_baseline"]
    assert vs["delta_dice_mean"] == pytest.approx(0.82 - 0.79)
    half = T_975_2 * 0.01 / math.sqrt(3)  # differences 0.02, 0.03, 0.04
    assert vs["delta_dice_interval"] == [pytest.approx(0.03 - half), pytest.approx(0.03 + half)]
    assert found["verdict"] == {"status": "gain", "winner": 1,
                                "line": study_info(study).confirmed().line()}
    assert found["baseline"]["trial"] == 0 and "status" in vs  # the payoff's fields stay
    # the speed-up is on means too: every run of trial 1 and of the config is segmented
    assert vs["basis"] == "means" and vs["delta_dice"] == pytest.approx(0.03)
    assert vs["status"] == "not_computed"
    info = study_info(study)
    assert info.run_numbers(1) == {0: 1, 1: 3, 2: 6}
    assert info.payoff_trials() == [0, 1, 3, 5, 6, 8]
    for number, curve in ((1, {5: 0.5, 10: 0.75, 15: 0.79, 20: 0.80}),  # max_iter 20
                          (3, {5: 0.5, 10: 0.80, 15: 0.81, 20: 0.82}),
                          (6, {5: 0.6, 10: 0.78, 15: 0.83, 20: 0.84})):
        study.set_user_attr(f"checkpoint_dice.{number}",
                            {"dice": {str(k): v for k, v in curve.items()}, "seconds": 5.0})
    # mean curve 10: 0.7767, 15: 0.81 against the config's mean 0.79; seed by seed against
    # 0.78 (round 0), 0.79 (round 1), 0.80 (round 2)
    result = study_info(study).payoff()
    assert result.iterations == 15 and result.by_round == ((0, 15), (1, 10), (2, 15))
    assert result.seconds == pytest.approx(15.0)

    assert cli.main(["best", "--storage", plan.storage_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Best of study 'r' (9 trials, 9 complete): trial 1\n")
    assert "  trial 1 beats your config: mean Dice 0.8200 over 3 runs" in out
    assert "spread = max − min" in out
    assert "    trial    1  3 runs  mean 0.8200  spread 0.0400  constant, base lr 1e-3" in out
    page = render_html(study_info(study), [])
    assert '<p id="verdict" class="gain"><b>trial 1 beats your config' in page
    assert 'id="finalists"' in page
    assert page.index('id="verdict"') < page.index('id="best-trials"')

    # one more config run that is as good: the interval now includes 0, no winner is named
    study.add_trial(_trial(0.85, repeat_of=0, round_=3, baseline="config"))
    study.add_trial(_trial(0.80, repeat_of=1, round_=3))
    found = _best_json(plan.storage_url)
    assert found["verdict"]["status"] == repeats.NO_GAIN and found["verdict"]["winner"] is None
    assert cli.main(["best", "--storage", plan.storage_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Highest mean of study 'r'")
    assert "  no measurable gain over your config at this budget (" in out
    assert "beats" not in out
    assert cli.main(["status", "--storage", plan.storage_url]) == 0
    assert "0.8100 (trial 2)" in capsys.readouterr().out  # the best original, not a repeat


# --- the sampler ---------------------------------------------------------------------------------

class _Recording(optuna.samplers.TPESampler):
    """TPE that records the trial numbers it is shown."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[set[int]] = []

    def sample_relative(self, study, trial, search_space):
        self.seen.append({t.number for t in study._get_trials(deepcopy=False, states=None,
                                                              use_cache=False)})
        self.seen.append({t.number for t in study.get_trials(deepcopy=False)})
        return super().sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.seen.append({t.number for t in study.get_trials(deepcopy=False)})
        return super().sample_independent(study, trial, param_name, param_distribution)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_sampler_never_sees_a_repeat(tmp_path):
    assert isinstance(make_sampler(0, hidden=is_repeat), BlindSampler)
    inner = _Recording(seed=0, multivariate=True, group=True, constant_liar=True,
                       n_startup_trials=2)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize",
                                sampler=BlindSampler(inner, is_repeat))
    for value in (0.5, 0.6, 0.7):
        study.add_trial(_trial(value))
    study.add_trial(_trial(0.99, repeat_of=2, round_=1))  # trial 3: a repeat
    study.enqueue_trial({"family": "constant", "base_lr": 1e-3},
                        user_attrs={"repeat_of": 2, "repeat_round": 2})  # trial 4
    repeat = study.ask()  # a running repeat: constant liar would count it
    assert repeat.number == 4
    inner.seen.clear()
    for _ in range(3):  # TPE's model (past its 2 start-up trials) samples new trials
        trial = study.ask()
        trial.suggest_categorical("family", ("constant", "cosine"))
        trial.suggest_float("base_lr", 1e-6, 1e-2, log=True)
        study.tell(trial, 0.4)
    assert inner.seen and all(not seen & {3, 4} for seen in inner.seen)
    assert all({0, 1, 2} <= seen for seen in inner.seen)
    # the study itself holds them all
    assert {t.number for t in study.get_trials()} == set(range(8))


def test_confirm_refuses_bad_counts_and_a_missing_config_in_one_line(plan, capsys):
    _stored(plan, [0.80, 0.84])
    code = cli.main(["confirm", "--storage", plan.storage_url, "--repeats", "-1"])
    assert code == 2
    assert capsys.readouterr().err.strip() == \
        "lrsearch: error: --repeats must be at least 0, but got -1"
    plan.context.config.path.unlink()
    code = cli.main(["confirm", "--storage", plan.storage_url])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"lrsearch: error: study 'r' was created from the config "
                   f"{plan.context.config.path.resolve()}, which is not there: give the same "
                   f"NiftyNet config with -c FILE"]
    assert len(optuna.load_study(study_name="r", storage=plan.storage_url).trials) == 2


def test_the_repeats_share_the_optimize_timeout(plan, capsys):
    """``--timeout`` counts from when ``optimize`` began: a search that used it up leaves no
    time for the repeats (the trial runner is a stand-in that only records: the queueing and
    the clock are what is tested)."""
    import dataclasses
    import time

    from lrsearch.monitor.progress import Progress
    from lrsearch.run.workers import Workers

    study = _stored(plan, [0.80, 0.84])
    run_repeats.enqueue_repeats(study, plan, k=1, rounds=1)
    ran = []

    def record(study, trial, plan, progress, slot, stopping):
        ran.append(trial.user_attrs["repeat_of"])
        study.tell(trial, 0.8)
        return None  # not failed

    timed = dataclasses.replace(plan, timeout=50.0)
    begun = time.monotonic() - 60  # the search took 60 s of the 50
    Workers(study, timed, Progress(1), run_one=record, sample=False, started=begun).run()
    assert ran == []
    assert "Timeout of 50 s reached." in capsys.readouterr().err
    Workers(study, timed, Progress(1, 0), run_one=record, sample=False).run()  # a new run
    assert sorted(ran) == [0, 1]
