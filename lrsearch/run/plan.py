"""What a study is asked to do (:class:`StudyOptions`), the validated plan a worker follows
(:class:`StudyPlan`), and the slots trials run in."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lrsearch.engines.runtime import Runtime
from lrsearch.errors import LRSearchError
from lrsearch.paths import DEFAULT_SPACE
from lrsearch.run.storage import DEFAULT_STORAGE, HEARTBEAT_SECONDS
from lrsearch.run.trial import TrialContext
from lrsearch.search.space import SearchSpace

# Trials failing the same way in a row mean the config or the machine is wrong, not the
# schedule: stop after this many (Ray Tune's FailureConfig(max_failures) plays this part).
MAX_FAILURES = 3


@dataclass(frozen=True)
class StudyOptions:
    """What a user asks of a study (``lrsearch optimize``'s options), before any check:
    :func:`lrsearch.run.study.prepare` turns it into a :class:`StudyPlan` or refuses it."""

    config: Path  # the NiftyNet INI
    space: Path = DEFAULT_SPACE  # the search space TOML
    study_name: str | None = None  # default: the config file's name
    storage_url: str = DEFAULT_STORAGE
    trials: int = 50  # finished trials the study should hold
    timeout: float | None = None  # stop starting trials after this many seconds
    seed: int | None = None  # the sampler's
    max_iter: int | None = None  # per trial (default: the space's, else the config's)
    runs_dir: Path | None = None  # default: <model_dir>/<study>
    runtime: str | Runtime | None = None  # a name (default: the space's) or a Runtime
    python: str | None = None  # the tf1 runtime's interpreter
    fork_server: bool = True  # fork trials from a process that imported TensorFlow once
    slots: tuple[Slot, ...] = ()  # where trials run at once (default: make_slots())
    heartbeat: float = HEARTBEAT_SECONDS
    objective: str | None = None  # default: the space's
    lr_bounds: str | None = None  # "auto": base_lr within an LR range test's bounds
    checkpoint_store: Path | None = None  # an artifact store every node reaches
    max_failures: int = MAX_FAILURES  # stop after this many trials failed the same way
    # reference schedules run as trials (lrsearch.search.baselines): "config,poly", "none" or
    # a sequence of names; default: the space's, else "config"
    baselines: str | Sequence[str] | None = None
    # finalist repeats once the study holds its budget: top searched schedules repeated and
    # fresh seeds per finalist and baseline (default: the space's, else 3 and 2; 0: none)
    finalists: int | None = None
    repeats: int | None = None


@dataclass(frozen=True)
class StudyPlan:
    """Everything a worker needs, validated."""

    name: str
    storage_url: str
    space: SearchSpace
    context: TrialContext
    trials: int
    timeout: float | None
    seed: int | None
    slots: tuple[Slot, ...] = ()  # where trials run at once (default: one, on the CPU)
    heartbeat: float = HEARTBEAT_SECONDS
    lr_bounds: str | None = None  # "auto": base_lr narrowed by an LR range test (lrfind)
    max_failures: int = MAX_FAILURES  # stop after this many trials failed the same way (0: never)
    baselines: tuple[str, ...] = ()  # run as trials first (lrsearch.run.baselines)
    finalists: int = 0  # top searched schedules repeated (lrsearch.run.repeats)
    repeats: int = 0  # repeat rounds on fresh seeds once the study holds its budget (0: none)


@dataclass(frozen=True)
class Slot:
    """One trial at a time: pinned to a GPU, or on the CPU (gpu None)."""

    index: int
    gpu: str | None = None


# On the CPU two trials run at once by default: one NiftyNet process leaves the cores idle while
# it imports TensorFlow, builds its graph and evaluates (benchmarks/trial_overhead.py: ~17 s of
# a ~37 s demo trial); two at once gave 1.45x the trials per hour on 2 cores.
DEFAULT_CPU_JOBS = 2 if (os.cpu_count() or 1) >= 2 else 1


def make_slots(jobs: int | None = None, gpus: str | None = None) -> tuple[Slot, ...]:
    """``--gpus 0,1,2,3``: one slot per GPU; ``--jobs K``: K CPU slots."""
    if gpus is not None:
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
        if not ids or not all(g.isdigit() for g in ids) or len(set(ids)) != len(ids):
            raise LRSearchError(f"--gpus takes distinct GPU indices like 0,1,2,3, but got {gpus!r}")
        if jobs is not None and jobs != len(ids):
            raise LRSearchError(f"--jobs {jobs} contradicts --gpus {gpus} (one trial per GPU); "
                                "give one of them")
        return tuple(Slot(i, g) for i, g in enumerate(ids))
    if jobs is not None and jobs < 1:
        raise LRSearchError(f"--jobs must be at least 1, but got {jobs}")
    return tuple(Slot(i) for i in range(jobs or DEFAULT_CPU_JOBS))
