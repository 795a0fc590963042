"""``lrsearch`` command line: parse arguments, call one command, print the result.

Every domain error becomes one line on stderr and a non-zero exit (a traceback only with
``--debug``): 2 for usage and bad input, 1 for a failure at run time, 130 after Ctrl-C or
SIGTERM (see :mod:`lrsearch.errors`). Commands live in :mod:`lrsearch.commands`, one module
per verb, and import their heavy dependencies when they run, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence

from lrsearch import __version__
from lrsearch.commands import MODULES
from lrsearch.errors import LRSearchError


class _Parser(argparse.ArgumentParser):
    """argparse, with passwords of database URLs hidden in its errors: it echoes the values
    it rejects (``unrecognized arguments: --storage postgresql://user:secret@…``)."""

    def error(self, message: str):
        from lrsearch.urls import redact

        super().error(redact(message))


def _common(top: bool) -> argparse.ArgumentParser:
    """Output options, accepted before and after the verb (``lrsearch -v optimize -q``)."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("output")
    # Only the top level sets defaults, or the verb's parser would reset them.
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    group.add_argument("-v", "--verbose", action="count", default=default(0),
                       help="more output (-vv also echoes NiftyNet's console)")
    group.add_argument("-q", "--quiet", action="store_true", default=default(False),
                       help="errors only")
    group.add_argument("--debug", action="store_true", default=default(False),
                       help="show tracebacks")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    parser = _Parser(
        prog="lrsearch",
        description="Find the learning-rate schedule that makes a NiftyNet segmentation "
                    "network train fastest and best (an Optuna study over real training runs).",
        parents=[_common(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"lrsearch {__version__}")
    verbs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in MODULES:
        module = importlib.import_module(f"lrsearch.commands.{name}")
        sub = verbs.add_parser(module.NAME, parents=[common], help=module.HELP,
                               description=module.DESCRIPTION)
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def _log_to_stderr(verbosity: int) -> None:
    """lrsearch's own log lines (storage reconnects, …) in Optuna's format, on stderr."""
    import logging

    logger = logging.getLogger("lrsearch")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(levelname).1s %(asctime)s] %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.ERROR if verbosity == 0 else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lrsearch.monitor.progress import NORMAL, QUIET

    args.verbosity = QUIET if args.quiet else NORMAL + args.verbose
    _log_to_stderr(args.verbosity)
    # SIGTERM (scheduler pre-emption, docker stop) stops like Ctrl-C: training children are
    # stopped, running trials recorded and re-queued, exit status 130.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return args.run(args)
    except LRSearchError as error:
        if args.debug:
            raise
        print(f"lrsearch: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        again = "; run the same command again to continue the study" \
            if args.command == "optimize" else ""
        print(f"lrsearch: interrupted{again}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
