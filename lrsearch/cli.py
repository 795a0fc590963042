"""``lrsearch`` command line: parse arguments, call one function, print the result.

Every domain error becomes one line on stderr and a non-zero exit (a traceback only with
``--debug``). Heavy modules are imported inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lrsearch import __version__
from lrsearch.errors import LRSearchError

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEMO_CONFIG = PACKAGE_DATA / "demo.ini"
DEFAULT_SPACE = PACKAGE_DATA / "default.toml"
DEMO_DATA_DIR = Path("demo_data")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more output (-vv also echoes NiftyNet's console)")
    group.add_argument("-q", "--quiet", action="store_true", help="errors only")
    group.add_argument("--debug", action="store_true", help="show tracebacks")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="lrsearch",
        description="Find the learning-rate schedule that makes a NiftyNet segmentation "
                    "network train fastest and best (an Optuna study over real training runs).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"lrsearch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    opt = commands.add_parser(
        "optimize", parents=[common], help="run (or continue) a study of LR schedules",
        description="Run an Optuna study in which every trial is a NiftyNet training run with a "
                    "sampled learning-rate schedule. Without -c, runs on the built-in demo "
                    f"data (written to ./{DEMO_DATA_DIR} on first use).")
    opt.add_argument("-c", "--config", type=Path,
                     help="NiftyNet INI file (default: the built-in demo config)")
    opt.add_argument("--trials", type=int, default=50,
                     help="finished trials the study should hold; re-running continues up to "
                          "this total (default: 50)")
    opt.add_argument("--study", help="study name (default: the config file's name)")
    opt.add_argument("--storage", default=None,
                     help="Optuna storage URL (default: sqlite:///lrsearch.db in the working "
                          "directory)")
    opt.add_argument("--space", type=Path, default=None,
                     help="search space TOML (default: studies/default.toml, every family)")
    opt.add_argument("--timeout", type=float, default=None,
                     help="stop starting trials after this many seconds")
    opt.add_argument("--seed", type=int, default=None, help="sampler seed")
    opt.add_argument("--max-iter", type=int, default=None,
                     help="training iterations per trial (default: the space's, else the "
                          "config's max_iter)")
    opt.add_argument("--runs-dir", type=Path, default=None,
                     help="where trials train (default: <model_dir>/<study>/)")
    opt.set_defaults(func=cmd_optimize)

    demo = commands.add_parser(
        "demo-data", parents=[common], help="write the synthetic demo NIfTI data set",
        description="Write a small deterministic synthetic brain-extraction set named like IXI "
                    "(IXI000_orig.nii.gz image, IXI000_brain.nii.gz brain mask, ...).")
    demo.add_argument("directory", type=Path)
    demo.add_argument("--subjects", type=int, default=None)
    demo.add_argument("--size", type=int, default=None, help="volume edge length in voxels")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo_data)
    return parser


def _verbosity(args) -> int:
    from lrsearch.progress import NORMAL, QUIET

    return QUIET if args.quiet else NORMAL + args.verbose


def cmd_optimize(args) -> int:
    from lrsearch import study
    from lrsearch.progress import Progress
    from lrsearch.storage import DEFAULT_STORAGE

    config = args.config
    if config is None:
        from lrsearch.demo import ensure_demo_data

        ensure_demo_data(DEMO_DATA_DIR)
        config = DEMO_CONFIG
    plan = study.prepare(
        config,
        args.space or DEFAULT_SPACE,
        study_name=args.study,
        storage_url=args.storage or DEFAULT_STORAGE,
        trials=args.trials,
        timeout=args.timeout,
        seed=args.seed,
        max_iter=args.max_iter,
        runs_dir=args.runs_dir,
    )
    progress = Progress(plan.trials, _verbosity(args))
    try:
        result = study.optimize(plan, progress)
    finally:
        progress.close()
    if not args.quiet:
        try:
            best = result.best_trial
        except ValueError:
            print("No trial completed yet.")
        else:
            print(f"Best trial {best.number}: Dice {best.value:.4f}, "
                  f"{best.user_attrs.get('schedule_text', best.params)}")
            print(f"  model: {best.user_attrs.get('run_dir')}")
    return 0


def cmd_demo_data(args) -> int:
    from lrsearch import demo

    kwargs = {"seed": args.seed}
    if args.subjects is not None:
        kwargs["subjects"] = args.subjects
    if args.size is not None:
        kwargs["shape"] = (args.size,) * 3
    images = demo.write_demo_data(args.directory, **kwargs)
    if not args.quiet:
        print(f"wrote {len(images)} subjects (image + brain mask) to {args.directory}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LRSearchError as error:
        if args.debug:
            raise
        print(f"lrsearch: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("lrsearch: interrupted; run the same command again to continue the study",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
