"""Failing trials and studies: the reason is the child's own exception, identical failures stop
the worker, exit statuses mean something, a lost trial gets a reason, a blow-up is divergence.

The failing trials are real NiftyNet children: a spatial window larger than the images
(NiftyNet's sampler asserts at run time, inside a TensorFlow py_func, so TensorFlow prints a
chain of tracebacks ending in ``[[node …]]`` lines). The up-front window check would refuse
such a config, so the tests put the window into the prepared plan, past the checks: what is
tested is what happens when NiftyNet itself fails.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.errors import ConfigError, EngineError, StorageError, StudyFailed
from lrsearch.nifty.console import FailureTail, failure_cause
from lrsearch.run import study as run_study
from lrsearch.run import workers
from lrsearch.run.trial import TrialFailed
from lrsearch.run.workers import FailureStreak
from tests.tiny import TINY_SPACE, niftynet_processes, side_by_side, tiny_config

State = optuna.trial.TrialState
REPO = Path(__file__).resolve().parents[1]
CAPTURED = Path(__file__).parent / "data" / "window_larger_than_image.console.txt"
WINDOW_CAUSE = "AssertionError: window size [32 32 32] is larger than image size [24 24 24]"


# --- the cause in a console -------------------------------------------------------------------

def test_cause_of_a_captured_tensorflow_traceback_chain():
    """NiftyNet 0.6.0 on TF 2.21, window 32^3 on 24^3 images (console.log as captured): the
    last lines are ``[[worker_0/cond/train/IteratorGetNext]]``; the cause is the assertion."""
    lines = CAPTURED.read_text().splitlines()
    assert lines[-1].strip() == "[[worker_0/cond/train/IteratorGetNext]]"
    assert failure_cause(lines) == WINDOW_CAUSE
    tail = FailureTail(limit=50)  # a bounded buffer still holds the chain's start
    for line in lines:
        tail.feed(line + "\n")
    assert tail.cause() == WINDOW_CAUSE


def test_cause_is_the_original_exception_of_the_last_chain():
    text = """\
Traceback (most recent call last):
  File "old.py", line 1, in <module>
ValueError: an earlier failure that did not stop the child
INFO:niftynet: training iter 3, loss=0.5 (0.1s)
Traceback (most recent call last):
  File "a.py", line 3, in load
KeyError
Traceback (most recent call last):
  File "b.py", line 9, in network
    import thing
AttributeError: module 'tensorflow.contrib.layers' has no attribute 'instance_norm'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "c.py", line 1, in main
RuntimeError: network failed
"""
    tail = FailureTail()
    for line in text.splitlines():
        tail.feed(line)
        if "training iter" in line:
            tail.progressed()
    assert tail.cause() == ("AttributeError: module 'tensorflow.contrib.layers' has no "
                            "attribute 'instance_norm'")


def test_no_traceback_gives_the_last_error_line_without_op_locations():
    tail = FailureTail()
    for line in ["CRITICAL:niftynet: image file missing", "\t [[node PyFunc]]", ""]:
        tail.feed(line)
    assert tail.cause() == "CRITICAL:niftynet: image file missing"


def test_a_child_killed_without_traceback_names_the_signal():
    """The kernel's OOM killer leaves no traceback; an allocator warning is not the cause."""
    from lrsearch.run.trial import _failure_cause, _Progress

    progress = _Progress(last_iteration=12)
    for line in ["INFO:niftynet: training iter 12, loss=0.3 (0.1s)",
                 "W0000 allocator.cc:122] Allocation of 2147483648 exceeds 10% of free memory "
                 "(error margin low)"]:
        progress.remember(line)
    assert _failure_cause(-signal.SIGKILL, progress, 40) == (
        "NiftyNet was killed by signal SIGKILL at iteration 12 of 40 (out of memory?)")
    assert _failure_cause(3, progress, 40).startswith(
        "NiftyNet exited with status 3 at iteration 12 of 40: W0000 allocator.cc:122]")


# --- the stop rule ----------------------------------------------------------------------------

def test_streak_counts_the_same_cause_in_a_row():
    streak = FailureStreak(3)
    same = "FileNotFoundError: /runs/trial-{:04d}/model"
    assert not streak.add(TrialFailed(same.format(1), "a.log"))
    assert not streak.add(None)  # a trial that trained ends the streak
    assert not streak.add(TrialFailed(same.format(2), "b.log"))
    assert not streak.add(TrialFailed("ValueError: other", "c.log"))  # another cause: anew
    assert not streak.add(TrialFailed(same.format(3), "d.log"))
    assert not streak.add(TrialFailed(same.format(4), "e.log"))
    assert streak.add(TrialFailed(same.format(5), "f.log"))  # trial numbers do not count
    assert not streak.add(TrialFailed(same.format(6), "g.log"))  # said once
    assert not streak.add(None)  # a trial re-queued after the stop changes nothing
    assert streak.message() == (f"3 trials failed the same way: {same.format(5)} (see f.log); "
                                "fix it and run the same command again")
    assert not any(FailureStreak(0).add(TrialFailed("x")) for _ in range(5))  # 0: never


# --- real NiftyNet failures -------------------------------------------------------------------

@pytest.fixture
def window_too_large(tmp_path, monkeypatch):
    """``lrsearch optimize`` whose trials get a 32^3 window on 24^3 images."""
    monkeypatch.chdir(tmp_path)
    prepare = run_study.prepare

    def past_the_checks(*args, **kwargs):
        plan = prepare(*args, **kwargs)
        window = {"spatial_window_size": (32, 32, 32)}
        config = plan.context.config.with_values({"T1": window, "brain": window})
        return dataclasses.replace(plan, context=dataclasses.replace(plan.context,
                                                                     config=config))

    monkeypatch.setattr(run_study, "prepare", past_the_checks)
    return tiny_config(tmp_path), f"sqlite:///{tmp_path / 'study.db'}"


def optimize(config, storage, *extra):
    return cli.main(["optimize", "-c", str(config), "--storage", storage, "--study", "s",
                     "--space", str(TINY_SPACE), "--jobs", "1", *extra])


@pytest.mark.slow
def test_identical_failures_stop_the_worker_with_their_cause(window_too_large, capsys):
    config, storage = window_too_large
    started = time.monotonic()
    code = optimize(config, storage, "--trials", "6")
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip().splitlines()
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state for t in trials] == [State.FAIL] * 3, err  # stopped after 3, not 6
    for trial in trials:
        log = trial.user_attrs["log_path"]
        assert trial.user_attrs["stop_reason"] == f"{WINDOW_CAUSE} (see {log})"
        assert Path(log).is_file()
    assert code == 1
    assert err[-1] == (f"lrsearch: error: 3 trials failed the same way: {WINDOW_CAUSE} (see "
                       f"{trials[-1].user_attrs['log_path']}); fix it and run the same "
                       "command again")
    # trial 0 is the config as written (a baseline), which fails the same way
    assert f"Trial 0 (your config) failed: {WINDOW_CAUSE} (see " in "\n".join(err)
    print(f"3 failing trials and the stop in {elapsed:.1f} s")


@pytest.mark.slow
def test_two_slots_stop_together(window_too_large, capsys):
    """--jobs 2: the slots' failures count together; a trial still running in the other slot
    when the third failure comes is stopped and re-queued, not left to run."""
    config, storage = window_too_large
    assert optimize(config, storage, "--trials", "8", "--jobs", "2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lrsearch: error: 3 trials failed the same way: "
                              f"{WINDOW_CAUSE} (see ")
    trials = optuna.load_study(study_name="s", storage=storage).trials
    same = [t for t in trials if t.user_attrs.get("stop_reason", "").startswith(WINDOW_CAUSE)]
    others = [t for t in trials if t not in same]
    assert 3 <= len(same) <= 4 and all(t.state == State.FAIL for t in same)
    for trial in others:  # at most the other slot's trial and its queued retry
        assert (trial.state == State.WAITING or
                "the worker was stopped (re-queued)" in trial.user_attrs["stop_reason"])
    assert len(trials) <= 6
    assert niftynet_processes(str(config.parent / "models")) == []


@pytest.mark.slow
def test_sigterm_exits_130_in_any_command(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "lr-find"
    proc = subprocess.Popen([sys.executable, "-m", "lrsearch.cli", "lr-find", "-c", str(config),
                             "--iterations", "100000", "--max-lr", "1e-6", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    deadline = time.monotonic() + 300
    while "training iter 2," not in _text(out / "console.log"):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "lrsearch: interrupted"


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


@pytest.mark.slow
def test_a_study_without_a_completed_trial_exits_1(window_too_large, capsys):
    config, storage = window_too_large
    assert optimize(config, storage, "--trials", "1") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lrsearch: error: no trial of study 's' completed: 1 failed; "
                              f"the last failure: {WINDOW_CAUSE} (see ")
    # the same command again: still nothing completed, still a failure
    assert optimize(config, storage, "--trials", "1") == 1


def test_a_loss_that_rises_for_a_while_is_no_blow_up():
    """The range test's give-back rule (a bounded loss giving back half its fall) would stop a
    trial whose loss rises for a while, as a normal cross-entropy run at lr 1e-3 once did at
    iteration 10; trials use only the 4x rule, and not at all on the Dice losses (in [0, 1])."""
    from lrsearch.run.trial import BOUNDED_LOSSES
    from lrsearch.search.range_test import LossTracker

    tracker = LossTracker()
    for loss in (1.0, 0.3, 0.3, 0.3, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0):
        smoothed = tracker.add(loss)
    assert tracker.diverged(smoothed) and not tracker.exploded(smoothed)
    for loss in (5.0, 5.0, 5.0, 5.0, 5.0, 5.0):
        smoothed = tracker.add(loss)
    assert tracker.exploded(smoothed)
    assert {"Dice", "Dice_NS", "GDSC"} <= BOUNDED_LOSSES
    assert not {"CrossEntropy", "DicePlusXEnt"} & BOUNDED_LOSSES


@pytest.mark.slow
def test_finite_loss_blow_up_is_divergence(tmp_path):
    """Cross-entropy at a constant LR of 64 goes 1.03 → 253 → … → 2707 in 10 iterations
    (finite: no NaN); at 1e-3 the same config trains through. The two runs train side by
    side (tests/tiny.py)."""
    from lrsearch.engines.runtime import get_runtime
    from lrsearch.selfcheck import single_trial

    config = tiny_config(tmp_path)
    config.write_text(config.read_text().replace("loss_type = Dice", "loss_type = CrossEntropy"))
    runtime = get_runtime("tf2")
    runs = side_by_side({lr: functools.partial(single_trial, config, runtime, tmp_path / name,
                                                lr=lr, max_iter=40)
                          for name, lr in (("high", 64.0), ("normal", 1e-3))})
    blown, normal = runs[64.0], runs[1e-3]
    for run in (blown, normal):
        if isinstance(run, BaseException):
            raise run
    assert blown.state == State.PRUNED
    assert blown.user_attrs["stop_reason"].startswith("diverged at iteration 10: training loss ")
    assert blown.user_attrs["iterations"] < 40
    assert normal.state == State.COMPLETE, normal.user_attrs.get("stop_reason")


@pytest.mark.slow
def test_a_lost_worker_trial_gets_a_reason_and_its_note_says_so(tmp_path):
    """kill -9 of a worker: the next worker fails its trial for lost heartbeats with the last
    iteration the storage knew, rewrites the dashboard note, and runs the retry."""
    from optuna_dashboard import get_note

    config = tiny_config(tmp_path, save_every=5)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    command = [sys.executable, "-m", "lrsearch.cli", "optimize", "-c", str(config),
               "--space", str(TINY_SPACE), "--storage", storage, "--study", "lost",
               "--trials", "1", "--max-iter", "25", "--jobs", "1", "--heartbeat", "1"]
    log_a = tmp_path / "a.log"
    a = subprocess.Popen(command, stdout=log_a.open("w"), stderr=subprocess.STDOUT,
                         cwd=tmp_path)
    deadline = time.monotonic() + 300
    recorded = 0
    while recorded < 10:  # the heartbeat stores the iteration; 15 and inference still to go
        assert a.poll() is None and time.monotonic() < deadline, log_a.read_text()[-2000:]
        time.sleep(0.5)
        if "Study 'lost'" not in log_a.read_text():  # the worker has not made it yet
            continue
        trials = optuna.load_study(study_name="lost", storage=storage).trials
        recorded = trials[0].user_attrs.get("iterations", 0) if trials else 0
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    killed = time.monotonic()
    log_b = tmp_path / "b.log"
    b = subprocess.run(command, stdout=log_b.open("w"), stderr=subprocess.STDOUT,
                       cwd=tmp_path, timeout=600)
    assert b.returncode == 0, log_b.read_text()[-2000:]
    study = optuna.load_study(study_name="lost", storage=storage)
    lost, retry = study.trials
    assert lost.state == State.FAIL and retry.state == State.COMPLETE
    reason = lost.user_attrs["stop_reason"]
    iteration, seconds = (int(reason.split("iteration ")[1].split(",")[0]),
                          int(reason.split("for ")[1].split(" s")[0]))
    assert reason == f"worker lost at iteration {iteration}, no heartbeat for {seconds} s"
    assert iteration >= recorded and 3 <= seconds <= time.monotonic() - killed + 1
    note = get_note(optuna.trial.Trial(study, lost._trial_id))
    assert f"**failed** after {iteration} iterations: worker lost at iteration" in note
    assert "running" not in note
    assert "![learning rate](/artifacts/" in note and "![validation Dice](/artifacts/" in note
    assert retry.user_attrs.get("stop_reason") is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_lost_trial_note_keeps_its_figures_and_says_why(tmp_path):
    """The note another worker rewrites: state and reason from the storage, figures kept."""
    from optuna_dashboard import get_note

    from lrsearch.monitor.live import LiveTrial, rewrite_note
    from lrsearch.run.storage import fail_stale_trials, open_storage

    url = f"sqlite:///{tmp_path / 'notes.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=1), study_name="n")
    trial = study.ask()
    trial.set_user_attr("max_iter", 40)
    LiveTrial.for_study(trial, url, None).started()
    figures = [line for line in get_note(trial).splitlines() if line.startswith("![")]
    assert len(figures) == 2 and "**running**: iteration 0 of 40" in get_note(trial)
    trial.storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr("iterations", 7)
    time.sleep(4.5)  # three beats missed and more
    assert fail_stale_trials(study, workers._lost_reason) == [trial._trial_id]
    rewrite_note(optuna.trial.Trial(study, trial._trial_id))
    note = get_note(trial)
    assert "**failed** after 7 iterations: worker lost at iteration 7, no heartbeat for " in note
    assert [line for line in note.splitlines() if line.startswith("![")] == figures
    lost, retry = study.get_trials()
    assert lost.state == State.FAIL and retry.state == State.WAITING


# --- exit statuses and small fixes ------------------------------------------------------------

def test_exit_status_by_kind_of_error():
    assert ConfigError.exit_code == StorageError.exit_code == 2
    assert EngineError.exit_code == StudyFailed.exit_code == 1


def test_bad_input_exits_2_and_a_runtime_failure_1(tmp_path, capsys):
    assert cli.main(["report", "--storage", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    with pytest.raises(SystemExit) as usage:
        cli.main(["optimize", "--trials", "many"])
    assert usage.value.code == 2
    # an interpreter that does not run: the tf1 runtime cannot start (EngineError)
    assert cli.main(["runtime", "setup", "tf1", "--python", "/bin/false"]) == 1
    assert "lrsearch: error: " in capsys.readouterr().err


def test_argparse_errors_hide_passwords(capsys):
    for argv in (["lr-find", "--storage", "postgresql+psycopg://me:s3cret@db/optuna"],
                 ["status", "--stroage=mysql+pymysql://me:s3cret@db/optuna"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "unrecognized arguments" in err and "me:***@db" in err
        assert "s3cret" not in err


def test_missing_pymysql_says_how_to_install_it(tmp_path):
    """PyMySQL made unimportable in a real interpreter (None in sys.modules)."""
    code = ("import sys; sys.modules['pymysql'] = None; from lrsearch import cli; "
            "sys.exit(cli.main(['status', '--storage', 'mysql+pymysql://u:pw@127.0.0.1/db']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "lrsearch: error: cannot open storage mysql+pymysql://u:***@127.0.0.1/db: its database "
        "driver 'pymysql' is not installed; install it with pip install -e '.[mysql]' (or "
        "pip install PyMySQL)")
