"""The read model of stored trials and studies, and the one owner of their attribute keys.

Every key lrsearch stores as an Optuna user attribute is named once here (:class:`TrialAttr`,
:class:`StudyAttr`): the run package writes them, this module and the results read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lrsearch.search import baselines as baseline_names
from lrsearch.search import payoff as payoff_maths
from lrsearch.search import repeats as repeat_maths
from lrsearch.search.baselines import label as baseline_label
from lrsearch.search.pruners import HoldKeys
from lrsearch.urls import redact

if TYPE_CHECKING:
    import optuna


STATES = ("complete", "pruned", "failed", "running", "waiting")


class TrialAttr:
    """Keys of a trial's user attributes.

    Stored keys are permanent: existing studies hold them, so never rename one (add a new key).
    """

    FAMILY: Final = "family"  # the sampled schedule family
    SCHEDULE: Final = "schedule"  # the schedule as ``Schedule.to_dict()``, replayable
    SCHEDULE_TEXT: Final = "schedule_text"  # the schedule in one readable line
    OPTIMISER: Final = "optimiser"  # the NiftyNet optimiser the trial trained with
    MAX_ITER: Final = "max_iter"  # iterations the trial was planned to train
    LR_CURVE: Final = "lr_curve"  # planned learning rate, [[iteration, lr], ...] from 1
    LR_USED: Final = "lr_used"  # learning rate read back from NiftyNet's console
    RUN_DIR: Final = "run_dir"  # the trial's run folder (config, model, console log)
    LOG_PATH: Final = "log_path"  # NiftyNet's console log of the trial
    COMMAND: Final = "command"  # the NiftyNet command line that trained the trial
    HOST: Final = "host"  # the machine the trial ran on
    RUNTIME: Final = "runtime"  # the runtime and the versions it trained with
    ITERATIONS: Final = "iterations"  # iterations run (so far, while running)
    WALL_SECONDS: Final = "wall_seconds"  # wall time of the training
    TIMING: Final = "timing"  # seconds by phase: imports, setup, training, evaluation
    FORKED: Final = "forked"  # its child was forked from a fork server (imports done already)
    ITERATIONS_PER_SECOND: Final = "iterations_per_second"  # training speed
    STOP_REASON: Final = "stop_reason"  # why a pruned or failed trial stopped
    FINAL_DICE: Final = "final_dice"  # mean whole-volume Dice of the final model
    VOLUME_DICE: Final = "volume_dice"  # whole-volume Dice by validation subject
    LAST_WINDOW_DICE: Final = "last_window_dice"  # Dice of the latest validation round (on windows)
    RESUMED_FROM_ITERATION: Final = "resumed_from_iteration"  # a retry's starting checkpoint
    RETRY_OF: Final = "retry_of"  # number of the failed trial a retry re-runs
    ITERATIONS_TO_TARGET: Final = "iterations_to_target"  # first iteration reaching the target
    CHECKPOINT_ARTIFACT: Final = "checkpoint_artifact"  # the last checkpoint in the store
    CHECKPOINT_PENDING: Final = "checkpoint_pending"  # the artifact id of the upload under way
    SEED: Final = "seed"  # the training seed; the same seed repeats the run (a retry keeps it)
    BASELINE: Final = "baseline"  # which baseline the trial runs ("config", "poly", "one-cycle")
    REPEAT_OF: Final = "repeat_of"  # a finalist repeat: the number of the trial it retrains
    REPEAT_ROUND: Final = "repeat_round"  # ... its round (1, 2, ...; the original is round 0)
    HELD_AT: Final = "held_at"  # top_k_rung: stopped at the rung till enough trials reached it
    CONTINUES: Final = "continues"  # the held trial this one re-runs to the end (same seed)


# the attributes top_k_rung's holds are kept in (lrsearch.search.pruners.HoldKeys)
HOLD_KEYS: Final = HoldKeys(held=TrialAttr.HELD_AT, continues=TrialAttr.CONTINUES)


class StudyAttr:
    """Keys of a study's user attributes.

    Stored keys are permanent: existing studies hold them, so never rename one (add a new key).
    """

    CONFIG: Final = "config"  # the NiftyNet config the study trains (absolute path)
    MAX_ITER: Final = "max_iter"  # iterations per trial; a resumed run must match
    SPLIT_FILE: Final = "split_file"  # the dataset split file every trial uses
    RUNS_DIR: Final = "runs_dir"  # the folder holding the trial folders
    OBJECTIVE: Final = "objective"  # what the study optimises; a resumed run must match
    VALIDATION_SUBJECTS: Final = "validation_subjects"  # subjects the Dice is measured on
    LR_FIND: Final = "lr_find"  # the LR range test's result (``RangeTest.to_dict()``)
    CHECKPOINT_STORE: Final = "checkpoint_store"  # the checkpoint artifact store's folder
    UID: Final = "study_uid"  # the study's identity across deletions (run-folder ownership)
    BASELINES: Final = "baselines"  # names of the baselines ever queued, in order
    PAYOFF: Final = "payoff"  # the best and baseline trials whose checkpoints were segmented
    CHECKPOINT_DICE_PREFIX: Final = "checkpoint_dice."  # + trial number: Dice per checkpoint
    VALIDATION_SEED: Final = "validation_seed"  # fixes the windows every validation round sees
    REPEAT_SEEDS: Final = "repeat_seeds"  # the training seed of each repeat round, from round 1


@dataclass(frozen=True)
class TrialInfo:
    """One trial as the report and the dashboard need it."""

    number: int
    state: str  # one of STATES
    value: float | None  # the objective (whole-volume Dice) of a complete trial
    family: str
    schedule_text: str
    max_iter: int | None
    iterations: int  # iterations run (so far, for a running trial)
    lr_curve: tuple[tuple[int, float], ...] = ()  # planned, NiftyNet iterations (from 1)
    lr_used: tuple[tuple[int, float], ...] = ()  # read back from NiftyNet's console
    dice: tuple[tuple[int, float], ...] = ()  # validation Dice by iteration
    params: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] | None = None
    optimiser: str | None = None
    last_window_dice: float | None = None
    wall_seconds: float | None = None
    iterations_per_second: float | None = None
    stop_reason: str = ""
    run_dir: str | None = None
    command: str | None = None
    seed: int | None = None  # the training seed (LRSEARCH_SEED) that repeats its run
    final_dice: float | None = None  # whole-volume Dice of the final model
    baseline: str | None = None  # which baseline the trial is ("config", ...), if one
    repeat_of: int | None = None  # a finalist repeat: the trial it retrains on another seed
    repeat_round: int | None = None  # ... in which round (1, 2, ...)

    @property
    def label(self) -> str:
        """How people see a baseline ("your config"); "" for a searched trial."""
        return baseline_label(self.baseline) if self.baseline else ""

    @property
    def last_dice(self) -> float | None:
        return self.dice[-1][1] if self.dice else None

    @property
    def finished(self) -> bool:
        return self.state in ("complete", "pruned", "failed")


@dataclass(frozen=True)
class StudyInfo:
    name: str
    storage: str  # redacted URL
    max_iter: int | None
    config: str | None
    trials: tuple[TrialInfo, ...]
    objective: str = "final_dice"
    lr_find: str | None = None  # the LR range test's summary (--lr-bounds auto)
    # whole-volume Dice per checkpoint by trial number, and what segmenting them cost (s)
    checkpoint_dice: dict[int, tuple[dict[int, float], float | None]] = field(
        default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for trial in self.trials:
            counts[trial.state] += 1
        return counts

    def best(self, k: int = 1) -> list[TrialInfo]:
        """The ``k`` complete trials with the highest objective, best first; a finalist
        repeat is a run of its original, not a candidate of its own."""
        complete = [t for t in self.trials if t.state == "complete" and t.value is not None
                    and t.repeat_of is None]
        return sorted(complete, key=lambda t: (-t.value, t.number))[:k]

    def repeats(self) -> dict[int, dict[int, float]]:
        """Final Dice of the complete finalist repeats by original trial, then round."""
        found: dict[int, dict[int, float]] = {}
        for t in self.trials:
            if t.repeat_of is not None and t.repeat_round is not None and \
                    t.state == "complete" and t.final_dice is not None:
                found.setdefault(t.repeat_of, {})[t.repeat_round] = t.final_dice
        return found

    def runs(self, trial: TrialInfo) -> repeat_maths.Runs:
        """A complete original trial's runs: itself (round 0) and its complete repeats."""
        dice = {0: trial.final_dice, **self.repeats().get(trial.number, {})}
        return repeat_maths.Runs(trial.number, dice, trial.schedule_text, trial.label)

    def confirmed(self) -> repeat_maths.Verdict | None:
        """The verdict with uncertainty (:mod:`lrsearch.search.repeats`): the baselines, every
        trial that has repeats and the best searched trial, ranked by mean whole-volume Dice,
        the leader against the user's config. None without a complete config baseline."""
        config = self.config_baseline()
        if config is None:
            return None
        repeated = self.repeats()
        searched = [t for t in self.best(len(self.trials)) if not t.baseline]
        pool = [t for t in self.trials if t.state == "complete" and t.final_dice is not None
                and t.repeat_of is None and (t.baseline or t.number in repeated)]
        pool += searched[:1]
        candidates = [self.runs(t) for t in {t.number: t for t in pool if
                                             t.final_dice is not None}.values()]
        return repeat_maths.decide(candidates, self.runs(config))

    def leader(self) -> TrialInfo | None:
        """The trial ``best`` shows: the best mean once finalists have repeats, else the
        best objective."""
        verdict = self.confirmed() if self.repeats() else None
        if verdict is None:
            best = self.best(1)
            return best[0] if best else None
        return next(t for t in self.trials if t.number == verdict.leader.trial)

    def families(self) -> list[str]:
        return sorted({t.family for t in self.trials})

    def config_baseline(self) -> TrialInfo | None:
        """The complete trial that trained the user's config with its constant lr."""
        return next((t for t in self.trials if t.state == "complete" and t.final_dice is not None
                     and t.baseline == baseline_names.CONFIG and t.repeat_of is None), None)

    def run_numbers(self, number: int) -> dict[int, int]:
        """Trial numbers of a complete original trial's runs by round (0: itself)."""
        found = {0: number}
        for t in self.trials:
            if t.repeat_of == number and t.repeat_round is not None and \
                    t.state == "complete" and t.final_dice is not None:
                found[t.repeat_round] = t.number
        return found

    def payoff_runs(self) -> tuple[TrialInfo, TrialInfo, dict[int, int], dict[int, int]] | None:
        """The config baseline, the leader, and the trial numbers of their runs by round that
        the payoff compares: every run once both have repeats (the payoff is then on means),
        else the two originals. None without both."""
        baseline, top = self.config_baseline(), self.leader()
        if baseline is None or top is None:
            return None
        mine, best = self.run_numbers(baseline.number), self.run_numbers(top.number)
        if len(mine) < 2 or len(best) < 2:
            mine, best = {0: baseline.number}, {0: top.number}
        return baseline, top, mine, best

    def payoff_trials(self) -> list[int]:
        """The trials whose checkpoints the payoff segments (:meth:`payoff_runs`); [] when
        there is no payoff to time."""
        sides = self.payoff_runs()
        if sides is None or sides[0].number == sides[1].number:
            return []
        return sorted({*sides[2].values(), *sides[3].values()})

    def payoff(self) -> payoff_maths.Payoff | None:
        """The best trial against the ``config`` baseline (None without both, or max_iter);
        on means once both have repeats."""
        sides = self.payoff_runs()
        if sides is None or sides[1].final_dice is None or not self.max_iter:
            return None
        baseline, top, mine, best = sides
        costs = [self.checkpoint_dice[n][1] for n in {*mine.values(), *best.values()}
                 if n in self.checkpoint_dice and self.checkpoint_dice[n][1] is not None]
        cost = sum(costs) if costs else None
        if len(best) > 1:
            curves = {r: self.checkpoint_dice.get(n, (None, None))[0] for r, n in best.items()}
            return payoff_maths.compare_means(
                baseline.number, self.runs(baseline).dice, top.number, self.runs(top).dice,
                self.max_iter, curves, cost)
        curve = self.checkpoint_dice.get(top.number, (None, None))[0]
        return payoff_maths.compare(baseline.number, baseline.final_dice, top.number,
                                    top.final_dice, self.max_iter, curve, cost)

    def verdict(self) -> str | None:
        """The best trial against the user's config, in words; None without a complete config
        baseline. Baselines rank like any trial, so the config may be the best. Once finalists
        have repeats: the verdict with uncertainty (:meth:`confirmed`)."""
        confirmed = self.confirmed() if self.repeats() else None
        if confirmed is not None:
            return confirmed.line()
        best = self.best(1)
        config = [t for t in self.trials if t.baseline == "config" and t.state == "complete"
                  and t.value is not None and t.repeat_of is None]
        if not best or not config:
            return None
        mine, top = max(config, key=lambda t: t.value), best[0]
        score = "Dice" if self.objective == "final_dice" else self.objective
        if top.baseline == "config":
            searched = sum(t.state == "complete" and not t.baseline for t in self.trials)
            beaten = (f"none of the {searched} searched schedules that completed beat it"
                      if searched else "no searched schedule has completed yet")
            return (f"the best is your config: trial {top.number}, {score} {top.value:.4f} "
                    f"({top.schedule_text}); {beaten}")
        return (f"trial {top.number}{f' ({top.label})' if top.label else ''} beats your config "
                f"(trial {mine.number}, {score} {mine.value:.4f}) by {top.value - mine.value:+.4f}"
                f" on one run each: no interval (lrsearch confirm repeats them on fresh seeds)")


def _state_name(state) -> str:
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
            "WAITING": "waiting"}[state.name]


def _pairs(value: Any) -> tuple[tuple[int, float], ...]:
    if not isinstance(value, list):
        return ()
    return tuple((int(p[0]), float(p[1])) for p in value if isinstance(p, list) and len(p) == 2)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def last_iteration(trial: optuna.trial.FrozenTrial) -> int:
    """The last iteration the storage knows the trial reached: its worker records it with each
    heartbeat; a validation round, a stored checkpoint and a resume tell it too (whichever
    came last: a worker killed between a round and its next beat leaves the round ahead)."""
    attrs = trial.user_attrs
    known = [attrs.get(TrialAttr.ITERATIONS), attrs.get(TrialAttr.RESUMED_FROM_ITERATION),
             (attrs.get(TrialAttr.CHECKPOINT_ARTIFACT) or {}).get("iteration"),
             *trial.intermediate_values]
    return max((i for i in known if isinstance(i, int) and not isinstance(i, bool)), default=0)


def trial_info(trial: optuna.trial.FrozenTrial) -> TrialInfo:
    """Plain data of one trial from what :mod:`lrsearch.run.trial` stored with it."""
    attrs = trial.user_attrs
    dice = tuple(sorted((int(step), float(value))
                        for step, value in trial.intermediate_values.items()))
    iterations = last_iteration(trial)
    max_iter = attrs.get(TrialAttr.MAX_ITER)
    schedule = attrs.get(TrialAttr.SCHEDULE)
    seed = attrs.get(TrialAttr.SEED)
    baseline = attrs.get(TrialAttr.BASELINE)
    repeat_of, repeat_round = attrs.get(TrialAttr.REPEAT_OF), attrs.get(TrialAttr.REPEAT_ROUND)
    return TrialInfo(
        number=trial.number,
        state=_state_name(trial.state),
        value=trial.value if trial.values is not None and len(trial.values) == 1 else None,
        # The sampled family: the "family" attribute of a warmed-up schedule says "warmup".
        family=str(trial.params.get("family") or attrs.get(TrialAttr.FAMILY) or "unknown"),
        schedule_text=str(attrs.get(TrialAttr.SCHEDULE_TEXT, "")),
        max_iter=max_iter if isinstance(max_iter, int) else None,
        iterations=iterations,
        lr_curve=_pairs(attrs.get(TrialAttr.LR_CURVE)),
        lr_used=_pairs(attrs.get(TrialAttr.LR_USED)),
        dice=dice,
        params=dict(trial.params),
        schedule=schedule if isinstance(schedule, dict) else None,
        optimiser=attrs.get(TrialAttr.OPTIMISER),
        last_window_dice=_number(attrs.get(TrialAttr.LAST_WINDOW_DICE)),
        wall_seconds=_number(attrs.get(TrialAttr.WALL_SECONDS)),
        iterations_per_second=_number(attrs.get(TrialAttr.ITERATIONS_PER_SECOND)),
        stop_reason=str(attrs.get(TrialAttr.STOP_REASON) or ""),
        run_dir=attrs.get(TrialAttr.RUN_DIR),
        command=attrs.get(TrialAttr.COMMAND),
        seed=seed if isinstance(seed, int) else None,
        final_dice=_number(attrs.get(TrialAttr.FINAL_DICE)),
        baseline=baseline if isinstance(baseline, str) else None,
        repeat_of=repeat_of if isinstance(repeat_of, int) else None,
        repeat_round=repeat_round if isinstance(repeat_round, int) else None,
    )


def study_info(study: optuna.Study,
               trials: Sequence[optuna.trial.FrozenTrial] | None = None) -> StudyInfo:
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    max_iter = attrs.get(StudyAttr.MAX_ITER)
    return StudyInfo(
        name=study.study_name,
        storage=redact(study_storage_url(study)),
        max_iter=max_iter if isinstance(max_iter, int) else None,
        config=attrs.get(StudyAttr.CONFIG),
        trials=tuple(trial_info(t) for t in trials),
        objective=str(attrs.get(StudyAttr.OBJECTIVE, "final_dice")),
        lr_find=_lr_find_summary(attrs.get(StudyAttr.LR_FIND)),
        checkpoint_dice=_checkpoint_dice(attrs),
    )




def checkpoint_dice_key(number: int) -> str:
    """Study attribute of a trial's Dice per checkpoint: a finished trial's own attributes
    can no longer be written (Optuna)."""
    return f"{StudyAttr.CHECKPOINT_DICE_PREFIX}{number}"


def _checkpoint_dice(attrs: dict[str, Any]) -> dict[int, tuple[dict[int, float], float | None]]:
    found = {}
    for key, value in attrs.items():
        if key.startswith(StudyAttr.CHECKPOINT_DICE_PREFIX) and isinstance(value, dict):
            curve = payoff_maths.curve_from_json(value.get("dice"))
            if curve is not None and key[len(StudyAttr.CHECKPOINT_DICE_PREFIX):].isdigit():
                found[int(key[len(StudyAttr.CHECKPOINT_DICE_PREFIX):])] = (curve,
                                                                 _number(value.get("seconds")))
    return found


def _lr_find_summary(stored: Any) -> str | None:
    from lrsearch.search.range_test import RangeTest

    try:
        return RangeTest.from_dict(stored).summary() if isinstance(stored, dict) else None
    except (TypeError, ValueError, KeyError):
        return None


def study_storage_url(study: optuna.Study) -> str:
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna caches RDB storages
    return str(getattr(backend, "url", "in-memory storage"))


def trial_summary(trial: TrialInfo, study: StudyInfo) -> dict[str, Any]:
    """JSON-able description of one trial (``lrsearch best --json``)."""
    model_dir = str(Path(trial.run_dir) / "model") if trial.run_dir else None
    return {
        "study": study.name,
        "storage": study.storage,
        "trial": trial.number,
        "baseline": trial.baseline,
        "state": trial.state,
        "value": trial.value,
        "objective": study.objective,
        "last_window_dice": trial.last_window_dice,
        "family": trial.family,
        "schedule_text": trial.schedule_text,
        "schedule": trial.schedule,
        "optimiser": trial.optimiser,
        "params": trial.params,
        "max_iter": trial.max_iter,
        "iterations": trial.iterations,
        "wall_seconds": trial.wall_seconds,
        "iterations_per_second": trial.iterations_per_second,
        "run_dir": trial.run_dir,
        "model_dir": model_dir,
        "config": study.config,
        "command": trial.command,
        "seed": trial.seed,
        "final_dice": trial.final_dice,
        "repeat_of": trial.repeat_of,
    }


@dataclass(frozen=True)
class Savings:
    """Iterations the finished trials ran, against a full run of every one of them."""

    trials: int
    iterations_run: int
    iterations_full: int
    by_state: dict[str, int]  # iterations run by complete, pruned and failed trials
    not_run: dict[str, int]  # iterations pruned and failed trials stopped short of

    @property
    def fraction_pruned(self) -> float:
        """Share of the full runs' iterations that pruning did not run."""
        return self.not_run["pruned"] / self.iterations_full if self.iterations_full else 0.0

    @property
    def fraction_run(self) -> float:
        return self.iterations_run / self.iterations_full if self.iterations_full else 1.0


def pruning_savings(info: StudyInfo) -> Savings:
    by_state = {"complete": 0, "pruned": 0, "failed": 0}
    not_run = {"pruned": 0, "failed": 0}
    full = trials = 0
    for trial in info.trials:
        max_iter = trial.max_iter or info.max_iter
        if not trial.finished or not max_iter:
            continue
        trials += 1
        full += max_iter
        ran = min(trial.iterations, max_iter)
        by_state[trial.state] += ran
        if trial.state in not_run:
            not_run[trial.state] += max_iter - ran
    return Savings(trials, sum(by_state.values()), full, by_state, not_run)
