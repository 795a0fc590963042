"""NiftyNet's ``net_run`` (as :mod:`lrsearch.engines.child.main`) with every seed it has fixed.

    LRSEARCH_SEED=3 python -m benchmarks.seeded_niftynet train -a APP -c trial.ini

NiftyNet 0.6.0 sets no seed of its own except the op-level seed 42 of its weight initialisers
(engine/application_initializer.py), so without this its initial weights are the same in every
run while window sampling (numpy's global generator, engine/sampler_uniform_v2.py) and dataset
shuffling (tf.data with ``seed=None``, engine/image_window_dataset.py) change from run to run.
This entry point seeds Python's and numpy's generators and gives every TensorFlow graph the
graph-level seed, so a seed picks the initial weights, the windows and the shuffles. What is
left to vary: the order in which parallel sampler threads draw from numpy's generator
(``num_threads`` > 1) and the summation order of multi-threaded float reductions.
Runs in both runtimes (Python 3.7-compatible); used by benchmarks/runtime_fidelity.py.
"""

import os
import random
import sys

SEED_ENV = "LRSEARCH_SEED"


def _seed_every_graph(seed):
    from tensorflow.python.framework import ops

    original = ops.Graph.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.seed = seed

    ops.Graph.__init__ = __init__


def main():
    seed = int(os.environ[SEED_ENV])
    random.seed(seed)
    import numpy

    numpy.random.seed(seed)
    _seed_every_graph(seed)
    from lrsearch.engines.child.main import main as net_run

    return net_run()


if __name__ == "__main__":
    sys.exit(main())
