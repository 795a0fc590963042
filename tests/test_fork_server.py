"""Trials forked from a process that imported TensorFlow and NiftyNet once
(lrsearch.engines.child.server): real NiftyNet runs, a real server, real signals.

The tf1 runtime's server is exercised by tests/test_runtimes.py (its trial must be forked).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import optuna
import pytest

from lrsearch import cli
from lrsearch.engines import process
from lrsearch.engines.process import ChildProcess, ForkServer
from lrsearch.engines.runtime import get_runtime
from lrsearch.nifty import contract
from tests.tiny import TINY_SPACE, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture
def runtime():
    return get_runtime("tf2")


@pytest.fixture
def server(runtime):
    started = ForkServer(runtime.python, runtime.environment())
    yield started
    started.close()


def _start(server, runtime, tmp_path: Path, runs, name: str) -> ChildProcess:
    child = ChildProcess(runtime.command(runs), runtime.environment(), tmp_path,
                         tmp_path / f"{name}.log", server=server, runs=runs)
    assert child.served  # forked, not started as a new process
    return child


def _missing_config_runs(tmp_path: Path) -> list[list[str]]:
    return [contract.train_args(tmp_path / "missing.ini")]


def _training_runs(tmp_path: Path) -> list[list[str]]:
    # a few hundred iterations; no split file here, so no validation
    return [contract.train_args(tiny_config(tmp_path, validate_every=-1))]


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _first_iteration(child: ChildProcess) -> str:
    for line in child.lines():
        if "training iter" in line:
            return line
    raise AssertionError(f"no training iteration; see {child.log_path}")


def test_one_server_forks_each_run_and_reports_its_exit_status(server, runtime, tmp_path):
    pids = []
    for k in range(2):
        child = _start(server, runtime, tmp_path, _missing_config_runs(tmp_path), f"run{k}")
        output = "".join(child.lines())
        assert child.wait() != 0  # NiftyNet refuses a config that does not exist
        assert "missing.ini" in output, output[-2000:]
        assert "missing.ini" in child.log_path.read_text()  # the log has the child's output
        pids.append(child.proc.pid)
    assert pids[0] != pids[1]
    assert server.proc.poll() is None and not server.dead  # still serving


def test_a_stopped_child_is_gone_and_the_server_serves_the_next(server, runtime, tmp_path):
    child = _start(server, runtime, tmp_path, _training_runs(tmp_path), "train")
    _first_iteration(child)
    assert _parent_of(child.proc.pid) == server.proc.pid  # forked by the server
    assert Path(f"/proc/{child.proc.pid}/cwd").resolve() == tmp_path.resolve()
    child.stop(grace=5)
    assert child.proc.returncode == -signal.SIGTERM
    assert not child.group_alive() and _gone(child.proc.pid)
    assert server.proc.poll() is None
    after = _start(server, runtime, tmp_path, _missing_config_runs(tmp_path), "after")
    assert "missing.ini" in "".join(after.lines())
    assert after.wait() != 0


def test_a_dead_server_takes_its_child_with_it_and_is_replaced(runtime, tmp_path):
    env = runtime.environment()
    first = process.fork_server(runtime.python, env)
    try:
        assert first is not None and process.fork_server(runtime.python, env) is first
        child = _start(first, runtime, tmp_path, _training_runs(tmp_path), "train")
        _first_iteration(child)
        first.proc.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL  # parent-death signal: nothing left training
        assert _gone(child.proc.pid)
        second = process.fork_server(runtime.python, env)
        assert second is not None and second is not first and second.proc.poll() is None
    finally:
        process.close_fork_server()


def test_a_changed_environment_gets_its_own_server(runtime):
    env = runtime.environment()
    try:
        first = process.fork_server(runtime.python, env)
        # a run's own variables go with its request: same server
        same = process.fork_server(runtime.python, {**env, contract.SEED_ENV: "7"})
        assert same is first
        # one fixed before TensorFlow's import (a GPU slot's devices): a new server
        other = process.fork_server(runtime.python, {**env, "CUDA_VISIBLE_DEVICES": "1"})
        assert other is not first and first.proc.poll() is not None  # the old one ended
        assert other.env["CUDA_VISIBLE_DEVICES"] == "1"
    finally:
        process.close_fork_server()


def _one_trial(tmp_path: Path, name: str, *extra: str) -> optuna.trial.FrozenTrial:
    config = tiny_config(tmp_path / name, validate_every=5)
    storage = f"sqlite:///{tmp_path / name / 'study.db'}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.enqueue_trial({"family": "constant", "base_lr": 3e-3, "optimiser": "adam"})
    code = cli.main(["optimize", "-c", str(config), "--space", str(TINY_SPACE),
                     "--storage", storage, "--study", name, "--trials", "1", "--seed", "5",
                     "--max-iter", "10", "--jobs", "1", "--baselines", "none", "-q", *extra])
    assert code == 0
    return optuna.load_study(study_name=name, storage=storage).trials[0]


def test_a_forked_trial_trains_exactly_as_a_new_process_does(tmp_path):
    forked = _one_trial(tmp_path, "forked")
    new = _one_trial(tmp_path, "new", "--no-fork-server")
    assert forked.user_attrs["forked"] is True and new.user_attrs["forked"] is False
    # same seeds, same windows: the same training, bit for bit
    assert forked.intermediate_values == new.intermediate_values
    assert forked.user_attrs["final_dice"] == new.user_attrs["final_dice"]
    assert len(forked.intermediate_values) == 2


def test_the_fork_server_command_is_the_contracts(runtime):
    command = contract.server_command(runtime.python, 5)
    assert command == [sys.executable, "-m", contract.CHILD_SERVER, "5"]
    runs = [["train", "-c", "a b.ini"], ["inference", "-c", "x"]]
    encoded = contract.encode_request(runs, {"A": "1"}, Path("/tmp"))
    head, body = encoded.split(b"\n", 1)
    assert int(head) == len(body)
    assert contract.decode_request(body) == (runs, {"A": "1"}, "/tmp")
