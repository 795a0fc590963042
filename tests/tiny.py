"""A tiny real NiftyNet set-up for tests: demo NIfTI data at 24³, configs/demo.ini scaled down."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
TINY_SPACE = REPO / "studies" / "tiny.toml"
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def tiny_config(tmp_path: Path, subjects: int = 5, validate_every: int = 5,
                save_every: int = 50) -> Path:
    """Writes demo data (24³ volumes) and a config training 16³ windows, batch 1."""
    from lrsearch.demo import write_demo_data

    write_demo_data(tmp_path / "demo_data", subjects=subjects, shape=(24, 24, 24))
    text = (REPO / "configs" / "demo.ini").read_text()
    replacements = {
        "path_to_search = demo_data": f"path_to_search = {tmp_path / 'demo_data'}",
        "model_dir = models/demo": f"model_dir = {tmp_path / 'models'}",
        "spatial_window_size = (40, 40, 40)": "spatial_window_size = (24, 24, 24)",
        "validation_every_n = 10": f"validation_every_n = {validate_every}",
        "save_every_n = 50": f"save_every_n = {save_every}",
        "batch_size = 2": "batch_size = 1",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "tiny.ini"
    config.write_text(text)
    return config


def niftynet_processes(fragment: str) -> list[int]:
    """Live processes (not this one) whose command line mentions ``fragment``, or that are
    NiftyNet children (new or forked from a fork server, whose command line is the server's)
    working in a folder under ``fragment``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{pid}/cwd") if "lrsearch.engines.child" in cmdline else ""
        except OSError:
            continue
        if fragment in cmdline or cwd.startswith(fragment):
            found.append(int(pid))
    return found


def write_volumes(directory: Path, shape: tuple[int, ...], *, subjects: int = 3,
                  modalities: tuple[str, ...] = ("T1",), label: str = "Label",
                  classes: int = 2, file: str = "subject{k}_{name}",
                  extra: tuple[str, ...] = ()) -> Path:
    """Writes ``subjects`` image/label sets of any shape (2-D or 3-D) as real NIfTI files.

    Files are ``file.format(k=subject, name=...)`` plus ``.nii.gz`` for each modality, the
    label (every class 0..classes-1 present, in slabs) and each ``extra`` name (a positive
    float map, e.g. a weight image). Images are noise plus the label times
    100, per modality scaled differently, so every network has something to learn.
    """
    import nibabel as nib
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(subjects):
        # classes 0..classes-1 in slabs along the flattened volume: each one present, as
        # NiftyNet's label_normalisation requires (one mapping entry per class)
        size = int(np.prod(shape))
        labels = (np.arange(size) * classes // size).reshape(shape).astype(np.uint8)
        files = {label: labels}
        for i, name in enumerate(modalities):
            files[name] = (rng.normal(0.0, 10.0, shape) + (i + 1) * 100.0 * labels
                           ).astype(np.float32)
        for name in extra:
            files[name] = (1.0 + rng.random(shape)).astype(np.float32)
        for name, data in files.items():
            nib.save(nib.Nifti1Image(data, np.eye(4)),
                     directory / (file.format(k=k, name=name) + ".nii.gz"))
    return directory


def side_by_side(calls: Mapping[K, Callable[[], T]], at_once: int = 2
                 ) -> dict[K, T | BaseException]:
    """Each call's result, or the exception it raised, running ``at_once`` calls at a time in
    threads.

    A tiny NiftyNet child spends nearly all of its time on one core (importing TensorFlow,
    building the training and inference graphs; a few iterations compute little), so two
    children keep a 2-core machine busy where one leaves a core idle. Threads start the
    children as the slots of a ``--jobs 2`` worker do.
    """
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        futures = {key: pool.submit(call) for key, call in calls.items()}
    return {key: future.exception() or future.result() for key, future in futures.items()}


def selected_params(request: Any, test_name: str) -> list[dict[str, Any]]:
    """The parameters of each selected (collected, not deselected) case of ``test_name`` in
    the requesting module: what a module fixture training for those cases has to train."""
    items = [item for item in request.session.items
             if item.originalname == test_name and item.module is request.module]
    return [item.callspec.params if hasattr(item, "callspec") else {} for item in items]
