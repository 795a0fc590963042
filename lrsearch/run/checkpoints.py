"""Trial checkpoints in an Optuna artifact store, for retries on nodes that cannot see the run.

A re-queued trial resumes from its original's last NiftyNet checkpoint. When the run folders
are on shared storage, the retry finds it there (``run_dir``). When they are not (node-local
scratch), ``lrsearch optimize --checkpoint-store DIR`` names an Optuna artifact store every node
can reach: after each ``iter N saved: ...`` line of NiftyNet's console the trial packs that
checkpoint (``model.ckpt-N.*``) into one tar artifact, records it in the trial's user attribute
``checkpoint_artifact`` (inherited by the retry with the other user attributes) and removes the
trial's previous one (a retry, its original's), so the store holds one checkpoint per trial:
the last of a running or completed trial (its final model, reachable from every node); a pruned
or failed trial's is removed.

The artifact is written before the attribute points at it, so a worker killed mid-upload leaves
the attribute on the previous, complete checkpoint. Nothing is left in the store unrecorded: the
trial names each upload in ``checkpoint_pending`` before writing it, and the record names the
checkpoint it replaces until that one is removed. A retry inherits both and removes what its
killed original left (:meth:`CheckpointUploader.for_trial`): the upload it was writing, or the
checkpoint its last upload replaced.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.monitor.records import TrialAttr
from lrsearch.nifty import contract

if TYPE_CHECKING:
    import optuna

def open_store(directory: str | Path):
    """The Optuna artifact store over ``directory`` (created if missing)."""
    from optuna.artifacts import FileSystemArtifactStore

    path = Path(directory).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(path)


@dataclass
class CheckpointUploader:
    """Copies each checkpoint a running trial saves into the store."""

    trial: optuna.Trial
    store: Any  # an optuna.artifacts ArtifactStore
    models_dir: Path
    uploaded: str | None = None  # this trial's newest artifact id

    @classmethod
    def for_trial(cls, trial: optuna.Trial, store: Any, models_dir: Path) -> CheckpointUploader:
        """The uploader of ``trial``. A retry's replaces its original's recorded checkpoint with
        its first upload, and at once removes what its original, killed, left unrecorded."""
        record = trial.user_attrs.get(TrialAttr.CHECKPOINT_ARTIFACT) or {}
        recorded = record.get("artifact_id")
        uploader = cls(trial, store, models_dir, uploaded=recorded)
        for leftover in (trial.user_attrs.get(TrialAttr.CHECKPOINT_PENDING),
                         record.get("replaces")):
            if leftover and leftover != recorded:
                uploader.remove(leftover)
        return uploader

    def saved(self, iteration: int) -> None:
        files = contract.checkpoint_files(self.models_dir, iteration)
        if not files:
            return
        artifact_id = f"checkpoint-{uuid.uuid4().hex}.tar"
        self.trial.set_user_attr(TrialAttr.CHECKPOINT_PENDING, artifact_id)
        with tempfile.TemporaryFile() as buffer:
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for path in files:
                    tar.add(path, arcname=path.name)
            size = buffer.tell()
            buffer.seek(0)
            self.store.write(artifact_id, buffer)
        previous, self.uploaded = self.uploaded, artifact_id
        record = {"artifact_id": artifact_id, "iteration": iteration, "bytes": size,
                  "replaces": previous}
        self.trial.set_user_attr(TrialAttr.CHECKPOINT_ARTIFACT, record)
        if previous is not None:
            self.remove(previous)

    def discard(self) -> None:
        """Removes this trial's stored checkpoint (it was pruned or failed for good)."""
        if self.uploaded is not None:
            self.trial.set_user_attr(TrialAttr.CHECKPOINT_ARTIFACT, None)
            self.remove(self.uploaded)
            self.uploaded = None

    def remove(self, artifact_id: str) -> None:
        from optuna.artifacts.exceptions import ArtifactNotFound

        try:
            self.store.remove(artifact_id)
        except ArtifactNotFound:
            pass


def restore(store, record: dict[str, Any], model_dir: Path) -> int | None:
    """Unpacks the checkpoint ``record`` names into ``model_dir/models``; its iteration, or None
    when the store no longer has it."""
    from optuna.artifacts.exceptions import ArtifactNotFound

    iteration = int(record["iteration"])
    try:
        reader = store.open_reader(record["artifact_id"])
    except ArtifactNotFound:
        return None
    models = model_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    with reader, tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            name = Path(member.name).name
            if not member.isfile() or not name.startswith(f"model.ckpt-{iteration}."):
                continue  # only the checkpoint's own files, never a path outside models/
            source = tar.extractfile(member)
            if source is not None:
                with (models / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
    if not contract.checkpoint_files(models, iteration):
        return None
    # TensorFlow's index, relative so the folder can live anywhere
    (models / "checkpoint").write_text(
        f'model_checkpoint_path: "model.ckpt-{iteration}"\n'
        f'all_model_checkpoint_paths: "model.ckpt-{iteration}"\n')
    return iteration
