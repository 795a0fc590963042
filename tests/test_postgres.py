"""Studies on a real PostgreSQL server: several workers, a killed worker, a server restart.

Every trial is a real (tiny) NiftyNet training in a child process; the server is a private
PostgreSQL on 127.0.0.1 (tests/postgres.py). Workers are real ``lrsearch optimize`` processes.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from lrsearch.nifty.contract import checkpoint_iteration
from tests.postgres import PostgresServer
from tests.tiny import TINY_SPACE, niftynet_processes, selected_params, side_by_side, tiny_config

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState
# A worker is killed (or stopped) once its trial has a checkpoint at iteration 10 (save_every
# 5); the trial has 15 iterations, a validation and its inference still to go by then.
MAX_ITER = 25


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().init()
    yield server
    server.destroy()


def worker(config: Path, storage: str, study: str, trials: int, max_iter: int, *extra: str,
           log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "lrsearch.cli", "optimize", "-c", str(config),
               "--space", str(TINY_SPACE), "--storage", storage, "--study", study,
               "--trials", str(trials), "--max-iter", str(max_iter), "--jobs", "1", *extra]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            cwd=config.parent)


def wait(proc: subprocess.Popen, timeout: float, log: Path) -> None:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        tail = log.read_text()[-3000:]
        raise AssertionError(f"worker did not finish in {timeout} s:\n{tail}") from None
    assert code == 0, log.read_text()[-3000:]


def wait_until(condition, proc: subprocess.Popen, log: Path, what: str,
               timeout: float = 300) -> None:
    """Polls ``condition()`` while the worker runs."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.5)


def kill_worker(proc: subprocess.Popen, fragment: str) -> None:
    """SIGKILL, then the NiftyNet child must die with it (parent-death signal)."""
    assert set(niftynet_processes(fragment)) - {proc.pid}  # its NiftyNet child runs now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    while niftynet_processes(fragment) and time.monotonic() - killed_at < 10:
        time.sleep(0.2)
    assert niftynet_processes(fragment) == []  # the orphan died with its worker


def test_worker_processes_reach_exactly_n_trials(postgres, tmp_path):
    config = tiny_config(tmp_path)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    procs = [worker(config, postgres.url, "multi", 4, 6, log=log) for log in logs]
    for proc, log in zip(procs, logs, strict=True):
        wait(proc, 600, log)
    trials = optuna.load_study(study_name="multi", storage=postgres.url).get_trials()
    assert len(trials) == 4, [(t.number, t.state) for t in trials]
    assert sorted(t.number for t in trials) == list(range(4))
    assert all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)
    hosts_and_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(hosts_and_dirs) == 4  # no trial ran twice
    for log in logs:
        assert "pw-not-needed" not in log.read_text()  # the password never shows


def _killed_worker_trial_is_retried_from_its_checkpoint(postgres, tmp_path):
    config = tiny_config(tmp_path, save_every=5)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = worker(config, postgres.url, "killed", 1, MAX_ITER, "--heartbeat", "2", log=log_a)
    model = tmp_path / "models" / "killed" / "trial-0000" / "model"
    wait_until(lambda: (checkpoint_iteration(model) or 0) >= 10, a, log_a,
               "checkpoint at iteration 10")
    kill_worker(a, str(tmp_path))
    last_logged = max(int(line.split("training iter ")[1].split(",")[0])
                      for line in (model / "training_niftynet_log").read_text().splitlines()
                      if "training iter " in line)

    # this worker's URL has no password: the same storage, so the run folder is the study's
    b = worker(config, postgres.url.replace(":pw-not-needed@", "@"), "killed", 1, MAX_ITER,
               "--heartbeat", "2", log=log_b)
    wait(b, 600, log_b)
    trials = optuna.load_study(study_name="killed", storage=postgres.url).get_trials()
    assert [t.state for t in trials] == [State.FAIL, State.COMPLETE], log_b.read_text()[-2000:]
    original, retry = trials
    # the iteration as the storage last heard of it (a heartbeat ago at most)
    reason = original.user_attrs["stop_reason"]
    assert reason.startswith("worker lost at iteration ") and ", no heartbeat for " in reason
    assert 1 <= int(reason.split("iteration ")[1].split(",")[0]) <= last_logged
    assert retry.user_attrs["retry_of"] == 0
    assert retry.params == original.params
    resumed = retry.user_attrs["resumed_from_iteration"]
    assert resumed >= 10 and last_logged - resumed <= 5  # at most save_every_n redone
    assert set(original.intermediate_values) <= set(retry.intermediate_values)
    assert retry.user_attrs["run_dir"] == original.user_attrs["run_dir"]
    assert 0.0 <= retry.value <= 1.0


def test_server_restart_mid_study(postgres, tmp_path):
    config = tiny_config(tmp_path)
    log = tmp_path / "w.log"
    proc = worker(config, postgres.url, "restart", 2, 20, log=log)
    deadline = time.monotonic() + 300
    while True:
        try:
            study = optuna.load_study(study_name="restart", storage=postgres.url)
            if any(t.intermediate_values for t in study.get_trials()):
                break
        except KeyError:
            pass
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    postgres.stop()
    # down until the worker has met the outage (its next report, heartbeat or tell)
    wait_until(lambda: "unreachable" in log.read_text(), proc, log, "storage outage noticed")
    postgres.start()
    wait(proc, 600, log)
    text = log.read_text()
    assert "unreachable" in text and "reachable again" in text, text[-3000:]
    trials = optuna.load_study(study_name="restart", storage=postgres.url).get_trials()
    assert sorted(t.number for t in trials) == [0, 1], [(t.number, t.state) for t in trials]
    assert all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)
    assert "pw-not-needed" not in text


def _retry_on_a_node_without_the_run_folder_resumes_from_the_checkpoint_store(
        postgres, tmp_path):
    """Node A trains in its own scratch folder and dies; node B cannot see that folder and
    resumes from the checkpoint A copied to the study's checkpoint store."""
    config = tiny_config(tmp_path, save_every=5)
    store = tmp_path / "shared" / "checkpoints"
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = worker(config, postgres.url, "scratch", 1, MAX_ITER, "--heartbeat", "2",
               "--runs-dir", str(tmp_path / "node-a"), "--checkpoint-store", str(store),
               log=log_a)

    def stored_iteration() -> int:
        try:
            study = optuna.load_study(study_name="scratch", storage=postgres.url)
        except KeyError:
            return 0
        record = next((t.user_attrs.get("checkpoint_artifact") for t in study.get_trials()),
                      None)
        return record["iteration"] if record else 0

    wait_until(lambda: stored_iteration() >= 10, a, log_a, "checkpoint stored at iteration 10")
    kill_worker(a, str(tmp_path))
    stored = stored_iteration()
    shutil.rmtree(tmp_path / "node-a")  # node A's scratch is gone with it

    # B gives no --checkpoint-store: the study recorded A's
    b = worker(config, postgres.url, "scratch", 1, MAX_ITER, "--heartbeat", "2",
               "--runs-dir", str(tmp_path / "node-b"), log=log_b)
    wait(b, 600, log_b)
    original, retry = optuna.load_study(study_name="scratch", storage=postgres.url).trials
    assert (original.state, retry.state) == (State.FAIL, State.COMPLETE), log_b.read_text()[-2000:]
    assert retry.user_attrs["retry_of"] == 0 and retry.params == original.params
    assert retry.user_attrs["resumed_from_iteration"] == stored >= 10
    assert retry.user_attrs["run_dir"] == str(tmp_path / "node-b" / "trial-0001")
    log = Path(retry.user_attrs["run_dir"], "model", "training_niftynet_log").read_text()
    iterations = [int(line.split("training iter ")[1].split(",")[0])
                  for line in log.splitlines() if "training iter " in line]
    assert min(iterations) == stored + 1 and max(iterations) == MAX_ITER  # no iteration redone
    assert set(original.intermediate_values) <= set(retry.intermediate_values)
    # the store keeps one checkpoint: the retry's final one (its original's was replaced)
    assert retry.user_attrs["checkpoint_artifact"]["iteration"] == MAX_ITER
    # nothing else, even when A was killed while writing a newer checkpoint
    kept = {p.name for p in store.iterdir()}
    assert kept == {retry.user_attrs["checkpoint_artifact"]["artifact_id"]}


def _sigterm_stops_the_worker_and_the_same_command_continues(postgres, tmp_path):
    config = tiny_config(tmp_path, save_every=5)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = worker(config, postgres.url, "term", 1, MAX_ITER, log=log_a)
    model = tmp_path / "models" / "term" / "trial-0000" / "model"
    wait_until(lambda: (checkpoint_iteration(model) or 0) >= 10, a, log_a,
               "checkpoint at iteration 10")
    a.send_signal(signal.SIGTERM)
    assert a.wait(timeout=60) == 130
    text = log_a.read_text()
    assert "run the same command again to continue the study" in text
    assert "Traceback" not in text
    assert niftynet_processes(str(tmp_path)) == []  # stopped, not orphaned
    study = optuna.load_study(study_name="term", storage=postgres.url)
    stopped, queued = study.trials
    assert stopped.state == State.FAIL and queued.state == State.WAITING
    assert "the worker was stopped (re-queued)" in stopped.user_attrs["stop_reason"]

    b = worker(config, postgres.url, "term", 1, MAX_ITER, log=log_b)
    wait(b, 600, log_b)
    stopped, retry = optuna.load_study(study_name="term", storage=postgres.url).trials
    assert retry.state == State.COMPLETE and retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs["resumed_from_iteration"] >= 10


# Workers stopped mid-trial (killed, killed on a node whose folder is gone, SIGTERM) and their
# retries: each scenario above has its own study and folder, so the three run side by side
# (tests/tiny.py) and each test below checks its own.
SCENARIOS = {
    "test_killed_worker_trial_is_retried_from_its_checkpoint":
        _killed_worker_trial_is_retried_from_its_checkpoint,
    "test_retry_on_a_node_without_the_run_folder_resumes_from_the_checkpoint_store":
        _retry_on_a_node_without_the_run_folder_resumes_from_the_checkpoint_store,
    "test_sigterm_stops_the_worker_and_the_same_command_continues":
        _sigterm_stops_the_worker_and_the_same_command_continues,
}


@pytest.fixture(scope="module")
def stopped_workers(request, postgres, tmp_path_factory) -> dict[str, BaseException | None]:
    """``test name -> None`` (its scenario's assertions held) or the exception it raised."""
    def scenario(name):
        return lambda: SCENARIOS[name](postgres, tmp_path_factory.mktemp(name[5:35]))

    selected = [name for name in SCENARIOS if selected_params(request, name)]
    return side_by_side({name: scenario(name) for name in selected}, at_once=len(SCENARIOS))


def _passed(request) -> None:
    error = request.getfixturevalue("stopped_workers")[request.node.originalname]
    if error is not None:
        raise error


def test_killed_worker_trial_is_retried_from_its_checkpoint(request):
    _passed(request)


def test_retry_on_a_node_without_the_run_folder_resumes_from_the_checkpoint_store(request):
    _passed(request)


def test_sigterm_stops_the_worker_and_the_same_command_continues(request):
    _passed(request)
