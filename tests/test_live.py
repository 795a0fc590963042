"""A trial's dashboard page while it trains: two SVG artifacts rewritten in place and a note.

Real SQLite studies and Optuna's file-system artifact store; the trials are asked from the
study and described as lrsearch.run.trial describes them. The browser view is in test_browser.py,
and a real NiftyNet trial writing them in test_live_niftynet.py.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna_dashboard import get_note

from lrsearch.monitor.figures import dice_figure, lr_figure
from lrsearch.monitor.live import DICE_FIGURE, LR_FIGURE, LiveTrial, artifact_dir, artifact_store
from lrsearch.monitor.records import StudyAttr, trial_info
from lrsearch.monitor.svg import figure_svg
from lrsearch.paths import DEFAULT_SPACE
from lrsearch.results.dashboard import artifact_dirs
from lrsearch.run.storage import open_storage
from lrsearch.search.space import load_space
from tests.synthetic import describe, make_study

MAX_ITER = 400


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def running(tmp_path):
    """A study with one asked trial, described like lrsearch.run.trial describes it."""
    study = make_study(f"sqlite:///{tmp_path / 'study.db'}", "live", max_iter=MAX_ITER)
    study.enqueue_trial({"family": "cosine", "warmup.enabled": True})
    trial = study.ask()
    setup = load_space(DEFAULT_SPACE).suggest(trial, MAX_ITER)
    describe(trial, setup, MAX_ITER, tmp_path / "runs" / "trial-0000")
    return study, trial, setup.schedule


def _figures(trial, folder: Path) -> dict[str, str]:
    metas = get_all_artifact_meta(trial)
    return {m.filename: (folder / m.artifact_id).read_text() for m in metas}


def test_note_command_validates_on_the_studys_windows(running, tmp_path):
    """The note's command retrains the run exactly: the study's validation seed goes with it."""
    study, trial, _ = running
    study.set_user_attr(StudyAttr.VALIDATION_SEED, 1234)
    LiveTrial(trial, tmp_path / "artifacts").started()
    shown = re.sub(r"\\(.)", r"\1", get_note(trial))
    assert f"LRSEARCH_SEED={trial.user_attrs['seed']} LRSEARCH_VALIDATION_SEED=1234 " \
           f"{trial.user_attrs['command']}" in shown


def test_figures_are_two_artifacts_kept_current_and_throttled(running, tmp_path):
    study, trial, schedule = running
    folder = tmp_path / "artifacts"
    clock = Clock()
    live = LiveTrial(trial, folder, every=30, clock=clock)
    live.started()
    first = _figures(trial, folder)
    assert set(first) == {LR_FIGURE, DICE_FIGURE}
    assert "learning rate" in first[LR_FIGURE] and first[LR_FIGURE].startswith("<svg")
    note = get_note(trial)
    assert schedule.describe() in note
    assert "**running**: iteration 0 of 400" in note
    shown = re.sub(r"\\(.)", r"\1", note)  # as Markdown renders it
    assert f"LRSEARCH_SCHEDULE={trial.user_attrs['run_dir']}/schedule.json " \
           f"LRSEARCH_SEED={trial.user_attrs['seed']} {trial.user_attrs['command']}" in shown

    lr_used = []
    for round_, iteration in enumerate(range(50, 401, 50), start=1):
        clock.now = 10.0 * round_
        lr_used += [(i, schedule.lr(i - 1)) for i in range(iteration - 49, iteration + 1)]
        trial.report(0.1 * round_, step=iteration)
        live.validated(lr_used)
        if clock.now == 20.0:  # 20 s after the start: not refreshed yet
            assert "iteration 0 of 400" in get_note(trial)
        if clock.now == 30.0:
            assert "**running**: iteration 150 of 400, validation Dice 0.3000" in get_note(trial)
    # eight rounds, two refreshes (at 30 s and 60 s): still the same two artifacts
    assert "iteration 300 of 400, validation Dice 0.6000" in get_note(trial)
    metas = get_all_artifact_meta(trial)
    assert len(metas) == 2 and len(list(folder.iterdir())) == 2

    trial.set_user_attr("final_dice", 0.8123)
    trial.set_user_attr("iterations", 400)
    live.finished("complete")
    study.tell(trial, 0.8123)
    last = _figures(trial, folder)
    assert [m.artifact_id for m in get_all_artifact_meta(trial)] == [m.artifact_id for m in metas]
    assert "whole-volume Dice 0.8123" in last[DICE_FIGURE] != first[DICE_FIGURE]
    assert "**complete**: whole-volume Dice 0.8123" in get_note(trial)
    # the note shows both figures, and the version in their address changes with them
    for meta in metas:
        assert f"/artifacts/{study._study_id}/{trial._trial_id}/{meta.artifact_id}?v=4" in \
            get_note(trial)


def test_pruned_and_failed_trials_say_why(running, tmp_path):
    study, trial, _ = running
    live = LiveTrial(trial, tmp_path / "artifacts", every=0)
    reason = "pruned at iteration 100: validation Dice 0.2100 below the median"
    with pytest.raises(optuna.TrialPruned), live:
        live.started()
        trial.report(0.21, step=100)
        trial.set_user_attr("stop_reason", reason)
        trial.set_user_attr("iterations", 100)
        raise optuna.TrialPruned(reason)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert f"**pruned** after 100 iterations: {reason}" in get_note(trial)
    dice_svg = _figures(trial, tmp_path / "artifacts")[DICE_FIGURE]
    assert "validation Dice: pruned" in dice_svg

    other = study.ask()
    describe(other, load_space(DEFAULT_SPACE).suggest(other, MAX_ITER), MAX_ITER,
             tmp_path / "runs" / "trial-0001")
    failure = "NiftyNet exited with status 1: ValueError: corrupt image"
    with pytest.raises(RuntimeError), LiveTrial(other, tmp_path / "artifacts") as live:
        raise RuntimeError(failure)
    assert f"**failed** after 0 iterations: {failure}" in get_note(other)

    third = study.ask()
    with pytest.raises(KeyboardInterrupt), LiveTrial(third, tmp_path / "artifacts"):
        raise KeyboardInterrupt
    assert "interrupted by the user" in get_note(third)


def test_dashboard_errors_never_fail_a_trial(running, tmp_path):
    study, trial, _ = running
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the artifact folder should be")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("lrsearch.monitor.live")
    logger.addHandler(handler)
    try:
        live = LiveTrial(trial, blocked, every=0)
        with live:
            live.started()
            trial.report(0.5, step=50)
            live.validated([(1, 1e-3)])
            trial.set_user_attr("final_dice", 0.5)
    finally:
        logger.removeHandler(handler)
    study.tell(trial, 0.5)
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert records[0].getMessage().startswith("dashboard figures of trial 0 not written (")
    assert "the trial goes on" in records[0].getMessage()
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_artifact_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert artifact_dir("sqlite:///lrsearch.db", None) == tmp_path / "lrsearch-artifacts"
    assert artifact_dir(f"sqlite:///{tmp_path}/a/b.db", "runs") == tmp_path / "a" / "b-artifacts"
    assert artifact_dir("postgresql+psycopg://u:p@db/lr", "models/demo") == \
        tmp_path / "models" / "demo" / "artifacts"
    with pytest.raises(ValueError, match="needs its runs folder"):
        artifact_dir("postgresql+psycopg://u:p@db/lr", None)

    url = "sqlite:///lrsearch.db"
    make_study(url, "one", runs_dir=tmp_path / "r1")
    make_study(url, "two", runs_dir=tmp_path / "r2")
    assert artifact_dirs(url, open_storage(url)) == [tmp_path / "lrsearch-artifacts"]

    # studies on a database server keep figures in their runs folders: the dashboard reads all
    first, second = tmp_path / "r1" / "artifacts", tmp_path / "r2" / "artifacts"
    second.mkdir(parents=True)
    (second / "1234-abcd").write_bytes(b"<svg/>")
    store = artifact_store([first, second])
    with store.open_reader("1234-abcd") as reader:
        assert reader.read() == b"<svg/>"
    store.remove("1234-abcd")
    with pytest.raises(ArtifactNotFound):
        store.open_reader("1234-abcd")


def test_svg_draws_the_trial_figures(running):
    import plotly.graph_objects as go

    _, trial, schedule = running
    for step in (50, 100):
        trial.report(0.3 + step / 1000, step=step)
    info = trial_info(trial.storage.get_trial(trial._trial_id))
    lr = figure_svg(lr_figure(info))
    assert "warmup iterations" in schedule.describe()
    assert "10⁻³" in lr  # log axis: decade ticks
    assert len(_line_paths(lr)) == 2  # the planned curve and the "now" line
    dice = figure_svg(dice_figure(info))
    assert dice.count("<circle") == 2  # one marker per validation round

    gapped = go.Figure(go.Scatter(x=[1, 2, None, 3, 4], y=[1, 2, None, 3, 4], mode="lines"))
    (path,) = _line_paths(figure_svg(gapped))
    assert path.count("M") == 2 and path.count("L") == 2  # None breaks the line
    with pytest.raises(ValueError, match="scatter traces only"):
        figure_svg(go.Figure(go.Bar(x=[1], y=[2])))


def _line_paths(svg: str) -> list[str]:
    return re.findall(r'<path d="([^"]+)" fill="none"', svg)


def test_dashboard_port_in_use_is_one_line(tmp_path, capsys):
    import socket

    from lrsearch import cli

    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_study(url, "busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["dashboard", "--storage", url, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"lrsearch: error: cannot listen on 127.0.0.1:{port}: Address already in "
                   "use; choose another port with --port (0 picks a free one)\n")
