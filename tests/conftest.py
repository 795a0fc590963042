"""What every test process shares: its trainings run without TensorFlow's graph rewrites.

The tests train NiftyNet for 2-20 iterations, where the rewrites cost more than they save: about
2 s more at each session's start and 1 s more per evaluation, paid back only by faster
iterations over hundreds (README, "TensorFlow's graph rewrites"). So the suite's trainings,
and the children and fork servers they start, run with ``LRSEARCH_GRAPH_REWRITES=off``, unless
whoever runs the tests set the variable. What the setting changes is TensorFlow's session
options only; tests/test_graph_rewrites.py trains with every mode, TensorFlow's default (the
variable unset) included, on both runtimes.
"""

from __future__ import annotations

import os

from lrsearch.nifty.contract import GRAPH_REWRITES_ENV

os.environ.setdefault(GRAPH_REWRITES_ENV, "off")
