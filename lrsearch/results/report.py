"""``lrsearch report``: one self-contained HTML file.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lrsearch.monitor.figures import TOP_K, parameter_importances, payoff_figure, study_figures
from lrsearch.monitor.records import StudyInfo, pruning_savings, study_info

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go


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
            _cell(window, True), _cell(t.family),
            _cell(f"{t.label}: {t.schedule_text}" if t.label else t.schedule_text),
            _cell(t.optimiser or "–"), _cell(f"{t.iterations:,}", True), _cell(wall, True),
        ]) + f"<td><code>{html.escape(t.run_dir or '–')}</code></td></tr>")
    if not rows:
        return "<p>No complete trial yet.</p>"
    head = "".join(f"<th>{h}</th>" for h in (
        "rank", "trial", "Dice (whole volume)", "last window Dice", "family", "schedule",
        "optimiser", "iterations", "wall time", "run folder"))
    return f"<table id=\"best-trials\"><thead><tr>{head}</tr></thead><tbody>" \
           f"{''.join(rows)}</tbody></table>"


def _plot(div_id: str, fig: go.Figure) -> str:
    import plotly.io as pio

    body = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                       validate=False, config={"displaylogo": False, "responsive": True})
    return f"<div class=\"plot\">{body}</div>"


def _payoff_panel(info: StudyInfo) -> str:
    """The headline: what the best schedule gains over the user's config, at equal budget and
    in iterations, with both trials' Dice at every checkpoint."""
    payoff = info.payoff()
    if payoff is None:
        return ("<section id=\"vs-config\"><p>No complete trial of your config (the "
                "<code>baseline = \"config\"</code> trial) to compare the best with.</p></section>")
    mean = "mean " if payoff.on_means else ""
    best_runs = f" over {payoff.best_runs} runs" if mean else ""
    baseline_runs = f" over {payoff.baseline_runs} runs" if mean else ""
    figures = [f"<li>Δ {mean}Dice at equal budget ({payoff.max_iter} iterations): "
               f"<b>{payoff.delta_dice:+.4f}</b> (best trial {payoff.best_trial} "
               f"{payoff.best_dice:.4f}{best_runs}, your config trial "
               f"{payoff.baseline_trial} {payoff.baseline_dice:.4f}"
               f"{baseline_runs})</li>"]
    if payoff.iterations is not None:
        reach = (f"<b>{payoff.iterations}</b> iterations ({payoff.fraction:.0%} of the "
                 f"budget)")
    else:
        reach = f"— {html.escape(payoff.reason)}"
    figures.append(f"<li>iterations to your config's {mean}final Dice"
                   f"{' (mean curve of the best runs)' if mean else ''}: {reach}</li>")
    if payoff.by_round:
        shown = ", ".join(f"round {r}: {'not reached' if k is None else k}"
                          for r, k in payoff.by_round)
        figures.append(f"<li>seed by seed, each run of the best against your config's run of "
                       f"the same seed: {shown}</li>")
    if payoff.seconds is not None:
        figures.append(f"<li>checkpoints segmented in {payoff.seconds:,.0f} s</li>")
    fig = payoff_figure(info)
    return ("<section id=\"vs-config\"><h2>Best vs your config</h2>"
            f"{_verdict(info)}<ul>{''.join(figures)}</ul>"
            f"{_plot('payoff', fig) if fig else ''}</section>")


def _verdict(info: StudyInfo) -> str:
    """The verdict with uncertainty and, once finalists have repeats, their runs, mean Dice
    and spread."""
    verdict = info.confirmed()
    if verdict is None:
        return ""
    parts = [f"<p id=\"verdict\" class=\"{verdict.status}\"><b>"
             f"{html.escape(verdict.line())}</b></p>"]
    if info.repeats():
        rows = "".join("<tr>" + "".join([
            _cell(r.trial, True), _cell(f"{r.label}: {r.schedule_text}" if r.label
                                        else r.schedule_text),
            _cell(r.runs, True), _cell(f"{r.mean:.4f}", True), _cell(f"{r.spread:.4f}", True),
        ]) + "</tr>" for r in verdict.ranked)
        head = "".join(f"<th>{h}</th>" for h in (
            "trial", "schedule", "runs", "mean Dice (whole volume)", "spread (max − min)"))
        parts.append(f"<table id=\"finalists\"><thead><tr>{head}</tr></thead><tbody>{rows}"
                     "</tbody></table>")
    return "".join(parts)


def render_html(info: StudyInfo, figures: Sequence[tuple[str, go.Figure]], k: int = TOP_K) -> str:
    import plotly.offline

    counts = info.counts()
    savings = pruning_savings(info)
    leader = info.leader()  # the best mean once finalists have repeats
    best = [leader] if leader is not None else []
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    score = "whole-volume Dice" if info.objective == "final_dice" else info.objective
    best_text = (f"best: trial {best[0].number}, {score} {best[0].value:.4f} "
                 f"({html.escape(best[0].schedule_text)})" if best else "no complete trial yet")
    verdict = info.verdict()
    if verdict:  # said plainly when the user's own config is the best
        shown = f"<span id=\"payoff\">{html.escape(verdict)}</span>"
        confirmed = info.confirmed() if info.repeats() else None
        alone = best[0].baseline == "config" or (confirmed is not None and
                                                 confirmed.winner is None)
        best_text = shown if alone else f"{best_text}; {shown}"
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
        _payoff_panel(info),
        f"<p>{best_text}. Pruning ran {savings.fraction_run:.0%} of the iterations a full run "
        f"of every finished trial would take; pruning saved {savings.fraction_pruned:.0%}.</p>",
    ]
    if info.lr_find:
        parts.append(f"<p id=\"lr-find\">{html.escape(info.lr_find)}; base_lr was searched "
                     f"in that range (--lr-bounds auto).</p>")
    parts += [_plot(div_id, fig) for div_id, fig in figures]
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
