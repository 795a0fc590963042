"""Where a trial's NiftyNet training runs.

A runtime is a Python interpreter that can import NiftyNet and TensorFlow, plus the way to
start NiftyNet in it. The TF 2 runtime is the interpreter lrsearch itself runs in (NiftyNet
bridged by :mod:`lrsearch.engines.tf2compat`).
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

    def command(self, runs: Sequence[Sequence[str]]) -> list[str]:
        """One process running NiftyNet ``net_run`` argument lists one after the other."""
        argv = [self.python, "-m", "lrsearch.engines.niftynet_main"]
        for i, run in enumerate(runs):
            argv += (["--then"] if i else []) + list(run)
        return argv

    def environment(self, extra: Mapping[str, str] = ()) -> dict[str, str]:
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.update(dict(extra))
        return env


RUNTIMES = ("tf2",)


def get_runtime(name: str) -> Runtime:
    if name == "tf2":
        return Runtime("tf2", sys.executable)
    raise EngineError(f"unknown runtime {name!r}; available: {', '.join(RUNTIMES)}")
