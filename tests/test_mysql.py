"""The same study code on a real MariaDB (MySQL) server: Optuna's RDB storage through PyMySQL,
and the study lock (GET_LOCK) that makes several worker processes stop at exactly N trials.
Every trial is a real (tiny) NiftyNet training; the server is private on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest

from lrsearch.run.storage import study_lock
from tests.mysql import MariaDBServer
from tests.test_postgres import wait, worker
from tests.tiny import tiny_config

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState


@pytest.fixture(scope="module")
def mariadb():
    server = MariaDBServer().init()
    yield server
    server.destroy()


def test_worker_processes_reach_exactly_n_trials_on_mysql(mariadb, tmp_path):
    config = tiny_config(tmp_path)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    procs = [worker(config, mariadb.url, "multi", 4, 6, log=log) for log in logs]
    for proc, log in zip(procs, logs, strict=True):
        wait(proc, 600, log)
    trials = optuna.load_study(study_name="multi", storage=mariadb.url).get_trials()
    assert sorted(t.number for t in trials) == list(range(4)), [(t.number, t.state)
                                                                for t in trials]
    assert all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4  # no trial ran twice
    for log in logs:
        text = log.read_text()
        assert "pw-not-needed" not in text and "mysql+pymysql://lrsearch:***@" in text


def test_study_lock_excludes_other_processes_on_mysql(mariadb, tmp_path):
    """GET_LOCK held by one process keeps another one waiting until it is released."""
    holder = tmp_path / "held"
    script = ("import sys, time; from lrsearch.run.storage import study_lock\n"
              "with study_lock(sys.argv[1], 'locked'):\n"
              "    open(sys.argv[2], 'w').close(); time.sleep(3)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, mariadb.url, str(holder)])
    deadline = time.monotonic() + 60
    while not holder.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    with study_lock(mariadb.url, "locked"):
        waited = time.monotonic() - started
    assert waited > 2.0  # held for 3 s after "held" appeared
    assert proc.wait(timeout=60) == 0
    with study_lock(mariadb.url, "another study"):  # other studies are not blocked
        pass
