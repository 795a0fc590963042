"""The session options of NiftyNet's runs: TensorFlow's graph rewrites on a CPU.

Before a session runs a graph for the first time, TensorFlow's graph optimiser (grappler) rewrites
it: pruning, constant folding, layout, op fusion, memory planning, in two passes. On HighRes3DNet's
training graph that takes about 2 s of CPU at the first iteration, and again (less) at the first
validation round, the first checkpoint and the inference. A trial stopped at iteration 10 of a
200-iteration study pays it in full for 10 iterations of training; on the CPU measured here the
iterations that follow run no faster with the rewrites than without (benchmarks/fixed_cost.py
``--compare rewrites``). On a GPU the rewrites do more (the layout pass moves convolutions to the
GPU's preferred data layout, fusions save kernel launches), and nothing was measured there, so
they are left as TensorFlow sets them.

``GRAPH_REWRITES_ENV`` (lrsearch.nifty.contract): ``on`` keeps TensorFlow's setting, ``off`` turns
the optimiser off, unset or ``auto`` turns it off when the run sees no GPU. NiftyNet builds each
session's options in ``niftynet.engine.application_driver.tf_config``; :func:`install` wraps that
function (NiftyNet's files are not edited), and the GPU question is asked there, at session
creation, after NiftyNet has set ``CUDA_VISIBLE_DEVICES`` from the config's ``cuda_devices``.

Runs in the child, on TF 2 (after the compatibility layer) and on stock TF 1.15 under
Python 3.7: standard library at import, TensorFlow and NiftyNet inside the functions.
"""

import os

from lrsearch.nifty.contract import GRAPH_REWRITES, GRAPH_REWRITES_ENV


def parse_rewrites(value):
    """The mode ``GRAPH_REWRITES_ENV`` asks for (``auto`` when unset or empty)."""
    mode = (value or "auto").strip().lower()
    if mode not in GRAPH_REWRITES:
        raise SystemExit("{} must be one of {}, but got {!r}".format(
            GRAPH_REWRITES_ENV, ", ".join(GRAPH_REWRITES), value))
    return mode


def rewrites_off(mode, gpus):
    """Are the rewrites turned off, in ``mode`` with ``gpus`` visible GPUs?"""
    return mode == "off" or (mode == "auto" and gpus == 0)


# The passes "lean" keeps, in one pass instead of two: pruning, constant folding, arithmetic,
# dependency and common-subexpression elimination, which took HighRes3DNet's training graph
# from 8,848 nodes to 3,262. The others changed nothing on it on a CPU.
_LEAN_OFF = ("layout_optimizer", "remapping", "shape_optimization", "loop_optimization",
             "function_optimization", "implementation_selector")


def _lean(rewrites):
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


def _visible_gpus():
    import tensorflow as tf

    return len(tf.config.experimental.list_physical_devices("GPU"))


def install():
    """Makes NiftyNet's sessions follow ``GRAPH_REWRITES_ENV``, read at each session's creation
    (so that a forked run follows its own request). Safe to call more than once."""
    import niftynet.engine.application_driver as driver

    if getattr(driver.tf_config, "lrsearch_wrapped", None) is not None:
        return
    stock = driver.tf_config

    def tf_config():
        config = stock()
        mode = parse_rewrites(os.environ.get(GRAPH_REWRITES_ENV))
        if mode == "lean":
            _lean(config.graph_options.rewrite_options)
        elif rewrites_off(mode, _visible_gpus() if mode == "auto" else None):
            config.graph_options.rewrite_options.disable_meta_optimizer = True
        return config

    tf_config.lrsearch_wrapped = stock
    driver.tf_config = tf_config
