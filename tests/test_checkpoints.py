"""Checkpoint copies in the artifact store (the real-NiftyNet round trip is in test_postgres)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import optuna
import pytest

from lrsearch.nifty import contract
from lrsearch.nifty.contract import checkpoint_iteration
from lrsearch.run import checkpoints


def saved_model(models: Path, iteration: int) -> None:
    models.mkdir(parents=True, exist_ok=True)
    for suffix in ("index", "meta", "data-00000-of-00001"):
        (models / f"model.ckpt-{iteration}.{suffix}").write_bytes(f"{iteration}{suffix}".encode())
    index = f'model_checkpoint_path: "{models}/model.ckpt-{iteration}"\n'
    (models / "checkpoint").write_text(index)


def test_saved_iteration_reads_niftynets_save_line():
    line = "\x1b[1mINFO:niftynet:\x1b[0m iter 100 saved: /runs/trial-0003/model/models/model.ckpt"
    assert contract.saved_iteration(line) == 100
    assert contract.saved_iteration("INFO:niftynet: training iter 100, loss=0.3") is None


def test_each_save_replaces_the_trials_previous_copy_and_restores_anywhere(tmp_path):
    study = optuna.create_study()
    trial = study.ask()
    store = checkpoints.open_store(tmp_path / "store")
    models = tmp_path / "node-a" / "model" / "models"
    uploader = checkpoints.CheckpointUploader(trial, store, models)
    for iteration in (5, 10):
        saved_model(models, iteration)
        uploader.saved(iteration)
    record = trial.user_attrs["checkpoint_artifact"]
    assert record["iteration"] == 10
    assert [p.name for p in (tmp_path / "store").iterdir()] == [record["artifact_id"]]

    model_dir = tmp_path / "node-b" / "model"
    assert checkpoints.restore(store, record, model_dir) == 10
    assert checkpoint_iteration(model_dir) == 10
    restored = sorted(p.name for p in (model_dir / "models").iterdir())
    assert restored == ["checkpoint", "model.ckpt-10.data-00000-of-00001", "model.ckpt-10.index",
                        "model.ckpt-10.meta"]
    assert (model_dir / "models" / "model.ckpt-10.meta").read_bytes() == b"10meta"
    # the index is relative: the folder can move
    assert "node-a" not in (model_dir / "models" / "checkpoint").read_text()

    uploader.discard()  # pruned: the copy goes
    assert list((tmp_path / "store").iterdir()) == []
    assert trial.user_attrs["checkpoint_artifact"] is None
    assert checkpoints.restore(store, record, tmp_path / "node-c" / "model") is None


class KilledAt(Exception):
    """The worker dies here (raised from inside a storage or store call)."""


def _retry(study: optuna.Study, original: optuna.Trial) -> optuna.Trial:
    """What the heartbeat's retry callback does: a new trial with the original's user
    attributes."""
    frozen = study._storage.get_trial(original._trial_id)
    study.enqueue_trial({}, user_attrs=dict(frozen.user_attrs))
    return study.ask()


def _killed_uploader(tmp_path, store, kill_in: str, trial: optuna.Trial):
    """An uploader whose worker is killed in ``kill_in`` ("write": writing iteration 10's
    artifact; "remove": between recording it and removing iteration 5's)."""
    models = tmp_path / "node-a" / "model" / "models"
    uploader = checkpoints.CheckpointUploader.for_trial(trial, store, models)
    saved_model(models, 5)
    uploader.saved(5)
    saved_model(models, 10)

    class Dying:
        def write(self, artifact_id, content):
            if kill_in == "write":
                store.write(artifact_id, io.BytesIO(content.read(100)))  # part of the tar
                raise KilledAt(kill_in)
            store.write(artifact_id, content)

        def remove(self, artifact_id):
            if kill_in == "remove":
                raise KilledAt(kill_in)
            store.remove(artifact_id)

    uploader.store = Dying()
    try:
        uploader.saved(10)
    except KilledAt:
        pass
    return uploader


@pytest.mark.parametrize("kill_in", ["write", "remove"])
def test_a_retry_removes_what_its_killed_original_left_in_the_store(tmp_path, kill_in):
    study = optuna.create_study()
    original = study.ask()
    store = checkpoints.open_store(tmp_path / "store")
    _killed_uploader(tmp_path, store, kill_in, original)
    assert len(list((tmp_path / "store").iterdir())) == 2  # one of them recorded as the last
    recorded = original.user_attrs["checkpoint_artifact"]
    assert recorded["iteration"] == (5 if kill_in == "write" else 10)

    retry = _retry(study, original)
    models = tmp_path / "node-b" / "model" / "models"
    uploader = checkpoints.CheckpointUploader.for_trial(retry, store, models)
    # only the recorded checkpoint is left, and the retry resumes from it
    assert [p.name for p in (tmp_path / "store").iterdir()] == [recorded["artifact_id"]]
    assert checkpoints.restore(store, recorded, models.parent) == recorded["iteration"]
    saved_model(models, 15)
    uploader.saved(15)  # the retry's first upload replaces its original's
    assert [p.name for p in (tmp_path / "store").iterdir()] == [
        retry.user_attrs["checkpoint_artifact"]["artifact_id"]]


def test_restore_writes_nothing_outside_the_models_folder(tmp_path):
    store = checkpoints.open_store(tmp_path / "store")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("../../escape.txt", "model.ckpt-7.index", "/etc/model.ckpt-7.meta"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    buffer.seek(0)
    store.write("evil.tar", buffer)
    model_dir = tmp_path / "run" / "model"
    assert checkpoints.restore(store, {"artifact_id": "evil.tar", "iteration": 7}, model_dir) == 7
    assert not (tmp_path / "escape.txt").exists()
    assert sorted(p.name for p in (model_dir / "models").iterdir()) == [
        "checkpoint", "model.ckpt-7.index", "model.ckpt-7.meta"]

