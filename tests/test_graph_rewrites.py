"""TensorFlow's graph rewrites in the child (lrsearch.engines.child.sessions): off on a CPU.

The real test runs NiftyNet trainings through the runtime's fork server, as a trial does, with
TensorFlow's own log of its graph optimiser turned on (``TF_CPP_VMODULE=meta_optimizer=1``),
and reads that log: the optimiser ran, or it did not. This machine has no GPU, so the branch
of ``auto`` that keeps the rewrites where a GPU is visible is checked on its decision only
(``rewrites_off``), not on a GPU. Both runtimes: TF 2 (bridged) and stock TF 1.15, whose
environment is built here if the user cache lacks it (tests/install-deps.sh builds it ahead).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from lrsearch.engines.child.sessions import parse_rewrites, rewrites_off
from lrsearch.engines.runtime import get_runtime
from lrsearch.errors import EngineError
from lrsearch.nifty import contract
from tests.tiny import tiny_config

# TensorFlow's meta_optimizer.cc (VLOG 1) as it starts on a session's graph; tf.data's own
# optimiser, which the session's options do not govern, logs "grappler item: graph"
GRAPPLER = "Starting optimization for grappler item: tf_graph"


def test_auto_turns_the_rewrites_off_only_without_a_gpu():
    assert rewrites_off("auto", 0) is True
    assert rewrites_off("auto", 1) is False
    assert rewrites_off("off", 2) is True
    assert rewrites_off("on", 0) is False
    assert parse_rewrites(None) == "auto"
    assert parse_rewrites(" OFF ") == "off"


def test_the_child_refuses_an_unknown_mode_in_one_line():
    with pytest.raises(SystemExit) as stop:
        parse_rewrites("fast")
    assert str(stop.value) == ("LRSEARCH_GRAPH_REWRITES must be one of auto, on, off, "
                               "but got 'fast'")
    # and a child started with it stops before importing TensorFlow, with that line
    env = dict(os.environ, **{contract.GRAPH_REWRITES_ENV: "fast"})
    done = subprocess.run([sys.executable, "-m", contract.CHILD_MAIN, "train", "-c", "x.ini"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "LRSEARCH_GRAPH_REWRITES must be one of auto, on, off, but got 'fast'"]


def test_a_runtime_refuses_an_unknown_mode_before_any_child_starts(monkeypatch):
    monkeypatch.setenv(contract.GRAPH_REWRITES_ENV, "fast")
    with pytest.raises(EngineError, match="LRSEARCH_GRAPH_REWRITES must be one of auto, on, "
                                          "off, but got 'fast'; unset it"):
        get_runtime("tf2")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tf2", "tf1"])
def test_the_sessions_of_a_served_training_follow_the_mode(name, tmp_path, monkeypatch):
    monkeypatch.delenv(contract.GRAPH_REWRITES_ENV, raising=False)
    base = get_runtime(name, report=lambda text: print(f"tf1 setup: {text}", flush=True))
    config = tiny_config(tmp_path, validate_every=-1)
    runs = [contract.train_args(config) + ["--max_iter", "2"]]
    verbose = {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "meta_optimizer=1"}
    logs = {}
    for mode in (None, "on", "off"):
        runtime = dataclasses.replace(base, graph_rewrites=mode)
        log = tmp_path / f"{mode}.log"
        child = runtime.start(runs, verbose, cwd=tmp_path, log_path=log)
        assert child.served  # forked from the runtime's server, as a trial is
        lines = list(child.lines())
        assert child.wait() == 0, "".join(lines[-30:])
        logs[mode] = log.read_text()
        assert "training iter 2," in logs[mode]
    assert GRAPPLER in logs["on"]
    assert GRAPPLER not in logs["off"]
    assert GRAPPLER not in logs[None]  # auto, on this machine without a GPU
