"""The TF 1 runtime's interpreter: stock NiftyNet 0.6.0 on TensorFlow 1.15.5 under Python 3.7.

TensorFlow 1.15 has wheels for CPython <= 3.7 only, and lrsearch itself needs 3.11, so trials on
TF 1 run in a separate virtual environment, built on first use from a Python 3.7 that is
found on PATH (``python3.7``), in pyenv (``$(pyenv root)/versions/3.7.*``) or given with
``--python``. Its packages are pinned in ``lrsearch/data/tf1-requirements.txt``; lrsearch is not
installed there (the child gets only lrsearch on PYTHONPATH:
:func:`lrsearch.nifty.contract.child_pythonpath`).

One environment per (requirements, base interpreter) lives in
``$XDG_CACHE_HOME/lrsearch/runtimes/`` (``~/.cache`` without it) and is shared by every trial
and study. A build holds a file lock (parallel workers wait for it) and writes its completion
marker last; an environment without a valid marker, or whose interpreter can no longer import
TensorFlow and NiftyNet, is deleted and built again, never used.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lrsearch.errors import EngineError
from lrsearch.nifty import contract
from lrsearch.paths import PACKAGE_DATA, cache_dir

REQUIREMENTS = PACKAGE_DATA / "tf1-requirements.txt"
MARKER = "lrsearch-complete.json"
NO_PYTHON = (
    "the tf1 runtime needs Python 3.7 (TensorFlow 1.15 has no wheels for newer Pythons) and "
    "none was found on PATH or in pyenv: install one with `pyenv install 3.7.17`, or pass "
    "--python /path/to/python3.7"
)
_PROBE_TIMEOUT = 300.0

Report = Callable[[str], None]


def _quiet(_text: str) -> None:
    pass


@dataclass(frozen=True)
class EnvironmentSpec:
    """What goes into an environment and what it must import afterwards."""

    name: str  # directory prefix, e.g. "tf1"
    requirements: str  # pip requirements text (pinned)
    check: tuple[str, ...]  # argv after the interpreter; must exit 0 in a usable environment

    def digest(self, base_python: str) -> str:
        text = "\n".join([self.requirements, os.path.realpath(base_python), *self.check])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def tf1_spec() -> EnvironmentSpec:
    return EnvironmentSpec("tf1", REQUIREMENTS.read_text(), ("-m", "lrsearch.engines.child.probe"))


def cache_root() -> Path:
    return cache_dir() / "runtimes"


# ------------------------------------------------------------------------------------------
# Interpreters
# ------------------------------------------------------------------------------------------


def _run_python(python: str, code: str, timeout: float = 30.0) -> str | None:
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def python_version(python: str) -> tuple[tuple[int, int], str] | None:
    """``((major, minor), real executable)`` of an interpreter that runs, else None.

    A pyenv shim for a version that is not active fails here and is skipped.
    """
    out = _run_python(python, "import sys; print('%d.%d' % sys.version_info[:2]); "
                              "print(sys.executable)")
    if not out or "\n" not in out:
        return None
    version, executable = out.splitlines()[:2]
    major, minor = version.split(".")
    return (int(major), int(minor)), executable


def _pyenv_root() -> Path:
    if shutil.which("pyenv"):
        try:
            out = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                                 timeout=30, stdin=subprocess.DEVNULL)
            if out.returncode == 0 and out.stdout.strip():
                return Path(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _release_key(path: str) -> tuple[int, ...]:
    match = re.search(r"versions/3\.7\.(\d+)/", path)
    return (int(match.group(1)),) if match else (-1,)


def python37_candidates() -> Iterator[str]:
    on_path = shutil.which("python3.7")
    if on_path:
        yield on_path
    pattern = str(_pyenv_root() / "versions" / "3.7.*" / "bin" / "python3.7")
    yield from sorted(glob.glob(pattern), key=_release_key, reverse=True)


def find_python37() -> str:
    """A working Python 3.7 (its real executable); :class:`EngineError` with the fix if none."""
    for candidate in python37_candidates():
        found = python_version(candidate)
        if found and found[0] == (3, 7):
            return found[1]
    raise EngineError(NO_PYTHON)


# ------------------------------------------------------------------------------------------
# Environments
# ------------------------------------------------------------------------------------------


def _env_python(directory: Path) -> Path:
    return directory / "bin" / "python"


def _check(python: Path, spec: EnvironmentSpec) -> dict | None:
    """Runs the spec's import check; the probe's JSON (or ``{}``) on success, None on failure."""
    from lrsearch.engines.child.probe import parse

    env = contract.child_environment(contract.child_pythonpath())
    try:
        done = subprocess.run([str(python), *spec.check], capture_output=True, text=True,
                              env=env, timeout=_PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return parse(done.stdout) or {}


def _read_marker(directory: Path, digest: str) -> dict | None:
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("digest") != digest:
        return None
    return marker if _env_python(directory).exists() else None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def environment_dir(spec: EnvironmentSpec, base_python: str, root: Path | None = None) -> Path:
    found = python_version(base_python)
    tag = f"py{found[0][0]}.{found[0][1]}" if found else "py"
    return (root or cache_root()) / f"{spec.name}-{tag}-{spec.digest(base_python)}"


def ensure_environment(spec: EnvironmentSpec, base_python: str, report: Report | None = None,
                       root: Path | None = None, *, build: bool = True,
                       rebuild: bool = False) -> Path:
    """The environment's interpreter, built (or rebuilt) first when it is missing or broken.

    ``build=False`` only looks: a missing or broken environment is an :class:`EngineError`
    naming the command that builds it. ``rebuild=True`` builds it again in any case.
    """
    report = report or _quiet
    directory = environment_dir(spec, base_python, root)
    digest = spec.digest(base_python)
    with _locked(directory.with_name(directory.name + ".lock")):
        if rebuild:
            problem = "rebuilding it as asked"
        elif _read_marker(directory, digest) is not None:
            if _check(_env_python(directory), spec) is not None:
                return _env_python(directory)
            problem = "it fails its import check"
        elif directory.exists():
            problem = "it is incomplete: an interrupted install?"
        else:
            problem = ""
        if not build:
            raise EngineError(f"the {spec.name} environment is not ready"
                              + (f" ({problem})" if problem else "")
                              + f": run `lrsearch runtime setup {spec.name}`")
        if problem:
            report(f"{spec.name} environment {directory}: {problem}; building it again")
        _build(spec, base_python, directory, digest, report)
    return _env_python(directory)


def _build(spec: EnvironmentSpec, base_python: str, directory: Path, digest: str,
           report: Report) -> None:
    started = time.monotonic()
    if directory.exists():
        shutil.rmtree(directory)
    report(f"creating the {spec.name} environment in {directory} (once; shared by all studies)")
    done = subprocess.run([base_python, "-m", "venv", str(directory)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise EngineError(f"could not create a virtual environment with {base_python}: "
                          f"{_tail(done.stderr or done.stdout)}")
    requirements = directory / "requirements.txt"
    requirements.write_text(spec.requirements)
    _pip_install(_env_python(directory), requirements, spec, report)
    report(f"checking the {spec.name} environment")
    info = _check(_env_python(directory), spec)
    if info is None:
        raise EngineError(f"the new {spec.name} environment in {directory} cannot import what "
                          f"it must ({' '.join(spec.check)} failed); it will be rebuilt on "
                          "the next run")
    marker = {"digest": digest, "base_python": os.path.realpath(base_python),
              "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "seconds": round(time.monotonic() - started, 1), "probe": info}
    partial = directory / (MARKER + ".partial")
    partial.write_text(json.dumps(marker, indent=2) + "\n")
    os.replace(partial, directory / MARKER)  # written last: the environment is complete
    report(f"{spec.name} environment ready in {marker['seconds']:.0f} s"
           + (f": Python {info['python']}, TensorFlow {info['tensorflow']}, "
              f"NiftyNet {info['niftynet']}" if info else ""))


def _requirement_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _pip_install(python: Path, requirements: Path, spec: EnvironmentSpec,
                 report: Report) -> None:
    total = _requirement_count(spec.requirements)
    command = [str(python), "-m", "pip", "install", "--progress-bar", "off",
               "--disable-pip-version-check", "-r", str(requirements)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, stdin=subprocess.DEVNULL)
    tail: list[str] = []
    collected = 0
    assert process.stdout is not None
    for line in process.stdout:
        text = line.strip()
        tail = (tail + [text])[-20:]
        if text.startswith("Collecting "):
            collected += 1
            total = max(total, collected)
            report(f"[{collected}/{total}] {text[len('Collecting '):]}")
        elif text.startswith("Installing collected packages"):
            report(f"installing {total} packages")
    if process.wait() != 0:
        errors = [t for t in tail if t.startswith("ERROR")] or tail
        raise EngineError(f"pip could not install the {spec.name} environment in "
                          f"{python.parent.parent}: {_tail(chr(10).join(errors))}")


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-400:] if lines else "no output"


# ------------------------------------------------------------------------------------------
# The runtime's interpreter
# ------------------------------------------------------------------------------------------


def _ready_tf1(python: str) -> dict | None:
    """The probe of an interpreter that already has TensorFlow 1.x and NiftyNet, else None."""
    info = _check(Path(python), EnvironmentSpec("tf1", "", ("-m", "lrsearch.engines.child.probe")))
    if info and str(info.get("tensorflow", "")).startswith("1."):
        return info
    return None


def ensure_python(python: str | None = None, report: Report | None = None, *,
                  build: bool = True, rebuild: bool = False) -> str:
    """The interpreter the tf1 runtime trains with.

    ``python`` may be an interpreter that already runs TensorFlow 1.15 and NiftyNet (a user's
    own environment, or a TF 1 container's system Python): it is used as it is. Otherwise it,
    or the Python 3.7 found on PATH or in pyenv, is the base of lrsearch's pinned environment.
    """
    if python is not None:
        path = shutil.which(python) or python
        found = python_version(path)
        if found is None:
            raise EngineError(f"--python {python}: not a Python interpreter that runs")
        if _ready_tf1(path) is not None:  # used as it is, never rebuilt
            return path
        if found[0] != (3, 7):
            raise EngineError(
                f"--python {python} is Python {found[0][0]}.{found[0][1]} without TensorFlow "
                "1.15 and NiftyNet: give a Python 3.7 (lrsearch builds the tf1 environment "
                "from it) or an interpreter that already has both")
        base = found[1]
    else:
        base = find_python37()
    return str(ensure_environment(tf1_spec(), base, report, build=build, rebuild=rebuild))
