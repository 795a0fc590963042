"""Validation windows fixed once per study: every round of every trial sees the same ones.

NiftyNet's validation draws ``validation_max_iter`` batches of random windows each round, so
two rounds (and two trials) are scored on different windows: the Dice swings between rounds
by more than most schedules differ. With the study's validation seed (``VALIDATION_SEED_ENV``)
the validation sampler is :class:`FixedWindowSampler` instead, and the only difference left
between two validation Dice values is the model (common random numbers).

How many: ``validation_max_iter`` x ``batch_size`` windows, the config's own validation
budget, so a round costs what the config asks (the windows are read and cropped once, in
the first round, then served from memory). One round is exactly one pass over them, in
a fixed order and in fixed batches, which matters because HighRes3DNet normalises validation
batches with their own statistics.

Where: the windows are shared out in turn among the validation subjects (sorted by name).
Within a subject, the candidates tile its foreground's bounding box grown by half a window
on each side, so that the structure's border, where segmentations differ, lies inside
windows; each tile is drawn (without replacement) with a probability proportional to its
foreground voxels, because Dice is about the foreground and a window with none scores 1
whatever the model predicts there. A subject given more windows than it has such tiles gets
the rest uniformly anywhere in its volume, as NiftyNet would, which also sees false positives
far from the structure. The draws come from ``RandomState([seed, crc32(subject)])``: the same
seed and data give the same windows on either runtime and in any process.

Runs in the child, on TF 2 (after the compatibility layer) and on stock TF 1.15 under
Python 3.7.
"""

import threading
import zlib

import numpy as np
from niftynet.engine.image_window import LOCATION_FORMAT, N_SPATIAL
from niftynet.engine.sampler_uniform_v2 import UniformSampler, _infer_spatial_size

from lrsearch.nifty.contract import append_validation_windows

LABEL = "label"  # NiftyNet's input section whose non-zero voxels are the foreground


def subject_shares(n_windows, subjects):
    """Windows per subject when ``n_windows`` are dealt out in turn, and the order they are
    fed in: ``[(subject, its k-th window), ...]``."""
    order = [(subjects[j % len(subjects)], j // len(subjects)) for j in range(n_windows)]
    shares = {s: sum(1 for t, _ in order if t == s) for s in subjects}
    return shares, order


def tile_starts(low, high, window, size):
    """Start corners along one axis of windows covering ``[low, high)`` grown by half a window
    on each side, evenly spaced, inside ``[0, size)``."""
    low, high = max(low - window // 2, 0), min(high + window // 2, size)
    count = max(1, -(-(high - low) // window))
    if count == 1:
        starts = [(low + high - window) // 2]
    else:
        starts = np.round(np.linspace(low, high - window, count)).astype(int).tolist()
    return sorted({min(max(s, 0), max(size - window, 0)) for s in starts})


def window_starts(foreground, window, count, rng):
    """Start corners (``count`` x 3) of a subject's validation windows (the module's rule).

    ``foreground``: a boolean array over the subject's three spatial axes; ``window``: the
    spatial window size.
    """
    size = foreground.shape
    chosen = []
    if count and foreground.any():
        axes = [np.flatnonzero(foreground.any(axis=tuple(a for a in range(3) if a != i)))
                for i in range(3)]
        grids = [tile_starts(int(a[0]), int(a[-1]) + 1, window[i], size[i])
                 for i, a in enumerate(axes)]
        tiles = [(x, y, z) for x in grids[0] for y in grids[1] for z in grids[2]]
        voxels = np.array([foreground[x:x + window[0], y:y + window[1], z:z + window[2]].sum()
                           for x, y, z in tiles], dtype=float)
        tiles = [t for t, v in zip(tiles, voxels) if v > 0]  # noqa: B905 (Python 3.7)
        voxels = voxels[voxels > 0]
        picked = rng.choice(len(tiles), size=min(count, len(tiles)), replace=False,
                            p=voxels / voxels.sum())
        chosen = [tiles[i] for i in picked]
    while len(chosen) < count:
        chosen.append(tuple(int(rng.randint(0, max(size[i] - window[i], 0) + 1))
                            for i in range(3)))
    return np.asarray(chosen, dtype=np.int64).reshape(count, 3)


class FixedWindowSampler(UniformSampler):
    """NiftyNet's uniform sampler serving a fixed list of windows, one pass per round.

    The list is made on first use (the module's rule) and kept in memory; NiftyNet's dataset
    then maps the indices 0..n-1, without shuffling, to those windows and repeats. The
    application fetches the locations of the batches it feeds at validation iterations and
    :meth:`log` writes them to ``log_path``, outside NiftyNet's timed ``session.run`` (a
    ``py_func`` logging inside the validation step doubled its time on a busy machine).
    """

    def __init__(self, reader, window_sizes, batch_size, n_windows, seed, queue_length=10,
                 log_path=None):
        UniformSampler.__init__(self, reader=reader, window_sizes=window_sizes,
                                batch_size=batch_size, windows_per_image=1,
                                queue_length=queue_length, name="fixed_validation_sampler")
        self.shuffle = False  # the windows in one fixed order, round after round
        self.n_subjects = n_windows  # NiftyNet's dataset maps range(n_subjects) to layer_op
        self.seed = seed
        self.log_path = log_path
        self._windows = None
        self._lock = threading.Lock()

    def layer_op(self, idx=None):
        with self._lock:
            if self._windows is None:
                self._windows = self._make_windows()
        return dict(self._windows[int(idx)])

    def _make_windows(self):
        reader = self.reader
        subjects = sorted(range(reader.num_subjects), key=reader.get_subject_id)
        shares, order = subject_shares(self.n_subjects, subjects)
        by_subject = {}
        for index in subjects:
            if shares[index]:
                by_subject[index] = self._subject_windows(index, shares[index])
        return [by_subject[index][k] for index, k in order]

    def _subject_windows(self, index, count):
        """The ``count`` windows of subject ``index``, each as one sampler output dict."""
        _, data, _ = self.reader(idx=index, shuffle=False)
        image_shapes = {name: data[name].shape for name in self.window.names}
        window_shapes = self.window.match_image_shapes(image_shapes)
        _, window = _infer_spatial_size(image_shapes, window_shapes)
        label = data.get(LABEL)
        spatial = tuple(image_shapes[self.window.names[0]][:N_SPATIAL])
        foreground = np.zeros(spatial, dtype=bool) if label is None else \
            (label.reshape(spatial + (-1,)) > 0).any(axis=-1)
        rng = np.random.RandomState(
            [self.seed, zlib.crc32(str(self.reader.get_subject_id(index)).encode())])
        starts = window_starts(foreground, [int(w) for w in window], count, rng)
        half = np.floor(np.asarray(window) / 2.0).astype(int)
        self.window_centers_sampler = lambda *_: starts + half[:N_SPATIAL]
        coordinates = self._spatial_coordinates_generator(
            subject_id=index, data=data, img_sizes=image_shapes, win_sizes=window_shapes,
            n_samples=count)
        windows = [{} for _ in range(count)]
        for name in data:
            for k, location in enumerate(coordinates[name]):
                x0, y0, z0, x1, y1, z1 = location[1:]
                windows[k][name] = data[name][x0:x1, y0:y1, z0:z1, ...][np.newaxis, ...]
                windows[k][LOCATION_FORMAT.format(name)] = location[np.newaxis, ...]
        return windows

    def log(self, iteration, locations):
        """Appends the windows of the validation batches fed at ``iteration`` (NiftyNet's
        window locations, one array per device) to ``log_path``."""
        append_validation_windows(
            self.log_path, iteration,
            [(self.reader.get_subject_id(int(row[0])), row[1:])
             for batch in locations for row in batch])
