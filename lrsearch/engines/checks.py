"""Asking a runtime what it has, and refusing a GPU config that would silently run on the CPU."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from lrsearch.engines.child.probe import parse
from lrsearch.engines.runtime import Runtime
from lrsearch.errors import ConfigError, EngineError

PROBE_TIMEOUT = 300.0


@dataclass(frozen=True)
class RuntimeInfo:
    """What :mod:`lrsearch.engines.child.probe` found in a runtime's interpreter."""

    runtime: str
    python: str
    executable: str
    tensorflow: str
    niftynet: str
    gpus: tuple[str, ...]

    def versions(self) -> dict[str, str]:
        return {"runtime": self.runtime, "python": self.python, "tensorflow": self.tensorflow,
                "niftynet": self.niftynet}


def probe(runtime: Runtime, env: Mapping[str, str] = ()) -> RuntimeInfo:
    """Imports TensorFlow and NiftyNet in the runtime and lists the GPUs it sees."""
    command = [runtime.python, "-m", "lrsearch.engines.child.probe"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                              env=runtime.environment(env), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        raise EngineError(f"runtime {runtime.name} ({runtime.python}) did not start: "
                          f"{error}") from error
    found = parse(done.stdout) if done.returncode == 0 else None
    if found is not None:
        return RuntimeInfo(runtime.name, found["python"], found["executable"],
                           found["tensorflow"], found["niftynet"], tuple(found["gpus"]))
    lines = [t for t in (done.stderr or done.stdout).splitlines() if t.strip()]
    errors = [t for t in lines if "Error" in t] or lines
    raise EngineError(f"runtime {runtime.name} ({runtime.python}) cannot import TensorFlow "
                      f"and NiftyNet: {(errors[-1] if errors else 'no output').strip()[-300:]}")


def requested_gpus(cuda_devices: object) -> str | None:
    """The devices a NiftyNet ``cuda_devices`` value asks for, or None when it asks for none.

    NiftyNet (utilities/util_common.py ``set_cuda_device``) exports the value as
    ``CUDA_VISIBLE_DEVICES`` when it contains a digit and otherwise leaves TensorFlow's choice.
    """
    text = str(cuda_devices or "")
    return text if re.search(r"\d", text) else None


def check_gpu_request(config, runtime: Runtime) -> RuntimeInfo | None:
    """Raises :class:`ConfigError` (bad input: exit 2, before the study) when the config asks
    for GPUs the runtime cannot see.

    NiftyNet itself would fall back to the CPU without a word (``device_string``), turning a
    GPU study into one that runs tens of times slower.
    """
    devices = requested_gpus(config.get("SYSTEM", "cuda_devices"))
    if devices is None:
        return None
    info = probe(runtime, {"CUDA_VISIBLE_DEVICES": devices})
    if not info.gpus:
        raise ConfigError(
            f"{config.path}: [SYSTEM] cuda_devices = {devices} asks for a GPU, but TensorFlow "
            f"{info.tensorflow} in the {runtime.name} runtime sees none (CUDA driver or "
            f"libraries missing, or no such device); fix CUDA (`lrsearch runtime check` shows "
            f"what each runtime sees) or set cuda_devices = \"\" to train on the CPU")
    return info
