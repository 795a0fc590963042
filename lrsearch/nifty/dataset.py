"""The dataset as NiftyNet pairs it: file matching, subject ids, the scan that reads every image
once (remembered), and its checks.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lrsearch.errors import ConfigError, DataError
from lrsearch.nifty.config import InputSection, NiftyNetConfig
from lrsearch.nifty.images import (
    _MAX_LABEL_VALUES,
    LabelValues,
    VerifiedImages,
    _few,
    _fmt_shape,
    _fmt_window,
    _niftynet_grid,
    _padded,
    _read_image,
    _spatial,
)
from lrsearch.nifty.ini import _TRAINING_INPUTS, _standard_section
from lrsearch.nifty.locations import _resolve_csv, niftynet_home
from lrsearch.nifty.windows import WINDOW_RULES, _group_window, _nearby_valid


def _strip_extension(filename: str) -> str:
    # misc_io.split_filename: ".nii.gz" and ".tar.gz" are one extension, else the last suffix
    for ext in (".nii.gz", ".tar.gz"):
        if filename.lower().endswith(ext):
            return filename[: -len(ext)] if len(filename) > len(ext) else ""
    return os.path.splitext(filename)[0]


def _id_candidates(filename: str, contains: Sequence[str], removefromid: str) -> list[str]:
    name = _strip_extension(os.path.basename(filename))
    if removefromid:
        parts = [re.sub(removefromid, "", name)]
    else:
        if contains:
            # NiftyNet de-duplicates the keywords through a set, so their order in the
            # alternation is arbitrary; longest first gives the stable, greedy reading.
            keywords = sorted(set(contains), key=len, reverse=True)
            parts = re.split("|".join(f"(?:{re.escape(k)})" for k in keywords), name)
        else:
            parts = [name]
        parts = [re.sub(r"\W+", "", p) for p in parts]
    parts = [p for p in parts if p]
    if len(parts) > 1:
        parts.append("".join(parts))
    return parts


def match_subjects(
    filenames: Iterable[str],
    filename_contains: Sequence[str] = (),
    filename_not_contains: Sequence[str] = (),
    filename_removefromid: str = "",
    *,
    where: str = "",
) -> dict[str, str]:
    """File name → subject id, for the names NiftyNet's matcher takes (in the given order).

    The id is the name without extension, split at every ``filename_contains`` keyword, with
    non-word characters dropped from each piece (``_`` is a word character); several pieces
    also offer their concatenation. Pieces shared by several files are discarded, the first
    piece left is the id. With ``filename_removefromid`` the id is the name with that regular
    expression removed. Two files with the same id raise :class:`DataError`.
    """
    taken: list[tuple[str, list[str]]] = []
    for filename in filenames:
        base = os.path.basename(filename)
        if not all(k in base for k in filename_contains):
            continue
        if any(k in base for k in filename_not_contains):
            continue
        candidates = _id_candidates(base, filename_contains, filename_removefromid)
        if candidates:
            taken.append((filename, candidates))
    first: dict[str, str] = {}
    for filename, candidates in taken:
        if candidates[0] in first:
            raise DataError(
                f"{where}{first[candidates[0]]} and {filename} both give subject id "
                f"'{candidates[0]}'; make filename_contains/filename_not_contains select one "
                "file per subject, or set filename_removefromid"
            )
        first[candidates[0]] = filename
    counts: dict[str, int] = {}
    for _, candidates in taken:
        for name in candidates:
            counts[name] = counts.get(name, 0) + 1
    result = {}
    for filename, candidates in taken:
        unique = [c for c in candidates if counts[c] == 1]
        if unique:
            result[filename] = unique[0]
    return result


@dataclass(frozen=True)
class Dataset:
    """The subjects a training run uses and their files, as NiftyNet would pair them."""

    subjects: tuple[str, ...]
    files: dict[str, dict[str, Path]]  # input section → subject id → file
    # subject id → spatial shape of its (first) image as NiftyNet reads it (after axcodes and
    # pixdim, before volume padding)
    shapes: dict[str, tuple[int, ...]]
    # label section → subject id → the label file's values (files read in full only)
    label_values: dict[str, dict[str, LabelValues]] = field(default_factory=dict)


def check_inference_window(cfg: NiftyNetConfig, dataset: Dataset,
                           subjects: Iterable[str]) -> None:
    """Raises DataError when NiftyNet's inference (grid sampler) cannot segment a subject.

    Inference cuts ``[INFERENCE] spatial_window_size`` (the image sections' window when unset)
    from each padded image: a longer window fails, and a length <= 0 is the whole image's
    length, which the network must accept (HighRes3DNet: multiples of 8).
    """
    window = cfg.get("INFERENCE", "spatial_window_size")
    what = f"[INFERENCE] spatial_window_size = {_fmt_window(window)}"
    if not window:
        found = _group_window(cfg, "image", str(cfg.path))
        if found is None:
            return
        window = found[1]
        what = (f"the window [{found[0]}] spatial_window_size = {_fmt_window(window)} (used for "
                "inference: [INFERENCE] sets none)")
    what += ", with which NiftyNet segments the validation subjects after training"
    first = cfg.image_sections[0]
    for subject in subjects:
        path = dataset.files[first][subject]
        shape = dataset.shapes[subject]
        _check_window_fits(cfg, subject, path, cfg.inputs[first].resamples,
                           _padded(shape, cfg), window, what, section="INFERENCE")


def _normalises_labels(cfg: NiftyNetConfig) -> bool:
    # segmentation_application.initialise_dataset_loader: the mapping layer exists only with
    # both label_normalisation and a histogram_ref_file
    return bool(cfg.get("SEGMENTATION", "label_normalisation")
                and cfg.get("NETWORK", "histogram_ref_file"))


def _stored_label_mapping(cfg: NiftyNetConfig, section: str) -> tuple[Path, int] | None:
    """The label mapping NiftyNet would reuse from histogram_ref_file (path, number of values)."""
    if not cfg.is_set("NETWORK", "histogram_ref_file"):
        return None  # the default file is under each trial's own model folder: made afresh
    path = cfg.model_path("NETWORK", "histogram_ref_file")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    # histogram_standardisation.read_mapping_file; DiscreteLabelNormalisationLayer.key and
    # is_ready: both the "-from" and the "-to" line must be there, else NiftyNet learns anew
    mapping = {parts[0]: parts[1:] for parts in (line.split() for line in lines)
               if len(parts) >= 2}
    keys = [_standard_section(f"label_{section}-{end}") for end in ("from", "to")]
    if not all(key in mapping for key in keys):
        return None
    return path, len(mapping[keys[0]])


def check_labels(cfg: NiftyNetConfig, dataset: Dataset,
                 training: Iterable[str] | None = None) -> None:
    """Raises DataError when the label values do not fit ``num_classes`` as NiftyNet uses them.

    Without label normalisation the values are class indices: integers 0..num_classes-1 in
    every label file (the loss fails on others). With it (layer/discrete_label_normalisation.py)
    the distinct values of the training subjects' labels map to 0..k-1, and NiftyNet stops
    unless k equals num_classes. Files not read in full (``scan_data(read_data=False)``) are
    not checked.
    """
    classes = cfg.num_classes
    if classes < 2 or not cfg.label_sections:
        return  # check_training's to refuse
    section = cfg.label_sections[0]
    known = dataset.label_values.get(section, {})
    if _normalises_labels(cfg):
        stored = _stored_label_mapping(cfg, section)
        if stored is not None:
            if stored[1] != classes:
                raise DataError(
                    f"{stored[0]} holds a label mapping of {stored[1]} values for [{section}] "
                    f"that NiftyNet reuses, but [SEGMENTATION] num_classes = {classes}: delete "
                    f"the file (NiftyNet learns the mapping again) or set num_classes = "
                    f"{stored[1]} in {cfg.path}"
                )
            return
        chosen = dataset.subjects if training is None else tuple(training)
        summaries = [known[s] for s in chosen if s in known]
        if not summaries:
            return
        union: set[float] = set()
        for summary in summaries:
            union.update(summary.values or ())
        many = max(s.count for s in summaries)
        if any(s.values is None for s in summaries) or len(union) > _MAX_LABEL_VALUES:
            found = f"more than {max(many, _MAX_LABEL_VALUES)} distinct values"
            count = max(many, len(union))
        else:
            found = str(LabelValues(len(union), min(union), max(union), True,
                                    tuple(sorted(union))))
            count = len(union)
        if count != classes:
            raise DataError(
                f"{cfg.path}: [SEGMENTATION] num_classes = {classes}, but label_normalisation "
                f"maps the {count} distinct values of the training labels [{section}] "
                f"({found}) to 0..{count - 1}, and NiftyNet stops unless both agree; set "
                f"num_classes = {count} or fix the label files"
            )
        return
    for name in cfg.label_sections:
        for subject, summary in dataset.label_values.get(name, {}).items():
            if summary.integer and summary.low >= 0 and summary.high <= classes - 1:
                continue
            path = dataset.files[name][subject]
            raise DataError(
                f"subject '{subject}': [{name}] {path} holds the values {summary}, but "
                f"[SEGMENTATION] num_classes = {classes} takes the integers 0..{classes - 1} "
                "(without label_normalisation NiftyNet uses label values as class indices); "
                f"set label_normalisation = True to map the values to 0..k-1, or fix "
                f"num_classes in {cfg.path}"
            )


def _section_files(cfg: NiftyNetConfig, section: InputSection) -> dict[str, Path]:
    where = f"[{section.name}] "
    csv_path = _resolve_csv(section.csv_file, cfg.path)
    if csv_path is not None:
        return _read_file_list(csv_path, section.name)
    if not section.path_to_search:
        raise DataError(
            f"[{section.name}] csv_file '{section.csv_file}' not found (tried the working "
            f"directory, {cfg.path.parent} and {niftynet_home()}) and no path_to_search; "
            f"fix csv_file or set path_to_search in {cfg.path}"
        )
    listing: list[str] = []
    for directory in cfg.search_dirs(section.name):
        listing += [os.path.join(directory, name) for name in sorted(os.listdir(directory))]
    ids = match_subjects(listing, section.filename_contains, section.filename_not_contains,
                         section.filename_removefromid, where=where)
    if not ids:
        dirs = ", ".join(str(d) for d in cfg.search_dirs(section.name))
        examples = ", ".join(repr(os.path.basename(p)) for p in listing[:3]) or "none"
        keywords = ", ".join(section.filename_contains) or "(anything)"
        excluded = (f", filename_not_contains {', '.join(section.filename_not_contains)}"
                    if section.filename_not_contains else "")
        raise DataError(
            f"[{section.name}] filename_contains {keywords}{excluded} matches no file in "
            f"{dirs} ({len(listing)} entries, e.g. {examples}); fix filename_contains in "
            f"{cfg.path}"
        )
    return {subject: Path(filename) for filename, subject in ids.items()}


def _read_file_list(path: Path, section: str) -> dict[str, Path]:
    # image_sets_partitioner.grep_files_by_data_section: no header, "subject_id,file"
    result: dict[str, Path] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2 or not row[0] or not row[1]:
                raise DataError(
                    f"{path}:{number}: [{section}] csv_file rows are 'subject_id,file', "
                    f"got {','.join(row)!r}"
                )
            result[row[0]] = Path(os.path.abspath(os.path.expanduser(row[1])))
    if not result:
        raise DataError(f"{path}: [{section}] csv_file lists no file")
    return result


def check_loaders(cfg: NiftyNetConfig) -> None:
    """Raises ConfigError for an input section whose ``loader`` is not nibabel.

    lrsearch checks every image, and scores every segmentation, with nibabel; files it can
    read are NIfTI-like, which the other loaders (io/image_loader.py: opencv, skimage, pillow,
    simpleitk, dummy) either cannot read or, when their package is missing from the runtime,
    fail on inside the trial.
    """
    for name, section in cfg.inputs.items():
        if section.loader not in (None, "", "nibabel"):
            raise ConfigError(
                f"{cfg.path}: [{name}] loader = {section.loader}: lrsearch reads and checks "
                "images with nibabel only (NIfTI, Analyze, MGH); convert the images to NIfTI "
                "and set loader = nibabel or remove the key"
            )


def scan_data(cfg: NiftyNetConfig, *, read_data: bool = True,
              report: Callable[[str], None] | None = None) -> Dataset:
    """Finds and checks the training images the way NiftyNet pairs them; raises DataError.

    Every file of every subject is opened with nibabel (header and, with ``read_data``, all
    voxels), so a corrupt file fails here, naming it, instead of hours into training. Files
    read in full are remembered (:class:`VerifiedImages`) and not read again while unchanged;
    ``report`` hears how far a long first read has got. Shapes are compared as NiftyNet sees
    them, after reorientation (``axcodes``), resampling (``pixdim``) and volume padding.
    """
    check_loaders(cfg)
    inputs = cfg.inputs
    groups = [(g, name) for g in _TRAINING_INPUTS for name in cfg.get("SEGMENTATION", g)]
    if not groups:
        raise ConfigError(f"{cfg.path}: [SEGMENTATION] image is not set")
    for _, name in groups:
        if inputs[name].csv_data_file:
            raise ConfigError(
                f"{cfg.path}: [{name}] csv_data_file is not read by segmentation; list image "
                "files with path_to_search or csv_file"
            )
    files = {name: _section_files(cfg, inputs[name]) for _, name in groups}
    first = cfg.image_sections[0] if cfg.image_sections else groups[0][1]
    subjects = sorted(files[first])
    for group, name in groups:
        if name == first:
            continue
        missing = [s for s in subjects if s not in files[name]]
        if missing:
            raise DataError(
                f"[{name}] ({group}) has no file for {len(missing)} of {len(subjects)} "
                f"subjects of [{first}]: {_few(missing)}; its subject ids look like "
                f"{_few(sorted(files[name]))}. NiftyNet would silently drop these subjects: "
                "rename the files or change filename_contains/filename_removefromid so both "
                f"sections give the same id (see {cfg.path})"
            )
    window = _largest_window(cfg, [name for _, name in groups])
    verified = VerifiedImages() if read_data else None
    try:
        return _check_subjects(cfg, subjects, files, groups, first, window, verified, report)
    finally:
        if verified is not None:
            verified.save()


def write_file_lists(dataset: Dataset, folder: Path, prefix: str = ""
                     ) -> dict[str, dict[str, str]]:
    """Writes a NiftyNet file list per input section to ``folder/<prefix><section>.csv``;
    the ``csv_file`` settings that name them.

    Without an existing ``csv_file`` NiftyNet searches ``path_to_search`` at every start and
    writes what it found to ``<folder of dataset_split_file>/<section>.csv``: one file for every
    run sharing a split file (a study's trials, exported configs), so runs starting together read
    each other's half-written lists and fail ("the column is empty", ValueError). A
    ``csv_file`` that exists is read as it is.
    """
    changes = {}
    for section, files in dataset.files.items():
        path = Path(folder) / f"{prefix}{section}.csv"
        path.write_text("".join(f"{subject},{files[subject]}\n" for subject in sorted(files)))
        changes[section] = {"csv_file": str(path)}
    return changes


def _check_subjects(cfg, subjects, files, groups, first, window, verified, report) -> Dataset:
    inputs = cfg.inputs
    label_sections = set(cfg.label_sections)
    wants_labels = {files[name][s]: name in label_sections for s in subjects for _, name in groups}
    stamps = {}
    if verified is not None:
        stamps = {path: verified.stamp(path) for path in wants_labels}
    unread = sum(1 for path, stamp in stamps.items() if verified.shape(stamp) is None
                 or (wants_labels[path] and verified.info(stamp, labels=True) is None))
    report = report if unread >= 20 else None  # a short first read goes unannounced
    if report:
        report(f"reading {unread} image files in full to check them (once: "
               f"{verified.path} remembers them)")
    read, shown = 0, time.monotonic()
    shapes: dict[str, tuple[int, ...]] = {}
    label_values: dict[str, dict[str, LabelValues]] = {}
    for subject in subjects:
        # (section, group, file, file shape, shape NiftyNet reads) of the first input
        reference: tuple[str, str, Path, tuple[int, ...], tuple[int, ...]] | None = None
        group_files: dict[str, tuple[str, Path, tuple[int, ...]]] = {}
        for group, name in groups:
            path = files[name][subject]
            labels = wants_labels[path]
            stamp = stamps.get(path)
            info = verified.info(stamp, labels) if stamp else None
            if info is None:
                # read in full, unless an earlier full read left only the shape (old cache)
                full = verified is not None and (verified.shape(stamp) is None or labels)
                info = _read_image(path, name, subject, full, labels and full)
                if verified is not None:
                    verified.add(stamp, info)
                    read += full
                    if report and full and time.monotonic() - shown > 15:
                        report(f"checked {read} of {unread} image files")
                        shown = time.monotonic()
            if info.labels is not None:
                label_values.setdefault(name, {})[subject] = info.labels
            raw = _spatial(info.shape)
            grid = _niftynet_grid(cfg, inputs[name], info, path)
            if name == first:
                shapes[subject] = grid
            same_group = group_files.setdefault(group, (name, path, raw))
            if raw != same_group[2]:
                raise DataError(
                    f"subject '{subject}': [{same_group[0]}] {same_group[1]} is "
                    f"{_fmt_shape(same_group[2])} voxels but [{name}] {path} is "
                    f"{_fmt_shape(raw)}; the files of one [SEGMENTATION] {group} are "
                    "concatenated, so NiftyNet needs them on one voxel grid"
                )
            if reference is None:
                reference = (name, group, path, raw, grid)
            elif grid != reference[4]:
                raise DataError(
                    f"subject '{subject}': [{reference[0]}] {reference[2]} is "
                    f"{_described(reference[3], reference[4])} voxels but [{name}] {path} is "
                    f"{_described(raw, grid)}; image and label of a subject must share "
                    "one voxel grid (NiftyNet cuts the same window from both)"
                    + (": check pixdim and axcodes of both sections" if
                       raw != grid or reference[3] != reference[4] else "")
                )
        padded = _padded(reference[4], cfg)
        _check_window_fits(cfg, subject, reference[2], reference[3] != reference[4], padded,
                           window, f"the spatial_window_size {_fmt_window(window)} NiftyNet "
                           "samples for training and validation")
    return Dataset(
        subjects=tuple(subjects),
        files={name: {s: files[name][s] for s in subjects} for _, name in groups},
        shapes=shapes,
        label_values=label_values,
    )


def _described(raw: tuple[int, ...], grid: tuple[int, ...]) -> str:
    """A file's shape, and what NiftyNet's reorientation/resampling makes of it if different."""
    if raw == grid:
        return _fmt_shape(raw)
    return f"{_fmt_shape(raw)} (NiftyNet reads {_fmt_shape(grid)} after axcodes/pixdim)"


def _check_window_fits(cfg: NiftyNetConfig, subject: str, path: Path, transformed: bool,
                       padded: tuple[int, ...], window: tuple[int, ...], what: str,
                       section: str = "") -> None:
    """A window against one subject's padded image: NiftyNet's samplers refuse a longer window
    (sampler_uniform_v2._infer_spatial_size, sampler_grid_v2.grid_spatial_coordinates), and a
    length <= 0 becomes the image's length (image_window._complete_partial_window_sizes), which
    the network must accept. The resize sampler scales the whole image to the window instead."""
    if not window or cfg.get("NETWORK", "window_sampling") == "resize":
        return
    size = f"{_fmt_shape(padded)} voxels ({'after axcodes/pixdim and ' if transformed else ''}" \
           "after volume padding)"
    if any(0 < w and n < w for w, n in zip(window, padded, strict=False)):
        fix = (f"use a window of at most {_fmt_window(padded)}" if section else
               "use a smaller window")
        raise DataError(
            f"subject '{subject}': {path} is {size}, smaller than {what}; {fix} or set "
            f"[NETWORK] volume_padding_size in {cfg.path}"
        )
    rule = WINDOW_RULES.get(cfg.network_name or "")
    for w, n in zip(window, padded, strict=False):
        if w <= 0 and n > 1 and rule is not None and not rule.accepts(n):
            raise DataError(
                f"subject '{subject}': {what} has {w}, the whole image, and {path} is {size}: "
                f"{cfg.network_name} needs each length to be {rule.rule}, {n} is not; set "
                f"a length such as {_nearby_valid(rule, n).split(' or ')[0]} in {cfg.path}"
            )


def _largest_window(cfg: NiftyNetConfig, sections: Sequence[str]) -> tuple[int, ...]:
    # sampler_uniform_v2._infer_spatial_size: the largest window over all sampled inputs
    windows = [cfg.get(s, "spatial_window_size") for s in sections]
    windows = [w for w in windows if w]
    if not windows:
        return ()
    return tuple(max(w[i] if i < len(w) else 1 for w in windows) for i in range(3))
