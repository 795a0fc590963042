"""A real NiftyNet trial writes its dashboard page, and ``export`` trains its schedule again.

One cosine trial of ``lrsearch optimize`` on tiny demo data (NiftyNet 0.6.0 on TensorFlow 2, a
real SQLite study): its figures and note must be in the storage as optuna-dashboard serves
them. Then ``lrsearch export --max-iter`` writes a config for a shorter run, and the command it
prints trains it on NiftyNet, with the rescaled schedule's learning rate at every iteration.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta

from lrsearch import cli
from lrsearch.monitor.live import artifact_dir
from lrsearch.nifty.config import load_config
from lrsearch.nifty.console import parse_line
from lrsearch.search.schedules import Cosine, from_dict
from tests.tiny import TINY_SPACE, tiny_config

MAX_ITER = 10
EXPORT_ITER = 6

pytestmark = pytest.mark.slow


def _dashboard_api(storage: str, path: str) -> dict:
    """optuna-dashboard's own JSON for ``path``, from its WSGI application in this process."""
    from optuna_dashboard import wsgi

    environ: dict = {"wsgi.errors": io.StringIO()}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, HTTP_ACCEPT_ENCODING="identity")
    statuses = []
    body = b"".join(wsgi(storage)(environ, lambda status, *_: statuses.append(status)))
    assert statuses == ["200 OK"], environ["wsgi.errors"].getvalue()[-3000:]
    return json.loads(body)


def test_real_trial_dashboard_page_and_export(tmp_path, capsys):
    config = tiny_config(tmp_path)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="live", storage=storage, direction="maximize")
    study.enqueue_trial({"family": "cosine", "base_lr": 3e-3, "cosine.eta_min_ratio": 0.0,
                         "optimiser": "adam"})
    assert cli.main(["optimize", "-c", str(config), "--space", str(TINY_SPACE), "--storage",
                     storage, "--study", "live", "--trials", "1",
                     "--max-iter", str(MAX_ITER)]) == 0
    capsys.readouterr()
    (trial,) = optuna.load_study(study_name="live", storage=storage).get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("stop_reason")

    # NiftyNet read the trial's own file lists: it searched nothing and wrote no list into the
    # study's folder, where trials starting together would read each other's half-written ones
    run_dir = Path(trial.user_attrs["run_dir"])
    console = (run_dir / "console.log").read_text()
    for section in load_config(config).input_sections:
        assert f"[{section}] using existing csv file {run_dir / section}.csv" in console
        assert not (run_dir.parent / f"{section}.csv").exists()

    # the figures, as artifacts of the trial, with what NiftyNet really did
    metas = {m.filename: m for m in get_all_artifact_meta(trial, storage=study._storage)}
    assert set(metas) == {"lr_schedule.svg", "validation_dice.svg"}
    folder = artifact_dir(storage, None)
    assert folder == tmp_path / "study-artifacts"
    lr_svg = (folder / metas["lr_schedule.svg"].artifact_id).read_text()
    dice_svg = (folder / metas["validation_dice.svg"].artifact_id).read_text()
    assert "used by NiftyNet" in lr_svg and "planned schedule" in lr_svg
    assert f"whole-volume Dice {trial.value:.4f}" in dice_svg
    assert dice_svg.count("<circle") == len(trial.intermediate_values)

    # the note, as optuna-dashboard serves it
    detail = _dashboard_api(storage, f"/api/studies/{study._study_id}")
    (served,) = detail["trials"]
    note = served["note"]["body"]
    assert note.startswith(f"### Trial 0: {trial.user_attrs['schedule_text']}")
    assert f"**complete**: whole-volume Dice {trial.value:.4f}" in note
    assert all(meta.artifact_id in note for meta in metas.values())
    assert {a["artifact_id"] for a in served["artifacts"]} == \
        {m.artifact_id for m in metas.values()}

    # export for a shorter run, and train it with the printed command
    target = tmp_path / "exported" / "best.ini"
    assert cli.main(["export", "--storage", storage, "--trial", "0", "-o", str(target),
                     "--max-iter", str(EXPORT_ITER)]) == 0
    command = capsys.readouterr().out.strip().splitlines()[-1]
    schedule = from_dict(json.loads((tmp_path / "exported" / "best.schedule.json")
                                    .read_text())["schedule"])
    assert schedule == Cosine(3e-3, total_iters=EXPORT_ITER, eta_min=0.0)
    run = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    log = tmp_path / "exported" / "best-model" / "training_niftynet_log"
    events = [e for e in map(parse_line, log.read_text().splitlines())
              if e is not None and e.phase == "training"]
    assert [e.iteration for e in events] == list(range(1, EXPORT_ITER + 1))
    for event in events:
        assert math.isclose(event.values["lr"], schedule.lr(event.iteration - 1),
                            rel_tol=1e-4, abs_tol=1e-9), event
