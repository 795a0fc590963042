"""NiftyNet's ``net_run``, on either runtime, with several runs in one process.

    python -m lrsearch.engines.child.main train -a APP -c trial.ini \\
        --then inference -a APP -c trial.ini --dataset_split_file infer.csv

On TensorFlow 2 the compatibility layer is installed first; on TensorFlow 1.15 NiftyNet runs as
released. Chaining runs with ``--then`` saves a second TensorFlow import and process start (the
final evaluation of a trial is an inference run right after training). With ``LRSEARCH_SEED``
set, every run starts from that seed (:func:`seed_run`). Python 3.7-compatible.
"""

import os
import random
import sys

from lrsearch.nifty.contract import SEED_ENV, SEED_RANGE, split_runs


def main(argv=None):
    seed = training_seed(os.environ.get(SEED_ENV))
    import tensorflow

    if not tensorflow.__version__.startswith("1."):
        from lrsearch.engines.child import tf2compat

        tf2compat.install()
    import niftynet
    import tensorflow as tf  # the v1 API on either runtime

    argv = sys.argv[1:] if argv is None else list(argv)
    program = sys.argv[0]
    status = 0
    for run in split_runs(argv):
        if seed is not None:
            seed_run(seed)
        tf.reset_default_graph()
        sys.argv = [program] + run
        status = niftynet.main() or 0
        if status:
            break
    return status


def training_seed(value):
    """``LRSEARCH_SEED``'s value as a seed; None when unset or empty."""
    if value is None or not value.strip():
        return None
    try:
        seed = int(value)
    except ValueError:
        seed = -1
    if not 0 <= seed < SEED_RANGE:
        raise SystemExit(f"{SEED_ENV} must be an integer in [0, {SEED_RANGE}), "
                         f"but got {value!r}")
    return seed


def seed_run(seed):
    """Fixes what NiftyNet 0.6.0 leaves to chance, so that a seed picks one training run.

    NiftyNet seeds nothing but its initialisers' op-level seed 42. Its window samplers draw
    from numpy's global generator (engine/sampler_*_v2.py) and its tf.data shuffles take
    ``seed=None`` (engine/image_window_dataset.py), which follows the graph-level seed. NiftyNet
    builds its own ``tf.Graph`` (ApplicationDriver.create_graph), out of reach of
    ``tf.set_random_seed``, so every graph made from here on gets ``seed``: that fixes the
    initial weights, the shuffles and dropout. Python's and numpy's generators are seeded too.
    What stays free: the order in which parallel sampler threads (``num_threads`` > 1) and
    the validation sampler draw from numpy's one generator, and the summation order of
    multi-threaded float reductions.
    """
    import numpy

    random.seed(seed)
    numpy.random.seed(seed)
    _seed_every_graph(seed)


def _seed_every_graph(seed):
    from tensorflow.python.framework import ops

    init = getattr(ops.Graph.__init__, "unseeded", ops.Graph.__init__)

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.seed = seed

    __init__.unseeded = init
    ops.Graph.__init__ = __init__


if __name__ == "__main__":
    sys.exit(main())
