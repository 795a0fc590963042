"""NiftyNet's ``net_run``, on either runtime, with several runs in one process.

    python -m lrsearch.engines.child.main train -a APP -c trial.ini \\
        --then inference -a APP -c trial.ini --dataset_split_file infer.csv

On TensorFlow 2 the compatibility layer is installed first; on TensorFlow 1.15 NiftyNet runs as
released. Chaining runs with ``--then`` saves a second TensorFlow import and process start (the
final evaluation of a trial is an inference run right after training). With ``LRSEARCH_SEED``
set, every run starts from that seed (:mod:`lrsearch.engines.child.seeding`); TensorFlow's graph
rewrites follow ``LRSEARCH_GRAPH_REWRITES`` (:mod:`lrsearch.engines.child.sessions`).
:mod:`lrsearch.engines.child.server` runs the same :func:`run` in processes forked after
:func:`prepare`, so that a trial does not import TensorFlow again.
Python 3.7-compatible.
"""

import os
import sys

from lrsearch.engines.child import sessions
from lrsearch.engines.child.seeding import parse_seed, seed_run
from lrsearch.nifty.contract import GRAPH_REWRITES_ENV, SEED_ENV, split_runs


def _forget_tf2_behaviour():
    """Importing TensorFlow 2 sets ``TF2_BEHAVIOR=1`` in the importing process's environment,
    which its children inherit (lrsearch's process, if anything in it imported TensorFlow; a
    test's). TF 1.15 switches to v2 behaviour on it, in which NiftyNet's one-shot dataset
    iterators fail ("Cannot capture a stateful node ... by value"). Neither runtime needs it:
    TF 2 behaves as v2 without it."""
    os.environ.pop("TF2_BEHAVIOR", None)


def prepare():
    """Imports TensorFlow (bridged on TF 2) and NiftyNet: what every run needs first."""
    _forget_tf2_behaviour()
    import tensorflow

    if not tensorflow.__version__.startswith("1."):
        from lrsearch.engines.child import tf2compat

        tf2compat.install()
    import niftynet  # noqa: F401


def run(runs, program="net_run"):
    """NiftyNet ``net_run`` argument lists one after the other; the exit status of the first
    that fails, else 0. Reads the seed from the environment now, so that a forked process runs
    with its own."""
    prepare()  # already done in a served process: the imports are cached
    _forget_tf2_behaviour()  # a served run's environment is its request's
    import niftynet
    import tensorflow as tf  # the v1 API on either runtime

    seed = parse_seed(os.environ.get(SEED_ENV))
    sessions.parse_rewrites(os.environ.get(GRAPH_REWRITES_ENV))
    sessions.install()
    status = 0
    for args in runs:
        if seed is not None:
            seed_run(seed)
        tf.reset_default_graph()
        sys.argv = [program] + args
        status = niftynet.main() or 0
        if status:
            break
    return status


def main(argv=None):
    parse_seed(os.environ.get(SEED_ENV))  # a bad seed fails before the imports
    sessions.parse_rewrites(os.environ.get(GRAPH_REWRITES_ENV))  # so does a bad mode
    return run(list(split_runs(sys.argv[1:] if argv is None else argv)), sys.argv[0])


if __name__ == "__main__":
    sys.exit(main())
