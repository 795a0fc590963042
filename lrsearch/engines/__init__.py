"""Where a trial's NiftyNet training runs.

A runtime is a Python interpreter that can import NiftyNet and TensorFlow, plus the way to
start NiftyNet in it. The TF 2 runtime is the interpreter lrsearch itself runs in (NiftyNet
bridged by :mod:`lrsearch.engines.tf2compat`). The TF 1 runtime is stock NiftyNet on TensorFlow
1.15 in a Python 3.7 environment that :mod:`lrsearch.engines.tf1` builds on first use. This
module is imported inside both, so it stays Python 3.7-compatible.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lrsearch.errors import EngineError

APPLICATION = "lrsearch.engines.niftynet_app.ScheduledSegmentationApplication"
# Shared with the application inside NiftyNet's process (kept here: importing the
# application would import TensorFlow).
SCHEDULE_ENV = "LRSEARCH_SCHEDULE"  # path of the trial's schedule.json
DICE_NAME = "dice_fg"  # console variable: hard foreground Dice of each window
LR_NAME = "lr"  # console variable: the learning rate fed to the optimiser
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Runtime:
    name: str
    python: str
    main: str = "lrsearch.engines.niftynet_main"  # module the child runs (``python -m``)
    pythonpath: str = _PACKAGE_ROOT  # where the child imports lrsearch from

    def command(self, runs: Sequence[Sequence[str]]) -> list[str]:
        """One process running NiftyNet ``net_run`` argument lists one after the other."""
        argv = [self.python, "-m", self.main]
        for i, run in enumerate(runs):
            argv += (["--then"] if i else []) + list(run)
        return argv

    def environment(self, extra: Mapping[str, str] = ()) -> dict[str, str]:
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = self.pythonpath + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.update(dict(extra))
        return env


RUNTIMES = ("tf2", "tf1")


def get_runtime(name: str, python: str | None = None, report=None) -> Runtime:
    """The runtime ``name``; for ``tf1`` its environment is found, checked or built first.

    ``python``: for tf1, a Python 3.7 to build the environment from, or an interpreter that
    already has TensorFlow 1.15 and NiftyNet 0.6.0 (used as it is). ``report(text)`` is told
    about a build's progress.
    """
    if name == "tf2":
        return Runtime("tf2", sys.executable)
    if name == "tf1":
        from lrsearch.engines import tf1

        return tf1.tf1_runtime(python, report)
    raise EngineError(f"unknown runtime {name!r}; available: {', '.join(RUNTIMES)}")
