"""NiftyNet's dataset split files (split.csv: subject_id,phase; no header).
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Iterable
from numbers import Integral
from pathlib import Path

from lrsearch.errors import DataError
from lrsearch.nifty.ini import _PHASES


def write_split(
    path: str | os.PathLike,
    subjects: Iterable[str],
    validation_fraction: float | int = 0.2,
    seed: int = 0,
) -> dict[str, str]:
    """Writes a deterministic split in NiftyNet's format (no header, ``subject_id,phase``).

    A float is the validation fraction (rounded up, like NiftyNet), an int the count. With two
    or more subjects at least one is validation and one is training. Same subjects and seed,
    same file, whatever order the subjects come in.
    """
    phases = split_phases(subjects, validation_fraction, seed, where=path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for subject, phase in phases.items():
            writer.writerow([subject, phase])
    return phases


def split_phases(subjects: Iterable[str], validation_fraction: float | int = 0.2,
                 seed: int = 0, *, where: str | os.PathLike = "") -> dict[str, str]:
    """The phases :func:`write_split` writes (sorted by subject), without writing them."""
    path = where
    given = list(subjects)
    ordered = sorted(set(given))
    if len(ordered) != len(given):
        raise ValueError("subjects must be unique")
    if not ordered:
        raise DataError(f"{path}: no subjects to split")
    if isinstance(validation_fraction, bool):
        raise TypeError("validation_fraction must be a float fraction or an int count")
    if isinstance(validation_fraction, Integral):
        if validation_fraction < 0:
            raise ValueError(f"validation count cannot be negative, but got {validation_fraction}")
        count = int(validation_fraction)
    else:
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), but got {validation_fraction}")
        count = math.ceil(len(ordered) * validation_fraction)
    count = min(max(count, 1), len(ordered) - 1) if len(ordered) >= 2 else 0
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    validation = set(shuffled[:count])
    return {s: ("validation" if s in validation else "training") for s in ordered}


def read_split(path: str | os.PathLike) -> dict[str, str]:
    """Reads a NiftyNet split file; DataError naming the line when NiftyNet would reject it."""
    result: dict[str, str] = {}
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as err:
        raise DataError(f"{path}: cannot read the split file ({err.strerror})") from None
    with handle:
        for number, row in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or not row[0].strip():
                raise DataError(
                    f"{path}:{number}: expected 'subject_id,phase' (no header), "
                    f"got {','.join(row)!r}"
                )
            subject, phase = row[0].strip(), row[1].strip().lower()
            if phase not in _PHASES:
                raise DataError(
                    f"{path}:{number}: phase {row[1]!r} for '{subject}' is not one of "
                    f"{', '.join(_PHASES)} (NiftyNet refuses the file)"
                )
            if subject in result:
                raise DataError(f"{path}:{number}: subject '{subject}' is listed twice")
            result[subject] = phase
    if not result:
        raise DataError(f"{path}: the split file is empty (NiftyNet refuses it)")
    return result
