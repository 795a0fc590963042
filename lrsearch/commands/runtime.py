"""``lrsearch runtime check|setup``: what each NiftyNet runtime has, and building the tf1 one."""

from __future__ import annotations

from lrsearch.commands.options import build_reporter, python_argument
from lrsearch.search.space import RUNTIMES

NAME = "runtime"
HELP = "check the NiftyNet runtimes (tf2, tf1) or set one up ahead of time"
DESCRIPTION = (
    "tf2 is NiftyNet 0.6.0 on TensorFlow 2 in lrsearch's own interpreter; tf1 is stock NiftyNet "
    "0.6.0 on TensorFlow 1.15.5 in a Python 3.7 environment lrsearch builds on first use (in "
    "$XDG_CACHE_HOME/lrsearch/runtimes, ~/.cache without it)."
)


def configure(parser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="versions, GPUs and a 1-iteration training for each runtime",
        description="For each runtime: Python, TensorFlow and NiftyNet versions, whether a GPU "
                    "is visible, and whether a 1-iteration training (with validation and the "
                    "whole-volume evaluation) on tiny bundled demo data succeeds. Exit status "
                    "1 when any checked runtime is not ready. Builds nothing.")
    check.add_argument("--runtime", choices=RUNTIMES, action="append", default=None,
                       help="check only this runtime (repeatable; default: all)")
    python_argument(check, "for tf1: as for `lrsearch optimize --python`")
    check.add_argument("--no-train", action="store_true",
                       help="skip the 1-iteration training")
    setup = actions.add_parser(
        "setup", help="build a runtime's environment now (tf1), with progress",
        description="Builds the tf1 environment (Python 3.7 venv with pinned NiftyNet 0.6.0, "
                    "TensorFlow 1.15.5, protobuf 3.20.3) if it is missing or broken, so that "
                    "the first study does not wait for it. tf2 needs nothing.")
    setup.add_argument("name", choices=RUNTIMES, metavar="RUNTIME", help="tf1 (or tf2)")
    python_argument(setup, "the Python 3.7 to build from")
    setup.add_argument("--rebuild", action="store_true",
                       help="build it again even when it looks fine")


def run(args) -> int:
    return _setup(args) if args.action == "setup" else _check(args)


def _resolve(name: str, python: str | None, report, *, build: bool, rebuild: bool = False):
    from lrsearch.engines.runtime import get_runtime

    return get_runtime(name, python, report, build=build, rebuild=rebuild)


def _setup(args) -> int:
    from lrsearch.engines.checks import probe

    runtime = _resolve(args.name, args.python, build_reporter(args), build=True,
                       rebuild=args.rebuild)
    info = probe(runtime)
    if not args.quiet:
        print(f"{runtime.name} ready: {info.executable} (Python {info.python}, TensorFlow "
              f"{info.tensorflow}, NiftyNet {info.niftynet})")
    return 0


def _check(args) -> int:
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from lrsearch.engines.checks import probe
    from lrsearch.errors import LRSearchError
    from lrsearch.monitor.records import TrialAttr
    from lrsearch.selfcheck import Tiny, single_trial, write_tiny_config

    failed = False
    for name in args.runtime or RUNTIMES:
        try:
            runtime = _resolve(name, args.python, None, build=False)
            info = probe(runtime)
        except LRSearchError as error:
            print(f"{name}: {error}")
            failed = True
            continue
        print(f"{name}: Python {info.python} ({info.executable}), TensorFlow {info.tensorflow}, "
              f"NiftyNet {info.niftynet}")
        print(f"  GPU: {', '.join(info.gpus) if info.gpus else 'none visible'}")
        if args.no_train:
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f"lrsearch-check-{name}-"))
        started = time.monotonic()
        try:
            trial = single_trial(write_tiny_config(tmp, Tiny()), runtime, tmp / "runs")
        except LRSearchError as error:
            print(f"  1-iteration training: FAILED: {error}")
            failed = True
            continue
        seconds = time.monotonic() - started
        if trial.state.name == "COMPLETE":
            window = trial.user_attrs.get(TrialAttr.LAST_WINDOW_DICE, float("nan"))
            print(f"  1-iteration training: ok in {seconds:.1f} s (validation Dice "
                  f"{window:.3f}, whole-volume Dice {trial.value:.3f})")
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # keep the files for the user to look at
            reason = trial.user_attrs.get(TrialAttr.STOP_REASON, trial.state.name.lower())
            log = trial.user_attrs.get(TrialAttr.LOG_PATH)
            where = "" if log and log in reason else f" (log: {log})"  # failures name it
            print(f"  1-iteration training: FAILED ({trial.state.name.lower()}): {reason}{where}")
            failed = True
    return 1 if failed else 0
