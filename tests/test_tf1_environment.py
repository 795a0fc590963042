"""The tf1 runtime's environment: found, built once, reused, rebuilt when broken; clear refusals.

Real interpreters and real pip: the build mechanism is exercised with a one-package environment
(the full TensorFlow 1.15 one is built by tests/test_runtimes.py), a missing Python 3.7 with an
empty PATH and pyenv root, a GPU request with a device this machine cannot see.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lrsearch import cli
from lrsearch.engines import tf1
from lrsearch.errors import EngineError
from lrsearch.nifty import contract
from lrsearch.nifty.config import load_config
from lrsearch.selfcheck import Tiny, write_tiny_config

REPO = Path(__file__).resolve().parents[1]
SIX = tf1.EnvironmentSpec("tiny", "six==1.16.0\n", ("-c", "import six"))


@pytest.fixture(scope="module")
def python37() -> str:
    return tf1.find_python37()


def _site_packages(env_python: Path) -> Path:
    return next((env_python.parent.parent / "lib").glob("python3.*/site-packages"))


def test_environment_is_built_once_then_reused(tmp_path, python37):
    said: list[str] = []
    env_python = tf1.ensure_environment(SIX, python37, said.append, root=tmp_path)
    directory = env_python.parent.parent
    assert directory.parent == tmp_path and directory.name.startswith("tiny-py3.7-")
    assert (directory / tf1.MARKER).is_file()
    assert any("creating the tiny environment" in s for s in said)
    assert any(s.startswith("[1/1] six==1.16.0") for s in said), said

    said.clear()
    assert tf1.ensure_environment(SIX, python37, said.append, root=tmp_path) == env_python
    assert said == []  # reused: nothing built, nothing to report


def test_interrupted_install_is_rebuilt_not_reused(tmp_path, python37):
    env_python = tf1.ensure_environment(SIX, python37, root=tmp_path)
    directory = env_python.parent.parent
    # What an interrupted build leaves: the venv and some packages, no completion marker.
    (directory / tf1.MARKER).unlink()
    leftover = directory / "half-written.txt"
    leftover.write_text("x")
    with pytest.raises(EngineError, match=r"not ready \(it is incomplete.*lrsearch runtime "
                                          r"setup tiny"):
        tf1.ensure_environment(SIX, python37, root=tmp_path, build=False)

    said: list[str] = []
    assert tf1.ensure_environment(SIX, python37, said.append, root=tmp_path) == env_python
    assert any("incomplete" in s and "building it again" in s for s in said), said
    assert not leftover.exists() and (directory / tf1.MARKER).is_file()


def test_environment_that_fails_its_import_check_is_rebuilt(tmp_path, python37):
    env_python = tf1.ensure_environment(SIX, python37, root=tmp_path)
    (_site_packages(env_python) / "six.py").unlink()  # marker intact, package gone
    said: list[str] = []
    tf1.ensure_environment(SIX, python37, said.append, root=tmp_path)
    assert any("fails its import check" in s for s in said), said
    assert (_site_packages(env_python) / "six.py").is_file()


def test_other_requirements_get_their_own_environment(tmp_path, python37):
    first = tf1.environment_dir(SIX, python37, tmp_path)
    other = tf1.EnvironmentSpec("tiny", "six==1.15.0\n", SIX.check)
    assert tf1.environment_dir(other, python37, tmp_path) != first


def test_pinned_requirements_pin_everything():
    lines = [line.strip() for line in tf1.REQUIREMENTS.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all("==" in line for line in lines), lines
    pins = dict(line.lower().split("==") for line in lines)
    assert (pins["niftynet"], pins["tensorflow"], pins["protobuf"]) == \
        ("0.6.0", "1.15.5", "3.20.3")


def _without_python37(monkeypatch, tmp_path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no python3.7, no pyenv
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("HOME", str(tmp_path))


def test_no_python37_is_one_line_saying_how_to_get_one(monkeypatch, tmp_path):
    _without_python37(monkeypatch, tmp_path)
    with pytest.raises(EngineError) as raised:
        tf1.find_python37()
    message = str(raised.value)
    assert "\n" not in message
    assert "pyenv install 3.7" in message and "--python" in message


def test_optimize_on_tf1_without_python37_fails_before_the_study(monkeypatch, tmp_path, capsys):
    config = write_tiny_config(tmp_path, Tiny(max_iter=2))
    _without_python37(monkeypatch, tmp_path)
    storage = tmp_path / "study.db"
    code = cli.main(["optimize", "-c", str(config), "--runtime", "tf1", "--trials", "1",
                     "--storage", f"sqlite:///{storage}"])
    err = capsys.readouterr().err.strip()
    assert code == 1  # a runtime that cannot be set up (README: exit codes)
    assert err.count("\n") == 0 and "pyenv install 3.7" in err, err
    assert not storage.exists()


def test_python_that_is_neither_37_nor_tf1_is_refused():
    with pytest.raises(EngineError, match=r"--python .* is Python 3\.\d+ without TensorFlow "
                                          r"1\.15 and NiftyNet"):
        tf1.ensure_python(sys.executable, build=False)


def test_gpu_request_without_a_visible_gpu_stops_before_the_study(tmp_path, capsys):
    config = write_tiny_config(tmp_path, Tiny(max_iter=2))
    load_config(config).with_values({"SYSTEM": {"cuda_devices": "63"}}).write(config)
    storage = tmp_path / "study.db"
    code = cli.main(["optimize", "-c", str(config), "--trials", "1",
                     "--storage", f"sqlite:///{storage}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0, err
    assert "cuda_devices = 63 asks for a GPU" in err and "sees none" in err, err
    assert not storage.exists()


def test_child_gets_only_lrsearch_from_an_installed_package(monkeypatch, tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    for name in ("lrsearch", "numpy"):  # numpy for 3.11 must not reach the 3.7 child
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(f"WHERE = {name!r}\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shim = Path(contract.child_pythonpath(site / "lrsearch"))
    assert shim.is_relative_to(tmp_path / "cache")
    assert [p.name for p in shim.iterdir()] == ["lrsearch"]
    assert (shim / "lrsearch").resolve() == (site / "lrsearch").resolve()
    assert contract.child_pythonpath(site / "lrsearch") == str(shim)  # made once, then reused


def test_child_imports_lrsearch_from_a_source_checkout_as_it_is():
    assert contract.child_pythonpath() == str(REPO)
