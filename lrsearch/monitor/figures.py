"""Plotly figures of trials and studies.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.monitor.records import Savings, StudyInfo, TrialInfo, pruning_savings
from lrsearch.search.range_test import RangeTest

if TYPE_CHECKING:
    import optuna

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go


TOP_K = 10

MIN_IMPORTANCE_TRIALS = 3


# One colour per schedule family, stable across figures and reports (plotly's D3 + Dark24).
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#2e91e5", "#e15f99", "#1ca71c", "#fb0d0d")


_STATE_COLOURS = {"complete": "#2ca02c", "pruned": "#ff7f0e", "failed": "#d62728",
                  "saved": "#d9d9d9"}


@dataclass(frozen=True)
class Importances:
    """PED-ANOVA importances (as optuna-dashboard computes them), or why there are none."""

    values: dict[str, float]
    trials: int
    note: str = ""
    study: optuna.Study | None = None  # the complete trials, in memory: what the figure plots


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
    return Importances(dict(values), len(complete), note, memory)


def family_colours(families: Iterable[str]) -> dict[str, str]:
    """Stable colours: a family keeps its colour whatever other families a study has."""
    from lrsearch.search.space import FAMILY_NAMES

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


def payoff_figure(info: StudyInfo) -> go.Figure | None:
    """Whole-volume Dice by checkpoint of the config baseline and the best trial, with the
    baseline's final Dice as the line the best one has to reach (None: not segmented yet).
    On means: each run thin, their mean thick."""
    import plotly.graph_objects as go

    from lrsearch.search.payoff import mean_curve

    payoff, sides = info.payoff(), info.payoff_runs()
    if payoff is None or not any(n in info.checkpoint_dice for n in info.payoff_trials()):
        return None
    mean = "mean " if payoff.on_means else ""
    title = "Whole-volume Dice at every checkpoint: best vs your config"
    fig = go.Figure(layout=_layout(title + (", runs and their mean" if mean else ""),
                                   "iteration", "Dice (whole volumes)", height=380))
    for number, runs, name, colour in ((payoff.baseline_trial, sides[2], "your config",
                                        "#7f7f7f"), (payoff.best_trial, sides[3], "best",
                                                     "#2ca02c")):
        curves = {r: info.checkpoint_dice[n][0] for r, n in runs.items()
                  if n in info.checkpoint_dice and info.checkpoint_dice[n][0]}
        if payoff.on_means:
            for r, curve in sorted(curves.items()):
                x, y = zip(*sorted(curve.items()), strict=True)
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", opacity=0.35,
                                         name=f"{name}, run {r} (trial {runs[r]})",
                                         legendgroup=name, showlegend=False,
                                         line={"color": colour, "width": 1}))
        curve = mean_curve(list(curves.values())) if len(curves) == len(runs) else {}
        if curve:
            x, y = zip(*sorted(curve.items()), strict=True)
            label = f"{name} (trial {number}{f', mean of {len(curves)} runs' if mean else ''})"
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=label,
                                     legendgroup=name, line={"color": colour, "width": 2}))
    fig.add_hline(y=payoff.baseline_dice, line={"color": "#7f7f7f", "dash": "dot"},
                  annotation_text=f"your config's {mean}final Dice {payoff.baseline_dice:.3f}")
    if payoff.iterations is not None:
        fig.add_vline(x=payoff.iterations, line={"color": "#2ca02c", "dash": "dot"},
                      annotation_text=f"reached at {payoff.iterations}")
    _iteration_range(fig, payoff.max_iter)
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
            x=x, y=y, mode="lines", name=f"#{rank} trial {trial.number}"
            f"{', ' + trial.label if trial.label else ''} ({trial.value:.4f})",
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
            name="complete trial",
            text=[f"{t.label}: {t.schedule_text}" if t.label else t.schedule_text
                  for t in complete],
            marker={"color": [colours[t.family] for t in complete], "size": 7},
            hoverinfo="text+x+y"))
        best, xs, ys = -math.inf, [], []
        for trial in complete:
            best = max(best, trial.value)
            xs.append(trial.number)
            ys.append(best)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="best so far",
                                 line={"color": "#d62728", "shape": "hv", "width": 2}))
        for trial in (t for t in complete if t.baseline == "config"):
            # what the search has to beat, across the whole history
            fig.add_trace(go.Scatter(
                x=[0, max(xs)], y=[trial.value] * 2, mode="lines",
                name=f"your config (trial {trial.number}): {trial.value:.4f}",
                line={"color": "#555555", "dash": "dash", "width": 1.5}))
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
    """Optuna's own importance plot (PED-ANOVA, as optuna-dashboard shows it), or the note
    saying why there is none."""
    import optuna
    import plotly.graph_objects as go

    title = f"Parameter importances (PED-ANOVA over {importances.trials} complete trials)"
    if importances.note or importances.study is None:
        fig = go.Figure(layout=_layout(title, "importance", "", height=420))
        _empty(fig, importances.note or "no importances")
        return fig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = optuna.visualization.plot_param_importances(
            importances.study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    fig.update_layout(title=title, template="plotly_white", height=420,
                      yaxis={"automargin": True})
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


def figure(result: RangeTest):
    """Loss (raw and smoothed) against lr on a log axis, the two suggestions marked."""
    import plotly.graph_objects as go

    lrs = [p[1] for p in result.points]
    fig = go.Figure()
    fig.add_scatter(x=lrs, y=[p[2] for p in result.points], mode="markers", name="loss",
                    marker={"size": 4, "opacity": 0.4})
    fig.add_scatter(x=lrs, y=[p[3] for p in result.points], mode="lines",
                    name=f"smoothed (EMA {result.smoothing:g})")
    finite = [p[2] for p in result.points if math.isfinite(p[2])] or [0.0]
    span = [min(finite), max(finite)]
    for lr, label in ((result.steepest_lr, "steepest descent"),
                      (result.last_stable_lr, "last stable")):
        fig.add_scatter(x=[lr, lr], y=span, mode="lines", line={"dash": "dash"},
                        name=f"{label}: {lr:.2g}")
    fig.update_layout(title=f"LR range test: {result.stopped}", xaxis_title="learning rate",
                      yaxis_title="training loss", template="plotly_white")
    fig.update_xaxes(type="log")
    return fig


def save_plot(result: RangeTest, html_path: Path) -> tuple[Path, Path | None, str | None]:
    """Writes the HTML (plotly inlined, works offline) and, where kaleido can start a browser,
    a PNG beside it. Returns ``(html, png or None, why there is no PNG)``."""
    fig = figure(result)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(html_path, include_plotlyjs=True)
    png_path = html_path.with_suffix(".png")
    if "BROWSER_PATH" not in os.environ and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"  # kaleido 1.x drives a Chromium
    try:
        fig.write_image(png_path, width=900, height=500)
    except Exception as error:  # noqa: BLE001 - no kaleido or no browser: HTML only
        text = str(error).strip().splitlines()
        return html_path, None, f"no PNG ({type(error).__name__}: {text[0] if text else ''})"
    return html_path, png_path, None
