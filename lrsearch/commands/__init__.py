"""One module per ``lrsearch`` verb (``lrsearch <verb> --help``).

Each module defines ``NAME``, ``HELP``, ``DESCRIPTION``, ``configure(parser)`` and
``run(args) -> int``, and imports nothing heavy at module level so ``--help`` stays instant.
Add a verb by adding its module name here. Options several verbs share are defined once, in
:mod:`lrsearch.commands.options`.
"""

MODULES = ("optimize", "demo_data", "runtime",
           "confirm", "dashboard", "report", "best", "export", "status", "lr_find")
