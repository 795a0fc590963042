"""Whole-volume Dice, the study's objective."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def foreground_dice(prediction: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """Hard Dice averaged over the foreground classes 1..C-1.

    Same definition as the ``dice_fg`` NiftyNet prints per validation window: a class absent
    from both prediction and label counts as 1.
    """
    prediction = np.asarray(prediction).reshape(truth.shape[:3] + (-1,))[..., 0]
    truth = np.asarray(truth).reshape(truth.shape[:3] + (-1,))[..., 0]
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction shape {prediction.shape} != label shape {truth.shape}")
    scores = []
    for label in range(1, max(num_classes, 2)):
        pred_c = prediction == label
        true_c = truth == label
        total = int(pred_c.sum()) + int(true_c.sum())
        overlap = float(np.logical_and(pred_c, true_c).sum())
        scores.append(1.0 if total == 0 else 2.0 * overlap / total)
    return float(np.mean(scores))


def read_inferred(csv_path: Path) -> dict[str, Path]:
    """NiftyNet's ``inferred.csv`` (``subject_id,segmentation path``) as a mapping."""
    with open(csv_path, newline="") as handle:
        return {row[0]: Path(row[1]) for row in csv.reader(handle) if len(row) >= 2}


def volume_dice(
    segmentations: Mapping[str, Path], labels: Mapping[str, Path], num_classes: int
) -> dict[str, float]:
    """Per-subject foreground Dice of NiftyNet's inferred segmentations against the labels."""
    import nibabel

    scores = {}
    for subject, seg_path in sorted(segmentations.items()):
        if subject not in labels:
            continue
        seg = np.asanyarray(nibabel.load(str(seg_path)).dataobj)
        truth = np.asanyarray(nibabel.load(str(labels[subject])).dataobj)
        scores[subject] = foreground_dice(np.rint(seg).astype(np.int64), truth.astype(np.int64),
                                          num_classes)
    return scores
