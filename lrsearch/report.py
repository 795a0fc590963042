"""What a study found: plain data about its trials, plotly figures of it, one HTML report.

Three layers, each usable alone:

* *info* functions turn Optuna's trials into plain data (:class:`TrialInfo`, :class:`StudyInfo`,
  :class:`Savings`, :class:`Importances`); they read nothing but the trials and never draw;
* *figure* functions turn that data into :class:`plotly.graph_objects.Figure` objects; the
  per-trial ones (:func:`lr_figure`, :func:`dice_figure`) are also what the dashboard shows
  while a trial trains (see :mod:`lrsearch.live`);
* :func:`write_html` puts the study figures and a table of the best trials into one file with
  plotly.js inlined once, so the report opens offline.

Everything reads the user attributes :mod:`lrsearch.trial` writes (``family``,
``schedule_text``, ``lr_curve``, ``iterations``, ...), and validation Dice from the trials'
intermediate values.
"""

from __future__ import annotations

import difflib
import html
import math
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.errors import LRSearchError
from lrsearch.storage import open_storage, redact

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

__all__ = [
    "ResultError",
    "Importances",
    "Savings",
    "StudyInfo",
    "StudyStatus",
    "TrialInfo",
    "dice_curves_figure",
    "dice_figure",
    "family_figure",
    "history_figure",
    "importance_figure",
    "load_study",
    "lr_figure",
    "open_existing_storage",
    "parameter_importances",
    "pruning_savings",
    "savings_figure",
    "study_figures",
    "storage_status",
    "study_info",
    "top_lr_figure",
    "trial_info",
    "trial_summary",
    "write_html",
]

TOP_K = 10
MIN_IMPORTANCE_TRIALS = 3
STATES = ("complete", "pruned", "failed", "running", "waiting")
# One colour per schedule family, stable across figures and reports (plotly's D3 + Dark24).
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#2e91e5", "#e15f99", "#1ca71c", "#fb0d0d")
_STATE_COLOURS = {"complete": "#2ca02c", "pruned": "#ff7f0e", "failed": "#d62728",
                  "saved": "#d9d9d9"}


class ResultError(LRSearchError):
    """A study, trial or result asked for is not in the storage."""


# --- reading a storage -------------------------------------------------------------------------

def open_existing_storage(url: str):
    """The storage at ``url``, refusing to create an empty SQLite file where none is."""
    from sqlalchemy.engine import make_url

    if url.startswith("sqlite"):
        try:
            database = make_url(url).database
        except Exception:  # noqa: BLE001 - open_storage words the error
            database = None
        if database and database != ":memory:" and not Path(database).is_file():
            raise ResultError(
                f"no study storage at {Path(database).resolve()}: run `lrsearch optimize` "
                "first, or pass --storage URL")
    import optuna

    with warnings.catch_warnings():
        # Reading a study needs none of the experimental features a worker's storage turns on.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return open_storage(url)


def load_study(storage_url: str, name: str | None = None) -> optuna.Study:
    """The study ``name`` (optional when the storage holds exactly one)."""
    import optuna

    storage = open_existing_storage(storage_url)
    names = sorted(s.study_name for s in storage.get_all_studies())
    where = redact(storage_url)
    if name is None:
        if not names:
            raise ResultError(f"{where} holds no study yet: run `lrsearch optimize` first")
        if len(names) > 1:
            raise ResultError(f"{where} holds {len(names)} studies ({', '.join(names)}): "
                              "choose one with --study NAME")
        name = names[0]
    elif name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ResultError(f"no study named {name!r} in {where}{hint}; studies: "
                          f"{', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)


@dataclass(frozen=True)
class StudyStatus:
    name: str
    counts: dict[str, int]  # trials by state (STATES)
    best: tuple[int, float] | None  # (trial number, objective)
    max_iter: int | None


def storage_status(storage) -> list[StudyStatus]:
    """Every study of an Optuna storage with its trial counts by state (``lrsearch status``)."""
    statuses = []
    for study in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        counts = dict.fromkeys(STATES, 0)
        best = None
        maximize = study.direction.name == "MAXIMIZE" if len(study.directions) == 1 else True
        study_id = storage.get_study_id_from_name(study.study_name)
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            counts[_state_name(trial.state)] += 1
            if trial.state.name == "COMPLETE" and trial.values and len(trial.values) == 1:
                value = trial.values[0]
                if best is None or (value > best[1] if maximize else value < best[1]):
                    best = (trial.number, value)
        max_iter = study.user_attrs.get("max_iter")
        statuses.append(StudyStatus(study.study_name, counts, best,
                                    max_iter if isinstance(max_iter, int) else None))
    return statuses


# --- info: trials → plain data -------------------------------------------------------------------

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
    """Plain data of one trial from what :mod:`lrsearch.trial` stored with it."""
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
    from lrsearch.lrfind import RangeTest

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


@dataclass(frozen=True)
class Importances:
    """PED-ANOVA importances (as optuna-dashboard computes them), or why there are none."""

    values: dict[str, float]
    trials: int
    note: str = ""


def parameter_importances(study: optuna.Study,
                          trials: Sequence[optuna.trial.FrozenTrial] | None = None
                          ) -> Importances:
    import optuna
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False) if trials is None else trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return Importances({}, len(complete),
                           f"parameter importances need at least {MIN_IMPORTANCE_TRIALS} "
                           f"complete trials; this study has {len(complete)}")
    # An in-memory copy holding the complete trials only: the evaluator then never reads the
    # storage again, and running or failed trials cannot disturb it.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory"
    try:
        memory = optuna.create_study(directions=study.directions)
        memory.add_trials(complete)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "regimes with less than 2 trials" on small studies
            values = optuna.importance.get_param_importances(
                memory, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        return Importances({}, len(complete), f"parameter importances unavailable: {error}")
    finally:
        optuna.logging.set_verbosity(verbosity)
    note = "" if any(v > 0 for v in values.values()) else \
        "every parameter has importance 0 (the complete trials are too alike)"
    return Importances(dict(values), len(complete), note)


# --- figures -------------------------------------------------------------------------------------

def family_colours(families: Iterable[str]) -> dict[str, str]:
    """Stable colours: a family keeps its colour whatever other families a study has."""
    from lrsearch.space import FAMILY_NAMES

    known = list(FAMILY_NAMES)
    colours = {}
    for name in sorted(set(families)):
        index = known.index(name) if name in known else len(known) + len(colours)
        colours[name] = _PALETTE[index % len(_PALETTE)]
    return colours


def _layout(title: str, x_title: str, y_title: str, plain: bool = False,
            **extra) -> dict[str, Any]:
    """Layout of every figure; ``plain``: no named template (building one with a template
    costs ~30 ms, too much for figures redrawn while a trial trains), its look spelled out."""
    grid = {"gridcolor": "#ebebeb"} if plain else {}
    layout = {
        "title": {"text": title, "x": 0.02, "xanchor": "left"},
        "xaxis": {"title": {"text": x_title}, **grid},
        "yaxis": {"title": {"text": y_title}, **grid},
        "template": "none" if plain else "plotly_white",
        "plot_bgcolor": "white",
        "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
        "legend": {"orientation": "h", "y": -0.2},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def _state_phrase(trial: TrialInfo) -> str:
    if trial.state == "running":
        of = f" of {trial.max_iter}" if trial.max_iter else ""
        return f"running, iteration {trial.iterations}{of}"
    return trial.state


def lr_figure(trial: TrialInfo) -> go.Figure:
    """The trial's learning rate: planned schedule, the rate NiftyNet used, where it stopped."""
    import plotly.graph_objects as go

    fig = go.Figure(layout=_layout(
        f"Trial {trial.number} learning rate: {trial.family}", "iteration", "learning rate",
        yaxis={"type": "log", "exponentformat": "power"}, height=300, width=520, plain=True))
    if trial.lr_curve:
        x, y = zip(*trial.lr_curve, strict=True)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="planned schedule",
                                 line={"color": "#1f77b4", "width": 2}))
    if trial.lr_used:
        x, y = zip(*trial.lr_used, strict=True)
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="used by NiftyNet",
                                 marker={"color": "#ff7f0e", "size": 3}))
    if trial.state in ("running", "pruned", "failed") and trial.iterations and trial.lr_curve:
        low = min(v for _, v in trial.lr_curve if v > 0) if any(
            v > 0 for _, v in trial.lr_curve) else 1e-8
        high = max(v for _, v in trial.lr_curve)
        label = {"running": "now", "pruned": "pruned", "failed": "failed"}[trial.state]
        fig.add_trace(go.Scatter(x=[trial.iterations, trial.iterations], y=[low, high],
                                 mode="lines", name=f"{label} (iteration {trial.iterations})",
                                 line={"color": _STATE_COLOURS.get(trial.state, "#555555"),
                                       "dash": "dash", "width": 1}))
    _lr_range(fig, trial.lr_curve)
    _iteration_range(fig, trial.max_iter)
    return fig


def _lr_range(fig: go.Figure, curve: Sequence[tuple[int, float]]) -> None:
    """Log axis from the peak down four decades: a decay to zero must not flatten the rest."""
    positive = [lr for _, lr in curve if lr > 0]
    if positive:
        peak = max(positive)
        low = max(min(positive), peak * 1e-4)
        fig.update_yaxes(range=[math.log10(low / 1.5), math.log10(peak * 1.5)])


def _iteration_range(fig: go.Figure, max_iter: int | None) -> None:
    if max_iter:
        fig.update_xaxes(range=[0, max_iter * 1.03])


def dice_figure(trial: TrialInfo) -> go.Figure:
    """The trial's validation Dice by iteration, and its whole-volume Dice once complete."""
    import plotly.graph_objects as go

    fig = go.Figure(layout=_layout(
        f"Trial {trial.number} validation Dice: {_state_phrase(trial)}", "iteration", "Dice",
        yaxis={"range": [0, 1]}, height=300, width=520, plain=True))
    if trial.dice:
        x, y = zip(*trial.dice, strict=True)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers",
                                 name="validation windows (pruning compares this)",
                                 line={"color": "#2ca02c", "width": 2}, marker={"size": 5}))
        if trial.state in ("pruned", "failed"):
            fig.add_trace(go.Scatter(
                x=[x[-1]], y=[y[-1]], mode="markers", name=trial.state,
                marker={"color": _STATE_COLOURS[trial.state], "size": 11, "symbol": "x"}))
    if trial.state == "complete" and trial.value is not None:
        fig.add_trace(go.Scatter(
            x=[trial.max_iter or trial.iterations], y=[trial.value], mode="markers",
            name=f"whole-volume Dice {trial.value:.4f} (objective)",
            marker={"color": "#9467bd", "size": 11, "symbol": "diamond"}))
    _iteration_range(fig, trial.max_iter)
    return fig


def top_lr_figure(info: StudyInfo, k: int = TOP_K) -> go.Figure:
    """The planned LR schedules of the ``k`` best complete trials, overlaid."""
    import plotly.graph_objects as go

    best = info.best(k)
    colours = family_colours(t.family for t in best)
    fig = go.Figure(layout=_layout(
        f"Learning-rate schedules of the {len(best)} best trials", "iteration", "learning rate",
        yaxis={"type": "log", "exponentformat": "power"}, height=480,
        legend={"orientation": "v", "y": 1, "x": 1.02}))
    for rank, trial in enumerate(best, start=1):
        if not trial.lr_curve:
            continue
        x, y = zip(*trial.lr_curve, strict=True)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=f"#{rank} trial {trial.number} ({trial.value:.4f})",
            line={"color": colours[trial.family], "width": 3 if rank == 1 else 1.5,
                  "dash": "solid" if rank <= 3 else "dot"},
            hovertext=trial.schedule_text, hoverinfo="text+x+y"))
    if not best:
        _empty(fig, "no complete trial yet")
    _lr_range(fig, [point for t in best for point in t.lr_curve])
    return fig


def _gapped(trials: Sequence[TrialInfo]) -> tuple[list, list, list]:
    """All trials' Dice curves as one trace: ``None`` between trials breaks the line."""
    x: list = []
    y: list = []
    text: list = []
    for trial in trials:
        for step, value in trial.dice:
            x.append(step)
            y.append(value)
            text.append(f"trial {trial.number} ({trial.state})")
        x.append(None)
        y.append(None)
        text.append(None)
    return x, y, text


def dice_curves_figure(info: StudyInfo) -> go.Figure:
    """Validation Dice against iteration for every trial, coloured by family; pruned dotted."""
    import plotly.graph_objects as go

    colours = family_colours(info.families())
    fig = go.Figure(layout=_layout("Validation Dice by iteration (pruned trials dotted)",
                                   "iteration", "validation Dice", yaxis={"range": [0, 1]},
                                   height=520, legend={"orientation": "v", "y": 1, "x": 1.02}))
    # One trace per family and kind keeps the figure fast with a thousand trials.
    for family in info.families():
        members = [t for t in info.trials if t.family == family and t.dice]
        for pruned in (False, True):
            group = [t for t in members if (t.state == "pruned") == pruned]
            if not group:
                continue
            x, y, text = _gapped(group)
            fig.add_trace(go.Scatter(
                x=x, y=y, text=text, mode="lines", connectgaps=False,
                name=f"{family} (pruned)" if pruned else family, legendgroup=family,
                showlegend=not pruned or not any(t.state != "pruned" for t in members),
                line={"color": colours[family], "width": 1 if pruned else 1.8,
                      "dash": "dot" if pruned else "solid"},
                opacity=0.5 if pruned else 0.85, hoverinfo="text+x+y"))
    if not fig.data:
        _empty(fig, "no validation round reported yet")
    return fig


def history_figure(info: StudyInfo) -> go.Figure:
    """Objective of every complete trial by trial number, and the best so far."""
    import plotly.graph_objects as go

    fig = go.Figure(layout=_layout("Optimisation history", "trial",
                                   "whole-volume Dice (objective)", height=420))
    complete = sorted((t for t in info.trials if t.state == "complete" and t.value is not None),
                      key=lambda t: t.number)
    pruned = [t for t in info.trials if t.state == "pruned" and t.last_dice is not None]
    if complete:
        colours = family_colours(info.families())
        fig.add_trace(go.Scatter(
            x=[t.number for t in complete], y=[t.value for t in complete], mode="markers",
            name="complete trial", text=[t.schedule_text for t in complete],
            marker={"color": [colours[t.family] for t in complete], "size": 7},
            hoverinfo="text+x+y"))
        best, xs, ys = -math.inf, [], []
        for trial in complete:
            best = max(best, trial.value)
            xs.append(trial.number)
            ys.append(best)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="best so far",
                                 line={"color": "#d62728", "shape": "hv", "width": 2}))
    if pruned:
        fig.add_trace(go.Scatter(
            x=[t.number for t in pruned], y=[t.last_dice for t in pruned], mode="markers",
            name="pruned (last validation Dice)",
            marker={"color": "#bbbbbb", "size": 6, "symbol": "x"}))
    if not fig.data:
        _empty(fig, "no complete trial yet")
    return fig


def family_figure(info: StudyInfo) -> go.Figure:
    """Whole-volume Dice of complete trials per family, with pruned trials' last window Dice."""
    import plotly.graph_objects as go

    colours = family_colours(info.families())
    fig = go.Figure(layout=_layout(
        "Dice by schedule family: boxes = whole-volume Dice of complete trials, "
        "× = last validation Dice of pruned trials", "family", "Dice", height=460,
        yaxis={"range": [0, 1.02]}, boxmode="overlay", showlegend=False))
    for family in info.families():
        values = [t.value for t in info.trials
                  if t.family == family and t.state == "complete" and t.value is not None]
        if values:
            fig.add_trace(go.Box(y=values, x=[family] * len(values), name=family,
                                 boxpoints="all", jitter=0.4, pointpos=0,
                                 marker={"color": colours[family], "size": 5},
                                 line={"color": colours[family]}))
    pruned = [t for t in info.trials if t.state == "pruned" and t.last_dice is not None]
    if pruned:
        fig.add_trace(go.Scatter(
            x=[t.family for t in pruned], y=[t.last_dice for t in pruned], mode="markers",
            name="pruned", text=[f"trial {t.number}: {t.stop_reason}" for t in pruned],
            hoverinfo="text+y",
            marker={"color": "#555555", "symbol": "x", "size": 7, "opacity": 0.6}))
    if not fig.data:
        _empty(fig, "no finished trial yet")
    return fig


def importance_figure(importances: Importances) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure(layout=_layout(
        f"Parameter importances (PED-ANOVA over {importances.trials} complete trials)",
        "importance", "", height=420, yaxis={"automargin": True}))
    values = [(name, v) for name, v in importances.values.items() if v > 0][:15]
    if values:
        names, numbers = zip(*reversed(values), strict=True)
        fig.add_trace(go.Bar(x=numbers, y=names, orientation="h", marker={"color": "#1f77b4"},
                             text=[f"{v:.2f}" for v in numbers], textposition="outside",
                             name="importance"))
    if importances.note:
        _empty(fig, importances.note)
    return fig


def savings_figure(savings: Savings) -> go.Figure:
    import plotly.graph_objects as go

    title = (f"Compute: {savings.iterations_run:,} of {savings.iterations_full:,} iterations run "
             f"({savings.fraction_run:.0%}); pruning saved {savings.fraction_pruned:.0%}")
    fig = go.Figure(layout=_layout(title, "iterations", "", barmode="stack", height=300,
                                   margin={"l": 100, "b": 110}, yaxis={"automargin": True},
                                   legend={"y": -0.55, "traceorder": "normal"}))
    rows = [(f"run by {state} trials", n, _STATE_COLOURS[state])
            for state, n in savings.by_state.items()]
    rows += [("not run: pruned", savings.not_run["pruned"], _STATE_COLOURS["saved"]),
             ("not run: failed early", savings.not_run["failed"], "#f2c4c4")]
    for name, n, colour in rows:
        fig.add_trace(go.Bar(x=[n], y=["iterations"], orientation="h", name=name,
                             marker={"color": colour}, text=[f"{n:,}"], textposition="inside"))
    if not savings.trials:
        _empty(fig, "no finished trial yet")
    return fig


def _empty(fig: go.Figure, text: str) -> None:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": "#666666"})


def study_figures(info: StudyInfo, importances: Importances,
                  k: int = TOP_K) -> list[tuple[str, go.Figure]]:
    """The report's figures in order, each with the id of its place in the page."""
    return [
        ("top-lr", top_lr_figure(info, k)),
        ("dice-curves", dice_curves_figure(info)),
        ("history", history_figure(info)),
        ("families", family_figure(info)),
        ("importances", importance_figure(importances)),
        ("savings", savings_figure(pruning_savings(info))),
    ]


# --- the HTML report -------------------------------------------------------------------------

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .meta { color: #555; margin-top: 0; }
.plot { margin: 1.5em 0; min-height: 240px; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.85em; word-break: break-all; }
"""


def _cell(text: object, num: bool = False) -> str:
    attrs = ' class="num"' if num else ""
    return f"<td{attrs}>{html.escape(str(text))}</td>"


def _best_table(info: StudyInfo, k: int) -> str:
    rows = []
    for rank, t in enumerate(info.best(k), start=1):
        wall = f"{t.wall_seconds:,.0f} s" if t.wall_seconds is not None else "–"
        window = f"{t.last_window_dice:.4f}" if t.last_window_dice is not None else "–"
        rows.append("<tr>" + "".join([
            _cell(rank, True), _cell(t.number, True), _cell(f"{t.value:.4f}", True),
            _cell(window, True), _cell(t.family), _cell(t.schedule_text),
            _cell(t.optimiser or "–"), _cell(f"{t.iterations:,}", True), _cell(wall, True),
        ]) + f"<td><code>{html.escape(t.run_dir or '–')}</code></td></tr>")
    if not rows:
        return "<p>No complete trial yet.</p>"
    head = "".join(f"<th>{h}</th>" for h in (
        "rank", "trial", "Dice (whole volume)", "last window Dice", "family", "schedule",
        "optimiser", "iterations", "wall time", "run folder"))
    return f"<table id=\"best-trials\"><thead><tr>{head}</tr></thead><tbody>" \
           f"{''.join(rows)}</tbody></table>"


def render_html(info: StudyInfo, figures: Sequence[tuple[str, go.Figure]], k: int = TOP_K) -> str:
    import plotly.io as pio
    import plotly.offline

    counts = info.counts()
    savings = pruning_savings(info)
    best = info.best(1)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    score = "whole-volume Dice" if info.objective == "final_dice" else info.objective
    best_text = (f"best: trial {best[0].number}, {score} {best[0].value:.4f} "
                 f"({html.escape(best[0].schedule_text)})" if best else "no complete trial yet")
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>lrsearch report: {html.escape(info.name)}</title>",
        f"<style>{_STYLE}</style>",
        # plotly.js, once, inline: the file works offline and alone.
        f"<script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>lrsearch study {html.escape(info.name)}</h1>",
        f"<p class=\"meta\">{html.escape(info.storage)} · {len(info.trials)} trials "
        f"({summary or 'none'}) · {info.max_iter or '?'} iterations per trial · "
        f"generated {time.strftime('%Y-%m-%d %H:%M')}</p>",
        f"<p>{best_text}. Pruning ran {savings.fraction_run:.0%} of the iterations a full run "
        f"of every finished trial would take; pruning saved {savings.fraction_pruned:.0%}.</p>",
    ]
    if info.lr_find:
        parts.append(f"<p id=\"lr-find\">{html.escape(info.lr_find)}; base_lr was searched "
                     f"in that range (--lr-bounds auto).</p>")
    for div_id, fig in figures:
        body = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                           validate=False, config={"displaylogo": False, "responsive": True})
        parts.append(f"<div class=\"plot\">{body}</div>")
    parts += [f"<h2>Best {min(k, counts['complete'])} trials</h2>", _best_table(info, k),
              "</body></html>"]
    return "\n".join(parts)


def write_html(study: optuna.Study, path: str | Path, k: int = TOP_K) -> StudyInfo:
    """Writes the report of ``study`` to ``path`` (one self-contained HTML file)."""
    trials = study.get_trials(deepcopy=False)
    info = study_info(study, trials)
    figures = study_figures(info, parameter_importances(study, trials), k)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(info, figures, k), encoding="utf-8")
    return info
