"""The read model of stored trials and studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.search.baselines import label as baseline_label
from lrsearch.urls import redact

if TYPE_CHECKING:
    import optuna


STATES = ("complete", "pruned", "failed", "running", "waiting")


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
    baseline: str | None = None  # the baseline it ran ("config", ...); None: a searched trial

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

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for trial in self.trials:
            counts[trial.state] += 1
        return counts

    def best(self, k: int = 1) -> list[TrialInfo]:
        """The ``k`` complete trials with the highest objective, best first."""
        complete = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return sorted(complete, key=lambda t: (-t.value, t.number))[:k]

    def families(self) -> list[str]:
        return sorted({t.family for t in self.trials})

    def payoff(self) -> str | None:
        """The best trial against the user's config, in words; None without a complete config
        baseline. Baselines rank like any trial, so the config may be the best."""
        best = self.best(1)
        config = [t for t in self.trials if t.baseline == "config" and t.state == "complete"
                  and t.value is not None]
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
                f"(trial {mine.number}, {score} {mine.value:.4f}) by {top.value - mine.value:+.4f}")


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


def trial_info(trial: optuna.trial.FrozenTrial) -> TrialInfo:
    """Plain data of one trial from what :mod:`lrsearch.run.trial` stored with it."""
    attrs = trial.user_attrs
    dice = tuple(sorted((int(step), float(value))
                        for step, value in trial.intermediate_values.items()))
    iterations = attrs.get("iterations")
    if not isinstance(iterations, int):
        iterations = dice[-1][0] if dice else 0
    max_iter = attrs.get("max_iter")
    return TrialInfo(
        number=trial.number,
        state=_state_name(trial.state),
        value=trial.value if trial.values is not None and len(trial.values) == 1 else None,
        # The sampled family: the "family" attribute of a warmed-up schedule says "warmup".
        family=str(trial.params.get("family") or attrs.get("family") or "unknown"),
        schedule_text=str(attrs.get("schedule_text", "")),
        max_iter=max_iter if isinstance(max_iter, int) else None,
        iterations=iterations,
        lr_curve=_pairs(attrs.get("lr_curve")),
        lr_used=_pairs(attrs.get("lr_used")),
        dice=dice,
        params=dict(trial.params),
        schedule=attrs.get("schedule") if isinstance(attrs.get("schedule"), dict) else None,
        optimiser=attrs.get("optimiser"),
        last_window_dice=_number(attrs.get("last_window_dice")),
        wall_seconds=_number(attrs.get("wall_seconds")),
        iterations_per_second=_number(attrs.get("iterations_per_second")),
        stop_reason=str(attrs.get("stop_reason") or ""),
        run_dir=attrs.get("run_dir"),
        command=attrs.get("command"),
        baseline=attrs.get("baseline") if isinstance(attrs.get("baseline"), str) else None,
    )


def study_info(study: optuna.Study,
               trials: Sequence[optuna.trial.FrozenTrial] | None = None) -> StudyInfo:
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    max_iter = attrs.get("max_iter")
    return StudyInfo(
        name=study.study_name,
        storage=redact(_storage_url(study)),
        max_iter=max_iter if isinstance(max_iter, int) else None,
        config=attrs.get("config"),
        trials=tuple(trial_info(t) for t in trials),
        objective=str(attrs.get("objective", "final_dice")),
        lr_find=_lr_find_summary(attrs.get("lr_find")),
    )


def _lr_find_summary(stored: Any) -> str | None:
    from lrsearch.search.range_test import RangeTest

    try:
        return RangeTest.from_dict(stored).summary() if isinstance(stored, dict) else None
    except (TypeError, ValueError, KeyError):
        return None


def _storage_url(study: optuna.Study) -> str:
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
