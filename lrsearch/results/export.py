"""A trial's schedule as a NiftyNet config anyone can train with, outside the study.

``export_trial`` writes the study's NiftyNet INI with the trial's optimiser, first learning rate
and iterations (every path absolute, a model folder and file lists of its own, the study's split
file so the same subjects validate) and the schedule JSON next to it; the command it returns
trains that config on NiftyNet through lrsearch's scheduled application, exactly as the trial did.

Schedules are stored in absolute iterations. ``max_iter`` other than the trial's rebuilds the
schedule from the trial's sampled parameters (fractions of the run) with the same code the study
used, after checking that rebuilding it at its own length gives back the stored schedule.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.engines.runtime import Runtime
from lrsearch.errors import DataError
from lrsearch.monitor.records import StudyAttr, TrialAttr
from lrsearch.nifty import contract
from lrsearch.nifty.contract import SCHEDULE_ENV, SEED_ENV, VALIDATION_SEED_ENV
from lrsearch.run.studies import ResultError
from lrsearch.search.schedules import Schedule, from_dict

if TYPE_CHECKING:
    import optuna

__all__ = ["Export", "export_trial", "rescaled_schedule"]


@dataclass(frozen=True)
class Export:
    trial: int
    config: Path  # the NiftyNet INI
    schedule: Path  # its schedule JSON
    model_dir: Path
    max_iter: int
    command: tuple[str, ...]  # NiftyNet training through lrsearch's application
    environment: tuple[tuple[str, str], ...]  # variables the command needs

    def command_line(self) -> str:
        env = " ".join(f"{name}={shlex.quote(value)}" for name, value in self.environment)
        return f"{env} {shlex.join(self.command)}"


def _space_of(trial: optuna.trial.FrozenTrial):
    """A search space holding exactly the distributions this trial was sampled from."""
    from optuna.distributions import CategoricalDistribution

    from lrsearch.search.space import SearchSpace

    ranges: dict[str, tuple[Any, ...]] = {}
    for name, dist in trial.distributions.items():
        if isinstance(dist, CategoricalDistribution):
            ranges[name] = tuple(dist.choices)
        else:
            ranges[name] = (dist.low, dist.high)
    families = ranges.pop("family", ())
    low_high = ranges.pop("base_lr", None)
    optimisers = ranges.pop("optimiser", ())
    if not families or low_high is None:
        raise ResultError(f"trial {trial.number} has no sampled family and base_lr to rebuild "
                          "its schedule from")
    return SearchSpace(families=tuple(families), base_lr=tuple(low_high), ranges=ranges,
                       optimisers=tuple(optimisers))


def rescaled_schedule(trial: optuna.trial.FrozenTrial, max_iter: int) -> Schedule:
    """The trial's schedule for a run of ``max_iter`` iterations (see the module's doc)."""
    import optuna

    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ResultError(f"--max-iter must be a positive integer, but got {max_iter!r}")
    stored = trial.user_attrs.get(TrialAttr.SCHEDULE)
    trained = trial.user_attrs.get(TrialAttr.MAX_ITER)
    baseline = trial.user_attrs.get(TrialAttr.BASELINE)
    if baseline and isinstance(stored, dict):  # not sampled: rebuilt from its own peak lr
        from lrsearch.search.baselines import baseline_schedule

        peak = stored.get("base_lr", stored.get("max_lr"))
        try:
            return baseline_schedule(baseline, peak, max_iter, peak)
        except (TypeError, ValueError) as error:
            raise ResultError(f"cannot rescale trial {trial.number}: {error}") from None
    space = _space_of(trial)

    def build(iterations: int) -> Schedule:
        return space.suggest(optuna.trial.FixedTrial(dict(trial.params)), iterations).schedule

    try:
        same = build(trained).to_dict() == stored if isinstance(trained, int) else False
        if not same:
            raise ResultError(
                f"cannot rescale trial {trial.number}: rebuilding its schedule from its "
                f"parameters at its own {trained} iterations does not give the stored schedule "
                "(the study was made by another lrsearch version); export it without --max-iter")
        return build(max_iter)
    except (KeyError, ValueError) as error:
        raise ResultError(f"cannot rescale trial {trial.number}: {error}") from None


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.number == number:
            if not isinstance(trial.user_attrs.get(TrialAttr.SCHEDULE), dict):
                raise ResultError(f"trial {number} of study '{study.study_name}' stored no "
                                  "schedule (it failed before training started)")
            return trial
    span = f"trials 0–{len(trials) - 1}" if trials else "no trials"
    raise ResultError(f"study '{study.study_name}' has no trial {number} ({span})")


def export_trial(study: optuna.Study, number: int, output: str | Path,
                 max_iter: int | None = None) -> Export:
    from lrsearch.nifty.config import load_config
    from lrsearch.nifty.dataset import scan_data, write_file_lists

    trial = _trial(study, number)
    attrs = trial.user_attrs
    trained = attrs.get(TrialAttr.MAX_ITER)
    if max_iter is None or max_iter == trained:
        schedule = from_dict(attrs[TrialAttr.SCHEDULE])
        iterations = trained if isinstance(trained, int) else None
    else:
        schedule = rescaled_schedule(trial, max_iter)
        iterations = max_iter
    config_file = study.user_attrs.get(StudyAttr.CONFIG)
    if not config_file:
        raise ResultError(f"study '{study.study_name}' records no NiftyNet config")
    cfg = load_config(config_file)
    iterations = iterations or cfg.max_iter

    target = Path(output).resolve()
    model_dir = target.with_name(f"{target.stem}-model")
    schedule_path = target.with_name(f"{target.stem}.schedule.json")
    changes: dict[str, dict[str, Any]] = {
        "SYSTEM": {"model_dir": str(model_dir)},
        "TRAINING": {"lr": schedule.lr(0), "max_iter": iterations, "starting_iter": 0,
                     "optimiser": attrs.get(TrialAttr.OPTIMISER) or cfg.optimiser},
        "INFERENCE": {"inference_iter": -1},
    }
    split = study.user_attrs.get(StudyAttr.SPLIT_FILE)
    if split and Path(split).is_file():
        changes["SYSTEM"]["dataset_split_file"] = str(Path(split).resolve())
    cfg = cfg.with_values(changes)
    try:
        for section in cfg.input_sections:
            cfg.search_dirs(section)
    except DataError as error:
        raise DataError(f"{error} (relative paths are read from the working directory: run "
                        "`lrsearch export` where the study ran)") from None
    dataset = scan_data(cfg, read_data=False)

    target.parent.mkdir(parents=True, exist_ok=True)
    # its own file lists, as a trial has: else NiftyNet writes them next to the study's split
    # file, where two exported runs (or a running study) would race on them
    cfg = cfg.with_values(write_file_lists(dataset, target.parent, f"{target.stem}."))
    cfg.write(target)
    contract.write_schedule(schedule_path, schedule.to_dict())
    runtime = (attrs.get(TrialAttr.RUNTIME) or {}).get("runtime", "tf2")
    trained_with = str(attrs.get(TrialAttr.COMMAND) or "").split()
    runtime = Runtime(runtime, trained_with[0] if trained_with else sys.executable)
    command = runtime.command([contract.train_args(target)])
    environment = [(SCHEDULE_ENV, str(schedule_path))]
    if isinstance(attrs.get(TrialAttr.SEED), int):  # the trial's training seed: the same run again
        environment.append((SEED_ENV, str(attrs[TrialAttr.SEED])))
    validation_seed = study.user_attrs.get(StudyAttr.VALIDATION_SEED)
    if isinstance(validation_seed, int):  # validated on the study's windows, as its trials
        environment.append((VALIDATION_SEED_ENV, str(validation_seed)))
    return Export(trial=number, config=target, schedule=schedule_path, model_dir=model_dir,
                  max_iter=iterations, command=tuple(command),
                  environment=(*environment, ("PYTHONPATH", runtime.pythonpath)))
