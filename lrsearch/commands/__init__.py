"""One module per ``lrsearch`` verb (``lrsearch <verb> --help``).

Each module defines ``NAME``, ``HELP``, ``DESCRIPTION``, ``configure(parser)`` and
``run(args) -> int``, and imports nothing heavy at module level so ``--help`` stays instant.
Add a verb by adding its module name here.
"""

from pathlib import Path

MODULES = ("optimize", "demo_data", "runtime",
           "dashboard", "report", "best", "export", "status", "lr_find")


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
