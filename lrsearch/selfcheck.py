"""One short, real trial on tiny synthetic data: does a runtime train, validate and score?

``lrsearch runtime check`` trains one iteration with it; the runtime tests and the fidelity
benchmark train longer ones. Everything goes through the same code a study uses (config
checks, ``trial.ini``, the child process, console parsing, whole-volume Dice), with a constant
learning rate and without pruning.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.demo import write_demo_data
from lrsearch.engines.runtime import Runtime
from lrsearch.monitor.records import TrialAttr
from lrsearch.nifty import config as nifty_config
from lrsearch.paths import DEFAULT_SPACE, DEMO_CONFIG
from lrsearch.search.schedules import Constant
from lrsearch.search.space import TrialSetup


@dataclasses.dataclass(frozen=True)
class Tiny:
    """A small variant of the demo config (sizes in voxels, per axis)."""

    window: int = 16
    volume: int = 24
    subjects: int = 4
    max_iter: int = 1
    validation_every_n: int = 1
    validation_max_iter: int = 1
    batch_size: int = 1
    sample_per_volume: int = 1
    num_threads: int = 2  # NiftyNet's sampler threads


def write_tiny_config(directory: Path, tiny: Tiny = Tiny(), data_dir: Path | None = None) -> Path:
    """Writes demo data (unless ``data_dir`` holds it) and a config over it; returns the INI."""
    directory = Path(directory)
    data = Path(data_dir) if data_dir else directory / "data"
    if not data.is_dir():
        write_demo_data(data, subjects=tiny.subjects, shape=(tiny.volume,) * 3)
    cfg = nifty_config.load_config(DEMO_CONFIG)
    window = (tiny.window,) * 3
    changes: dict[str, dict[str, object]] = {
        section: {"path_to_search": str(data), "spatial_window_size": window}
        for section in cfg.input_sections
    }
    changes["SYSTEM"] = {"model_dir": str(directory / "models"), "cuda_devices": "",
                         "num_threads": tiny.num_threads}
    changes["NETWORK"] = {"batch_size": tiny.batch_size}
    changes["TRAINING"] = {
        "max_iter": tiny.max_iter,
        "validation_every_n": tiny.validation_every_n,
        "validation_max_iter": tiny.validation_max_iter,
        "sample_per_volume": tiny.sample_per_volume,
    }
    changes["INFERENCE"] = {"spatial_window_size": (tiny.volume,) * 3}
    path = directory / "tiny.ini"
    cfg.with_values(changes).write(path)
    return path


class _Silent:
    def trial_iteration(self, number: int, iteration: int, max_iter: int) -> None:
        pass

    def trial_validation(self, number: int, iteration: int, dice: float) -> None:
        pass

    def trial_line(self, number: int, line: str) -> None:
        pass


def single_trial(config: Path, runtime: Runtime, runs_dir: Path, *, lr: float = 1e-3,
                 max_iter: int | None = None, observer=None, seed: int | None = None
                 ) -> FrozenTrial:
    """Trains one constant-LR trial of ``config`` on ``runtime``; the finished trial.
    ``seed``: its training seed (default: a random one; either way stored as ``seed``).

    Its state is COMPLETE (value: whole-volume Dice), PRUNED (diverged) or FAIL, with the
    reason in its ``TrialAttr.STOP_REASON`` user attribute.
    """
    import warnings

    from lrsearch.run import study as run_study
    from lrsearch.run.plan import StudyOptions
    from lrsearch.run.trial import TrialFailed, run_trial

    with warnings.catch_warnings():  # Optuna's notes on storage options, not ours to act on
        warnings.simplefilter("ignore")
        options = StudyOptions(config, DEFAULT_SPACE, storage_url="sqlite:///:memory:", trials=1,
                               max_iter=max_iter, runs_dir=Path(runs_dir), runtime=runtime)
        plan = run_study.prepare(options)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    if seed is not None:
        trial.set_user_attr(TrialAttr.SEED, seed)  # run_trial trains with a seed the trial holds
    try:
        value = run_trial(trial, plan.context, TrialSetup(Constant(base_lr=lr)),
                          observer or _Silent())
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except TrialFailed as failed:
        trial.set_user_attr(TrialAttr.STOP_REASON, str(failed))
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, value)
    return study.trials[0]
