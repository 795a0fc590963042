"""A study: validate everything, then run trials until the study holds N finished ones.

``prepare`` reads and checks the config, data, search space and storage and writes nothing to
the study, so bad input never leaves a half-made study behind. ``optimize`` creates or loads the
study and runs trials one after the other (ask → train → tell) until the study as a whole holds
``trials`` finished trials, so re-running the same command continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lrsearch import checkpoints, lrfind, owners
from lrsearch import config as niftynet_config
from lrsearch.engines import Runtime, get_runtime
from lrsearch.engines.checks import check_gpu_request
from lrsearch.engines.process import stop_all
from lrsearch.errors import ConfigError, LRSearchError, StudyFailed
from lrsearch.live import LiveTrial, rewrite_note
from lrsearch.objectives import DIRECTION, parse_objective
from lrsearch.progress import Progress
from lrsearch.space import SearchSpace, load_space
from lrsearch.storage import (
    HEARTBEAT_SECONDS,
    fail_stale_trials,
    fingerprint,
    open_storage,
    redact,
    study_lock,
)
from lrsearch.trial import TrialContext, TrialFailed, TrialInterrupted, run_trial

logger = logging.getLogger("lrsearch")
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0
# Trials failing the same way in a row mean the config or the machine is wrong, not the
# schedule: stop after this many (Ray Tune's FailureConfig(max_failures) plays this part).
MAX_FAILURES = 3


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
    slots: tuple[Slot, ...] = ()  # where trials run at once (default: one, on the CPU)
    heartbeat: float = HEARTBEAT_SECONDS
    lr_bounds: str | None = None  # "auto": base_lr narrowed by an LR range test (lrfind)
    max_failures: int = MAX_FAILURES  # stop after this many trials failed the same way (0: never)


@dataclass(frozen=True)
class Slot:
    """One trial at a time: pinned to a GPU, or on the CPU (gpu None)."""

    index: int
    gpu: str | None = None


# On the CPU two trials run at once by default: one NiftyNet process leaves the cores idle while
# it imports TensorFlow, builds its graph and evaluates (benchmarks/trial_overhead.py: ~17 s of
# a ~37 s demo trial); two at once gave 1.45x the trials per hour on 2 cores.
DEFAULT_CPU_JOBS = 2 if (os.cpu_count() or 1) >= 2 else 1


def make_slots(jobs: int | None = None, gpus: str | None = None) -> tuple[Slot, ...]:
    """``--gpus 0,1,2,3``: one slot per GPU; ``--jobs K``: K CPU slots."""
    if gpus is not None:
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
        if not ids or not all(g.isdigit() for g in ids) or len(set(ids)) != len(ids):
            raise LRSearchError(f"--gpus takes distinct GPU indices like 0,1,2,3, but got {gpus!r}")
        if jobs is not None and jobs != len(ids):
            raise LRSearchError(f"--jobs {jobs} contradicts --gpus {gpus} (one trial per GPU); "
                                "give one of them")
        return tuple(Slot(i, g) for i, g in enumerate(ids))
    if jobs is not None and jobs < 1:
        raise LRSearchError(f"--jobs must be at least 1, but got {jobs}")
    return tuple(Slot(i) for i in range(jobs or DEFAULT_CPU_JOBS))


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


def make_pruner(max_iter: int, startup_trials: int = 5, warmup_fraction: float = 0.25,
                kind: str = "asha", reduction_factor: int = 3) -> optuna.pruners.BasePruner:
    """The study's pruner; ``kind`` as in a space's ``[pruner]`` table.

    Both rules leave every trial alone for its first ``warmup_fraction`` of iterations: warm-up,
    one-cycle and cyclic schedules look bad early and must not be judged there.

    - ``median``: after ``startup_trials`` complete trials, stops a trial whose validation Dice
      is below the median of completed trials at the same iteration (Optuna's MedianPruner).
    - ``asha``: asynchronous successive halving (Optuna's SuccessiveHalvingPruner): rungs at
      ``warmup_fraction`` of the iterations, then ``reduction_factor`` times further; at each,
      a trial goes on only within the best 1/``reduction_factor`` of the trials that reached it.
      Harsher (the first trials compete with few), and several times cheaper.
    - ``none``: every trial trains to the end.
    """
    warmup = int(max_iter * warmup_fraction)
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, warmup), reduction_factor=reduction_factor)
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup, interval_steps=1)
    raise ValueError(f"unknown pruner kind {kind!r} (asha, median or none)")


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
    runtime: str | Runtime | None = None,
    python: str | None = None,
    report: Callable[[str], None] | None = None,
    slots: tuple[Slot, ...] = (),
    heartbeat: float = HEARTBEAT_SECONDS,
    objective: str | None = None,
    lr_bounds: str | None = None,
    checkpoint_store: Path | None = None,
) -> StudyPlan:
    """Reads and checks everything a study needs. Raises :class:`LRSearchError` subclasses.

    ``runtime`` (a name, default: the space's; or a :class:`Runtime`) and ``python`` choose
    where trials train (see :func:`lrsearch.engines.get_runtime`; ``report`` hears about a
    first-use build).
    """
    if trials < 1:
        raise LRSearchError(f"--trials must be at least 1, but got {trials}")
    space = load_space(space_path)
    try:  # --objective wins over the space's
        objective_name = parse_objective(objective or space.objective).name
    except ValueError as error:
        raise ConfigError(f"--objective: {error}") from None
    if lr_bounds not in (None, "auto"):
        raise ConfigError(f"--lr-bounds takes 'auto', but got {lr_bounds!r}")
    cfg = niftynet_config.load_config(config_path)
    for warning in cfg.warnings if report else ():
        report(f"warning: {warning}")
    niftynet_config.check_training(cfg)
    dataset = niftynet_config.scan_data(cfg, report=report)
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
    if not isinstance(runtime, Runtime):
        runtime = get_runtime(runtime or space.runtime, python, report)
    check_gpu_request(cfg, runtime)  # a GPU config must not silently train on the CPU
    storage = open_storage(storage_url)  # fail now, before anything is written
    # another study's runs folder is refused before its split is read or anything written
    owners.check_runs_dir(runs, _owner(storage, storage_url, name), storage,
                          fix=_runs_dir_fix(runs_dir))
    split_file, phases, write = _study_split(cfg, dataset, runs)
    validation = tuple(s for s in dataset.subjects if phases.get(s) == "validation")
    niftynet_config.check_labels(
        cfg, dataset, [s for s in dataset.subjects if phases.get(s) == "training"])
    niftynet_config.check_inference_window(cfg, dataset, validation)
    if write:
        niftynet_config.write_split(split_file, dataset.subjects, VALIDATION_FRACTION,
                                    SPLIT_SEED)
    context = TrialContext(
        config=cfg,
        dataset=dataset,
        split_file=split_file,
        validation_subjects=validation,
        runs_dir=runs,
        max_iter=iterations,
        runtime=runtime,
        objective=objective_name,
        checkpoint_store=_checkpoint_store(checkpoint_store),
    )
    return StudyPlan(name, storage_url, space, context, trials, timeout, seed,
                     slots or make_slots(), heartbeat, lr_bounds)


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
        phases = niftynet_config.read_split(named)
        path = Path(named)
    else:
        path = runs / "dataset_split.csv"
        if path.is_file():
            phases = niftynet_config.read_split(path)
        else:
            phases = niftynet_config.split_phases(dataset.subjects, VALIDATION_FRACTION,
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


def _budget(study: optuna.Study) -> tuple[dict[str, int], int, int]:
    """Finished trials by state, trials running, trials waiting (re-queued retries).

    A failed trial that was re-queued (worker killed, Ctrl-C) is replaced by its retry and does
    not count toward --trials; the retry does.
    """
    trials = study.get_trials(deepcopy=False)
    superseded = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    live = [t for t in trials if t.number not in superseded]
    counts = {
        "complete": sum(t.state == TrialState.COMPLETE for t in live),
        "pruned": sum(t.state == TrialState.PRUNED for t in live),
        "failed": sum(t.state == TrialState.FAIL for t in live),
    }
    running = sum(t.state == TrialState.RUNNING for t in live)
    waiting = sum(t.state == TrialState.WAITING for t in live)
    return counts, running, waiting


def _best(study: optuna.Study) -> tuple[int, float] | None:
    try:
        best = study.best_trial
    except ValueError:
        return None
    return best.number, best.value


def load_or_create(plan: StudyPlan) -> optuna.Study:
    storage = open_storage(plan.storage_url, heartbeat=plan.heartbeat,
                           pool_size=len(plan.slots) + 2)
    ctx = plan.context
    study = optuna.create_study(
        study_name=plan.name,
        storage=storage,
        sampler=make_sampler(plan.seed),
        pruner=make_pruner(ctx.max_iter, plan.space.pruner_startup_trials,
                           plan.space.pruner_warmup_fraction, plan.space.pruner,
                           plan.space.pruner_reduction_factor),
        direction=DIRECTION,  # every objective is maximised (lrsearch.objectives)
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if "max_iter" in attrs and attrs["max_iter"] != ctx.max_iter:
        raise ConfigError(
            f"study '{plan.name}' trains {attrs['max_iter']} iterations per trial, this run "
            f"{ctx.max_iter}: use the same max_iter or another --study")
    if attrs.get("objective", ctx.objective) != ctx.objective:
        raise ConfigError(
            f"study '{plan.name}' optimises {attrs['objective']}, this run {ctx.objective}: "
            f"scores of different objectives cannot be compared; use --objective "
            f"{attrs['objective']} or another --study")
    if not attrs:
        study.set_user_attr("config", str(Path(ctx.config.path).resolve()))
        study.set_user_attr("max_iter", ctx.max_iter)
        study.set_user_attr("split_file", str(ctx.split_file))
        study.set_user_attr("runs_dir", str(ctx.runs_dir))
        study.set_user_attr("objective", ctx.objective)
        study.set_user_attr("validation_subjects", list(ctx.validation_subjects))
    # under the study lock: workers opening a new study together must agree on its uid
    with study_lock(plan.storage_url, plan.name):
        if owners.UID_ATTR not in study.user_attrs:
            study.set_user_attr(owners.UID_ATTR, uuid.uuid4().hex)
    return study


def _claim_runs_dir(study: optuna.Study, plan: StudyPlan) -> StudyPlan:
    """Records this study as the owner of its runs folder (``prepare`` checked it; another
    study may have claimed it since); its trials mark theirs."""
    me = owners.Owner(fingerprint(plan.storage_url), plan.name,
                      study.user_attrs[owners.UID_ATTR])
    owners.claim_runs_dir(plan.context.runs_dir, me, study._storage, fix=_runs_dir_fix(None))
    return dataclasses.replace(plan, context=dataclasses.replace(plan.context, owner=me))


class Workers:
    """The slots of one worker process, each running trials one after the other.

    Starting a trial (is the budget used up? ask) happens under a study-wide lock, so workers
    on many nodes together stop at exactly ``--trials`` trials.
    """

    def __init__(self, study: optuna.Study, plan: StudyPlan, progress: Progress,
                 run_one=None):
        self.study, self.plan, self.progress = study, plan, progress
        self.run_one = run_one or _run_one  # benchmarks swap in a trivial trial
        # lrsearch drives heartbeats and stale-trial retries itself (ask/tell, not
        # Study.optimize), with Optuna APIs that still call themselves experimental.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self.errors: list[BaseException] = []
        self.finished = {slot.index: threading.Event() for slot in plan.slots}  # slot ended
        self.streak = FailureStreak(plan.max_failures)

    def run(self) -> None:
        threads = [threading.Thread(target=self._slot, args=(slot,), daemon=True,
                                    name=f"lrsearch-slot-{slot.index}")
                   for slot in self.plan.slots]
        threads.append(threading.Thread(target=self._fail_stale, daemon=True,
                                        name="lrsearch-stale"))
        for thread in threads:
            thread.start()
        # Waiting on events, not Thread.join: a KeyboardInterrupt (Ctrl-C, SIGTERM) landing in
        # join() makes CPython (3.11) take the thread for finished while it still runs, and
        # the worker would exit before its slots re-queued their trials.
        try:
            for done in self.finished.values():
                while not done.wait(0.5):
                    pass
        except KeyboardInterrupt:
            self.stopping.set()
            stop_all()  # each slot records its trial as interrupted and re-queues it
            for done in self.finished.values():
                done.wait()
            raise
        finally:
            self.stopping.set()
        if self.errors:
            raise self.errors[0]
        if self.streak.stopped:
            raise StudyFailed(self.streak.message())

    def _next_trial(self) -> optuna.Trial | None:
        """The next trial to run; None when the study holds enough finished trials.

        While the budget is taken only because trials run elsewhere, wait: if their worker
        dies, they come back as retries that this worker must pick up.
        """
        while not self.stopping.is_set():
            with study_lock(self.plan.storage_url, self.plan.name):
                self._fail_stale_trials()
                counts, running, waiting = _budget(self.study)
                if waiting or sum(counts.values()) + running < self.plan.trials:
                    return self.study.ask()
                if sum(counts.values()) >= self.plan.trials:
                    return None
            self.stopping.wait(min(self.plan.heartbeat, 10))
        return None

    def _slot(self, slot: Slot) -> None:
        try:
            while not self.stopping.is_set():
                timeout = self.plan.timeout
                if timeout is not None and time.monotonic() - self.started >= timeout:
                    self.progress.message(f"Timeout of {timeout:g} s reached.")
                    return
                trial = self._next_trial()
                if trial is None:
                    return
                failed = self.run_one(self.study, trial, self.plan, self.progress, slot,
                                      self.stopping)
                if self.streak.add(failed):
                    # The other slots' trials are stopped and re-queued as on Ctrl-C: they
                    # would most likely fail the same way, and resume from their checkpoints.
                    self.stopping.set()
                    stop_all()
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.errors.append(error)
            self.stopping.set()
            stop_all()
        finally:
            self.finished[slot.index].set()

    def _fail_stale(self) -> None:
        """Fails trials whose worker stopped beating (killed, node lost): they are re-queued."""
        while not self.stopping.wait(self.plan.heartbeat):
            try:
                # under the study lock: two workers failing the same trial would race to
                # queue its retry
                with study_lock(self.plan.storage_url, self.plan.name):
                    self._fail_stale_trials()
            except Exception as error:  # noqa: BLE001 - the next round tries again
                logger.warning("could not re-queue stale trials (%s); trying again in %g s",
                               redact(str(error).splitlines()[0] if str(error) else repr(error)),
                               self.plan.heartbeat)

    def _fail_stale_trials(self) -> None:
        """Fails (and re-queues) trials whose worker was lost, each with its reason, and
        rewrites their dashboard notes, which would say "running" for good."""
        failed = fail_stale_trials(self.study, _lost_reason)
        for trial_id in failed:
            rewrite_note(optuna.trial.Trial(self.study, trial_id))


def _lost_reason(trial: optuna.trial.FrozenTrial, silent: float | None) -> str:
    """Why a trial without heartbeat fails: the last iteration known to the storage (its
    worker records it with each beat; validation rounds, a stored checkpoint and a resume
    tell it too)."""
    known = [trial.user_attrs.get("iterations"), trial.user_attrs.get("resumed_from_iteration"),
             (trial.user_attrs.get(checkpoints.ATTR) or {}).get("iteration"),
             *trial.intermediate_values]
    iteration = max((i for i in known if isinstance(i, int)), default=0)
    silence = f", no heartbeat for {silent:.0f} s" if silent is not None else ", no heartbeat"
    return f"worker lost at iteration {iteration}{silence}"


@dataclass
class FailureStreak:
    """Trials of this worker process (all its slots) that failed in a row with the same cause.

    Any trial that does not fail ends the streak; a failure with another cause starts a new
    one. Causes are compared with trial numbers masked (``trial-0007`` in a path).
    """

    limit: int
    count: int = 0
    last: TrialFailed | None = None
    stopped: bool = False  # the limit was reached; later trials (re-queued ones) do not count
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, failed: TrialFailed | None) -> bool:
        """Counts one finished trial (``failed``: why it failed, or None); True the first
        time ``limit`` trials in a row failed the same way."""
        with self._lock:
            if self.stopped:
                return False
            if failed is None:
                self.count, self.last = 0, None
                return False
            same = self.last is not None and _same_cause(self.last.cause, failed.cause)
            self.count = self.count + 1 if same else 1
            self.last = failed
            if self.limit and self.count >= self.limit:
                self.stopped = True
                return True
            return False

    def message(self) -> str:
        where = f" (see {self.last.log_path})" if self.last and self.last.log_path else ""
        cause = self.last.cause if self.last else "?"
        return (f"{self.count} trials failed the same way: {cause}{where}; fix it and run the "
                "same command again")


def _same_cause(a: str, b: str) -> bool:
    mask = re.compile(r"trial-\d+")
    return mask.sub("trial-N", a) == mask.sub("trial-N", b)


def optimize(plan: StudyPlan, progress: Progress) -> optuna.Study:
    """Runs trials until the study holds ``plan.trials`` finished ones (or the timeout)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_or_create(plan)
    plan = _claim_runs_dir(study, plan)
    plan = _share_checkpoint_store(study, plan)
    # A study searched within its range test's bounds keeps them: a worker started without
    # --lr-bounds auto must not widen the search of the others.
    if plan.lr_bounds == "auto" or lrfind.STUDY_ATTR in study.user_attrs:
        plan = lrfind.narrow_to_range_test(study, plan, progress.message)
    counts, _, _ = _budget(study)
    progress.study_loaded(plan.name, redact(plan.storage_url), counts, _best(study))
    Workers(study, plan, progress).run()
    counts, _, _ = _budget(study)
    if counts["failed"] and not counts["complete"]:
        raise StudyFailed(_none_completed(study, counts))
    return study


def _none_completed(study: optuna.Study, counts: dict[str, int]) -> str:
    """The error of a study whose every finished trial failed or was pruned."""
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if t.user_attrs.get("stop_reason")]
    last = failed[-1].user_attrs["stop_reason"] if failed else "no reason recorded"
    pruned = f" and {counts['pruned']} pruned" if counts["pruned"] else ""
    return (f"no trial of study '{study.study_name}' completed: {counts['failed']} failed"
            f"{pruned}; the last failure: {last}; fix it and run the same command again")


def _share_checkpoint_store(study: optuna.Study, plan: StudyPlan) -> StudyPlan:
    """The first worker's --checkpoint-store is recorded on the study; a worker started
    without one uses it (nodes may mount it elsewhere: theirs wins)."""
    given = plan.context.checkpoint_store
    recorded = study.user_attrs.get(checkpoints.STUDY_ATTR)
    if given is not None and recorded is None:
        study.set_user_attr(checkpoints.STUDY_ATTR, str(given))
    if given is None and recorded is not None:
        context = dataclasses.replace(plan.context, checkpoint_store=Path(recorded))
        return dataclasses.replace(plan, context=context)
    return plan


@contextlib.contextmanager
def _heartbeat(trial: optuna.Trial, iteration: Callable[[], int | None] = lambda: None):
    """Beats for the trial while it runs, so a dead worker's trial is failed and re-queued.
    Each beat also stores the trial's ``iteration()`` when it moved on: the iteration a lost
    trial's reason names."""
    storage = trial.study._storage
    interval = storage.get_heartbeat_interval() if hasattr(storage, "record_heartbeat") else None
    if not interval:
        yield
        return
    done = threading.Event()

    def beat():
        recorded = None
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
                now = iteration()
                if now is not None and now != recorded:
                    trial.set_user_attr("iterations", now)
                    recorded = now
            except Exception:  # noqa: BLE001 - the storage layer already logged and retried
                pass
            if done.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"lrsearch-beat-{trial.number}")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _requeue(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Records the trial as failed with ``reason`` and queues a retry that resumes it."""
    trial.set_user_attr("stop_reason", reason)
    study.tell(trial, state=TrialState.FAIL)
    frozen = study._storage.get_trial(trial._trial_id)
    callback = study._storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        callback(study, frozen)


def _run_one(study: optuna.Study, trial: optuna.Trial, plan: StudyPlan, progress: Progress,
             slot: Slot, stopping: threading.Event | None = None) -> TrialFailed | None:
    """Runs one trial and tells Optuna its outcome; why it failed, if it did."""
    setup = plan.space.suggest(trial, plan.context.max_iter)
    retry_of = trial.study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
    if retry_of is not None:
        trial.set_user_attr("retry_of", retry_of)
        trial.set_user_attr("stop_reason", None)  # inherited from the original
    where = f" on GPU {slot.gpu}" if slot.gpu is not None else ""
    again = f" (retry of trial {retry_of})" if retry_of is not None else ""
    progress.trial_started(trial.number, setup.schedule.describe() + again + where)
    def iteration() -> int | None:
        return progress.current.get(trial.number, {}).get("iteration")

    try:
        # The dashboard note and figures are final before Optuna hears the outcome.
        with _heartbeat(trial, iteration), \
                LiveTrial.for_study(trial, plan.storage_url, plan.context.runs_dir) as live:
            value = run_trial(trial, plan.context, setup, progress, live, gpu=slot.gpu,
                              stopping=stopping)
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=TrialState.PRUNED)
        progress.trial_finished(trial.number, "pruned", None, str(pruned))
    except TrialFailed as failed:
        trial.set_user_attr("stop_reason", str(failed))
        study.tell(trial, state=TrialState.FAIL)
        progress.trial_finished(trial.number, "failed", None, str(failed))
        return failed
    except (TrialInterrupted, KeyboardInterrupt) as stopped:
        reason = f"{stopped or 'interrupted'}; the worker was stopped (re-queued)"
        _requeue(study, trial, reason)
        progress.trial_finished(trial.number, "failed", None, reason)
    except Exception as error:  # lrsearch's own failure: the trial must not stay "running"
        reason = f"lrsearch stopped: {type(error).__name__}: {error}"
        with contextlib.suppress(Exception):
            trial.set_user_attr("stop_reason", reason)
            study.tell(trial, state=TrialState.FAIL)
        progress.trial_finished(trial.number, "failed", None, reason)
        raise
    else:
        study.tell(trial, value)
        progress.trial_finished(trial.number, "complete", value, params=trial.params)
    return None
