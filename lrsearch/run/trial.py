"""One trial: write its NiftyNet config, train in a child, report Dice, prune, score.

The flow a reader should be able to follow: ``run_trial`` writes ``trial.ini`` (own model_dir,
the study's split file) and ``schedule.json``, starts NiftyNet in a child process, turns every
validation round of its console into ``trial.report(dice, step=iteration)``, stops the child
when Optuna prunes (or the loss diverges), and otherwise scores the final model by NiftyNet
inference on the validation subjects' whole volumes.
"""

from __future__ import annotations

import logging
import platform
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import optuna

from lrsearch import __version__
from lrsearch.engines.runtime import Runtime
from lrsearch.monitor.records import TrialAttr
from lrsearch.nifty import contract
from lrsearch.nifty.config import NiftyNetConfig
from lrsearch.nifty.console import FailureTail, ValidationRounds, parse_line
from lrsearch.nifty.contract import DICE_NAME, LR_NAME, SCHEDULE_ENV, SEED_ENV, SEED_RANGE
from lrsearch.nifty.dataset import Dataset, write_file_lists
from lrsearch.nifty.metrics import read_inferred, volume_dice
from lrsearch.run import checkpoints, owners
from lrsearch.run.range_test import training_loss
from lrsearch.search.objectives import parse_objective
from lrsearch.search.range_test import LossTracker
from lrsearch.search.schedules import curve
from lrsearch.search.space import TrialSetup
from lrsearch.search.strategy import is_held, pruned_because

if TYPE_CHECKING:
    from lrsearch.monitor.live import LiveTrial

DIVERGENCE_MIN_ITERATIONS = 10  # training losses seen before a finite blow-up is judged
# Losses in [0, 1] (NiftyNet's Dice family): they cannot blow up finitely, and a network that
# diverges under them shows NaN, which stops any trial.
BOUNDED_LOSSES = frozenset({"Dice", "Dice_NS", "Dice_Dense", "Dice_Dense_NS", "Tversky",
                            "GDSC", "WGDL", "SensSpec"})
LR_CURVE_POINTS = 100  # points stored per LR curve (enough to plot; keeps the storage light)


class TrialFailed(Exception):
    """The trial could not produce a score: ``cause`` (the child's original exception, or
    what else went wrong) and the console log that shows it; ``str()`` is the stored reason."""

    def __init__(self, cause: str, log_path: Path | str | None = None):
        self.cause, self.log_path = cause, log_path
        super().__init__(f"{cause} (see {log_path})" if log_path else cause)


class TrialInterrupted(Exception):
    """The worker is stopping (Ctrl-C, SIGTERM); the trial should be re-queued."""


class Observer(Protocol):
    def trial_iteration(self, number: int, iteration: int, max_iter: int) -> None: ...

    def trial_validation(self, number: int, iteration: int, dice: float) -> None: ...

    def trial_line(self, number: int, line: str) -> None: ...


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares."""

    config: NiftyNetConfig
    dataset: Dataset
    split_file: Path
    validation_subjects: tuple[str, ...]
    runs_dir: Path
    max_iter: int
    runtime: Runtime
    objective: str = "final_dice"  # see lrsearch.search.objectives
    checkpoint_store: Path | None = None  # artifact store for checkpoints (run/checkpoints.py)
    owner: owners.Owner | None = None  # the study, recorded in each trial folder it writes
    seed: int | None = None  # the study's sampler seed (--seed): trials' seeds derive from it
    # the study's validation seed: every validation round of every trial sees the same windows
    # (lrsearch.engines.child.validation); None: NiftyNet's random windows
    validation_seed: int | None = None

    def trial_dir(self, number: int) -> Path:
        return self.runs_dir / f"trial-{number:04d}"


@dataclass
class _Progress:
    """What the parent learnt from the child's console."""

    last_iteration: int = 0
    max_iter: int | None = None  # the trial's last iteration: a round there is not judged
    niftynet_started_at: float | None = None  # first NiftyNet line: imports are done
    first_iteration_at: float | None = None
    last_iteration_at: float | None = None
    lr_used: list[tuple[int, float]] = field(default_factory=list)
    rounds: list[tuple[int, float]] = field(default_factory=list)
    tail: FailureTail = field(default_factory=FailureTail)  # why the child failed, if it did
    loss: LossTracker = field(default_factory=LossTracker)  # the smoothed training loss
    uploader: checkpoints.CheckpointUploader | None = None

    def remember(self, line: str) -> None:
        self.tail.feed(line)


@dataclass(frozen=True)
class Resume:
    """Where a re-queued trial picks up: its run directory and last checkpoint."""

    directory: Path
    iteration: int  # the checkpoint's iteration; training continues at iteration + 1
    history: tuple[float, ...]  # validation Dice of the rounds up to the checkpoint


def find_resume(trial: optuna.Trial, ctx: TrialContext | None = None) -> Resume | None:
    """A retry inherits its original's user attributes (run_dir, checkpoint_artifact) and
    intermediate values: it resumes in the original's run folder when this node sees its
    checkpoint (and the folder is still this study's), else from the checkpoint store into a
    folder of its own."""
    run_dir = trial.user_attrs.get(TrialAttr.RUN_DIR)
    if run_dir and ctx is not None and not owners.is_own(Path(run_dir), ctx.owner):
        run_dir = None  # another study's now: its checkpoints are not this trial's
    record = trial.user_attrs.get(TrialAttr.CHECKPOINT_ARTIFACT)
    iteration = contract.checkpoint_iteration(Path(run_dir) / contract.MODEL) if run_dir else None
    directory = Path(run_dir) if run_dir else None
    if ctx is not None and ctx.checkpoint_store is not None and record and \
            record.get("iteration", 0) > (iteration or 0):
        own = ctx.trial_dir(trial.number)
        _clear_stale(ctx, own)
        store = checkpoints.open_store(ctx.checkpoint_store)
        restored = checkpoints.restore(store, record, own / contract.MODEL)
        if restored:
            directory, iteration = own, restored
    if not iteration or directory is None:
        return None
    reported = _frozen(trial).intermediate_values
    history = tuple(reported[step] for step in sorted(reported) if step <= iteration)
    return Resume(directory, iteration, history)


def training_seed(trial: optuna.Trial, study_seed: int | None = None) -> int:
    """The seed the trial trains with (NiftyNet's windows, shuffles and initial weights),
    stored as its ``seed`` attribute so that the run can be repeated.

    A seed the trial already holds is kept: a retry inherits its original's (it resumes the
    same run), and a caller may set one. Otherwise it derives from the study's sampler seed and
    the trial number, so a study run again with the same ``--seed`` trains the same runs; with
    no ``--seed`` it is random.
    """
    seed = trial.user_attrs.get(TrialAttr.SEED)
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < SEED_RANGE:
        return seed
    seed = contract.derive_seed(study_seed, trial.number)
    trial.set_user_attr(TrialAttr.SEED, seed)
    return seed


def _frozen(trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    return trial.study._storage.get_trial(trial._trial_id)


def write_trial_files(ctx: TrialContext, number: int, setup: TrialSetup,
                      resume: Resume | None = None, gpu: str | None = None
                      ) -> tuple[Path, Path, Path]:
    """``trial.ini``, ``schedule.json`` and the inference split of one trial."""
    directory = resume.directory if resume else ctx.trial_dir(number)
    directory.mkdir(parents=True, exist_ok=True)
    model_dir = directory / contract.MODEL
    if resume is None:
        _clear(directory)
    else:  # its original's console.log goes on, with a line saying where it picks up
        with (directory / contract.CONSOLE_LOG).open("a", encoding="utf-8") as log:
            log.write(f"--- lrsearch: trial {number} resumes from the checkpoint of iteration "
                      f"{resume.iteration} ---\n")
    if ctx.owner is not None:
        owners.write(directory, ctx.owner)
    changes = {
        "SYSTEM": {"model_dir": str(model_dir), "dataset_split_file": str(ctx.split_file)},
        "TRAINING": {
            "max_iter": ctx.max_iter,
            "lr": setup.schedule.lr(0),
            # -1: NiftyNet restores the latest checkpoint in model_dir
            "starting_iter": -1 if resume else 0,
        },
        "INFERENCE": {"save_seg_dir": str(model_dir / contract.SEGMENTATION), "inference_iter": -1},
    }
    changes.update(write_file_lists(ctx.dataset, directory))
    if setup.optimiser:
        changes["TRAINING"]["optimiser"] = setup.optimiser
    if gpu is not None:
        changes["SYSTEM"].update(cuda_devices=gpu, num_gpus=1)
    config_path = directory / contract.TRIAL_CONFIG
    ctx.config.with_values(changes).write(config_path)

    schedule_path = directory / contract.SCHEDULE_FILE
    contract.write_schedule(schedule_path, setup.schedule.to_dict(),
                            resume.history if resume else ())

    infer_split = directory / contract.INFERENCE_SPLIT
    validation = set(ctx.validation_subjects)
    infer_split.write_text("".join(
        f"{s},{'inference' if s in validation else 'training'}\n" for s in ctx.dataset.subjects))
    return config_path, schedule_path, infer_split


def _clear(directory: Path) -> None:
    """A new trial's folder holds nothing of an earlier one: a folder of a deleted study
    (the runs folder was taken over) must not lend its checkpoints, segmentations or log."""
    if (directory / contract.MODEL).exists():
        shutil.rmtree(directory / contract.MODEL)
    (directory / contract.CONSOLE_LOG).unlink(missing_ok=True)
    (directory / contract.VALIDATION_WINDOWS).unlink(missing_ok=True)


def _clear_stale(ctx: TrialContext, directory: Path) -> None:
    """Clears a trial folder another study marked: one whose runs folder this study took over."""
    if not owners.is_own(directory, ctx.owner):
        _clear(directory)


def trial_runs(config_path: Path, infer_split: Path) -> list[list[str]]:
    """A trial's NiftyNet runs: training, then segmenting the validation subjects."""
    return [contract.train_args(config_path), contract.inference_args(config_path, infer_split)]


def train_command(ctx: TrialContext, config_path: Path, infer_split: Path) -> list[str]:
    return ctx.runtime.command(trial_runs(config_path, infer_split))


def volume_scores(ctx: TrialContext, inferred_csv: Path) -> dict[str, float]:
    """Whole-volume Dice per subject of the segmentations NiftyNet listed in ``inferred_csv``."""
    labels = ctx.dataset.files[ctx.config.label_sections[0]]
    return volume_dice(read_inferred(inferred_csv), labels, ctx.config.num_classes)


def run_trial(
    trial: optuna.Trial, ctx: TrialContext, setup: TrialSetup, observer: Observer,
    live: LiveTrial | None = None, gpu: str | None = None,
    stopping: threading.Event | None = None,
) -> float:
    """Train, report and score one trial.

    Raises ``optuna.TrialPruned``, :class:`TrialFailed`, or :class:`TrialInterrupted` when the
    child was stopped from outside (the worker is shutting down). ``live`` keeps the trial's
    optuna-dashboard figures and note current. ``gpu``: the device the child is pinned to
    (CUDA_VISIBLE_DEVICES and NiftyNet's cuda_devices/num_gpus).
    """
    number = trial.number
    seed = training_seed(trial, ctx.seed)
    resume = find_resume(trial, ctx)
    config_path, schedule_path, infer_split = write_trial_files(ctx, number, setup, resume, gpu)
    directory = config_path.parent
    command = train_command(ctx, config_path, infer_split)
    _describe(trial, ctx, setup, directory, command)
    if resume:
        trial.set_user_attr(TrialAttr.RESUMED_FROM_ITERATION, resume.iteration)
        observer.trial_line(number, f"resuming from the checkpoint of iteration "
                                    f"{resume.iteration} in {directory}\n")
    if live is not None:
        live.started()

    started = time.monotonic()
    env = {SCHEDULE_ENV: str(schedule_path), SEED_ENV: str(seed)}
    if ctx.validation_seed is not None:
        env.update(contract.validation_environment(
            ctx.validation_seed, directory / contract.VALIDATION_WINDOWS))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    child = ctx.runtime.start(trial_runs(config_path, infer_split), env, cwd=directory,
                              log_path=directory / contract.CONSOLE_LOG)
    trial.set_user_attr(TrialAttr.FORKED, child.served)
    progress = _Progress(last_iteration=resume.iteration if resume else 0, max_iter=ctx.max_iter)
    if ctx.checkpoint_store is not None:
        progress.uploader = checkpoints.CheckpointUploader.for_trial(
            trial, checkpoints.open_store(ctx.checkpoint_store),
            directory / contract.MODEL / "models")
    if stopping is not None and stopping.is_set():  # the worker began stopping meanwhile
        child.stop()
    try:
        stop_reason = _follow(trial, child, ctx, progress, observer, live,
                              prunable=setup.prunable)
    except BaseException:
        child.stop()
        raise
    if stop_reason is not None:
        child.stop()
        _discard_checkpoint(progress)
        _record_run(trial, progress, started)
        trial.set_user_attr(TrialAttr.STOP_REASON, stop_reason)
        raise optuna.TrialPruned(stop_reason)
    if child.stopped:
        _record_run(trial, progress, started)
        raise TrialInterrupted(f"interrupted at iteration {progress.last_iteration}")

    code = child.wait()
    _record_run(trial, progress, started)
    if code != 0 or progress.last_iteration < ctx.max_iter:
        _discard_checkpoint(progress)
    if code != 0 or progress.last_iteration < ctx.max_iter:
        raise TrialFailed(_failure_cause(code, progress, ctx.max_iter), child.log_path)

    inferred_csv = directory / contract.MODEL / contract.SEGMENTATION / contract.INFERRED_CSV
    if not inferred_csv.is_file():
        raise TrialFailed(f"NiftyNet inference wrote no {inferred_csv.name}: "
                          f"{progress.tail.cause() or 'no error printed'}", child.log_path)
    scores = volume_scores(ctx, inferred_csv)
    missing = set(ctx.validation_subjects) - set(scores)
    if missing:
        raise TrialFailed(f"no segmentation for validation subjects {sorted(missing)}",
                          inferred_csv)
    value = sum(scores.values()) / len(scores)
    trial.set_user_attr(TrialAttr.VOLUME_DICE, {s: round(v, 5) for s, v in scores.items()})
    trial.set_user_attr(TrialAttr.FINAL_DICE, value)
    timing = dict(trial.user_attrs.get(TrialAttr.TIMING, {}))
    trained = trial.user_attrs[TrialAttr.WALL_SECONDS]
    timing["evaluation"] = round(time.monotonic() - started - trained, 3)
    trial.set_user_attr(TrialAttr.TIMING, timing)
    return _score(trial, ctx, value)


def _score(trial, ctx: TrialContext, final_dice: float) -> float:
    """The study's objective from the whole-volume Dice and every reported round (a retry's
    inherited ones included)."""
    objective = parse_objective(ctx.objective)
    rounds = sorted(_frozen(trial).intermediate_values.items())
    reached = objective.iterations_to_target(rounds)
    if reached is not None:
        trial.set_user_attr(TrialAttr.ITERATIONS_TO_TARGET, reached)
    return objective.score(final_dice, rounds, ctx.max_iter)


def _follow(trial, child, ctx, progress, observer, live=None, prunable: bool = True
            ) -> str | None:
    """Streams the child's console; returns why to stop it early, or None when it ran through.

    A baseline (``prunable`` False) is neither pruned nor stopped for a finite blow-up of its
    loss (it may recover, and its final Dice is what it is there to show); a NaN or infinite
    loss or Dice still stops it as diverged: nothing is left to score.
    """
    rounds = ValidationRounds(DICE_NAME)
    number = trial.number
    for line in child.lines():
        progress.remember(line)
        if progress.niftynet_started_at is None and "niftynet" in line:
            progress.niftynet_started_at = time.monotonic()
        observer.trial_line(number, line)
        event = parse_line(line)
        if event is None and progress.uploader is not None:
            _upload(progress, line)
        if event is None:
            # Any other NiftyNet line after a validation round ends it (the last round is
            # followed by saving and inference, not by another iteration).
            completed = rounds.close() if "niftynet" in line else None
            reason = completed and _report(trial, completed, progress, observer, live,
                                           prunable)
            if reason:
                return reason
            continue
        completed = rounds.feed(event)
        if completed is not None:
            reason = _report(trial, completed, progress, observer, live, prunable)
            if reason:
                return reason
        if event.phase == "training":
            progress.tail.progressed()  # a traceback before this did not stop the child
            now = time.monotonic()
            progress.first_iteration_at = progress.first_iteration_at or now
            progress.last_iteration_at = now
            progress.last_iteration = event.iteration
            if LR_NAME in event.values:
                progress.lr_used.append((event.iteration, event.values[LR_NAME]))
            observer.trial_iteration(number, event.iteration, ctx.max_iter)
            if event.diverged:
                bad = ", ".join(f"{k}={v}" for k, v in event.values.items() if v != v or
                                abs(v) == float("inf"))
                return f"diverged at iteration {event.iteration}: {bad}"
            blown_up = _blown_up(progress.loss, event) \
                if prunable and ctx.config.loss_type not in BOUNDED_LOSSES else None
            if blown_up:
                return blown_up
    completed = rounds.close()
    if completed is not None:
        return _report(trial, completed, progress, observer, live, prunable)
    return None


def _blown_up(tracker: LossTracker, event) -> str | None:
    """A finite blow-up of an unbounded training loss (cross-entropy 0.95 → 26 at lr 64): the
    smoothed loss above 4x its smoothed minimum (fastai's rule, as in the range test), judged only
    once DIVERGENCE_MIN_ITERATIONS losses are smoothed: the first ones rest on a few batches.
    The range test's other rule, a bounded loss giving back half its fall, is not used here: in
    training a loss that rises for a while (a restart, a noisy start) has not diverged."""
    loss = training_loss(event.values)
    if loss is None:
        return None
    smoothed = tracker.add(loss)
    if tracker.count < DIVERGENCE_MIN_ITERATIONS or not tracker.exploded(smoothed):
        return None
    return (f"diverged at iteration {event.iteration}: training loss {loss:.4g}, smoothed "
            f"{smoothed:.4g} against its minimum {tracker.best:.4g}")


def _upload(progress: _Progress, line: str) -> None:
    iteration = contract.saved_iteration(line)
    if iteration is None:
        return
    try:
        progress.uploader.saved(iteration)
    except Exception as error:  # noqa: BLE001 - a lost copy must not stop the training
        logging.getLogger("lrsearch").warning(
            "checkpoint of iteration %d not copied to the checkpoint store (%s: %s); a retry "
            "elsewhere would start from an earlier one", iteration, type(error).__name__, error)


def _discard_checkpoint(progress: _Progress) -> None:
    """A pruned or failed trial is not retried: its stored checkpoint is of no use."""
    if progress.uploader is not None:
        try:
            progress.uploader.discard()
        except Exception:  # noqa: BLE001 - only space is at stake
            pass


def _report(trial, completed: tuple[int, float], progress, observer, live=None,
            prunable: bool = True) -> str | None:
    """Reports a validation round to Optuna; why to stop the trial, if it must stop. A trial
    that is not ``prunable`` (a baseline) reports like any other, so it ranks and the pruner
    compares others with it, but its own pruner verdict is not asked. Nor is it asked at the last
    iteration, where a rung of successive halving or Hyperband can fall: stopping a trial that
    has paid for all its training saves nothing and loses its score."""
    iteration, dice = completed
    progress.rounds.append(completed)
    observer.trial_validation(trial.number, iteration, dice)
    trial.set_user_attr(TrialAttr.LAST_WINDOW_DICE, dice)
    if dice != dice:
        return f"diverged at iteration {iteration}: validation Dice is nan"
    trial.report(dice, step=iteration)
    if live is not None:
        live.validated(progress.lr_used)
    last = progress.max_iter is not None and iteration >= progress.max_iter
    if prunable and not last and trial.should_prune():
        frozen = _frozen(trial)
        verb = "pruned"
        if is_held(trial.study, frozen):
            trial.set_user_attr(TrialAttr.HELD_AT, iteration)  # to be continued, maybe
            verb = "held"
        return (f"{verb} at iteration {iteration}: validation Dice {dice:.4f} "
                f"{pruned_because(trial.study, frozen)}")
    return None


def _describe(trial, ctx: TrialContext, setup: TrialSetup, directory: Path,
              command: Sequence[str]) -> None:
    schedule = setup.schedule
    # the sampled family: a warmed-up schedule's own dict says "warmup"
    trial.set_user_attr(TrialAttr.FAMILY, trial.params.get("family", schedule.to_dict()["family"]))
    trial.set_user_attr(TrialAttr.SCHEDULE, schedule.to_dict())
    trial.set_user_attr(TrialAttr.SCHEDULE_TEXT, schedule.describe())
    trial.set_user_attr(TrialAttr.OPTIMISER, setup.optimiser or ctx.config.optimiser)
    trial.set_user_attr(TrialAttr.MAX_ITER, ctx.max_iter)
    trial.set_user_attr(TrialAttr.LR_CURVE, _planned_curve(schedule, ctx.max_iter))
    trial.set_user_attr(TrialAttr.RUN_DIR, str(directory))
    trial.set_user_attr(TrialAttr.LOG_PATH, str(directory / contract.CONSOLE_LOG))
    trial.set_user_attr(TrialAttr.COMMAND, " ".join(command))
    trial.set_user_attr(TrialAttr.HOST, socket.gethostname())
    trial.set_user_attr(TrialAttr.RUNTIME, _runtime_versions(ctx.runtime))


def _planned_curve(schedule, max_iter: int) -> list[list[float]]:
    """The schedule over the trial's iterations, numbered like NiftyNet's (from 1)."""
    return [[step + 1, float(f"{lr:.5g}")]
            for step, lr in curve(schedule, max_iter, LR_CURVE_POINTS)]


def _record_run(trial, progress: _Progress, started: float) -> None:
    trial.set_user_attr(TrialAttr.ITERATIONS, progress.last_iteration)
    wall = (progress.last_iteration_at or time.monotonic()) - started
    trial.set_user_attr(TrialAttr.WALL_SECONDS, round(wall, 3))
    # Where a trial's fixed cost goes: Python + TensorFlow + NiftyNet imports, then graph
    # build, session start and the first iteration, then training proper.
    marks = [started, progress.niftynet_started_at, progress.first_iteration_at,
             progress.last_iteration_at]
    names = ("imports", "setup", "training")
    spans = zip(names, marks[:-1], marks[1:], strict=True)
    timing = {name: round(end - start, 3) for name, start, end in spans
              if start is not None and end is not None}
    trial.set_user_attr(TrialAttr.TIMING, timing)
    if progress.first_iteration_at and progress.last_iteration > 1 and \
            progress.last_iteration_at > progress.first_iteration_at:
        rate = (progress.last_iteration - 1) / (progress.last_iteration_at
                                                 - progress.first_iteration_at)
        trial.set_user_attr(TrialAttr.ITERATIONS_PER_SECOND, round(rate, 4))
    if progress.lr_used:
        step = max(1, len(progress.lr_used) // LR_CURVE_POINTS)
        trial.set_user_attr(TrialAttr.LR_USED, [[i, float(f"{lr:.5g}")]
                                        for i, lr in progress.lr_used[::step]])


_CHILD_VERSIONS: dict[tuple[str, str], dict[str, str]] = {}


def _runtime_versions(runtime: Runtime) -> dict[str, str]:
    """Versions the trial trains with: the child's interpreter's, probed once per runtime."""
    from importlib import metadata

    if runtime.python != sys.executable:  # e.g. the TF 1.15 environment
        key = (runtime.name, runtime.python)
        if key not in _CHILD_VERSIONS:
            from lrsearch.engines.checks import probe

            _CHILD_VERSIONS[key] = probe(runtime).versions()
        return {**_CHILD_VERSIONS[key], "lrsearch": __version__}
    versions = {"runtime": runtime.name, "python": platform.python_version(),
                "lrsearch": __version__}
    for dist in ("tensorflow", "niftynet", "optuna"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _failure_cause(code: int, progress: _Progress, max_iter: int) -> str:
    """Why the child stopped short: its original exception when it printed a traceback, else
    the signal that killed it, else its last error-like line."""
    if progress.tail.exception is not None:
        return progress.tail.exception
    where = f"at iteration {progress.last_iteration} of {max_iter}"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
        hint = " (out of memory?)" if code == -signal.SIGKILL else ""
        return f"NiftyNet was killed by signal {name} {where}{hint}"
    last = next((line for line in reversed(progress.tail.tail) if line.strip()), "no output")
    status = f"exited with status {code}" if code else "stopped early"
    return f"NiftyNet {status} {where}: {progress.tail.cause() or last.strip()[-300:]}"
