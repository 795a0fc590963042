"""Both NiftyNet runtimes train for real and report Dice: TF 2 (bridged) and stock TF 1.15.

The tf1 environment is built here if it is not in the user cache yet (tests/install-deps.sh
builds it ahead with `lrsearch runtime setup tf1`); it needs a Python 3.7 (pyenv's here).
The commands are real ``lrsearch`` processes, started together (see ``commands``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from lrsearch.engines import tf1
from lrsearch.selfcheck import Tiny, write_tiny_config
from tests.tiny import selected_params

REPO = Path(__file__).resolve().parents[1]
MAX_ITER = 4
VALIDATE_EVERY = 2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tf1_python() -> str:
    return tf1.ensure_python(report=lambda text: print(f"tf1 setup: {text}", flush=True))


def _training(runtime: str, directory: Path) -> list[str]:
    """``lrsearch optimize`` of one enqueued constant-LR trial on ``runtime``."""
    config = write_tiny_config(directory, Tiny(max_iter=MAX_ITER,
                                               validation_every_n=VALIDATE_EVERY))
    storage = f"sqlite:///{directory / 'study.db'}"
    study = optuna.create_study(study_name="rt", storage=storage, direction="maximize")
    study.enqueue_trial({"family": "constant", "base_lr": 1e-3, "optimiser": "adam"})
    # studies/tiny.toml says runtime = "tf2": the command line wins.
    return ["optimize", "-c", str(config), "--space", str(REPO / "studies/tiny.toml"),
            "--storage", storage, "--study", "rt", "--trials", "1",
            "--max-iter", str(MAX_ITER), "--runtime", runtime]


@pytest.fixture(scope="module")
def commands(request, tmp_path_factory) -> dict[str, tuple[subprocess.Popen, Path]]:
    """The selected tests' lrsearch commands, started together as processes and each checked
    by its own test: their NiftyNet children (and the check's probes) spend nearly all of
    their time on one core each, so side by side they keep a 2-core machine busy.
    ``name -> (process, its folder)``; stdout and stderr are ``out.txt`` and ``err.txt``."""
    wanted = {}
    for params in selected_params(request, "test_runtime_trains_and_reports_dice"):
        directory = tmp_path_factory.mktemp(f"train-{params['runtime']}")
        wanted[params["runtime"]] = (_training(params["runtime"], directory), directory)
    if selected_params(request, "test_runtime_check_reports_versions_gpus_and_a_training"):
        wanted["check"] = (["runtime", "check"], tmp_path_factory.mktemp("check"))
    if set(wanted) - {"tf2"}:
        request.getfixturevalue("tf1_python")  # set up (or checked) before any starts
    started = {}
    for name, (argv, directory) in wanted.items():
        with (directory / "out.txt").open("w") as out, (directory / "err.txt").open("w") as err:
            started[name] = (subprocess.Popen([sys.executable, "-m", "lrsearch.cli", *argv],
                                              cwd=directory, stdout=out, stderr=err),
                             directory)
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def _finished(commands, name: str) -> tuple[int, str, str, Path]:
    """(exit status, stdout, stderr, folder) of the command ``name``."""
    process, directory = commands[name]
    code = process.wait(timeout=900)
    return (code, (directory / "out.txt").read_text(), (directory / "err.txt").read_text(),
            directory)


@pytest.mark.parametrize("runtime", ["tf2", "tf1"])
def test_runtime_trains_and_reports_dice(runtime, request, commands):
    python = request.getfixturevalue("tf1_python") if runtime == "tf1" else sys.executable
    code, _, err, directory = _finished(commands, runtime)
    assert code == 0, err[-3000:]

    storage = f"sqlite:///{directory / 'study.db'}"
    (trial,) = optuna.load_study(study_name="rt", storage=storage).get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")
    assert trial.user_attrs["command"].split()[0] == python
    assert trial.user_attrs["forked"] is True  # from this runtime's fork server (Python 3.7 on tf1)
    assert sorted(trial.intermediate_values) == list(range(VALIDATE_EVERY, MAX_ITER + 1,
                                                           VALIDATE_EVERY))
    assert all(0.0 <= v <= 1.0 for v in trial.intermediate_values.values())
    assert 0.0 <= trial.value <= 1.0
    assert trial.user_attrs["iterations"] == MAX_ITER
    log = Path(trial.user_attrs["run_dir"]) / "model" / "training_niftynet_log"
    assert f"training iter {MAX_ITER}," in log.read_text()
    expected_tf = "1.15" if runtime == "tf1" else "2."
    assert trial.user_attrs["runtime"]["tensorflow"].startswith(expected_tf)  # the child's


def test_runtime_check_reports_versions_gpus_and_a_training(tf1_python, commands):
    code, out, err, _ = _finished(commands, "check")
    assert code == 0, out + err[-3000:]
    lines = out.splitlines()
    assert lines[0].startswith("tf2: Python 3.") and "TensorFlow 2." in lines[0]
    tf1_line = next(i for i, line in enumerate(lines) if line.startswith("tf1:"))
    assert f"({tf1_python})" in lines[tf1_line]
    assert "Python 3.7." in lines[tf1_line] and "TensorFlow 1.15.5" in lines[tf1_line]
    for header in (0, tf1_line):
        assert "NiftyNet 0.6.0" in lines[header]
        assert lines[header + 1].startswith("  GPU: ")
        assert lines[header + 2].startswith("  1-iteration training: ok in "), out


def test_interpreter_with_tf1_is_used_as_it_is(tf1_python):
    assert tf1.ensure_python(tf1_python, build=False) == tf1_python


def test_a_tf1_child_trains_though_its_parent_passed_on_tf2_behaviour(tf1_python, tmp_path):
    # what importing TensorFlow 2 leaves in the importing process's environment, and so in
    # its children's: TF 1.15 would switch to v2 behaviour, where NiftyNet cannot train
    from lrsearch.engines.runtime import Runtime
    from lrsearch.nifty import contract

    config = write_tiny_config(tmp_path, Tiny(max_iter=2, validation_every_n=-1))
    runtime = Runtime("tf1", tf1_python, warm=False)
    env = runtime.environment({"TF2_BEHAVIOR": "1", contract.SEED_ENV: "1"})
    done = subprocess.run(runtime.command([contract.train_args(config)]), env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training iter 2," in done.stdout + done.stderr
