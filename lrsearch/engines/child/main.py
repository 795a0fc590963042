"""NiftyNet's ``net_run``, on either runtime, with several runs in one process.

    python -m lrsearch.engines.child.main train -a APP -c trial.ini \\
        --then inference -a APP -c trial.ini --dataset_split_file infer.csv

On TensorFlow 2 the compatibility layer is installed first; on TensorFlow 1.15 NiftyNet runs as
released. Chaining runs with ``--then`` saves a second TensorFlow import and process start (the
final evaluation of a trial is an inference run right after training). With ``LRSEARCH_SEED``
set, every run starts from that seed (:mod:`lrsearch.engines.child.seeding`).
Python 3.7-compatible.
"""

import os
import sys

from lrsearch.engines.child.seeding import parse_seed, seed_run
from lrsearch.nifty.contract import SEED_ENV, split_runs


def main(argv=None):
    seed = parse_seed(os.environ.get(SEED_ENV))
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


if __name__ == "__main__":
    sys.exit(main())
