"""lrsearch installed from its wheel (not editable) trains on the tf1 runtime and exports a
command that trains there too.

An installed lrsearch lives in a Python 3.11 site-packages whose numpy, protobuf & co. would
shadow the TF 1.15 environment's own if the child got that folder on PYTHONPATH. The wheel is
built from this source tree and installed into a venv that sees the system's packages (Optuna,
TensorFlow, NiftyNet) but shadows the editable install; a real tiny study trains one trial on
the real tf1 runtime, and the command `lrsearch export` prints is run as printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from lrsearch.engines import tf1
from lrsearch.paths import cache_dir
from lrsearch.selfcheck import Tiny, write_tiny_config
from tests.tiny import REPO, TINY_SPACE

pytestmark = pytest.mark.slow

MAX_ITER = 4
EXPORTED_ITER = 2
_SITE_DIRS = ("site-packages", "dist-packages")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH: the source tree must not reach the installed copy."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def _run(argv, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900):
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env or _clean_env(),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _lrsearch_file(python: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Path:
    done = _run([python, "-c", "import lrsearch; print(lrsearch.__file__)"], cwd, env)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.fixture(scope="module")
def tf1_python() -> str:
    return tf1.ensure_python(report=lambda text: print(f"tf1 setup: {text}", flush=True))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv folder, installed lrsearch package folder); the wheel is built from a copy of the
    source so that setuptools' build/ and egg-info never land in the tree."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "lrsearch", source / "lrsearch",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--disable-pip-version-check", "-q", "-w", root / "dist", "."], source)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("lrsearch-*.whl")

    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", venv], root)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = _run([python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
                 "-q", wheel], root)
    assert done.returncode == 0, done.stderr
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                root).stdout.strip()
    package = Path(site) / "lrsearch"
    # the wheel's copy, not the editable install of the source tree the system site has
    assert _lrsearch_file(python, root) == package / "__init__.py"
    yield venv, package
    # the children's PYTHONPATH folders in the user cache that link to this venv's lrsearch
    for link in (cache_dir() / "runtimes" / "pythonpath").glob("*/lrsearch"):
        if link.is_symlink() and Path(os.readlink(link)).is_relative_to(root):
            shutil.rmtree(link.parent)
    shutil.rmtree(root)


def _pythonpath_entries(value: str) -> list[Path]:
    return [Path(p) for p in value.split(os.pathsep) if p]


def test_wheel_install_trains_on_tf1_and_exports_a_command_that_does(installed, tf1_python,
                                                                     tmp_path):
    venv, package = installed
    lrsearch = venv / "bin" / "lrsearch"
    # lrsearch is not installed in the TF 1 environment: the child imports it only through
    # the PYTHONPATH the parent gives it
    bare = _run([tf1_python, "-c", "import lrsearch"], tmp_path)
    assert bare.returncode != 0 and "No module named 'lrsearch'" in bare.stderr

    config = write_tiny_config(tmp_path, Tiny(max_iter=MAX_ITER, validation_every_n=2))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="wheel", storage=storage, direction="maximize")
    study.enqueue_trial({"family": "constant", "base_lr": 1e-3, "optimiser": "adam"})
    done = _run([lrsearch, "optimize", "-c", config, "--space", TINY_SPACE, "--storage",
                 storage, "--study", "wheel", "--trials", "1", "--max-iter", MAX_ITER,
                 "--runtime", "tf1"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # the trial's own child: started by the wheel's lrsearch on the TF 1.15 interpreter
    (trial,) = optuna.load_study(study_name="wheel", storage=storage).get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")
    assert trial.user_attrs["command"].split()[0] == tf1_python
    assert trial.user_attrs["runtime"]["tensorflow"].startswith("1.15")
    assert trial.user_attrs["iterations"] == MAX_ITER
    log = Path(trial.user_attrs["run_dir"]) / "model" / "training_niftynet_log"
    assert f"training iter {MAX_ITER}," in log.read_text()

    target = tmp_path / "out" / "trial0.ini"
    done = _run([lrsearch, "export", "--storage", storage, "--study", "wheel", "--trial", "0",
                 "-o", target, "--max-iter", EXPORTED_ITER], tmp_path)
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout.strip().splitlines()[-1])
    assignments = {}
    while "=" in words[0] and not words[0].startswith(("/", "-")):
        name, value = words.pop(0).split("=", 1)
        assignments[name] = value
    assert words[:3] == [tf1_python, "-m", "lrsearch.engines.child.main"]
    entries = _pythonpath_entries(assignments["PYTHONPATH"])
    assert entries, assignments
    for entry in entries:  # no Python 3.11 site-packages for the TF 1.15 interpreter
        assert not set(entry.parts) & set(_SITE_DIRS), entry
        assert not entry.resolve().is_relative_to(REPO), entry  # nor the source tree
    # the trials' children get the same PYTHONPATH (the runtime's environment, as a trial
    # starts its child with)
    trials = _run([venv / "bin" / "python", "-c",
                   "from lrsearch.engines.runtime import get_runtime; "
                   "print(get_runtime('tf1', build=False).environment()['PYTHONPATH'])"],
                  tmp_path)
    assert trials.returncode == 0, trials.stderr
    assert trials.stdout.strip() == assignments["PYTHONPATH"]
    env = _clean_env(**assignments)
    found = _lrsearch_file(tf1_python, tmp_path, env)
    assert found.resolve() == (package / "__init__.py").resolve()

    run = _run(words, tmp_path, env)
    console = run.stdout + run.stderr
    assert run.returncode == 0, console[-3000:]
    assert f"training iter {EXPORTED_ITER}," in console, console[-3000:]
    exported_log = tmp_path / "out" / "trial0-model" / "training_niftynet_log"
    assert f"training iter {EXPORTED_ITER}," in exported_log.read_text()
