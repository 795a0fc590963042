"""Finalist repeats of a real tiny study: NiftyNet 0.6.0 (TensorFlow 2) trains the user's config
and one searched schedule for 4 iterations; ``optimize`` repeats both once when the study holds
its budget, ``lrsearch confirm --repeats 2`` adds a second round, is killed (SIGKILL) in the
middle of a repeat and run again: the repeat resumes, nothing is repeated twice, and a
pruner that would stop any of them stops none. Real SQLite throughout.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import cli
from lrsearch.monitor.progress import Progress
from lrsearch.run import study as run_study
from lrsearch.run.plan import make_slots
from tests.tiny import tiny_config

MAX_ITER = 4
SPACE = f"""
[study]
families = ["constant"]
base_lr = [1e-4, 1e-2]
optimisers = ["adam"]
runtime = "tf2"
max_iter = {MAX_ITER}

[pruner]
kind = "{{kind}}"
startup_trials = 0
warmup_fraction = 0.0
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    """config baseline (trial 0) and one searched trial (1), each repeated once: 4 trainings."""
    tmp = tmp_path_factory.mktemp("repeats")
    config = tiny_config(tmp, validate_every=2)
    space = tmp / "space.toml"
    space.write_text(SPACE.format(kind="none"))
    url = f"sqlite:///{tmp / 'study.db'}"
    out = io.StringIO()
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        code = cli.main(["optimize", "-c", str(config), "--space", str(space), "--storage", url,
                         "--study", "r", "--trials", "2", "--finalists", "1", "--repeats", "1",
                         "--seed", "3", "--jobs", "1"])
    assert code == 0, out.getvalue()[-3000:]
    return tmp, config, url, out.getvalue()


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="r", storage=url)


def _repeats(study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if "repeat_of" in t.user_attrs]


def test_optimize_repeats_the_finalist_and_the_baseline_once_the_budget_is_held(study_db):
    _, _, url, output = study_db
    study = _study(url)
    originals, repeats = study.get_trials()[:2], _repeats(study)
    assert [t.user_attrs.get("baseline") for t in originals] == ["config", None]
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials())
    assert [(t.user_attrs["repeat_of"], t.user_attrs["repeat_round"]) for t in repeats] == \
        [(1, 1), (0, 1)]
    seed = study.user_attrs["repeat_seeds"][0]
    assert [t.user_attrs["seed"] for t in repeats] == [seed, seed]
    assert seed not in {t.user_attrs["seed"] for t in originals}
    assert repeats[0].params == originals[1].params  # the original's schedule again
    assert repeats[0].user_attrs["schedule"] == originals[1].user_attrs["schedule"]
    assert repeats[1].user_attrs["schedule"] == originals[0].user_attrs["schedule"]
    assert f"Repeating the finalists on fresh seeds (trial 0 (your config), trial 1): 2 runs × " \
           f"{MAX_ITER} iterations = {2 * MAX_ITER} iterations, about " in output
    assert "(repeat 1 of trial 1)" in output and "(repeat 1 of trial 0, your config)" in output


def _best_json(url: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["best", "--storage", url, "--json"]) == 0
    return json.loads(out.getvalue())


def test_best_json_has_runs_means_and_the_interval(study_db):
    _, _, url, _ = study_db
    study = _study(url)
    dice = {(t.user_attrs.get("repeat_of", t.number), t.user_attrs.get("repeat_round", 0)):
            t.user_attrs["final_dice"] for t in study.get_trials()}
    found = _best_json(url)
    by_trial = {f["trial"]: f for f in found["finalists"]}
    for number in (0, 1):
        runs = [dice[(number, 0)], dice[(number, 1)]]
        assert by_trial[number]["runs"] == 2
        assert by_trial[number]["mean"] == pytest.approx(sum(runs) / 2)
        assert by_trial[number]["spread"] == pytest.approx(max(runs) - min(runs))
    vs = found["vs_baseline"]
    leader = found["finalists"][0]["trial"]
    assert found["trial"] == leader
    assert vs["delta_dice_mean"] == pytest.approx(by_trial[leader]["mean"] - by_trial[0]["mean"])
    if leader == 0:
        assert found["verdict"]["status"] == "config_leads"
    else:  # two seed-paired rounds: an interval (t with 1 degree of freedom)
        low, high = vs["delta_dice_interval"]
        assert low <= vs["delta_dice_mean"] <= high
        assert found["verdict"]["status"] == ("gain" if low > 0 else "no_measurable_gain")
        # the speed-up on means: both runs of the leader and of the config were segmented
        assert vs["basis"] == "means" and (vs["runs"], vs["baseline_runs"]) == (2, 2)
        assert study.user_attrs["payoff"]["trials"] == [0, 1, 2, 3]
        assert set(vs["iterations_to_baseline_dice_by_round"]) == {"0", "1"}


def test_a_killed_confirm_resumes_its_repeat_and_repeats_nothing_twice(study_db):
    tmp, config, url, _ = study_db
    command = [sys.executable, "-m", "lrsearch.cli", "confirm", "--storage", url, "--study", "r",
               "--finalists", "1", "--repeats", "2", "--jobs", "1", "--heartbeat", "1"]
    log = tmp / "confirm.log"
    worker = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              cwd=tmp, env={**os.environ})
    deadline = time.monotonic() + 300
    running = []
    while not running:  # kill it while a repeat of round 2 trains
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
        running = [t for t in _repeats(_study(url)) if t.state == TrialState.RUNNING
                   and t.user_attrs.get("repeat_round") == 2]
    time.sleep(3)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed = running[0]
    assert "Repeating the finalists on fresh seeds" in log.read_text()

    # Three trials that reported a perfect Dice at every validation: the median pruner (no
    # start-up trials, no warm-up) stops any prunable trial below them at its first report.
    study = _study(url)
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(
            value=-1.0, intermediate_values={i: 1.0 for i in range(1, MAX_ITER + 1)}))
    space = tmp / "median.toml"
    space.write_text(SPACE.format(kind="median"))
    options = run_study.stored_options(study, url, space=space, finalists=1, repeats=2,
                                       heartbeat=1.0, slots=make_slots(1))
    run_study.confirm(run_study.prepare(options), Progress(1, 0))

    study = _study(url)
    repeats = _repeats(study)
    done = [(t.user_attrs["repeat_of"], t.user_attrs["repeat_round"]) for t in repeats
            if t.state == TrialState.COMPLETE]
    assert sorted(done) == [(0, 1), (0, 2), (1, 1), (1, 2)]  # each once, none pruned
    lost = next(t for t in repeats if t.number == killed.number)
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["stop_reason"].startswith("worker lost at iteration")
    retry = next(t for t in repeats if t.user_attrs.get("retry_of") == killed.number)
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["seed"] == killed.user_attrs["seed"]
    seeds = study.user_attrs["repeat_seeds"]
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    for round_ in (1, 2):
        assert {t.user_attrs["seed"] for t in repeats if t.user_attrs["repeat_round"] == round_
                } == {seeds[round_ - 1]}
    assert all(len(t.intermediate_values) == MAX_ITER // 2 for t in repeats
               if t.state == TrialState.COMPLETE)

    # again: nothing is queued, nothing trains
    before = len(study.get_trials())
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        assert cli.main(["confirm", "--storage", url, "--study", "r", "--finalists", "1",
                         "--repeats", "2", "--jobs", "1"]) == 0
    assert len(_study(url).get_trials()) == before
    assert "Repeating" not in out.getvalue()
    found = _best_json(url)
    assert {f["trial"]: f["runs"] for f in found["finalists"]} == {0: 3, 1: 3}
