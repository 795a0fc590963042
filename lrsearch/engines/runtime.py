"""Where a trial's NiftyNet training runs.

A runtime is a Python interpreter that can import NiftyNet and TensorFlow. The TF 2 runtime is
the interpreter lrsearch itself runs in (NiftyNet bridged by
:mod:`lrsearch.engines.child.tf2compat`). The TF 1 runtime is stock NiftyNet on TensorFlow 1.15
in a Python 3.7 environment that :mod:`lrsearch.engines.tf1` builds on first use. How a child is
started is the NiftyNet contract's (:mod:`lrsearch.nifty.contract`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lrsearch.engines.process import ChildProcess, fork_server
from lrsearch.errors import EngineError
from lrsearch.nifty import contract
from lrsearch.search.space import RUNTIMES


@dataclass(frozen=True)
class Runtime:
    name: str
    python: str
    pythonpath: str = field(default_factory=contract.child_pythonpath)
    # fork children from a server that has imported TensorFlow (engines.child.server); False:
    # each child is a new process that imports it (what benchmarks/trial_overhead.py compares)
    warm: bool = True
    # TensorFlow's graph rewrites in the child (contract.GRAPH_REWRITES); None: as the
    # environment says, else TensorFlow's own (lrsearch.engines.child.sessions)
    graph_rewrites: str | None = None

    def command(self, runs: Sequence[Sequence[str]]) -> list[str]:
        """One child process running NiftyNet ``net_run`` argument lists one after the other."""
        return contract.child_command(self.python, runs)

    def environment(self, extra: Mapping[str, str] = ()) -> dict[str, str]:
        env = contract.child_environment(self.pythonpath, extra)
        if self.graph_rewrites is not None:
            env[contract.GRAPH_REWRITES_ENV] = self.graph_rewrites
        return env

    def start(self, runs: Sequence[Sequence[str]], extra: Mapping[str, str], cwd: Path,
              log_path: Path) -> ChildProcess:
        """A child running ``runs`` (NiftyNet argument lists) in ``cwd``, its output appended
        to ``log_path``: forked from this thread's server when ``warm``."""
        env = self.environment(extra)
        server = fork_server(self.python, env) if self.warm else None
        return ChildProcess(self.command(runs), env, cwd, log_path, server=server, runs=runs)


def get_runtime(name: str, python: str | None = None, report=None, *, build: bool = True,
                rebuild: bool = False) -> Runtime:
    """The runtime ``name``; for ``tf1`` its environment is found, checked or built first.

    ``python``: for tf1, a Python 3.7 to build the environment from, or an interpreter that
    already has TensorFlow 1.15 and NiftyNet 0.6.0 (used as it is). ``report(text)`` is told
    about a build's progress. The environment's ``LRSEARCH_GRAPH_REWRITES`` (on, lean, off),
    which the children inherit, is checked here, before any starts.
    """
    if contract.graph_rewrites_mode(os.environ.get(contract.GRAPH_REWRITES_ENV)) is None:
        raise EngineError(f"environment variable {contract.GRAPH_REWRITES_ENV} must be one of "
                          f"{', '.join(contract.GRAPH_REWRITES)}, but got "
                          f"{os.environ[contract.GRAPH_REWRITES_ENV]!r}; unset it for "
                          f"TensorFlow's own")
    if name == "tf2":
        return Runtime("tf2", sys.executable)
    if name == "tf1":
        from lrsearch.engines import tf1

        return Runtime("tf1", tf1.ensure_python(python, report, build=build, rebuild=rebuild))
    raise EngineError(f"unknown runtime {name!r}; available: {', '.join(RUNTIMES)}")
