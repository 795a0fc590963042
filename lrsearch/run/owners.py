"""Run folders belong to one study: ``owner.json`` in a study's runs folder and in each trial
folder names the storage and the study that own it.

A study's default runs folder is ``<model_dir>/<study>/`` and its name defaults to the config's,
so two storages easily hold studies of the same name over the same folder. Without a record of
the owner, the second study would clear the first's ``trial-0000/model`` and train its own there,
and the first would report that model as its own. A study is told apart from a deleted one of the
same name by a uid it gets when lrsearch first opens it (study user attribute ``study_uid``).

Rules, checked before anything is written to the study (``study.prepare``) and again when the
runs folder is claimed:

- a folder marked by this study (same storage, name and uid) is its own;
- a folder marked by a study of the same storage that no longer exists (deleted, perhaps
  recreated under the same name) is taken over;
- any other marked folder is refused: one line naming both studies and the fix;
- a runs folder without a marker that holds trials (written by an older lrsearch) is adopted only
  by the study that records it as its ``runs_dir``, else refused.

Trial folders follow from their runs folder: a study writes trial folders only inside a runs
folder it owns, so a trial folder marked by another study is a taken-over study's stale one. A
retry resumes from its original's folder only if that folder is still this study's.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lrsearch.errors import LRSearchError
from lrsearch.monitor.records import StudyAttr

MARKER = "owner.json"


class FolderTaken(LRSearchError):
    """A runs folder belongs to another study."""


@dataclass(frozen=True)
class Owner:
    storage: str  # storage.fingerprint of the study's storage URL
    study: str
    uid: str | None = None  # None: the study does not exist yet, or predates study uids

    def __str__(self) -> str:
        return f"study '{self.study}' in {self.storage}"


def read(folder: Path) -> Owner | None:
    """The owner ``folder`` records; None when it records none (new, or an older lrsearch's)."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
        return Owner(str(data["storage"]), str(data["study"]), data.get("uid"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FolderTaken(f"{Path(folder) / MARKER} is unreadable ({error}): it should name the "
                          "study owning the folder; restore or delete it") from None


def write(folder: Path, owner: Owner, *, exclusive: bool = False) -> bool:
    """Records ``owner`` in ``folder`` atomically. ``exclusive``: only if no owner is recorded
    yet (False when another process recorded one first)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    temporary = folder / f".{MARKER}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(asdict(owner), indent=2) + "\n", encoding="utf-8")
    try:
        if not exclusive:
            os.replace(temporary, marker)
            return True
        try:
            os.link(temporary, marker)  # fails if it exists: never a half-written marker
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def study_uid(storage: Any, name: str) -> tuple[bool, str | None]:
    """(does the study exist in ``storage``, its uid)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False, None
    return True, storage.get_study_user_attrs(study_id).get(StudyAttr.UID)


def _exists(owner: Owner, me: Owner, storage: Any) -> bool:
    """Whether the study ``owner`` names still exists; one in another storage is taken to."""
    if owner.storage != me.storage:
        return True
    found, uid = study_uid(storage, owner.study)
    return found and uid == owner.uid


def _holds_trials(runs: Path) -> bool:
    return runs.is_dir() and any(
        p.is_dir() and (p.name.startswith("trial-") or p.name == "lr-find") for p in runs.iterdir())


def _records(storage: Any, name: str, runs: Path) -> bool:
    """Whether study ``name`` of ``storage`` records ``runs`` as its runs folder."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    recorded = storage.get_study_user_attrs(study_id).get(StudyAttr.RUNS_DIR)
    return bool(recorded) and Path(recorded).resolve() == runs.resolve()


def check_runs_dir(runs: Path, me: Owner, storage: Any, *, fix: str) -> None:
    """Raises :class:`FolderTaken` unless study ``me`` may train in ``runs`` (module rules).
    ``fix``: what the user can change, ending the message."""
    runs = Path(runs)
    owner = read(runs)
    if owner is None:
        if _holds_trials(runs) and not _records(storage, me.study, runs):
            raise FolderTaken(
                f"{runs}/ holds trials of a study an older lrsearch did not record, and {me} "
                f"does not name it as its runs folder: {fix} (or delete the folder if those "
                "trials are not needed)")
        return
    if owner == me or not _exists(owner, me, storage):
        return
    raise FolderTaken(f"{runs}/ belongs to {owner}; this is {me}: {fix}")


def claim_runs_dir(runs: Path, me: Owner, storage: Any, *, fix: str) -> None:
    """Checks again (another study may have claimed the folder since) and records ``me``."""
    for _ in range(3):
        check_runs_dir(runs, me, storage, fix=fix)
        owner = read(runs)
        if owner == me:
            return
        if owner is not None:  # a deleted study's: taken over
            write(runs, me)
            return
        if write(runs, me, exclusive=True):
            return
    check_runs_dir(runs, me, storage, fix=fix)


def is_own(folder: Path, me: Owner | None) -> bool:
    """Whether a trial folder is this study's: marked by it, or unmarked (an older lrsearch's,
    whose runs folder this study adopted)."""
    if me is None:
        return True
    return read(folder) in (None, me)
