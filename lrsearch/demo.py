"""A small synthetic brain data set, so a study can run without downloading IXI.

Each subject is a T1-like head phantom: scalp (skin and bright fat), dark skull, a thin CSF
layer, grey and white matter with a folded boundary, sulcal CSF and lateral ventricles, and a
neck below. The label is the brain mask (tissue, sulci and ventricles). Scalp fat is brighter
than white matter and skin, muscle and grey matter overlap, so no single intensity threshold
finds the brain: a network has to learn shape and context, so how well a learning-rate
schedule trains it shows in the Dice score.

Two tasks share the phantom. ``brain`` (the default) labels the brain mask; it is easy, and a
constant learning rate saturates on it within a few hundred iterations. ``tissue`` labels CSF
(sulci and ventricles), grey and white matter inside the brain, with partial-volume voxels on
every border: thin sulci and a folded grey/white boundary keep a network improving for much
longer, so a faster schedule has room to show.

Every subject draws from its own random stream, ``default_rng([seed, subject])``, so subject
``k`` is the same whatever the number of subjects and the files are byte-for-byte reproducible.
"""

from __future__ import annotations

import gzip
import io
import numbers
import os
import pathlib
import re
import shutil
import tempfile

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from lrsearch.errors import DataError
from lrsearch.paths import DEMOS

__all__ = [
    "DEFAULT_SHAPE", "DEFAULT_SUBJECTS", "TASKS", "TISSUE_CLASSES", "ensure_demo_data",
    "write_demo_data",
]

DEFAULT_SUBJECTS = 12
DEFAULT_SHAPE = (40, 40, 40)
_MIN_SIZE = 16
_VOXEL_MM = 1.0

# Bump when the phantom changes, so ensure_demo_data regenerates older sets.
_VERSION = 1
_MARKER = "lrsearch demo"
_FILE = re.compile(r"IXI\d{3}_(orig|brain|tissue)\.nii\.gz")
_STAGING_PREFIX = ".lrsearch-demo.partial-"

# A task's name is also its label files' keyword (IXI000_brain.nii.gz, IXI000_tissue.nii.gz).
TASKS = ("brain", "tissue")
# Points per voxel side the anatomy is sampled at (1: the voxel centre; more: partial volume).
_SUBVOXELS = {"brain": 1, "tissue": 2}
# Label values of the tissue task, in order; the brain task's 1 is their union.
TISSUE_CLASSES = ("background", "csf", "grey", "white")

# Mean T1-weighted intensity per tissue (scanner-like units); each subject jitters them.
_TISSUE = {
    "skin": 400.0,
    "fat": 850.0,
    "skull": 100.0,
    "csf": 170.0,
    "grey": 500.0,
    "white": 740.0,
    "muscle": 430.0,
}
# Outer boundary of each head layer, in units of the brain's own radius.
_CSF_OUT, _SKULL_OUT, _FAT_OUT, _SKIN_OUT = 1.04, 1.12, 1.19, 1.22
_SUPERELLIPSE = 2.6  # boxier than an ellipsoid, like a brain; also fills the field of view
_NOISE = 18.0  # Rician sigma, about 2 % of the brightest tissue


def write_demo_data(
    directory: str | os.PathLike,
    subjects: int = DEFAULT_SUBJECTS,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    seed: int = 0,
    task: str = "brain",
) -> list[pathlib.Path]:
    """Write ``subjects`` image/label pairs of ``task`` into ``directory`` (created if needed).

    Returns the image paths. Same arguments give the same voxels, headers and file bytes:
    the gzip stream is written here with ``mtime=0`` and no file name (nibabel's own writer
    does the same, but this does not depend on it); bytes can only change with the zlib build.
    Each file is written under a temporary name and renamed, so none is ever truncated.
    """
    subjects, shape, seed = _validated(subjects, shape, seed, task)
    directory = pathlib.Path(directory)
    _check_writable(_existing_ancestor(directory))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for subject in range(subjects):
            image, label = _phantom(shape, np.random.default_rng([seed, subject]), task)
            _save(_image_path(directory, subject), image, _marker(seed, task))
            _save(_label_path(directory, subject, task), label, _marker(seed, task))
    except PermissionError as error:
        raise DataError(_not_writable(pathlib.Path(error.filename or directory))) from error
    return [_image_path(directory, subject) for subject in range(subjects)]


def ensure_demo_data(
    directory: str | os.PathLike,
    subjects: int = DEFAULT_SUBJECTS,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    seed: int = 0,
    task: str = "brain",
) -> list[pathlib.Path]:
    """Make ``directory`` hold exactly this demo set, reusing it untouched when it already does.

    A new set is written into a temporary sibling and renamed into place, so an interrupted
    run leaves no directory that looks complete. An existing directory that lacks files, or
    holds a set made with other arguments, is completed from a staging folder inside it (a
    sibling could be on another file system, e.g. a Docker volume), one atomic rename per
    file; demo files of subjects beyond ``subjects`` are removed. Files with demo names that
    lrsearch did not write are never overwritten.
    """
    subjects, shape, seed = _validated(subjects, shape, seed, task)
    directory = pathlib.Path(directory)
    expected = {
        path.name
        for s in range(subjects)
        for path in (_image_path(directory, s), _label_path(directory, s, task))
    }
    images = [_image_path(directory, s) for s in range(subjects)]
    marker = _marker(seed, task)
    if _is_complete(directory, expected, shape, marker):
        return images

    _check_writable(_existing_ancestor(directory))
    in_place = directory.is_dir()
    staging_parent = directory if in_place else directory.parent
    try:
        staging_parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=staging_parent))
    except PermissionError as error:
        raise DataError(_not_writable(staging_parent)) from error
    try:
        write_demo_data(staging, subjects, shape, seed, task)
        if in_place:
            _complete_in_place(directory, staging, expected)
        else:
            try:
                staging.rename(directory)
            except OSError:
                # Another process created it meanwhile; keep theirs if it is the same set.
                if not _is_complete(directory, expected, shape, marker):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return images


def _image_path(directory: pathlib.Path, subject: int) -> pathlib.Path:
    return directory / f"IXI{subject:03d}_orig.nii.gz"


def _label_path(directory: pathlib.Path, subject: int, task: str = "brain") -> pathlib.Path:
    return directory / f"IXI{subject:03d}_{task}.nii.gz"


def _marker(seed: int, task: str = "brain") -> str:
    """The header ``descrip`` of every demo file: who wrote it, which phantom and task, which
    seed (the brain task's reads as before tasks existed, so its files stay byte-identical)."""
    kind = "" if task == "brain" else f" {task}"
    return f"{_MARKER}{kind} v{_VERSION} seed={seed}"


def _validated(subjects, shape, seed, task="brain") -> tuple[int, tuple[int, int, int], int]:
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, but got {task!r}")
    if not _is_int(subjects) or subjects < 1:
        raise DataError(f"subjects must be at least 1, but got {subjects!r}")
    try:
        shape = tuple(shape)
    except TypeError:
        raise DataError(f"shape must be 3 integers, but got {shape!r}") from None
    if len(shape) != 3 or not all(_is_int(n) for n in shape):
        raise DataError(f"shape must be 3 integers, but got {shape!r}")
    if min(shape) < _MIN_SIZE:
        raise DataError(f"every shape dimension must be at least {_MIN_SIZE}, but got {shape!r}")
    if not _is_int(seed) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, but got {seed!r}")
    return int(subjects), tuple(int(n) for n in shape), int(seed)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _existing_ancestor(path: pathlib.Path) -> pathlib.Path:
    """``path`` itself if it exists, else its nearest existing parent: where writing starts."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _check_writable(directory: pathlib.Path) -> None:
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory; give a directory path for the demo data")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DataError(_not_writable(directory))


def _not_writable(path: pathlib.Path) -> str:
    return (
        f"cannot write demo data to {path}: permission denied; choose a writable "
        f"directory or make it writable (chmod u+w {path})"
    )


def _is_complete(directory: pathlib.Path, expected: set[str], shape, marker: str) -> bool:
    """Whether ``directory`` holds exactly the expected demo files, whole, from these arguments.

    Every file is decompressed (gzip checks its CRC), so a truncated copy does not pass;
    for the default set this takes some tens of milliseconds.
    """
    if not directory.is_dir():
        return False
    present = {path.name for path in directory.iterdir() if _FILE.fullmatch(path.name)}
    return present == expected and all(
        _intact(directory / name, marker, shape) for name in expected
    )


def _intact(path: pathlib.Path, marker: str, shape: tuple[int, int, int]) -> bool:
    """Whether ``path`` decompresses whole (gzip checks length and CRC) with this header."""
    try:
        raw = gzip.decompress(path.read_bytes())
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    except Exception:  # truncated, corrupt or not NIfTI
        return False
    return _descrip_of(header) == marker and header.get_data_shape() == shape


def _descrip(path: pathlib.Path) -> str | None:
    """The header's descrip, or None when the file is no readable NIfTI (then it is no one's)."""
    try:
        return _descrip_of(nib.load(path).header)
    except Exception:
        return None


def _descrip_of(header: nib.Nifti1Header) -> str:
    return header["descrip"].item().decode("ascii", "replace")


def _complete_in_place(directory: pathlib.Path, staging: pathlib.Path, expected: set[str]) -> None:
    """Move the staged files over the directory's and drop demo files no longer wanted.

    A demo-named file is replaced when lrsearch wrote it or it is no readable NIfTI (a broken
    copy); a readable NIfTI without the marker is someone's data and stops the run.
    """
    named = {
        path.name: _descrip(path) for path in directory.iterdir() if _FILE.fullmatch(path.name)
    }
    foreign = sorted(
        name
        for name, descrip in named.items()
        if descrip is not None and not descrip.startswith(_MARKER)
    )
    if foreign:
        raise DataError(
            f"{directory / foreign[0]} was not written by lrsearch and would be overwritten; "
            "move it away or choose an empty or new directory for the demo data"
        )
    for name in sorted(expected):
        os.replace(staging / name, directory / name)
    for name in sorted(set(named) - expected):
        (directory / name).unlink(missing_ok=True)  # a concurrent run may have done it


def _save(path: pathlib.Path, data: np.ndarray, descrip: str) -> None:
    affine = np.diag([_VOXEL_MM, _VOXEL_MM, _VOXEL_MM, 1.0])
    affine[:3, 3] = -_VOXEL_MM * (np.array(data.shape) - 1) / 2  # RAS, origin at the centre
    image = nib.Nifti1Image(data, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = descrip.encode("ascii")
    payload = gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(payload)
    os.replace(partial, path)


def _phantom(
    shape: tuple[int, int, int], rng: np.random.Generator, task: str = "brain"
) -> tuple[np.ndarray, np.ndarray]:
    """One subject: (float32 T1-like image, uint8 label), both of ``shape``.

    The anatomy is defined in continuous head coordinates (brain radius below 1, the smallest
    image side spanning -1..1) and sampled at voxel centres, so a subject looks the same at
    every resolution; only noise and blur are per voxel. The brain task's label is the brain
    mask at the voxel centre. The tissue task samples the anatomy at 2^3 points per voxel: the
    image averages them (a voxel on a border mixes both tissues, as in a real scan) and the
    label is the class most of them fall in, so a border voxel's label is honestly ambiguous.
    Both tasks draw the same random numbers in the same order: subject k has one anatomy.
    """
    points = _voxel_points(shape)
    split = _SUBVOXELS[task]
    paint, classes = _anatomy(_subvoxel_points(shape, split) if split > 1 else points, rng)
    if split > 1:
        image = paint.reshape(shape + (split**3,)).mean(axis=-1)
        classes = _majority(classes.reshape(shape + (split**3,)), len(TISSUE_CLASSES))
    else:
        image, classes = paint.reshape(shape), classes.reshape(shape)
    label = classes if task == "tissue" else (classes > 0).astype(np.uint8)

    image = ndimage.gaussian_filter(image, 0.6)  # the scanner's point spread
    image *= rng.uniform(0.9, 1.1) * np.exp(0.15 * _smooth_field(rng, points, 4)).reshape(shape)
    real = image + rng.normal(0, _NOISE, shape)
    imaginary = rng.normal(0, _NOISE, shape)
    return np.hypot(real, imaginary).astype(np.float32), label


def _voxel_points(shape: tuple[int, int, int]) -> np.ndarray:
    """Voxel centres in head coordinates (3 x N, C order): the smallest side spans -1..1."""
    scale = min(shape) / 2
    grid = np.stack(
        np.meshgrid(*[(np.arange(n) - (n - 1) / 2) / scale for n in shape], indexing="ij")
    )
    return grid.reshape(3, -1)


def _subvoxel_points(shape: tuple[int, int, int], split: int) -> np.ndarray:
    """``split``^3 evenly spread points in every voxel (3 x N*split^3), a voxel's together."""
    scale = min(shape) / 2
    offsets = ((np.arange(split) + 0.5) / split - 0.5) / scale
    axes = [(np.arange(n) - (n - 1) / 2) / scale for n in shape]
    grid = np.meshgrid(*axes, offsets, offsets, offsets, indexing="ij")
    return np.stack([grid[axis] + grid[3 + axis] for axis in range(3)]).reshape(3, -1)


def _majority(classes: np.ndarray, count: int) -> np.ndarray:
    """The most frequent class along the last axis (ties: the lower class)."""
    votes = np.stack([(classes == c).sum(axis=-1) for c in range(count)], axis=-1)
    return votes.argmax(axis=-1).astype(np.uint8)


def _anatomy(
    points: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """T1 intensity and tissue class (index into TISSUE_CLASSES) at ``points`` (3 x N)."""
    # Pose and smooth deformation: head = R^T (x - t) + d(x).
    rotation = Rotation.from_euler("xyz", rng.uniform(-8, 8, 3), degrees=True).as_matrix()
    shift = rng.uniform(-0.03, 0.03, 3)
    head = rotation.T @ (points - shift[:, None])
    head += 0.03 * np.stack([_smooth_field(rng, points, 5) for _ in range(3)])
    x, y, z = head

    # Brain: a superellipsoid, narrower at the front, with a wavy outline.
    radii = np.array([0.66, 0.78, 0.65]) * rng.uniform(0.94, 1.04, 3)
    taper = 1 - 0.08 * y
    p = _SUPERELLIPSE
    rho = (
        np.abs(x / (radii[0] * taper)) ** p + np.abs(y / radii[1]) ** p + np.abs(z / radii[2]) ** p
    ) ** (1 / p)
    brain = rho * (1 + 0.025 * _smooth_field(rng, head, 6))

    # Folded grey/white boundary; sulci as thin sheets (a level set of a smooth field).
    folds = _smooth_field(rng, head, 11)
    white = brain <= 0.72 + 0.08 * folds
    sulci = (brain > 0.8) & (brain <= 1) & (np.abs(_smooth_field(rng, head, 9)) < 0.12)
    vsize = rng.uniform(0.6, 1.5)
    ventricles = np.zeros_like(brain, dtype=bool)
    for side in (-1, 1):
        ventricles |= (
            ((x - side * 0.08) / (0.045 * vsize)) ** 2
            + (y / 0.3) ** 2
            + ((z - 0.08) / (0.13 * vsize)) ** 2
        ) <= 1
    neck_radius = np.hypot(x / 0.42, (y + 0.08) / 0.50)
    neck = (z < -0.2) & (neck_radius <= 1)

    tissue = {name: value * rng.uniform(0.95, 1.05) for name, value in _TISSUE.items()}
    image = np.zeros(points.shape[1])
    layers = [  # painted outside in: each later layer overwrites
        (neck, "fat"),
        (neck & (neck_radius <= 0.85), "muscle"),
        (rho <= _SKIN_OUT, "skin"),
        (rho <= _FAT_OUT, "fat"),
        (rho <= _SKULL_OUT, "skull"),
        (rho <= _CSF_OUT, "csf"),
        (brain <= 1, "grey"),
        (white, "white"),
        (sulci | ventricles, "csf"),
    ]
    for mask, name in layers:
        image[mask] = tissue[name]
    inside = brain <= 1
    classes = np.zeros(points.shape[1], dtype=np.uint8)  # background
    for mask, name in ((inside, "grey"), (inside & white, "white"),
                       (inside & (sulci | ventricles), "csf")):
        classes[mask] = TISSUE_CLASSES.index(name)
    return image, classes


def _smooth_field(rng: np.random.Generator, points: np.ndarray, cells: int) -> np.ndarray:
    """A smooth random field of unit-ish amplitude at ``points`` (3 x N, normalised coordinates).

    White noise on a ``cells``-per-side lattice spanning -1.6..1.6, interpolated with
    quadratic splines (cubic ones cost twice the time for no visible gain); fewer cells,
    smoother field. Independent of the image resolution.
    """
    lattice = rng.standard_normal((cells,) * 3)
    index = (points + 1.6) / 3.2 * (cells - 1)
    return ndimage.map_coordinates(lattice, index, order=2, mode="nearest")


def config_or_demo(config: pathlib.Path | None, demo: str = "brain") -> pathlib.Path:
    """The user's config, or the built-in ``demo`` task's config with its data written on
    first use."""
    if config is not None:
        return config
    demo_config, data_dir = DEMOS[demo]
    ensure_demo_data(data_dir, task=demo)
    return demo_config
