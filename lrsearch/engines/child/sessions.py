"""The session options of NiftyNet's runs: TensorFlow's graph rewrites, on request fewer.

Before a session first runs a graph, TensorFlow's graph optimiser (grappler) rewrites it in two
passes: pruning, constant folding, arithmetic, dependencies, common subexpressions, layout,
fusions (remapper), memory. On HighRes3DNet's training graph, on the CPU measured here, that
took about 2 s at the first iteration (3 s on TF 1.15), and less again at the first validation
round and in the inference: a third of the fixed cost of a trial stopped at iteration 10. But
the iterations after it ran faster with all of it (benchmarks/fixed_cost.py ``--compare
rewrites``: without the rewrites 19 % slower, with ``lean`` 9 % slower), so a trial that
trains to the end loses more than a stopped one saves, and with the default pruner, which lets
a third of the trials or more run to the end, a study loses. TensorFlow's rewrites are
therefore the default; ``GRAPH_REWRITES_ENV`` (lrsearch.nifty.contract) asks for fewer:

- ``on`` (or unset): as TensorFlow sets them;
- ``lean``: one pass of the five that shrank the training graph (8,848 nodes to 3,262;
  the others changed nothing on it on a CPU);
- ``off``: none.

NiftyNet builds each session's options in ``niftynet.engine.application_driver.tf_config``;
:func:`install` wraps that function (NiftyNet's files are not edited) and reads the variable at
each session's creation, so that a forked run follows its own request.

Runs in the child, on TF 2 (after the compatibility layer) and on stock TF 1.15 under
Python 3.7: standard library at import, TensorFlow and NiftyNet inside the functions.
"""

import os

from lrsearch.nifty.contract import GRAPH_REWRITES, GRAPH_REWRITES_ENV, graph_rewrites_mode

# The passes "lean" turns off; it keeps pruning, constant folding, arithmetic, dependency and
# common-subexpression elimination, in one pass instead of two.
_LEAN_OFF = ("layout_optimizer", "remapping", "shape_optimization", "loop_optimization",
             "function_optimization", "implementation_selector")


def parse_rewrites(value):
    """The mode ``GRAPH_REWRITES_ENV`` asks for (``on`` when unset or blank)."""
    mode = graph_rewrites_mode(value)
    if mode is None:
        raise SystemExit("{} must be one of {}, but got {!r}".format(
            GRAPH_REWRITES_ENV, ", ".join(GRAPH_REWRITES), value))
    return mode


def configure(rewrites, mode):
    """Sets TensorFlow's ``RewriterConfig`` ``rewrites`` (a session's
    ``graph_options.rewrite_options``) for ``mode``."""
    if mode == "off":
        rewrites.disable_meta_optimizer = True
    elif mode == "lean":
        from tensorflow.core.protobuf import rewriter_config_pb2

        config = rewriter_config_pb2.RewriterConfig
        rewrites.meta_optimizer_iterations = config.ONE
        rewrites.memory_optimization = config.NO_MEM_OPT
        fields = rewrites.DESCRIPTOR.fields_by_name
        for name in _LEAN_OFF:
            if name in fields:
                setattr(rewrites, name, config.OFF)
        if "disable_tfg_optimizer" in fields:  # TF 2 only
            rewrites.disable_tfg_optimizer = True


def install():
    """Makes NiftyNet's sessions follow ``GRAPH_REWRITES_ENV``. Safe to call more than once."""
    import niftynet.engine.application_driver as driver

    if getattr(driver.tf_config, "lrsearch_wrapped", None) is not None:
        return
    stock = driver.tf_config

    def tf_config():
        config = stock()
        configure(config.graph_options.rewrite_options,
                  parse_rewrites(os.environ.get(GRAPH_REWRITES_ENV)))
        return config

    tf_config.lrsearch_wrapped = stock
    driver.tf_config = tf_config
