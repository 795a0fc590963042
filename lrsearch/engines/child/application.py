"""NiftyNet segmentation with a scheduled learning rate and a hard foreground Dice.

``net_run train -a lrsearch.engines.child.application.ScheduledSegmentationApplication -c cfg.ini``
trains exactly like NiftyNet's own ``SegmentationApplication`` (it *is* that application), with
three additions:

- the optimiser's learning rate is a placeholder fed every iteration from the schedule named by
  the ``LRSEARCH_SCHEDULE`` environment variable (a JSON file; without it the config's ``lr``
  is used, constant);
- ``lr`` and ``dice_fg`` (hard Dice of the argmax prediction over the foreground classes,
  per window, averaged over the batch) are printed with NiftyNet's console variables, so the
  training log records the learning rate actually used and validation reports a real Dice;
- NiftyNet's validation keeps running (its own ``decay_lr`` demo application refuses it), and
  with the study's validation seed (``VALIDATION_SEED_ENV``) every round sees the same windows
  (:mod:`lrsearch.engines.child.validation`).

This module runs inside NiftyNet's process on TF 2 (through the compatibility layer) and on
stock TF 1.15 under Python 3.7: keep it Python 3.7-compatible.
"""

import contextlib
import os

import tensorflow as tf
from niftynet.application import segmentation_application as _stock
from niftynet.engine.application_variables import CONSOLE
from niftynet.engine.image_window import LOCATION_FORMAT
from niftynet.engine.signal import ITER_FINISHED

from lrsearch.engines.child.seeding import parse_seed
from lrsearch.engines.child.validation import FixedWindowSampler
from lrsearch.nifty.contract import (
    DICE_NAME,
    LR_NAME,
    SCHEDULE_ENV,
    VALIDATION_LOG_ENV,
    VALIDATION_SEED_ENV,
    read_schedule,
)
from lrsearch.search.schedules import Constant, from_dict

_FED_WINDOWS = "lrsearch_validation_windows"  # ops_to_run key: the validation batches' windows


def foreground_dice(prediction, ground_truth, num_classes):
    """Hard Dice over foreground classes 1..C-1 for each window, averaged over the batch.

    A class absent from both prediction and label counts as Dice 1 for that window.
    ``prediction`` may be a list of multi-scale outputs (holisticnet while training): NiftyNet's
    loss scores each, and its inference keeps the last one (the fused scores), so that one is
    the segmentation whose Dice this reports.
    """
    if isinstance(prediction, (list, tuple)):
        prediction = prediction[-1]
    spatial_axes = list(range(1, prediction.shape.ndims - 1))
    predicted = tf.argmax(prediction, axis=-1, output_type=tf.int32)
    if ground_truth.shape.ndims == prediction.shape.ndims and \
            ground_truth.shape[-1] == num_classes and num_classes > 1:
        truth = tf.argmax(ground_truth, axis=-1, output_type=tf.int32)  # one-hot labels
    else:
        truth = tf.cast(tf.squeeze(ground_truth, axis=-1), tf.int32)
    per_class = []
    for label in range(1, max(num_classes, 2)):
        pred_c = tf.cast(tf.equal(predicted, label), tf.float32)
        true_c = tf.cast(tf.equal(truth, label), tf.float32)
        overlap = tf.reduce_sum(pred_c * true_c, axis=spatial_axes)
        total = tf.reduce_sum(pred_c, axis=spatial_axes) + tf.reduce_sum(true_c, axis=spatial_axes)
        per_class.append(tf.where(total > 0, 2.0 * overlap / tf.maximum(total, 1.0),
                                  tf.ones_like(total)))
    return tf.reduce_mean(tf.stack(per_class, axis=-1))


def load_schedule(default_lr):
    """The schedule (and validation history so far) to follow; None when not training."""
    if default_lr is None:
        return None, []
    path = os.environ.get(SCHEDULE_ENV)
    if not path:
        return Constant(base_lr=float(default_lr)), []
    schedule, history = read_schedule(path)
    return from_dict(schedule), history


class ScheduledSegmentationApplication(_stock.SegmentationApplication):
    """NiftyNet's segmentation application, learning rate fed per iteration from a schedule."""

    REQUIRED_CONFIG_SECTION = "SEGMENTATION"

    def __init__(self, net_param, action_param, action):
        super().__init__(net_param, action_param, action)
        # Inference has no learning rate (nor an ``lr`` parameter).
        self.schedule, self.history = load_schedule(getattr(action_param, "lr", None))
        self._lr = None
        self._round_dice = []  # dice_fg of the validation windows of the current round
        self._fixed_validation = None  # the FixedWindowSampler, when the study fixes them
        self._fed_locations = []  # the window locations of the batch fed, one per device
        ITER_FINISHED.connect(self._collect_validation)

    def initialise_sampler(self):
        """NiftyNet's samplers; the validation one serves the study's fixed windows when the
        study gives its validation seed (NiftyNet's ``resize`` sampling, which feeds whole
        volumes, is kept as it is)."""
        super().initialise_sampler()
        seed = parse_seed(os.environ.get(VALIDATION_SEED_ENV), VALIDATION_SEED_ENV)
        if seed is None or not self.is_training or len(self.readers) < 2 or \
                self.action_param.validation_every_n <= 0 or \
                self.net_param.window_sampling == "resize":
            return
        batch_size = self.net_param.batch_size
        self._fixed_validation = FixedWindowSampler(
            reader=self.readers[-1], window_sizes=self.data_param, batch_size=batch_size,
            n_windows=max(self.action_param.validation_max_iter, 1) * batch_size, seed=seed,
            queue_length=self.net_param.queue_length,
            log_path=os.environ.get(VALIDATION_LOG_ENV) or None)
        self.sampler[0][-1] = self._fixed_validation

    def connect_data_and_network(self, outputs_collector=None, gradients_collector=None):
        if not self.is_training:
            return super().connect_data_and_network(
                outputs_collector, gradients_collector)
        if self._lr is None:
            self._lr = tf.placeholder_with_default(
                tf.constant(float(self.action_param.lr), tf.float32), shape=[], name="lr")
        recorded = {}
        with _recording_loss(recorded), _swapped(self.action_param, "lr", self._lr), \
                _swapped(_stock, "tf", _RecordingCond(recorded)):
            super().connect_data_and_network(
                outputs_collector, gradients_collector)
        self._fed_locations.append(recorded["batch"][LOCATION_FORMAT.format("image")])
        outputs_collector.add_to_collection(
            var=self._lr, name=LR_NAME, average_over_devices=False, collection=CONSOLE)
        dice = foreground_dice(recorded["prediction"], recorded["ground_truth"],
                               self.segmentation_param.num_classes)
        outputs_collector.add_to_collection(
            var=dice, name=DICE_NAME, average_over_devices=True, collection=CONSOLE)

    def set_iteration_update(self, iteration_message):
        super().set_iteration_update(iteration_message)
        fixed = self._fixed_validation
        if fixed is not None and fixed.log_path and iteration_message.is_validation:
            iteration_message.ops_to_run[_FED_WINDOWS] = self._fed_locations
        if self._lr is None:
            return
        if iteration_message.is_training:
            self._flush_round()
        # NiftyNet counts iterations from 1; the schedule counts updates already done. A
        # validation round after iteration N is fed N's rate so the log shows the one in use.
        step = max(iteration_message.current_iter - 1, 0)
        iteration_message.data_feed_dict[self._lr] = self.schedule.lr(step, self.history)

    def _collect_validation(self, _sender, **msg):
        message = msg["iter_msg"]
        if not message.is_validation:
            return
        fed = (message.current_iter_output or {}).get(_FED_WINDOWS)
        if fed is not None:
            self._fixed_validation.log(message.current_iter, fed)
        value = (message.current_iter_output or {}).get(CONSOLE, {}).get(DICE_NAME)
        if value is not None:
            self._round_dice.append(float(value))

    def _flush_round(self):
        if self._round_dice:
            self.history.append(sum(self._round_dice) / len(self._round_dice))
            self._round_dice = []


class _RecordingLoss(_stock.LossFunction):
    """Stock loss; remembers what it was called with so the Dice sees the same tensors."""

    sink = None

    def layer_op(self, prediction, ground_truth, weight_map=None):
        if self.sink is not None:
            self.sink["prediction"] = prediction
            self.sink["ground_truth"] = ground_truth
        return super().layer_op(prediction, ground_truth, weight_map)


class _RecordingCond:
    """``tf`` as the stock application sees it while connecting data and network: ``cond``
    remembers the batch it returns (the training sampler's, or at validation iterations the
    validation sampler's), whose tensors, unlike those inside the branches, can be fetched."""

    def __init__(self, sink):
        self._sink = sink

    def __getattr__(self, name):
        return getattr(tf, name)

    def cond(self, *args, **kwargs):
        result = tf.cond(*args, **kwargs)
        if isinstance(result, dict):
            self._sink["batch"] = result
        return result


@contextlib.contextmanager
def _recording_loss(sink):
    """Within the block, the stock application builds its loss with :class:`_RecordingLoss`."""
    original = _stock.LossFunction
    _RecordingLoss.sink = sink
    _stock.LossFunction = _RecordingLoss
    try:
        yield
    finally:
        _stock.LossFunction = original
        _RecordingLoss.sink = None


@contextlib.contextmanager
def _swapped(obj, name, value):
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, original)
