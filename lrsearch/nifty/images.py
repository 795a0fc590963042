"""Image files as NiftyNet's reader sees them: shape, voxel size and orientation from the header,
the grid after reorientation and resampling, label values, and the cache of files read in full.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lrsearch.errors import ConfigError, DataError
from lrsearch.nifty.config import InputSection, NiftyNetConfig
from lrsearch.paths import cache_dir


def _fmt_window(window: Sequence[int]) -> str:
    return ", ".join(str(w) for w in window)


def _few(items: Iterable[str], n: int = 3) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (f" … ({len(items)} in all)" if len(items) > n else "")


def _spatial(shape: Sequence[int]) -> tuple[int, ...]:
    spatial = tuple(int(n) for n in shape[:3])
    return spatial + (1,) * (3 - len(spatial))


def verified_images_path() -> Path:
    """Where :func:`scan_data` remembers the images it has read in full."""
    return cache_dir() / "verified-images.json"


_MAX_LABEL_VALUES = 1000  # above this, a label file is summarised (NiftyNet warns from 500)


@dataclass(frozen=True)
class LabelValues:
    """The distinct voxel values of a label file: all of them, or a summary when there are many."""

    count: int
    low: float
    high: float
    integer: bool
    values: tuple[float, ...] | None = None  # None when count > _MAX_LABEL_VALUES

    @classmethod
    def of(cls, data) -> LabelValues:
        import numpy

        distinct = numpy.unique(numpy.asarray(data))  # sorted; 0.15 s for a 256×256×150 mask
        if distinct.size == 0:
            return cls(0, 0.0, 0.0, True, ())
        values = [float(v) for v in distinct]
        integer = all(math.isfinite(v) and v == int(v) for v in values)
        kept = tuple(values) if len(values) <= _MAX_LABEL_VALUES else None
        return cls(len(values), values[0], values[-1], integer, kept)

    def to_json(self) -> dict:
        return {"count": self.count, "low": self.low, "high": self.high,
                "integer": self.integer, "values": list(self.values) if self.values is not None
                else None}

    @classmethod
    def from_json(cls, data: object) -> LabelValues | None:
        try:
            values = data["values"]
            return cls(int(data["count"]), float(data["low"]), float(data["high"]),
                       bool(data["integer"]),
                       tuple(float(v) for v in values) if values is not None else None)
        except (TypeError, KeyError, ValueError):
            return None

    def __str__(self) -> str:
        if self.values is None:
            return f"{self.count} distinct values from {self.low:g} to {self.high:g}"
        return _few([f"{v:g}" for v in self.values], 6).replace("'", "")


@dataclass(frozen=True)
class ImageInfo:
    """What NiftyNet's reader takes from one image file's header (and, for a label, its values).

    ``zooms`` and ``axcodes`` are the voxel sizes and orientation NiftyNet starts from when it
    reorients (``axcodes``) and resamples (``pixdim``): ``header.get_zooms()[:3]`` and
    ``nibabel.aff2axcodes`` of the affine after ``misc_io.correct_image_if_necessary``.
    """

    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    axcodes: tuple[str | None, ...]
    labels: LabelValues | None = None

    def entry(self) -> dict:
        out: dict = {"zooms": list(self.zooms), "axcodes": list(self.axcodes)}
        if self.labels is not None:
            out["labels"] = self.labels.to_json()
        return out


class VerifiedImages:
    """Images whose voxels an earlier scan read in full, by absolute path, size and mtime.

    Decompressing a whole dataset takes minutes (IXI: ~1,200 .nii.gz files), and every worker,
    resumed study and ``lr-find`` would pay it again. A file whose size or modification time
    changed is read again. Only a convenience: a cache that cannot be read or written is
    ignored, and writers on several nodes only risk losing each other's entries.

    An entry is ``[size, mtime_ns, shape, {"zooms", "axcodes", "labels"?}]``; entries written
    before the fourth item existed (``[size, mtime_ns, shape]``) still count as read in full,
    and get their header details from a header-only read.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or verified_images_path()
        self.known = self._load()
        self.added: dict[str, list] = {}

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def stamp(path: Path) -> tuple[str, list[int]] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return str(path.resolve()), [stat.st_size, stat.st_mtime_ns]

    def entry(self, stamp: tuple[str, list[int]] | None) -> tuple[tuple[int, ...], dict] | None:
        """The shape and header details remembered for an unchanged file, else None."""
        entry = self.known.get(stamp[0]) if stamp else None
        if not isinstance(entry, list) or len(entry) not in (3, 4) or entry[:2] != stamp[1]:
            return None
        extra = entry[3] if len(entry) == 4 and isinstance(entry[3], dict) else {}
        return tuple(entry[2]), extra

    def shape(self, stamp: tuple[str, list[int]] | None) -> tuple[int, ...] | None:
        found = self.entry(stamp)
        return found[0] if found else None

    def info(self, stamp: tuple[str, list[int]] | None, labels: bool) -> ImageInfo | None:
        """A complete :class:`ImageInfo` from the cache (with label values when asked), or None."""
        found = self.entry(stamp)
        if found is None or "zooms" not in found[1]:
            return None
        shape, extra = found
        values = LabelValues.from_json(extra.get("labels")) if "labels" in extra else None
        if labels and values is None:
            return None
        try:
            return ImageInfo(shape, tuple(float(z) for z in extra["zooms"]),
                             tuple(extra["axcodes"]), values)
        except (TypeError, ValueError):
            return None

    def add(self, stamp: tuple[str, list[int]] | None, info: ImageInfo) -> None:
        """Records a file read in full; ``stamp`` was taken before reading it."""
        if stamp:
            self.added[stamp[0]] = [*stamp[1], list(info.shape), info.entry()]

    def save(self) -> None:
        if not self.added:
            return
        merged = {**self._load(), **self.added}
        merged = {key: entry for key, entry in merged.items() if os.path.exists(key)}
        written = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=".verified-",
                                             suffix=".tmp", delete=False) as out:
                written = out.name
                json.dump(merged, out)
            os.replace(written, self.path)
        except OSError:
            if written:
                with contextlib.suppress(OSError):
                    os.unlink(written)
        self.known, self.added = merged, {}


def _niftynet_axcodes(image) -> tuple[str | None, ...]:
    """``aff2axcodes`` of the affine NiftyNet uses: misc_io.correct_image_if_necessary replaces
    an affine whose column norms differ from the header zooms (exact comparison); only two of
    its repairs change the directions: sform → qform, and qform → sform."""
    import nibabel
    import numpy

    affine, header = image.affine, image.header
    zooms = numpy.asarray(header.get_zooms())

    def norms(matrix):
        return numpy.sqrt(numpy.sum(numpy.square(matrix[0:3, 0:3]), 0))

    if header["dim"][0] != 5 and hasattr(image, "get_sform") and not numpy.array_equal(
            norms(affine), zooms):
        sform, qform = image.get_sform(), image.get_qform()
        sform_ok = numpy.array_equal(norms(sform), zooms)
        qform_ok = numpy.array_equal(norms(qform), zooms)
        if header["sform_code"] > 0:
            if not sform_ok and qform_ok:
                affine = qform
        elif header["qform_code"] > 0 and not qform_ok and sform_ok:
            affine = sform
    return tuple(nibabel.aff2axcodes(affine))


def _read_image(path: Path, section: str, subject: str, read_data: bool,
                labels: bool = False) -> ImageInfo:
    import nibabel
    import numpy

    try:
        image = nibabel.load(str(path))
        info = ImageInfo(tuple(int(n) for n in image.shape),
                         tuple(float(z) for z in image.header.get_zooms()[:3]),
                         _niftynet_axcodes(image))
        if read_data:
            # The header of a truncated .nii.gz reads fine; only the voxels show the damage.
            data = numpy.asarray(image.dataobj)
            if labels:
                info = dataclasses.replace(info, labels=LabelValues.of(data))
    except Exception as err:  # any failure here is a file NiftyNet cannot read either
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"[{section}] subject '{subject}': cannot read {path} ({reason}); the file is "
            "corrupt, truncated or not an image: re-copy it or remove it from the folder"
        ) from None
    return info


def _orientation(wanted: Sequence[str], found: Sequence[str | None]):
    """misc_io.compute_orientation(output axcodes, file axcodes); ValueError where it fails."""
    import nibabel
    import numpy

    start = nibabel.orientations.axcodes2ornt(tuple(wanted))
    end = nibabel.orientations.axcodes2ornt(tuple(found))
    if numpy.any(numpy.isnan(start)) or numpy.any(numpy.isnan(end)):
        raise ValueError("unknown axis code")
    try:
        return nibabel.orientations.ornt_transform(start, end)
    except (ValueError, IndexError) as err:
        raise ValueError(str(err)) from None


def _niftynet_grid(cfg: NiftyNetConfig, section: InputSection, info: ImageInfo, path: Path
                   ) -> tuple[int, ...]:
    """The spatial shape NiftyNet's reader gives this file (io/image_type.py SpatialImage3D:
    reorientation to ``axcodes``, then resampling to ``pixdim`` with scipy.ndimage.zoom, whose
    output length is ``int(round(n * zoom))``); both are skipped for spatially 2-D images."""
    import numpy

    shape = _spatial(info.shape)
    if sum(n > 1 for n in shape) < 3:
        return shape
    zooms = info.zooms
    if section.axcodes and info.axcodes:
        try:
            transform = _orientation(section.axcodes, info.axcodes)
        except ValueError:
            codes = ", ".join(str(c) for c in info.axcodes)
            raise DataError(
                f"[{section.name}] axcodes = {', '.join(section.axcodes)}: NiftyNet cannot "
                f"reorient {path} (its header gives the axes {codes}); use three of L/R, A/P, "
                f"S/I, one per axis (e.g. R, A, S), or remove axcodes in {cfg.path}"
            ) from None
        order = [int(k) for k in transform[:, 0]]
        shape = tuple(shape[k] for k in order)
        zooms = tuple(zooms[k] for k in order)
    if section.pixdim and zooms:
        if len(section.pixdim) < len(zooms):
            raise ConfigError(
                f"{cfg.path}: [{section.name}] pixdim = {_fmt_window(section.pixdim)}: NiftyNet "
                f"resamples 3-D images only to one voxel size per axis (misc_io.do_resampling); "
                f"give three, e.g. pixdim = 1.0, 1.0, 1.0"
            )
        ratio = numpy.divide(zooms[:3], section.pixdim[:3])
        shape = tuple(int(round(float(n * r))) for n, r in zip(shape, ratio, strict=True))
    return shape


def _padded(shape: tuple[int, ...], cfg: NiftyNetConfig) -> tuple[int, ...]:
    # layer/pad.py: volume_padding_to_size == (0,) pads by volume_padding_size on both sides,
    # otherwise it pads each axis up to that size
    to_size = cfg.get("NETWORK", "volume_padding_to_size")
    if tuple(to_size) == (0,):
        border = cfg.get("NETWORK", "volume_padding_size")
        return tuple(n + 2 * b for n, b in zip(shape, border, strict=False))
    return tuple(max(n, t) for n, t in zip(shape, tuple(to_size) + shape[len(to_size):],
                                           strict=False))


def _fmt_shape(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))
