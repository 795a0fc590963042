"""Studies built through Optuna without training: real storages, real sampling, made-up Dice.

Every trial is asked from the study, draws its schedule from the real search space, stores the
user attributes :mod:`lrsearch.run.trial` stores (same names and shapes), reports a validation Dice
curve at NiftyNet's validation iterations and is pruned by the study's own pruner, so reports,
``best``, ``export`` and the dashboard read what a real study holds. The Dice is a smooth
function of the schedule (too small or too large a learning rate trains badly) plus noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import optuna

from lrsearch.paths import DEFAULT_SPACE
from lrsearch.run.trial import training_seed
from lrsearch.search.schedules import curve
from lrsearch.search.space import load_space

FAIL_RATE = 0.03


def make_study(storage: str, name: str = "synthetic", *, max_iter: int = 600,
               seed: int = 0, config: str | Path | None = None,
               runs_dir: str | Path | None = None,
               split_file: str | Path | None = None) -> optuna.Study:
    """A study with lrsearch's study attributes, its median pruner and a random sampler."""
    from lrsearch.search.strategy import make_pruner

    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=make_pruner(max_iter, startup_trials=5, warmup_fraction=0.25,
                          kind="median"))
    runs = Path(runs_dir) if runs_dir else Path("/data/models") / name
    study.set_user_attr("config", str(config or "/data/configs/ixi_highres3dnet.ini"))
    study.set_user_attr("max_iter", max_iter)
    study.set_user_attr("split_file", str(split_file or runs / "dataset_split.csv"))
    study.set_user_attr("runs_dir", str(runs))
    study.set_user_attr("objective", "final_dice")
    study.set_user_attr("validation_subjects", ["IXI012", "IXI019", "IXI031"])
    return study


def _quality(schedule, max_iter: int) -> float:
    """How well a schedule trains, in (0, 1]: best near a mean lr of 1e-3."""
    lrs = [lr for _, lr in curve(schedule, max_iter, 50)]
    mean = max(sum(lrs) / len(lrs), 1e-12)
    return math.exp(-((math.log10(mean) + 3.0) ** 2) / 1.5)


def _dice(quality: float, fraction: float, rng: random.Random) -> float:
    value = 0.92 * quality * (1.0 - math.exp(-4.0 * fraction)) + rng.gauss(0, 0.01)
    return min(1.0, max(0.0, value))


def describe(trial: optuna.Trial, setup, max_iter: int, run_dir: Path) -> None:
    """The user attributes ``lrsearch.run.trial`` stores when a trial starts."""
    schedule = setup.schedule
    application = "lrsearch.engines.child.application.ScheduledSegmentationApplication"
    command = (f"/usr/bin/python3 -m lrsearch.engines.child.main train -a {application} "
               f"-c {run_dir}/trial.ini --then inference -a {application} -c "
               f"{run_dir}/trial.ini --dataset_split_file {run_dir}/inference_split.csv")
    for key, value in {
        "family": schedule.to_dict()["family"],
        "schedule": schedule.to_dict(),
        "schedule_text": schedule.describe(),
        "optimiser": setup.optimiser or "adam",
        "max_iter": max_iter,
        "lr_curve": [[i + 1, lr] for i, lr in curve(schedule, max_iter, 200)],
        "run_dir": str(run_dir),
        "log_path": str(run_dir / "console.log"),
        "command": command,
        "host": "node-1",
        "runtime": {"runtime": "tf2", "python": "3.11.7", "lrsearch": "0.1.0",
                    "tensorflow": "2.21.0", "niftynet": "0.6.0", "optuna": "5.0.0"},
    }.items():
        trial.set_user_attr(key, value)
    training_seed(trial, 0)  # stored as "seed"


def add_trials(study: optuna.Study, count: int, *, seed: int = 0, validate_every: int = 50,
               live_dir: str | Path | None = None, live_every: float = 0.0,
               states: Sequence[str] | None = None, prune_from: float = 0.0,
               leave_running: bool = False) -> list[int]:
    """Adds ``count`` trials the way ``lrsearch optimize`` runs them; returns their numbers.

    ``live_dir``: also write their dashboard figures and notes there (:class:`LiveTrial`,
    refreshed at most every ``live_every`` seconds, and at the start and the end).
    ``states``: force each trial's outcome ("complete", "pruned" or "failed") instead of
    letting the pruner and chance decide; a forced prune comes at the first validation round,
    or with ``prune_from`` at a random one between that fraction of the run and 90 % of it.
    ``leave_running``: the last trial stops half-way without being told, as if it were still
    training.
    """
    from lrsearch.monitor.live import LiveTrial

    rng = random.Random(seed)
    space = load_space(DEFAULT_SPACE)
    max_iter = study.user_attrs["max_iter"]
    runs_dir = Path(study.user_attrs["runs_dir"])
    numbers = []
    for index in range(count):
        trial = study.ask()
        setup = space.suggest(trial, max_iter)
        schedule = setup.schedule
        describe(trial, setup, max_iter, runs_dir / f"trial-{trial.number:04d}")
        live = LiveTrial(trial, live_dir, every=live_every) if live_dir else None
        if live:
            live.started()

        forced = states[index] if states else None
        fails = forced == "failed" or (forced is None and rng.random() < FAIL_RATE)
        stop_at = rng.randrange(1, max_iter) if fails else max_iter
        prune_at = validate_every
        if prune_from:
            first = max(validate_every, int(prune_from * max_iter))
            prune_at = rng.randrange(first, int(0.9 * max_iter) + 1, validate_every)
        if leave_running and index == count - 1:
            stop_at = max_iter // 2
        quality = _quality(schedule, max_iter)
        state, reason, iteration, dice = "complete", "", 0, None
        for iteration in range(validate_every, max_iter + 1, validate_every):
            if iteration > stop_at:
                break
            dice = _dice(quality, iteration / max_iter, rng)
            trial.set_user_attr("last_window_dice", dice)
            trial.report(dice, step=iteration)
            if live:
                live.validated([(i, schedule.lr(i - 1)) for i in range(1, iteration + 1, 5)])
            if (forced == "pruned" and iteration >= prune_at) or \
                    (forced is None and trial.should_prune()):
                state = "pruned"
                reason = (f"pruned at iteration {iteration}: validation Dice {dice:.4f} "
                          "below the median")
                break
        ran = stop_at if fails else iteration if state == "pruned" else max_iter
        if leave_running and index == count - 1:
            numbers.append(trial.number)
            break
        trial.set_user_attr("iterations", ran)
        trial.set_user_attr("wall_seconds", round(ran * 1.9, 3))
        trial.set_user_attr("iterations_per_second", 0.5263)
        trial.set_user_attr("lr_used", [[i, schedule.lr(i - 1)]
                                        for i in range(1, ran + 1, max(1, ran // 200))])
        if fails:
            state = "failed"
            reason = (f"training stopped at iteration {stop_at} of {max_iter} (exit status 1): "
                      "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM")
        if state != "complete":
            trial.set_user_attr("stop_reason", reason)
            if live:
                live.finished(state, reason)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED if state == "pruned"
                       else optuna.trial.TrialState.FAIL)
        else:
            value = _dice(quality, 1.05, rng)
            volumes = {s: round(min(1.0, value + rng.gauss(0, 0.01)), 5)
                       for s in study.user_attrs["validation_subjects"]}
            value = sum(volumes.values()) / len(volumes)
            trial.set_user_attr("volume_dice", volumes)
            trial.set_user_attr("final_dice", value)
            trial.set_user_attr("evaluation_seconds", 14.2)
            if live:
                live.finished("complete")
            study.tell(trial, value)
        numbers.append(trial.number)
    return numbers
