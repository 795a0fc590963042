"""The slots of one worker process, each running trials one after the other; heartbeats and re-
queues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from lrsearch.engines.process import close_fork_server, stop_all
from lrsearch.errors import StudyFailed
from lrsearch.monitor.live import LiveTrial, rewrite_note
from lrsearch.monitor.progress import Progress
from lrsearch.monitor.records import StudyAttr, TrialAttr, last_iteration
from lrsearch.run.plan import Slot, StudyPlan
from lrsearch.run.storage import (
    fail_stale_trials,
    study_lock,
)
from lrsearch.run.trial import TrialFailed, TrialInterrupted, run_trial
from lrsearch.search import retries
from lrsearch.search.baselines import baseline_schedule
from lrsearch.search.baselines import label as baseline_label
from lrsearch.search.pruners import TopKRungPruner
from lrsearch.search.schedules import from_dict
from lrsearch.search.space import OPTIMISER_PARAM, TrialSetup
from lrsearch.urls import redact

logger = logging.getLogger("lrsearch")


def is_repeat(trial: optuna.trial.FrozenTrial) -> bool:
    """A finalist repeat (lrsearch.run.repeats): not a search trial of its own."""
    return TrialAttr.REPEAT_OF in trial.user_attrs


def is_continuation(trial: optuna.trial.FrozenTrial) -> bool:
    """A held trial re-run to the end (top_k_rung's ``hold_until``): not a trial of its own."""
    return TrialAttr.CONTINUES in trial.user_attrs


def budget(study: optuna.Study) -> tuple[dict[str, int], int, int]:
    """Finished trials by state, trials running, trials waiting (re-queued retries, queued
    baselines, continuations and repeats).

    A failed trial that was re-queued (worker killed, Ctrl-C) is replaced by its retry and does
    not count toward --trials; the retry does. Finalist repeats and continuations of held
    trials do not count toward --trials (finished or running): the held trial did; waiting
    ones are waiting like any trial, so a worker runs them.
    """
    trials = study.get_trials(deepcopy=False)
    superseded = retries.superseded(trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials if t.number not in superseded)
    live = [t for t in trials if t.number not in superseded and not is_repeat(t)
            and not is_continuation(t)]
    counts = {
        "complete": sum(t.state == TrialState.COMPLETE for t in live),
        "pruned": sum(t.state == TrialState.PRUNED for t in live),
        "failed": sum(t.state == TrialState.FAIL for t in live),
    }
    running = sum(t.state == TrialState.RUNNING for t in live)
    return counts, running, waiting


def continuations_running(study: optuna.Study) -> int:
    return sum(t.state == TrialState.RUNNING and is_continuation(t)
               for t in study.get_trials(deepcopy=False))


def repeats_running(study: optuna.Study) -> int:
    return sum(t.state == TrialState.RUNNING and is_repeat(t)
               for t in study.get_trials(deepcopy=False))


def enqueue_continuations(study: optuna.Study, final: bool = False) -> list[int]:
    """Queues the held trials the study's pruner continues now (top_k_rung's ``hold_until``),
    each with its parameters and training seed, so that it repeats its run to the rung and
    trains on; the held trials' numbers. ``final``: no trial will come to the rung any more
    (the budget is spent), so the top-k are taken among those that reached it, however few.
    Call under the study lock: each is queued once."""
    pruner = study.pruner
    if not isinstance(pruner, TopKRungPruner):
        return []
    held = pruner.continuations(study, final=final)
    for trial in held:
        study.enqueue_trial(trial.params, user_attrs={
            TrialAttr.CONTINUES: trial.number, TrialAttr.SEED: trial.user_attrs[TrialAttr.SEED]})
    return [t.number for t in held]


class Workers:
    """The slots of one worker process, each running trials one after the other.

    Starting a trial (is the budget used up? ask) happens under a study-wide lock, so workers
    on many nodes together stop at exactly ``--trials`` trials. ``sample`` False: run only
    queued trials (finalist repeats), never sample a new one. ``started``: when the run began
    (``time.monotonic()``), which ``--timeout`` counts from; by default now.
    """

    def __init__(self, study: optuna.Study, plan: StudyPlan, progress: Progress,
                 run_one=None, sample: bool = True, started: float | None = None):
        self.study, self.plan, self.progress = study, plan, progress
        self.sample = sample
        self.run_one = run_one or _run_one  # benchmarks swap in a trivial trial
        # lrsearch drives heartbeats and stale-trial retries itself (ask/tell, not
        # Study.optimize), with Optuna APIs that still call themselves experimental.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        self.stopping = threading.Event()
        self.started = time.monotonic() if started is None else started
        self.errors: list[BaseException] = []
        self.finished = {slot.index: threading.Event() for slot in plan.slots}  # slot ended
        self.streak = FailureStreak(plan.max_failures)
        self.timed_out = False

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
        if self.timed_out:
            self._report_held()

    def _report_held(self) -> None:
        """After a timeout: the held trials that would go on (top_k_rung's ``hold_until``) but
        were not continued, and how to continue them."""
        pruner = self.study.pruner
        if not isinstance(pruner, TopKRungPruner):
            return
        queued = [t.user_attrs[TrialAttr.CONTINUES] for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.WAITING,)) if is_continuation(t)]
        held = sorted(queued + [t.number for t in pruner.continuations(self.study, final=True)])
        if held:
            numbers = ", ".join(str(n) for n in held)
            self.progress.message(
                f"Held at the rung and not continued before the timeout: trial"
                f"{'s' if len(held) > 1 else ''} {numbers} (among the best there). The same "
                f"command again continues {'them' if len(held) > 1 else 'it'} once "
                f"{pruner.hold_until} trials have reached the rung or --trials are spent.")

    def _next_trial(self) -> optuna.Trial | None:
        """The next trial to run; None when the study holds enough finished trials.

        While the budget is taken only because trials run elsewhere, wait: if their worker
        dies, they come back as retries that this worker must pick up. Without ``sample``,
        likewise while repeats run elsewhere.
        """
        while not self.stopping.is_set():
            with study_lock(self.plan.storage_url, self.plan.name):
                self._fail_stale_trials()
                counts, running, waiting = budget(self.study)
                if self._continue_held(final=sum(counts.values()) >= self.plan.trials):
                    counts, running, waiting = budget(self.study)
                if waiting:
                    return self.study.ask()
                if not self.sample:
                    if not repeats_running(self.study):
                        return None
                elif sum(counts.values()) + running < self.plan.trials:
                    return self.study.ask()
                elif sum(counts.values()) >= self.plan.trials \
                        and not continuations_running(self.study):
                    return None
            self.stopping.wait(min(self.plan.heartbeat, 10))
        return None

    def _continue_held(self, final: bool) -> int:
        """Queues the held trials to continue now; how many."""
        queued = enqueue_continuations(self.study, final=final)
        for number in queued:
            self.progress.message(f"Trial {number} goes on: among the best at the rung once "
                                  f"enough trials reached it; queued again with its seed.")
        return len(queued)

    def _slot(self, slot: Slot) -> None:
        try:
            while not self.stopping.is_set():
                timeout = self.plan.timeout
                if timeout is not None and time.monotonic() - self.started >= timeout:
                    self.progress.message(f"Timeout of {timeout:g} s reached.")
                    self.timed_out = True
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
            close_fork_server()  # this slot's, if its trials were forked from one
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
    """Why a trial without heartbeat fails: the last iteration known to the storage."""
    silence = f", no heartbeat for {silent:.0f} s" if silent is not None else ", no heartbeat"
    return f"worker lost at iteration {last_iteration(trial)}{silence}"


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
                    trial.set_user_attr(TrialAttr.ITERATIONS, now)
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
    trial.set_user_attr(TrialAttr.STOP_REASON, reason)
    study.tell(trial, state=TrialState.FAIL)
    frozen = study._storage.get_trial(trial._trial_id)
    callback = study._storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        callback(study, frozen)




def trial_setup(study: optuna.Study, trial: optuna.Trial, plan: StudyPlan) -> TrialSetup:
    """What the trial trains with: its baseline's schedule, queued with the trial, a finalist
    repeat's or a continuation's original's, or one sampled from the space."""
    name = trial.user_attrs.get(TrialAttr.BASELINE)
    repeat_of = trial.user_attrs.get(TrialAttr.REPEAT_OF)
    if name is None and repeat_of is not None:
        return _repeat_setup(study, trial, repeat_of)
    if is_continuation(trial):
        held = _repeat_setup(study, trial, trial.user_attrs[TrialAttr.CONTINUES])
        return dataclasses.replace(held, repeat_of=None)  # judged no more by its pruner
    if name is None:
        return plan.space.suggest(trial, plan.context.max_iter)
    found = study.user_attrs.get(StudyAttr.LR_FIND) or {}
    schedule = baseline_schedule(name, plan.context.config.lr, plan.context.max_iter,
                                 found.get("steepest_lr"))
    return TrialSetup(schedule, baseline=name, repeat_of=repeat_of)


def _repeat_setup(study: optuna.Study, trial: optuna.Trial, number: int) -> TrialSetup:
    """A searched finalist's repeat (or a held trial's continuation): its original's stored
    schedule and optimiser, and its parameters recorded with the original's distributions (the
    queued values win), so the repeat needs neither the study's space file nor a sample."""
    original = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    for param, distribution in original.distributions.items():
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            trial.suggest_categorical(param, distribution.choices)
        elif isinstance(distribution, optuna.distributions.IntDistribution):
            trial.suggest_int(param, distribution.low, distribution.high,
                              step=distribution.step, log=distribution.log)
        else:
            trial.suggest_float(param, distribution.low, distribution.high,
                                step=distribution.step, log=distribution.log)
    schedule = from_dict(original.user_attrs[TrialAttr.SCHEDULE])
    return TrialSetup(schedule, optimiser=original.params.get(OPTIMISER_PARAM),
                      repeat_of=number)


def _run_one(study: optuna.Study, trial: optuna.Trial, plan: StudyPlan, progress: Progress,
             slot: Slot, stopping: threading.Event | None = None) -> TrialFailed | None:
    """Runs one trial and tells Optuna its outcome; why it failed, if it did."""
    setup = trial_setup(study, trial, plan)
    label = baseline_label(setup.baseline) if setup.baseline else ""
    if setup.repeat_of is not None:
        round_ = trial.user_attrs.get(TrialAttr.REPEAT_ROUND)
        label = f"repeat {round_} of trial {setup.repeat_of}" + (f", {label}" if label else "")
    if is_continuation(trial):
        label = f"continues held trial {trial.user_attrs[TrialAttr.CONTINUES]}"
    stored = trial.study._storage.get_trial(trial._trial_id)
    retry_of = stored.system_attrs.get(retries.FAILED_TRIAL)
    if retry_of is not None:
        trial.set_user_attr(TrialAttr.RETRY_OF, retry_of)
        trial.set_user_attr(TrialAttr.STOP_REASON, None)  # inherited from the original
    where = f" on GPU {slot.gpu}" if slot.gpu is not None else ""
    again = f" (retry of trial {retry_of})" if retry_of is not None else ""
    progress.trial_started(trial.number, setup.schedule.describe() + again + where, label)
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
        progress.trial_finished(trial.number, "pruned", None, str(pruned), label=label)
    except TrialFailed as failed:
        trial.set_user_attr(TrialAttr.STOP_REASON, str(failed))
        study.tell(trial, state=TrialState.FAIL)
        progress.trial_finished(trial.number, "failed", None, str(failed), label=label)
        return failed
    except (TrialInterrupted, KeyboardInterrupt) as stopped:
        reason = f"{stopped or 'interrupted'}; the worker was stopped (re-queued)"
        _requeue(study, trial, reason)
        progress.trial_finished(trial.number, "failed", None, reason, label=label)
    except Exception as error:  # lrsearch's own failure: the trial must not stay "running"
        reason = f"lrsearch stopped: {type(error).__name__}: {error}"
        with contextlib.suppress(Exception):
            trial.set_user_attr(TrialAttr.STOP_REASON, reason)
            study.tell(trial, state=TrialState.FAIL)
        progress.trial_finished(trial.number, "failed", None, reason, label=label)
        raise
    else:
        study.tell(trial, value)
        progress.trial_finished(trial.number, "complete", value, params=trial.params,
                                label=label, ranked=setup.repeat_of is None)
    return None
