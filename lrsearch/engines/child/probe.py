"""What a runtime's interpreter has: Python, TensorFlow, NiftyNet and the GPUs it can see.

    python -m lrsearch.engines.child.probe        # prints one line: LRSEARCH_PROBE {json}

NiftyNet is imported the way a trial imports it (through the TF 2 bridge on TensorFlow 2), so
an interpreter that passes can start a trial. GPUs are listed with the call NiftyNet itself
uses to choose its devices (``device_lib.list_local_devices``), under the environment's
``CUDA_VISIBLE_DEVICES``. Runs in the TF 1 runtime too: keep it Python 3.7-compatible.
"""

import json
import platform
import sys

MARK = "LRSEARCH_PROBE "


def parse(stdout):
    """The probe's findings in a process's standard output, or None when it printed none."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    return None


def _version(dist):
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7
        import pkg_resources

        return pkg_resources.get_distribution(dist).version
    return metadata.version(dist)


def main():
    import tensorflow

    if not tensorflow.__version__.startswith("1."):
        from lrsearch.engines.child import tf2compat

        tf2compat.install()
    import niftynet  # noqa: F401  (the import is the check)
    from tensorflow.python.client import device_lib

    gpus = [d.physical_device_desc or d.name for d in device_lib.list_local_devices()
            if d.device_type == "GPU"]
    info = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "tensorflow": tensorflow.__version__,
        "niftynet": _version("niftynet"),
        "gpus": gpus,
    }
    sys.stdout.write(MARK + json.dumps(info) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
