"""A study: validate everything, then run trials until the study holds N finished ones.

``prepare`` reads and checks the config, data, search space and storage and writes nothing to
the study, so bad input never leaves a half-made study behind. ``optimize`` creates or loads the
study and runs trials one after the other (ask → train → tell) until the study as a whole holds
``trials`` finished trials, so re-running the same command continues where it stopped.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lrsearch import config as niftynet_config
from lrsearch.engines import get_runtime
from lrsearch.errors import ConfigError, LRSearchError
from lrsearch.progress import Progress
from lrsearch.space import SearchSpace, load_space
from lrsearch.storage import open_storage, redact
from lrsearch.trial import TrialContext, TrialFailed, run_trial

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class StudyPlan:
    """Everything a worker needs, validated."""

    name: str
    storage_url: str
    space: SearchSpace
    context: TrialContext
    trials: int
    timeout: float | None
    seed: int | None


def make_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    # TPE with group=True splits the conditional space (one parameter subspace per family)
    # instead of treating absent parameters as independent; multivariate models the joint
    # base_lr × schedule parameters; constant_liar keeps parallel workers from sampling the
    # same point while their trials run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10
        )


def make_pruner(max_iter: int, startup_trials: int = 5,
                warmup_fraction: float = 0.25) -> optuna.pruners.BasePruner:
    # With ~50 trials, Hyperband's brackets would each give TPE only a dozen trials, and
    # successive halving prunes half of the first trials before anything is known. The median
    # rule keeps every trial for the first quarter of its iterations (warmup and cyclic
    # schedules look bad early and must not be judged there) and only after 5 complete trials,
    # then stops those below the median of completed trials at the same iteration: on a
    # 50-trial budget it typically saves 30-50 % of the iterations at little risk.
    return optuna.pruners.MedianPruner(
        n_startup_trials=startup_trials,
        n_warmup_steps=int(max_iter * warmup_fraction),
        interval_steps=1,
    )


def prepare(
    config_path: Path,
    space_path: Path,
    *,
    study_name: str | None = None,
    storage_url: str,
    trials: int,
    timeout: float | None = None,
    seed: int | None = None,
    max_iter: int | None = None,
    runs_dir: Path | None = None,
) -> StudyPlan:
    """Reads and checks everything a study needs. Raises :class:`LRSearchError` subclasses."""
    if trials < 1:
        raise LRSearchError(f"--trials must be at least 1, but got {trials}")
    space = load_space(space_path)
    cfg = niftynet_config.load_config(config_path)
    niftynet_config.check_window(cfg)
    dataset = niftynet_config.scan_data(cfg)
    name = study_name or Path(config_path).stem
    runs = Path(runs_dir) if runs_dir else cfg.model_dir / name
    niftynet_config.check_model_dir(runs)
    iterations = max_iter or space.max_iter or cfg.max_iter
    if iterations < 1:
        raise ConfigError(f"{config_path}: [TRAINING] max_iter must be at least 1, "
                          f"but got {iterations}")
    if cfg.validation_every_n <= 0 or cfg.validation_every_n > iterations:
        raise ConfigError(
            f"{config_path}: [TRAINING] validation_every_n is {cfg.validation_every_n}; "
            f"lrsearch prunes on validation Dice, set it between 1 and max_iter ({iterations})")
    runtime = get_runtime(space.runtime)
    open_storage(storage_url)  # fail now, before anything is written
    split_file, validation = _study_split(cfg, dataset, runs)
    context = TrialContext(
        config=cfg,
        dataset=dataset,
        split_file=split_file,
        validation_subjects=validation,
        runs_dir=runs,
        max_iter=iterations,
        runtime=runtime,
    )
    return StudyPlan(name, storage_url, space, context, trials, timeout, seed)


def _study_split(cfg, dataset, runs: Path) -> tuple[Path, tuple[str, ...]]:
    """The split every trial of the study validates on: the config's, or one lrsearch writes."""
    named = cfg.dataset_split_file
    if named is not None and Path(named).is_file():
        phases = niftynet_config.read_split(named)
        path = Path(named)
    else:
        path = runs / "dataset_split.csv"
        if path.is_file():
            phases = niftynet_config.read_split(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            phases = niftynet_config.write_split(path, dataset.subjects,
                                                 VALIDATION_FRACTION, SPLIT_SEED)
    validation = tuple(s for s in dataset.subjects if phases.get(s) == "validation")
    training = [s for s in dataset.subjects if phases.get(s) == "training"]
    if not validation or not training:
        raise ConfigError(
            f"{path}: the split needs training and validation subjects among "
            f"{len(dataset.subjects)} found (validation: {len(validation)}, "
            f"training: {len(training)}); fix it or remove it to let lrsearch write one")
    return path, validation


def _counts(study: optuna.Study) -> dict[str, int]:
    """Finished trials by state. Trials the user interrupted do not count toward --trials."""
    trials = [t for t in study.get_trials(deepcopy=False, states=FINISHED)
              if not t.user_attrs.get("interrupted")]
    return {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
    }


def _best(study: optuna.Study) -> tuple[int, float] | None:
    try:
        best = study.best_trial
    except ValueError:
        return None
    return best.number, best.value


def load_or_create(plan: StudyPlan) -> optuna.Study:
    storage = open_storage(plan.storage_url)
    ctx = plan.context
    study = optuna.create_study(
        study_name=plan.name,
        storage=storage,
        sampler=make_sampler(plan.seed),
        pruner=make_pruner(ctx.max_iter, plan.space.pruner_startup_trials,
                           plan.space.pruner_warmup_fraction),
        direction="maximize",
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if "max_iter" in attrs and attrs["max_iter"] != ctx.max_iter:
        raise ConfigError(
            f"study '{plan.name}' trains {attrs['max_iter']} iterations per trial, this run "
            f"{ctx.max_iter}: use the same max_iter or another --study")
    if not attrs:
        study.set_user_attr("config", str(Path(ctx.config.path).resolve()))
        study.set_user_attr("max_iter", ctx.max_iter)
        study.set_user_attr("split_file", str(ctx.split_file))
        study.set_user_attr("runs_dir", str(ctx.runs_dir))
        study.set_user_attr("objective", "final_dice")
        study.set_user_attr("validation_subjects", list(ctx.validation_subjects))
    return study


def optimize(plan: StudyPlan, progress: Progress) -> optuna.Study:
    """Runs trials until the study holds ``plan.trials`` finished ones (or the timeout)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_or_create(plan)
    progress.study_loaded(plan.name, redact(plan.storage_url), _counts(study), _best(study))
    started = time.monotonic()
    while sum(_counts(study).values()) < plan.trials:
        if plan.timeout is not None and time.monotonic() - started >= plan.timeout:
            progress.message(f"Timeout of {plan.timeout:g} s reached.")
            break
        _run_one(study, plan, progress)
    return study


def _run_one(study: optuna.Study, plan: StudyPlan, progress: Progress) -> None:
    trial = study.ask()
    setup = plan.space.suggest(trial, plan.context.max_iter)
    progress.trial_started(trial.number, setup.schedule.describe())
    try:
        value = run_trial(trial, plan.context, setup, progress)
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=TrialState.PRUNED)
        progress.trial_finished(trial.number, "pruned", None, str(pruned))
    except TrialFailed as failed:
        trial.set_user_attr("stop_reason", str(failed))
        study.tell(trial, state=TrialState.FAIL)
        progress.trial_finished(trial.number, "failed", None, str(failed))
    except KeyboardInterrupt:
        trial.set_user_attr("stop_reason", "interrupted by the user")
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
        progress.trial_finished(trial.number, "failed", None, "interrupted by the user")
        raise
    else:
        study.tell(trial, value)
        progress.trial_finished(trial.number, "complete", value, params=trial.params)
