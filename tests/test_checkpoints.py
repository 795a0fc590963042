"""Checkpoint copies in the artifact store (the real-NiftyNet round trip is in test_postgres)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import optuna

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

