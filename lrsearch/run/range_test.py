"""Running the LR range test: one short NiftyNet training with an exponentially growing learning
rate.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lrsearch.engines.process import ChildProcess
from lrsearch.engines.runtime import Runtime
from lrsearch.errors import EngineError
from lrsearch.nifty import contract
from lrsearch.nifty.console import FailureTail, parse_line
from lrsearch.nifty.contract import LR_NAME, SCHEDULE_ENV, SEED_ENV
from lrsearch.search.range_test import (
    ITERATIONS,
    LOSS_NAMES,
    MAX_LR,
    MIN_LR,
    SMOOTHING,
    LossTracker,
    RangeTest,
    suggest,
)
from lrsearch.search.schedules import LRRange

if TYPE_CHECKING:

    from lrsearch.nifty.config import NiftyNetConfig



def training_loss(values: dict[str, float]) -> float | None:
    """The training loss among a console line's values (``total_loss``, else ``loss``)."""
    return next((values[k] for k in LOSS_NAMES if k in values), None)


def range_test_config(cfg: NiftyNetConfig, run_dir: Path, split_file: Path, min_lr: float,
                      iterations: int) -> Path:
    """``lr_find.ini``: the config training ``iterations`` iterations, no validation."""
    changes = {
        "SYSTEM": {"model_dir": str(run_dir / "model"), "dataset_split_file": str(split_file)},
        "TRAINING": {"max_iter": iterations, "lr": min_lr, "starting_iter": 0,
                     "validation_every_n": -1, "save_every_n": iterations},
    }
    path = run_dir / "lr_find.ini"
    cfg.with_values(changes).write(path)
    return path


def run_range_test(cfg: NiftyNetConfig, run_dir: Path, split_file: Path, runtime: Runtime, *,
                   min_lr: float = MIN_LR, max_lr: float = MAX_LR,
                   iterations: int = ITERATIONS, smoothing: float = SMOOTHING,
                   on_line: Callable[[str], None] | None = None,
                   seed: int | None = None) -> RangeTest:
    """Trains once with the range schedule and stops at divergence; with ``seed``, as a trial
    with that training seed does (the same seed, the same losses). Raises EngineError when
    NiftyNet produced no loss to read."""
    schedule = LRRange(min_lr, max_lr, iterations)  # validates the bounds
    tracker = LossTracker(smoothing)
    if (run_dir / "model").exists():  # a previous test's checkpoints must not be resumed
        shutil.rmtree(run_dir / "model")
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = range_test_config(cfg, run_dir, split_file, min_lr, iterations)
    schedule_path = run_dir / contract.SCHEDULE_FILE
    contract.write_schedule(schedule_path, schedule.to_dict())
    command = runtime.command([contract.train_args(config_path)])
    env = {SCHEDULE_ENV: str(schedule_path)}
    if seed is not None:
        env[SEED_ENV] = str(seed % contract.SEED_RANGE)  # as --seed: any integer
    child = ChildProcess(command, env=runtime.environment(env),
                         cwd=run_dir, log_path=run_dir / contract.CONSOLE_LOG)
    points: list[tuple[int, float, float, float]] = []
    stopped = f"reached max lr {max_lr:g}"
    tail = FailureTail()
    try:
        for line in child.lines():
            tail.feed(line)
            if on_line is not None:
                on_line(line)
            event = parse_line(line)
            if event is None or event.phase != "training":
                continue
            loss = training_loss(event.values)
            if loss is None:
                continue
            lr = event.values.get(LR_NAME, schedule.lr(event.iteration - 1))
            smoothed = tracker.add(loss)
            points.append((event.iteration, lr, loss, smoothed))
            if tracker.diverged(smoothed):
                stopped = f"diverged at lr {lr:.3g} (iteration {event.iteration})"
                break
    finally:
        child.stop()
    if len(points) < 3:
        last = next((t for t in reversed(tail.tail) if t.strip()), "no output")
        raise EngineError(f"the LR range test read {len(points)} training losses from NiftyNet "
                          f"(need 3): {tail.cause() or last.strip()[-300:]} "
                          f"(see {run_dir / 'console.log'})")
    stable = points if not tracker.diverged(points[-1][3]) else points[:-1]
    steepest, last_stable = suggest([p[1] for p in stable], [p[3] for p in stable])
    return RangeTest(min_lr, max_lr, iterations, smoothing, tuple(points), stopped,
                     steepest, last_stable)
