"""Options several verbs share, defined once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lrsearch.run.storage import DEFAULT_STORAGE
from lrsearch.search.space import RUNTIMES


def add_storage_argument(parser) -> None:
    parser.add_argument("--storage", default=None, metavar="URL",
                        help=f"Optuna storage URL (default: {DEFAULT_STORAGE} in the working "
                             "directory; e.g. postgresql+psycopg://user:password@host/db)")


def storage_url(args) -> str:
    return args.storage or DEFAULT_STORAGE


def add_study_argument(parser, default_text: str = "optional when the storage holds one"
                       ) -> None:
    parser.add_argument("--study", metavar="NAME", help=f"study name ({default_text})")


def add_config_arguments(parser) -> None:
    """``-c/--config`` or ``--demo TASK`` (one of them; neither: the brain demo)."""
    from lrsearch.paths import DEMOS

    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("-c", "--config", type=Path,
                        help="NiftyNet INI file (default: the built-in demo that --demo names)")
    choice.add_argument("--demo", choices=tuple(DEMOS), default="brain",
                        help="without -c, the built-in demo to run: brain (brain extraction, "
                             "the default; easy, saturates early) or tissue (CSF, grey and "
                             "white matter; still improving at its budget). Its data is "
                             "written to " + ", ".join(f"./{d} ({t})" for t, (_, d) in
                                                       DEMOS.items()) + " on first use")


PYTHON_ENV = "LRSEARCH_TF1_PYTHON"  # default of --python (set in the TF 1 container image)


def python_argument(parser, help_text: str) -> None:
    parser.add_argument("--python", metavar="PATH", default=os.environ.get(PYTHON_ENV) or None,
                        help=f"{help_text} (default: ${PYTHON_ENV}, else python3.7 on PATH, "
                             "else pyenv's)")


def add_runtime_arguments(parser, default_text: str) -> None:
    """``--runtime`` and ``--python``, shared with ``lrsearch optimize``."""
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help=f"where NiftyNet trains (default: {default_text}); tf1 is stock "
                             "NiftyNet on TensorFlow 1.15 under Python 3.7")
    python_argument(parser, "for tf1: the Python 3.7 to build its environment from, or an "
                             "interpreter that already has TensorFlow 1.15 and NiftyNet 0.6.0 "
                             "(used as it is)")


def build_reporter(args):
    """Where a first-use environment build reports its progress: stderr, unless -q."""
    if args.quiet:
        return None
    return lambda text: print(f"lrsearch: {text}", file=sys.stderr, flush=True)


def add_repeat_arguments(parser, when: str, space: bool = True) -> None:
    """``--finalists K`` and ``--repeats R`` (finalist repeats on fresh seeds); ``space``:
    the verb reads a search space, whose keys are the defaults."""
    from lrsearch.search.repeats import FINALISTS, REPEATS

    given = "the space's {}, else " if space else ""
    parser.add_argument("--finalists", type=int, default=None, metavar="K",
                        help=f"{when}, retrain the top K searched schedules (by the objective) "
                             f"and every baseline on fresh seeds (default: "
                             f"{given.format('finalists')}{FINALISTS})")
    parser.add_argument("--repeats", type=int, default=None, metavar="R",
                        help="fresh seeds each finalist and baseline is retrained on, the same "
                             f"seeds for all (default: {given.format('repeats')}{REPEATS}; 0: "
                             "none)")


def add_slot_arguments(parser) -> None:
    """``--gpus``, ``--jobs`` and ``--heartbeat``: where and how trials run."""
    parser.add_argument("--gpus", default=None, metavar="0,1,...",
                        help="run one trial per listed GPU at once, each pinned to its GPU")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trials at once on the CPU (default: 2 where there are 2 or "
                             "more cores)")
    parser.add_argument("--heartbeat", type=float, default=None, metavar="SECONDS",
                        help="running trials beat this often; one silent for 3 beats (worker "
                             "killed, node lost) is failed and re-queued (default: 30)")
