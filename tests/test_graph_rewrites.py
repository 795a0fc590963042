"""TensorFlow's graph rewrites in the child (lrsearch.engines.child.sessions): TensorFlow's own
by default, fewer on request (``LRSEARCH_GRAPH_REWRITES``).

The real test runs NiftyNet trainings through the runtime's fork server, as a trial does, with
TensorFlow's own log of its graph optimiser turned on (``TF_CPP_VMODULE=meta_optimizer=1``),
and reads that log: which passes ran, if any. Both runtimes: TF 2 (bridged) and stock TF 1.15,
whose environment is built here if the user cache lacks it (tests/install-deps.sh builds it
ahead).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from lrsearch.engines.child.sessions import parse_rewrites
from lrsearch.engines.runtime import get_runtime
from lrsearch.errors import EngineError
from lrsearch.nifty import contract
from tests.tiny import tiny_config

# TensorFlow's meta_optimizer.cc (VLOG 1) as it starts on a session's graph; tf.data's own
# optimiser, which the session's options do not govern, logs "grappler item: graph"
GRAPPLER = "Starting optimization for grappler item: tf_graph"


def test_lean_keeps_the_passes_that_shrink_the_graph_in_one_pass_and_off_none():
    # in a process of its own: importing TensorFlow changes the importer's environment
    # (TF2_BEHAVIOR), which this process's later children would inherit
    code = """if True:
        import json
        from tensorflow.core.protobuf import rewriter_config_pb2
        from lrsearch.engines.child.sessions import configure
        config = rewriter_config_pb2.RewriterConfig
        out = {}
        for mode in ("on", "lean", "off"):
            rewrites = config()
            configure(rewrites, mode)
            out[mode] = {"default": rewrites == config(),
                         "disabled": rewrites.disable_meta_optimizer,
                         "one_pass": rewrites.meta_optimizer_iterations == config.ONE,
                         "fusions_off": rewrites.remapping == config.OFF,
                         "layout_off": rewrites.layout_optimizer == config.OFF,
                         "memory_off": rewrites.memory_optimization == config.NO_MEM_OPT,
                         "folding_kept": rewrites.constant_folding == config.DEFAULT
                                         and rewrites.arithmetic_optimization == config.DEFAULT}
        print(json.dumps(out))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=contract.child_environment(
                              contract.child_pythonpath()))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["on"]["default"]  # TensorFlow's own
    assert out["off"]["disabled"]
    lean = out["lean"]
    assert not lean["disabled"] and lean["one_pass"] and lean["fusions_off"]
    assert lean["layout_off"] and lean["memory_off"] and lean["folding_kept"]
    assert parse_rewrites(None) == parse_rewrites("") == "on"
    assert parse_rewrites(" LEAN ") == "lean"


def test_the_child_refuses_an_unknown_mode_in_one_line():
    with pytest.raises(SystemExit) as stop:
        parse_rewrites("fast")
    assert str(stop.value) == ("LRSEARCH_GRAPH_REWRITES must be one of on, lean, off, "
                               "but got 'fast'")
    # and a child started with it stops before importing TensorFlow, with that line
    env = dict(os.environ, **{contract.GRAPH_REWRITES_ENV: "fast"})
    done = subprocess.run([sys.executable, "-m", contract.CHILD_MAIN, "train", "-c", "x.ini"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "LRSEARCH_GRAPH_REWRITES must be one of on, lean, off, but got 'fast'"]


def test_a_runtime_refuses_an_unknown_mode_before_any_child_starts(monkeypatch):
    monkeypatch.setenv(contract.GRAPH_REWRITES_ENV, "fast")
    with pytest.raises(EngineError, match="LRSEARCH_GRAPH_REWRITES must be one of on, lean, "
                                          "off, but got 'fast'; unset it"):
        get_runtime("tf2")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tf2", "tf1"])
def test_the_sessions_of_a_served_training_follow_the_mode(name, tmp_path, monkeypatch):
    monkeypatch.delenv(contract.GRAPH_REWRITES_ENV, raising=False)
    base = get_runtime(name, report=lambda text: print(f"tf1 setup: {text}", flush=True))
    config = tiny_config(tmp_path, validate_every=-1)
    runs = [contract.train_args(config) + ["--max_iter", "2"]]
    # seeded, as every trial is; TensorFlow's optimiser log on
    verbose = {contract.SEED_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "0",
               "TF_CPP_VMODULE": "meta_optimizer=1"}
    logs = {}
    for mode in (None, "lean", "off"):  # None: unset, TensorFlow's own (as "on")
        runtime = dataclasses.replace(base, graph_rewrites=mode)
        log = tmp_path / f"{mode}.log"
        child = runtime.start(runs, verbose, cwd=tmp_path, log_path=log)
        assert child.served  # forked from the runtime's server, as a trial is
        lines = list(child.lines())
        assert child.wait() == 0, "".join(lines[-30:])
        logs[mode] = log.read_text()
        assert "training iter 2," in logs[mode]
    # unset: every pass, fusions (remapper) included; lean: pruned, not fused; off: none
    for mode in (None, "lean"):
        assert GRAPPLER in logs[mode] and "] model_pruner: Graph size" in logs[mode]
    assert "] remapper: Graph size" in logs[None]
    assert "] remapper: Graph size" not in logs["lean"]
    assert GRAPPLER not in logs["off"]
