"""A study: validate everything, then run trials until the study holds N finished ones.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lrsearch.engines.checks import check_gpu_request
from lrsearch.engines.runtime import Runtime, get_runtime
from lrsearch.errors import ConfigError, LRSearchError, StudyFailed
from lrsearch.monitor.figures import save_plot
from lrsearch.monitor.progress import Progress
from lrsearch.monitor.records import HOLD_KEYS, StudyAttr, TrialAttr, study_info
from lrsearch.nifty import config, split, windows
from lrsearch.nifty import dataset as nifty_dataset
from lrsearch.nifty.contract import derive_seed
from lrsearch.run import owners, payoff, repeats
from lrsearch.run.plan import StudyOptions, StudyPlan, make_slots
from lrsearch.run.range_test import run_range_test
from lrsearch.run.storage import (
    fingerprint,
    open_storage,
    study_lock,
)
from lrsearch.run.trial import TrialContext
from lrsearch.run.workers import Workers, budget, is_repeat
from lrsearch.search import baselines as baseline_names
from lrsearch.search import range_test as range_maths
from lrsearch.search.objectives import DIRECTION, parse_objective
from lrsearch.search.space import load_space
from lrsearch.search.strategy import make_pruner, make_sampler
from lrsearch.urls import redact

logger = logging.getLogger("lrsearch")

VALIDATION_FRACTION = 0.2


SPLIT_SEED = 0


def prepare(options: StudyOptions, report: Callable[[str], None] | None = None) -> StudyPlan:
    """Reads and checks everything a study needs. Raises :class:`LRSearchError` subclasses.

    Writes nothing to the study. ``report`` hears warnings and a first-use runtime build.
    """
    o = options
    if o.trials < 1:
        raise LRSearchError(f"--trials must be at least 1, but got {o.trials}")
    for flag, value, least in (("--finalists", o.finalists, 1), ("--repeats", o.repeats, 0)):
        if value is not None and value < least:
            raise LRSearchError(f"{flag} must be at least {least}, but got {value}")
    if o.max_failures < 0:
        raise LRSearchError(f"--max-failures must be 0 (never stop) or more, but got "
                            f"{o.max_failures}")
    config_path = o.config
    space = load_space(o.space)
    try:  # --objective wins over the space's
        objective_name = parse_objective(o.objective or space.objective).name
    except ValueError as error:
        raise ConfigError(f"--objective: {error}") from None
    if o.lr_bounds not in (None, "auto"):
        raise ConfigError(f"--lr-bounds takes 'auto', but got {o.lr_bounds!r}")
    if o.baselines is not None:  # --baselines wins over the space's
        try:
            baselines = baseline_names.parse_baselines(o.baselines)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    else:
        baselines = space.baselines if space.baselines is not None else baseline_names.DEFAULT
    cfg = config.load_config(config_path)
    for warning in cfg.warnings if report else ():
        report(f"warning: {warning}")
    windows.check_training(cfg)
    dataset = nifty_dataset.scan_data(cfg, report=report)
    name = o.study_name or Path(config_path).stem
    runs = Path(o.runs_dir) if o.runs_dir else cfg.model_dir / name
    config.check_model_dir(runs)
    iterations = o.max_iter or space.max_iter or cfg.max_iter
    if iterations < 1:
        raise ConfigError(f"{config_path}: [TRAINING] max_iter must be at least 1, "
                          f"but got {iterations}")
    if cfg.validation_every_n <= 0 or cfg.validation_every_n > iterations:
        raise ConfigError(
            f"{config_path}: [TRAINING] validation_every_n is {cfg.validation_every_n}; "
            f"lrsearch prunes on validation Dice, set it between 1 and max_iter ({iterations})")
    runtime = o.runtime
    if not isinstance(runtime, Runtime):
        runtime = get_runtime(runtime or space.runtime, o.python, report)
    if not o.fork_server:
        runtime = dataclasses.replace(runtime, warm=False)
    check_gpu_request(cfg, runtime)  # a GPU config must not silently train on the CPU
    storage = open_storage(o.storage_url)  # fail now, before anything is written
    _check_range_test_baselines(baselines, o.lr_bounds, storage, name)
    # another study's runs folder is refused before its split is read or anything written
    owners.check_runs_dir(runs, _owner(storage, o.storage_url, name), storage,
                          fix=_runs_dir_fix(o.runs_dir))
    split_file, phases, write = _study_split(cfg, dataset, runs)
    validation = tuple(s for s in dataset.subjects if phases.get(s) == "validation")
    nifty_dataset.check_labels(
        cfg, dataset, [s for s in dataset.subjects if phases.get(s) == "training"])
    nifty_dataset.check_inference_window(cfg, dataset, validation)
    if write:
        split.write_split(split_file, dataset.subjects, VALIDATION_FRACTION, SPLIT_SEED)
    context = TrialContext(
        config=cfg,
        dataset=dataset,
        split_file=split_file,
        validation_subjects=validation,
        runs_dir=runs,
        max_iter=iterations,
        runtime=runtime,
        objective=objective_name,
        checkpoint_store=_checkpoint_store(o.checkpoint_store),
        seed=o.seed,
    )
    return StudyPlan(name, o.storage_url, space, context, o.trials, o.timeout, o.seed,
                     o.slots or make_slots(), o.heartbeat, o.lr_bounds, o.max_failures,
                     baselines,
                     o.finalists if o.finalists is not None else space.finalists,
                     o.repeats if o.repeats is not None else space.repeats)


def _check_range_test_baselines(baselines: tuple[str, ...], lr_bounds: str | None, storage,
                                name: str) -> None:
    """A baseline built from the LR range test (one-cycle) needs one: this run's
    ``--lr-bounds auto`` or the one the study already holds."""
    needs = [b for b in baselines if b in baseline_names.NEEDS_RANGE_TEST]
    if not needs or lr_bounds == "auto":
        return
    try:
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    except KeyError:
        attrs = {}
    if StudyAttr.LR_FIND not in attrs:
        raise ConfigError(f"--baselines {needs[0]} peaks at the LR range test's steepest "
                          f"descent, but study '{name}' has no range test: add --lr-bounds auto")


def _owner(storage, storage_url: str, name: str) -> owners.Owner:
    """This study as a folder owner (uid None while it does not exist yet)."""
    return owners.Owner(fingerprint(storage_url), name, owners.study_uid(storage, name)[1])


def _runs_dir_fix(runs_dir: Path | None) -> str:
    if runs_dir is not None:
        return "give --runs-dir another folder"
    return "give --runs-dir another folder or --study another name"


def _checkpoint_store(directory: Path | None) -> Path | None:
    if directory is None:
        return None
    path = Path(directory).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".lrsearch-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--checkpoint-store {directory}: cannot write there "
                          f"({error.strerror or error}); give a folder every node can write") \
            from None
    return path


def _study_split(cfg, dataset, runs: Path) -> tuple[Path, dict[str, str], bool]:
    """The split every trial of the study validates on: the config's, or one lrsearch writes
    (path, phases, whether the caller still has to write it once every check has passed)."""
    named = cfg.dataset_split_file
    write = False
    if named is not None and Path(named).is_file():
        phases = split.read_split(named)
        path = Path(named)
    else:
        path = runs / "dataset_split.csv"
        if path.is_file():
            phases = split.read_split(path)
        else:
            phases = split.split_phases(dataset.subjects, VALIDATION_FRACTION,
                                                  SPLIT_SEED, where=path)
            write = True
    validation = [s for s in dataset.subjects if phases.get(s) == "validation"]
    training = [s for s in dataset.subjects if phases.get(s) == "training"]
    if not validation or not training:
        raise ConfigError(
            f"{path}: the split needs training and validation subjects among "
            f"{len(dataset.subjects)} found (validation: {len(validation)}, "
            f"training: {len(training)}); fix it or remove it to let lrsearch write one")
    return path, phases, write


def _best(study: optuna.Study) -> tuple[int, float] | None:
    """The best original trial (a finalist repeat is a run of its original)."""
    best = study_info(study).best(1)
    return (best[0].number, best[0].value) if best else None


def _warmed_up(plan: StudyPlan) -> Callable[[optuna.trial.FrozenTrial], int] | None:
    """With the space's ``after_warmup``: how long a trial's schedule warms up, for the pruner."""
    if not plan.space.pruner_after_warmup:
        return None
    space, max_iter = plan.space, plan.context.max_iter
    return lambda trial: space.warmed_up(trial, max_iter)


def load_or_create(plan: StudyPlan) -> optuna.Study:
    storage = open_storage(plan.storage_url, heartbeat=plan.heartbeat,
                           pool_size=len(plan.slots) + 2)
    ctx = plan.context
    study = optuna.create_study(
        study_name=plan.name,
        storage=storage,
        sampler=make_sampler(plan.seed, hidden=is_repeat),
        pruner=make_pruner(ctx.max_iter, plan.space.pruner_startup_trials,
                           plan.space.pruner_warmup_fraction, plan.space.pruner,
                           plan.space.pruner_reduction_factor, plan.space.pruner_sigmas,
                           plan.space.pruner_top_k, not_before=_warmed_up(plan),
                           hold_until=plan.space.pruner_hold_until, keys=HOLD_KEYS),
        direction=DIRECTION,  # every objective is maximised (lrsearch.search.objectives)
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if StudyAttr.MAX_ITER in attrs and attrs[StudyAttr.MAX_ITER] != ctx.max_iter:
        raise ConfigError(
            f"study '{plan.name}' trains {attrs[StudyAttr.MAX_ITER]} iterations per trial, this "
            f"run {ctx.max_iter}: use the same max_iter or another --study")
    if attrs.get(StudyAttr.OBJECTIVE, ctx.objective) != ctx.objective:
        raise ConfigError(
            f"study '{plan.name}' optimises {attrs[StudyAttr.OBJECTIVE]}, this run "
            f"{ctx.objective}: scores of different objectives cannot be compared; use --objective "
            f"{attrs[StudyAttr.OBJECTIVE]} or another --study")
    if not attrs:
        study.set_user_attr(StudyAttr.CONFIG, str(Path(ctx.config.path).resolve()))
        study.set_user_attr(StudyAttr.MAX_ITER, ctx.max_iter)
        study.set_user_attr(StudyAttr.SPLIT_FILE, str(ctx.split_file))
        study.set_user_attr(StudyAttr.RUNS_DIR, str(ctx.runs_dir))
        study.set_user_attr(StudyAttr.OBJECTIVE, ctx.objective)
        study.set_user_attr(StudyAttr.VALIDATION_SUBJECTS, list(ctx.validation_subjects))
    # under the study lock: workers opening a new study together must agree on its uid
    with study_lock(plan.storage_url, plan.name):
        if StudyAttr.UID not in study.user_attrs:
            study.set_user_attr(StudyAttr.UID, uuid.uuid4().hex)
    return study


def _claim_runs_dir(study: optuna.Study, plan: StudyPlan) -> StudyPlan:
    """Records this study as the owner of its runs folder (``prepare`` checked it; another
    study may have claimed it since); its trials mark theirs."""
    me = owners.Owner(fingerprint(plan.storage_url), plan.name,
                      study.user_attrs[StudyAttr.UID])
    owners.claim_runs_dir(plan.context.runs_dir, me, study._storage, fix=_runs_dir_fix(None))
    return dataclasses.replace(plan, context=dataclasses.replace(plan.context, owner=me))


def attach(study: optuna.Study, plan: StudyPlan) -> StudyPlan:
    """The plan a worker runs ``study``'s trials with: the study's runs folder claimed, its
    checkpoint store shared, its validation windows fixed. Whatever runs trials calls this
    before its workers start (a trial run without it validates on NiftyNet's random windows)."""
    plan = _claim_runs_dir(study, plan)
    plan = _share_checkpoint_store(study, plan)
    return _fix_validation_windows(study, plan)


def optimize(plan: StudyPlan, progress: Progress) -> optuna.Study:
    """Runs trials until the study holds ``plan.trials`` finished ones (or the timeout), then
    the finalist repeats (within the same timeout)."""
    started = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_or_create(plan)
    plan = attach(study, plan)
    # A study searched within its range test's bounds keeps them: a worker started without
    # --lr-bounds auto must not widen the search of the others.
    if plan.lr_bounds == "auto" or StudyAttr.LR_FIND in study.user_attrs:
        plan = narrow_to_range_test(study, plan, progress.message)
    counts, _, _ = budget(study)
    progress.study_loaded(plan.name, redact(plan.storage_url), counts, _best(study))
    enqueue_baselines(study, plan, progress.message)
    Workers(study, plan, progress, started=started).run()
    counts, running, waiting = budget(study)
    if counts["failed"] and not counts["complete"]:
        raise StudyFailed(_none_completed(study, counts))
    if sum(counts.values()) >= plan.trials and not running and not waiting:
        # the study holds its budget: repeat the finalists on fresh seeds, then time the
        # winner against the user's config, once
        if plan.repeats:
            repeats.run_repeats(study, plan, progress, started)
        if not any(budget(study)[1:]):
            payoff.after_study(study, plan.context, progress.message)
    return study


def confirm(plan: StudyPlan, progress: Progress) -> optuna.Study:
    """``lrsearch confirm``: the finalist repeats of an existing study (no new search trial),
    then the payoff against the user's config."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_or_create(plan)
    plan = attach(study, plan)  # repeats validate as their originals did
    repeats.run_repeats(study, plan, progress)
    if not any(budget(study)[1:]):
        payoff.after_study(study, plan.context, progress.message)
    return study


def stored_options(study: optuna.Study, storage_url: str, config: Path | None = None,
                   **given) -> StudyOptions:
    """What ``lrsearch confirm`` runs a stored study's repeats with: the study's own config
    (``config`` overrides it), iterations, runs folder, objective and runtime; no new baseline.
    ``given``: further :class:`StudyOptions` fields (slots, finalists, repeats, ...)."""
    attrs = study.user_attrs
    stored = attrs.get(StudyAttr.CONFIG)
    if config is None:
        if stored is None or not Path(stored).is_file():
            raise ConfigError(f"study '{study.study_name}' was created from the config "
                              f"{stored or '(not recorded)'}, which is not there: give the same "
                              f"NiftyNet config with -c FILE")
        config = Path(stored)
    runtimes = [t.user_attrs[TrialAttr.RUNTIME].get("runtime") for t in
                study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if isinstance(t.user_attrs.get(TrialAttr.RUNTIME), dict)]
    runs = attrs.get(StudyAttr.RUNS_DIR)
    held = len(study.get_trials(deepcopy=False))
    return StudyOptions(config=Path(config), study_name=study.study_name,
                        storage_url=storage_url, trials=max(1, held),
                        max_iter=attrs.get(StudyAttr.MAX_ITER),
                        runs_dir=Path(runs) if runs else None,
                        objective=attrs.get(StudyAttr.OBJECTIVE), baselines=(),
                        runtime=given.pop("runtime", None) or (runtimes[0] if runtimes
                                                               else None),
                        **given)


def _none_completed(study: optuna.Study, counts: dict[str, int]) -> str:
    """The error of a study whose every finished trial failed or was pruned."""
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if t.user_attrs.get(TrialAttr.STOP_REASON)]
    last = failed[-1].user_attrs[TrialAttr.STOP_REASON] if failed else "no reason recorded"
    pruned = f" and {counts['pruned']} pruned" if counts["pruned"] else ""
    return (f"no trial of study '{study.study_name}' completed: {counts['failed']} failed"
            f"{pruned}; the last failure: {last}; fix it and run the same command again")




def enqueue_baselines(study: optuna.Study, plan: StudyPlan,
                      message: Callable[[str], None] = lambda text: None) -> list[str]:
    """Queues the plan's baselines the study does not hold yet, ahead of searched trials;
    the names queued.

    Under the study lock, so workers starting together queue each one once. A baseline is
    never queued twice: one that failed, or was re-queued, has its retry. Baselines count
    toward --trials: those that no longer fit are left out and said so.
    """
    if not plan.baselines:
        return []
    with study_lock(plan.storage_url, plan.name):
        recorded = list(study.user_attrs.get(StudyAttr.BASELINES, ()))
        trials = study.get_trials(deepcopy=False)
        held = set(recorded) | {t.user_attrs.get(TrialAttr.BASELINE) for t in trials}
        missing = [name for name in plan.baselines if name not in held]
        if not missing:
            return []
        counts, running, waiting = budget(study)
        room = max(0, plan.trials - sum(counts.values()) - running - waiting)
        queued, left = missing[:room], missing[room:]
        for name in queued:
            study.enqueue_trial({}, user_attrs={TrialAttr.BASELINE: name})
        if queued:
            study.set_user_attr(StudyAttr.BASELINES, recorded + queued)
    if queued:
        message("Baselines first: " + ", ".join(baseline_names.label(n) for n in queued) + ".")
    if left:
        message(f"Baseline {', '.join(left)} not queued: --trials {plan.trials} leaves no room "
                f"(baselines count toward it); raise --trials to run it.")
    return queued


def _share_checkpoint_store(study: optuna.Study, plan: StudyPlan) -> StudyPlan:
    """The first worker's --checkpoint-store is recorded on the study; a worker started
    without one uses it (nodes may mount it elsewhere: theirs wins)."""
    given = plan.context.checkpoint_store
    recorded = study.user_attrs.get(StudyAttr.CHECKPOINT_STORE)
    if given is not None and recorded is None:
        study.set_user_attr(StudyAttr.CHECKPOINT_STORE, str(given))
    if given is None and recorded is not None:
        context = dataclasses.replace(plan.context, checkpoint_store=Path(recorded))
        return dataclasses.replace(plan, context=context)
    return plan


def _fix_validation_windows(study: optuna.Study, plan: StudyPlan) -> StudyPlan:
    """The plan whose trials validate on the study's fixed windows."""
    seed = validation_seed(study, plan.storage_url, plan.seed)
    context = dataclasses.replace(plan.context, validation_seed=seed)
    return dataclasses.replace(plan, context=context)


def validation_seed(study: optuna.Study, storage_url: str, seed: int | None) -> int:
    """The study's validation seed, stored once: every validation round of every trial sees
    the windows it fixes (lrsearch.engines.child.validation), so two trials' validation Dice
    differ only by their models.

    The first worker stores it, under the study lock so that workers starting together agree;
    a resumed study keeps it. It derives from the study's ``seed`` (``--seed``), so the same
    command validates on the same windows; without one it is random.
    """
    with study_lock(storage_url, study.study_name):
        stored = study.user_attrs.get(StudyAttr.VALIDATION_SEED)
        if stored is not None:
            return int(stored)
        derived = derive_seed(seed, "validation")
        study.set_user_attr(StudyAttr.VALIDATION_SEED, derived)
        return derived


def narrow_to_range_test(study: optuna.Study, plan: StudyPlan,
                         message: Callable[[str], None]) -> StudyPlan:
    """``--lr-bounds auto``: the study's stored range test, or a new one (under the study lock,
    so only one worker runs it); the plan's space searches base_lr within its bounds."""
    from lrsearch.run.storage import study_lock

    with study_lock(plan.storage_url, plan.name):
        stored = study.user_attrs.get(StudyAttr.LR_FIND)
        if stored is None:
            ctx = plan.context
            message("Running the LR range test for --lr-bounds auto ...")
            result = run_range_test(ctx.config, ctx.runs_dir / "lr-find", ctx.split_file,
                                    ctx.runtime, min_lr=range_maths.MIN_LR,
                                    max_lr=range_maths.MAX_LR,
                                    iterations=range_maths.ITERATIONS,
                                    smoothing=range_maths.SMOOTHING, seed=plan.seed)
            study.set_user_attr(StudyAttr.LR_FIND, result.to_dict())
            save_plot(result, ctx.runs_dir / "lr-find" / "lr_find.html")
        else:
            result = range_maths.RangeTest.from_dict(stored)
    message(result.summary())
    space = dataclasses.replace(plan.space, base_lr=result.bounds)
    return dataclasses.replace(plan, space=space)
