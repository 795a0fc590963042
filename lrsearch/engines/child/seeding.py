"""A training seed for NiftyNet 0.6.0, which leaves almost everything to chance.

NiftyNet seeds nothing but its weight initialisers' op-level seed 42
(engine/application_initializer.py). Its window samplers and random augmentation layers draw
from numpy's global generator (engine/sampler_*_v2.py, layer/rand_*.py), from as many
threads as ``num_threads`` asks, the validation sampler's thread included, so the order of
the draws, and with it the windows, changes from run to run. Its tf.data shuffles take
``seed=None`` (engine/image_window_dataset.py) and so follow the graph-level seed, which
NiftyNet never sets: it builds its own ``tf.Graph`` (ApplicationDriver.create_graph), out of
reach of ``tf.set_random_seed``.

:func:`seed_run` fixes all of that for one run: every graph made from then on gets the seed
(initial weights, shuffles, dropout); Python's and numpy's generators are seeded; and each
window sampler draws from a generator of its own, ``RandomState([seed, k])`` for the k-th
sampler made, in one thread, so neither the validation sampler nor a second sampler thread
can take draws out of turn. The price: a seeded run samples windows in one thread per
sampler whatever ``num_threads`` says (the prefetch queue still runs ahead of training).
Left free: the summation order of TensorFlow's multi-threaded float kernels and cuDNN's
algorithms on a GPU; on a CPU both runtimes repeated a 60-iteration demo run bit for bit
(benchmarks/reproducibility.py).

Runs in the child, on TF 2 (after the compatibility layer) and on stock TF 1.15 under
Python 3.7: standard library at import, numpy/TensorFlow/NiftyNet inside the functions.
"""

import itertools
import random
import threading

from lrsearch.nifty.contract import SEED_ENV, SEED_RANGE

# NiftyNet modules that draw from ``np.random`` while a sampler makes a window
_DRAWING_MODULES = (
    "niftynet.engine.sampler_uniform_v2",
    "niftynet.engine.sampler_weighted_v2",
    "niftynet.engine.sampler_balanced_v2",
    "niftynet.io.image_reader",
    "niftynet.layer.rand_flip",
    "niftynet.layer.rand_rotation",
    "niftynet.layer.rand_spatial_scaling",
    "niftynet.layer.rand_bias_field",
    "niftynet.layer.rand_elastic_deform",
)

_DRAWING = threading.local()  # .rng: the generator of the sampler drawing in this thread
_STATE = {"seed": None, "samplers": itertools.count()}


def parse_seed(value, name=SEED_ENV):
    """The value of the seed variable ``name`` as a seed; None when unset or empty."""
    if value is None or not value.strip():
        return None
    try:
        seed = int(value)
    except ValueError:
        seed = -1
    if not 0 <= seed < SEED_RANGE:
        raise SystemExit(f"{name} must be an integer in [0, {SEED_RANGE}), "
                         f"but got {value!r}")
    return seed


def seed_run(seed):
    """Seeds the NiftyNet run about to start (see the module's doc). Call before each run of
    a process: the samplers are numbered from 0 again."""
    import numpy

    random.seed(seed)
    numpy.random.seed(seed)
    _STATE["seed"], _STATE["samplers"] = seed, itertools.count()
    if not getattr(seed_run, "installed", False):
        _seed_every_graph()
        _own_generator_per_sampler(numpy)
        seed_run.installed = True


def _seed_every_graph():
    from tensorflow.python.framework import ops

    init = ops.Graph.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.seed = _STATE["seed"]

    ops.Graph.__init__ = __init__


class _SamplingNumpy:
    """numpy as NiftyNet's sampling modules see it: ``random`` is the generator of the sampler
    drawing in this thread (numpy's global one anywhere else)."""

    def __init__(self, numpy):
        self._numpy = numpy

    def __getattr__(self, name):
        return getattr(self._numpy, name)

    @property
    def random(self):
        rng = getattr(_DRAWING, "rng", None)
        return self._numpy.random if rng is None else rng


def _own_generator_per_sampler(numpy):
    import importlib

    from niftynet.engine.image_window_dataset import ImageWindowDataset

    sampling_numpy = _SamplingNumpy(numpy)
    for name in _DRAWING_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional dependency missing: nothing to seed
            continue
        if getattr(module, "np", None) is numpy:
            module.np = sampling_numpy

    init, call = ImageWindowDataset.__init__, ImageWindowDataset.__call__
    set_threads = ImageWindowDataset.set_num_threads

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._lrsearch_rng = numpy.random.RandomState(
            [_STATE["seed"], next(_STATE["samplers"])])

    def __call__(self, *args, **kwargs):
        outer = getattr(_DRAWING, "rng", None)
        _DRAWING.rng = getattr(self, "_lrsearch_rng", None)
        try:
            return call(self, *args, **kwargs)
        finally:
            _DRAWING.rng = outer

    def set_num_threads(self, num_threads):
        set_threads(self, 1)  # one thread draws each sampler's windows in turn

    ImageWindowDataset.__init__ = __init__
    ImageWindowDataset.__call__ = __call__
    ImageWindowDataset.set_num_threads = set_num_threads
