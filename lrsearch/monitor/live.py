"""A trial's page in optuna-dashboard, kept current while the trial trains.

optuna-dashboard 0.21 shows, for each trial, its note (Markdown, ``optuna_dashboard.save_note``)
and its artifacts (``optuna.artifacts.upload_artifact``; images are drawn inline). A
:class:`LiveTrial` gives every trial two image artifacts, ``lr_schedule.svg`` (planned
schedule, the rate NiftyNet used, where the trial is) and ``validation_dice.svg``, drawn from
the plotly figures of :mod:`lrsearch.monitor.figures`, and a note: the schedule in words, the state
(pruned and failed trials say why), both figures at full width and the command that reproduces
the run.

The trial runner calls :meth:`LiveTrial.started`, :meth:`LiveTrial.validated` after each
validation round and :meth:`LiveTrial.finished` (or leaves the ``with`` block). Each figure is
one artifact for the trial's whole life, rewritten in place, and rounds closer together than
:data:`REFRESH_SECONDS` are skipped, so a long trial writes two files and one note however long
it runs. Nothing here may fail a trial: the first error is logged as one warning line and the
trial's dashboard content stops there.
"""

from __future__ import annotations

import io
import logging
import math
import re
import shlex
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from lrsearch.monitor.records import StudyAttr
from lrsearch.nifty.contract import SCHEDULE_ENV, SCHEDULE_FILE, SEED_ENV, VALIDATION_SEED_ENV

if TYPE_CHECKING:
    import optuna

    from lrsearch.monitor.records import TrialInfo

__all__ = ["DICE_FIGURE", "LR_FIGURE", "REFRESH_SECONDS", "LiveTrial", "artifact_dir",
           "artifact_store", "note_text", "rewrite_note"]

LR_FIGURE = "lr_schedule.svg"
DICE_FIGURE = "validation_dice.svg"
REFRESH_SECONDS = 30.0
LR_POINTS = 200

log = logging.getLogger(__name__)


def _sqlite_file(storage_url: str) -> Path | None:
    if not storage_url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(storage_url).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def artifact_dir(storage_url: str, runs_dir: str | Path | None) -> Path:
    """Where a study's trials keep their dashboard figures.

    Next to a SQLite file, for all its studies (``lrsearch.db`` → ``lrsearch-artifacts/``), so
    ``optuna-dashboard sqlite:///lrsearch.db --artifact-dir lrsearch-artifacts`` shows them;
    with a database server, in the study's runs folder (``<runs_dir>/artifacts``).
    """
    database = _sqlite_file(storage_url)
    if database is not None:
        return database.with_name(f"{database.stem}-artifacts")
    if runs_dir is None:
        raise ValueError(f"a study on {storage_url.split('://')[0]} needs its runs folder to "
                         "place artifacts")
    return Path(runs_dir).resolve() / "artifacts"


class _Directories:
    """Read-only view over several artifact folders (one per study on a database server)."""

    def __init__(self, directories: Sequence[Path]):
        from optuna.artifacts import FileSystemArtifactStore

        self.stores = [FileSystemArtifactStore(d) for d in directories]

    def _first(self, method: str, artifact_id: str):
        from optuna.artifacts.exceptions import ArtifactNotFound

        for store in self.stores:
            try:
                return getattr(store, method)(artifact_id)
            except ArtifactNotFound:
                continue
        raise ArtifactNotFound(f"artifact {artifact_id} not found")

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._first("open_reader", artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.stores[0].write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self._first("remove", artifact_id)


def artifact_store(directories: Iterable[str | Path]):
    """An Optuna artifact store over one folder, or reading from several."""
    from optuna.artifacts import FileSystemArtifactStore

    folders = list(dict.fromkeys(Path(d) for d in directories))
    if not folders:
        raise ValueError("artifact_store needs at least one folder")
    folders[0].mkdir(parents=True, exist_ok=True)  # uploads from the dashboard land here
    return FileSystemArtifactStore(folders[0]) if len(folders) == 1 else _Directories(folders)


def _thinned(points: Sequence[tuple[int, float]], limit: int) -> tuple[tuple[int, float], ...]:
    step = max(1, math.ceil(len(points) / limit))
    return tuple(points[::step])


def _status(info: TrialInfo) -> str:
    if info.state == "running":
        of = f" of {info.max_iter}" if info.max_iter else ""
        dice = f", validation Dice {info.last_dice:.4f}" if info.last_dice is not None else ""
        return f"**running**: iteration {info.iterations}{of}{dice}"
    if info.state == "complete":
        value = f"whole-volume Dice {info.value:.4f}" if info.value is not None else "complete"
        window = (f" (last validation-window Dice {info.last_window_dice:.4f})"
                  if info.last_window_dice is not None else "")
        wall = f" in {info.wall_seconds:,.0f} s" if info.wall_seconds is not None else ""
        return f"**complete**: {value}{window}, {info.iterations} iterations{wall}"
    reason = info.stop_reason or "no reason recorded"
    return f"**{info.state}** after {info.iterations} iterations: {reason}"


def _markdown(text: str) -> str:
    """``text`` shown as it is: Markdown's special characters escaped."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~-])", r"\\\1", text)


def note_text(info: TrialInfo, figure_urls: Sequence[tuple[str, str]] = (),
              vs_config: str = "", validation_seed: int | None = None) -> str:
    """The trial's note: schedule in words, state and why, (the study's best trial) what it
    gains over the user's config, figures, how to run it again (with the study's
    ``validation_seed``, on the same validation windows)."""
    lines = [
        f"### Trial {info.number}{f' ({info.label})' if info.label else ''}: "
        f"{info.schedule_text or info.family}",
        "",
        f"{_status(info)}  ",
        f"optimiser {info.optimiser or '?'}, {info.max_iter or '?'} iterations per trial",
        "",
    ]
    if info.baseline == "config":
        lines[-1:-1] = ["", "Your config as written (its constant lr and optimiser): the "
                            "baseline every searched schedule is measured against; never pruned."]
    elif info.baseline:
        lines[-1:-1] = ["", f"A reference schedule ({info.label}), not sampled; never pruned."]
    if vs_config:
        lines += [f"**Best trial** {_markdown(vs_config)}", ""]
    lines += [f"![{title}]({url})" for title, url in figure_urls]
    if info.command and info.run_dir:
        schedule = Path(info.run_dir) / SCHEDULE_FILE
        seed = f"{SEED_ENV}={info.seed} " if info.seed is not None else ""
        if validation_seed is not None:
            seed += f"{VALIDATION_SEED_ENV}={validation_seed} "
        command = (f"cd {shlex.quote(info.run_dir)} && "
                   f"{SCHEDULE_ENV}={shlex.quote(str(schedule))} {seed}{info.command}")
        # Plain text, not code: the dashboard does not wrap code, and a long line would make
        # the whole note wider than the page.
        lines += [
            "",
            f"Reproduce this run (it retrains into the trial's folder): {_markdown(command)}",
            "",
            f"A fresh config for this schedule: `lrsearch export --trial {info.number} "
            f"-o trial{info.number}.ini`",
        ]
    return "\n".join(lines) + "\n"


def rewrite_note(trial: optuna.Trial, vs_config: str = "") -> None:
    """Rewrites the note of a trial that another worker finished (its own worker was lost), or
    of the study's best trial with its ``vs_config`` line: state and reason as stored, the
    figures as its worker last drew them. A retry inherits its original's artifacts, so
    figures are not looked up by name but kept from the note."""
    from optuna_dashboard import get_note, save_note

    from lrsearch.monitor.records import trial_info

    try:
        figures = re.findall(r"^!\[([^\]]*)\]\(([^)\s]*)\)$", get_note(trial), re.M)
        save_note(trial, note_text(trial_info(trial.storage.get_trial(trial._trial_id)), figures,
                                   vs_config, _validation_seed(trial)))
    except Exception as error:  # noqa: BLE001 - the dashboard must never stop a worker
        log.warning("dashboard note of trial %d not rewritten (%s: %s)", trial.number,
                    type(error).__name__, error)


def _validation_seed(trial: optuna.Trial) -> int | None:
    """The study's validation seed, if it stores one."""
    seed = trial.study.user_attrs.get(StudyAttr.VALIDATION_SEED)
    return seed if isinstance(seed, int) else None


class LiveTrial:
    """Writes one running trial's figures and note for optuna-dashboard."""

    def __init__(self, trial: optuna.Trial, directory: str | Path, *,
                 every: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.trial = trial
        self.directory = Path(directory)
        self.every = every
        self._clock = clock
        self._store = None
        self._ids: dict[str, str] = {}  # figure file name → artifact id
        self._lr_used: tuple[tuple[int, float], ...] = ()
        self._last = -math.inf
        self._version = 0
        self._broken = False
        self._validation_seed: int | None = None

    @classmethod
    def for_study(cls, trial: optuna.Trial, storage_url: str,
                  runs_dir: str | Path | None) -> LiveTrial:
        """The trial's writer, its figures in :func:`artifact_dir` of the study."""
        try:
            directory = artifact_dir(storage_url, runs_dir)
        except Exception as error:  # noqa: BLE001 - the dashboard must never fail a trial
            live = cls(trial, Path())
            live._fail(error)
            return live
        return cls(trial, directory)

    # -- what the trial runner calls ---------------------------------------------------------
    def started(self) -> None:
        self._refresh()

    def validated(self, lr_used: Sequence[tuple[int, float]] = ()) -> None:
        """After a validation round; ``lr_used``: (iteration, lr) NiftyNet used so far."""
        self._lr_used = tuple(lr_used)
        if self._clock() - self._last >= self.every:
            self._refresh()

    def finished(self, state: str, reason: str = "") -> None:
        """Before Optuna is told: ``state`` is "complete", "pruned" or "failed"."""
        self._refresh(state, reason)

    def __enter__(self) -> LiveTrial:
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        import optuna

        if kind is None:
            self.finished("complete")
        elif issubclass(kind, optuna.TrialPruned):
            self.finished("pruned", str(error))
        elif issubclass(kind, KeyboardInterrupt):
            self.finished("failed", "interrupted by the user")
        elif issubclass(kind, Exception):
            self.finished("failed", str(error))
        return False

    # -- writing ---------------------------------------------------------------------------
    def _refresh(self, state: str | None = None, reason: str = "") -> None:
        if self._broken:
            return
        try:
            self._write(self._info(state, reason))
        except Exception as error:  # noqa: BLE001 - the dashboard must never fail a trial
            self._fail(error)
        self._last = self._clock()

    def _fail(self, error: Exception) -> None:
        self._broken = True
        log.warning("dashboard figures of trial %d not written (%s: %s); "
                    "the trial goes on", self.trial.number, type(error).__name__, error)

    def _info(self, state: str | None, reason: str) -> TrialInfo:
        from lrsearch.monitor.records import TrialAttr, trial_info

        frozen = self.trial.storage.get_trial(self.trial._trial_id)
        info = trial_info(frozen)
        if not info.lr_used and self._lr_used:
            info = replace(info, lr_used=_thinned(self._lr_used, LR_POINTS))
        if info.state == "running" and self._lr_used:
            info = replace(info, iterations=max(info.iterations, self._lr_used[-1][0]))
        if state is not None:
            value = frozen.user_attrs.get(TrialAttr.FINAL_DICE) if state == "complete" else None
            info = replace(info, state=state, value=value,
                           stop_reason=info.stop_reason or reason)
        return info

    def _write(self, info: TrialInfo) -> None:
        from optuna_dashboard import save_note
        from optuna_dashboard.artifact import get_artifact_path

        from lrsearch.monitor.figures import dice_figure, lr_figure
        from lrsearch.monitor.svg import figure_svg

        figures = ((LR_FIGURE, "learning rate", lr_figure(info)),
                   (DICE_FIGURE, "validation Dice", dice_figure(info)))
        self._version += 1
        urls = []
        for name, title, figure in figures:
            artifact_id = self._put(name, figure_svg(figure).encode("utf-8"))
            # The version makes browsers fetch the rewritten image when the note changes.
            urls.append((title, f"{get_artifact_path(self.trial, artifact_id)}"
                                f"?v={self._version}"))
        if self._validation_seed is None:  # read once: a study's seed never changes
            self._validation_seed = _validation_seed(self.trial)
        save_note(self.trial, note_text(info, urls, validation_seed=self._validation_seed))

    def _put(self, name: str, data: bytes) -> str:
        """Uploads the figure once; later versions overwrite the same artifact."""
        import optuna

        if self._store is None:
            self._store = artifact_store([self.directory])
        if name in self._ids:
            self._store.write(self._ids[name], io.BytesIO(data))
            return self._ids[name]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name  # the file name is the artifact's name in the dashboard
            path.write_bytes(data)
            self._ids[name] = optuna.artifacts.upload_artifact(
                artifact_store=self._store, file_path=str(path), study_or_trial=self.trial)
        return self._ids[name]
