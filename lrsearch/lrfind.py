"""The LR range test (Smith 2015, 2017; fastai's ``lr_find``): one short training run whose
learning rate grows exponentially, to bound the useful learning rates.

The run trains through lrsearch's NiftyNet application with an :class:`~lrsearch.schedules.
LRRange` schedule and no validation. The training loss read from NiftyNet's console is smoothed
with a bias-corrected exponential moving average; the run is stopped as soon as the smoothed
loss is NaN, exceeds ``DIVERGENCE`` times its minimum (fastai's rule, for unbounded losses such
as cross-entropy), or has given back ``GIVE_BACK`` of what it had gained: a bounded loss like
NiftyNet's Dice (in [0, 1]) never reaches 4x a minimum of 0.3, but a network that blows up
returns toward its untrained loss. Two learning rates come out:

- *steepest*: where the smoothed loss falls fastest against log10(lr), up to its minimum —
  the loss responds most there, a good lower end for a search and a good constant LR;
- *last stable*: where the smoothed loss is lowest; above it the loss rises toward
  divergence, so it is the upper end of the useful range (one-cycle's ``max_lr``).

``lrsearch optimize --lr-bounds auto`` runs the test once per study (stored as the study's user
attribute ``lr_find``) and searches ``base_lr`` between the two.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.engines import APPLICATION, LR_NAME, SCHEDULE_ENV, Runtime
from lrsearch.engines.console import FailureTail, parse_line
from lrsearch.engines.process import ChildProcess
from lrsearch.errors import EngineError
from lrsearch.schedules import LRRange

if TYPE_CHECKING:
    import optuna

    from lrsearch.config import NiftyNetConfig
    from lrsearch.study import StudyPlan

# Adam's useful rates lie well inside [1e-7, 1]; 100 iterations give ~14 per decade.
MIN_LR = 1e-7
MAX_LR = 1.0
ITERATIONS = 100
SMOOTHING = 0.98
DIVERGENCE = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
GIVE_BACK = 0.5  # ... or rises back by this share of its fall from the peak before it
MIN_FALL = 0.25  # ... a fall of at least this share of that peak (not noise on the plateau)
LOSS_NAMES = ("total_loss", "loss")
STUDY_ATTR = "lr_find"


def training_loss(values: dict[str, float]) -> float | None:
    """The training loss among a console line's values (``total_loss``, else ``loss``)."""
    return next((values[k] for k in LOSS_NAMES if k in values), None)


class LossTracker:
    """Bias-corrected EMA of the loss, its minimum, and whether it has diverged."""

    def __init__(self, smoothing: float = SMOOTHING, divergence: float = DIVERGENCE):
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), but got {smoothing!r}")
        if divergence <= 1:
            raise ValueError(f"divergence must be greater than 1, but got {divergence!r}")
        self.smoothing, self.divergence = smoothing, divergence
        self._average, self._count = 0.0, 0
        self.best = math.inf
        self.peak = -math.inf  # the highest smoothed loss before the minimum
        self._highest = -math.inf

    def add(self, loss: float) -> float:
        """The smoothed loss after this value (NaN once a NaN or infinite loss arrived)."""
        if not math.isfinite(loss):
            self._average = math.nan
        self._count += 1
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** self._count)
        self._highest = max(self._highest, smoothed)
        if smoothed < self.best:
            self.best, self.peak = smoothed, self._highest
        return smoothed

    @property
    def count(self) -> int:
        """Losses seen so far."""
        return self._count

    @property
    def fallen(self) -> bool:
        """Has the loss fallen from its peak by at least MIN_FALL of it (not just noise)?"""
        return self.peak > 0 and self.peak - self.best >= MIN_FALL * self.peak

    def diverged(self, smoothed: float) -> bool:
        if math.isnan(smoothed) or smoothed > self.divergence * self.best:
            return True
        return self.fallen and smoothed > self.best + GIVE_BACK * (self.peak - self.best)


@dataclass(frozen=True)
class RangeTest:
    """What one LR range test measured; ``points`` are ``(iteration, lr, loss, smoothed)``."""

    min_lr: float
    max_lr: float
    iterations: int
    smoothing: float
    points: tuple[tuple[int, float, float, float], ...]
    stopped: str  # why the run ended
    steepest_lr: float
    last_stable_lr: float

    @property
    def bounds(self) -> tuple[float, float]:
        """The base-LR range to search: steepest descent … last stable (a decade if they meet)."""
        low, high = self.steepest_lr, self.last_stable_lr
        return (low, high) if low < high else (high / 10, high)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["points"] = [list(p) for p in self.points]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RangeTest:
        return cls(**{**data, "points": tuple(tuple(p) for p in data["points"])})

    def summary(self) -> str:
        low, high = self.bounds
        return (f"LR range test: {len(self.points)} iterations, {self.stopped}; steepest "
                f"descent at lr {self.steepest_lr:.3g}, last stable lr {self.last_stable_lr:.3g}"
                f"; suggested base_lr range [{low:.3g}, {high:.3g}]")


def suggest(lrs: Sequence[float], smoothed: Sequence[float]) -> tuple[float, float]:
    """``(steepest, last_stable)`` learning rates of a smoothed loss curve (before divergence).

    Slopes are differences of the smoothed loss against log10(lr) across a twentieth of the
    points either side, taken up to the curve's minimum (the descent) and not in the first
    tenth (like fastai's ``skip_start``): the first smoothed values rest on a few noisy losses,
    and adjacent-point slopes there once put the "steepest descent" at 1e-7 on the demo. The
    last stable lr is the minimum's.
    """
    if len(lrs) != len(smoothed) or not lrs:
        raise ValueError(f"need matching, non-empty lr and loss sequences, but got "
                         f"{len(lrs)} and {len(smoothed)} values")
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        raise ValueError("the loss was never finite: lower --min-lr")
    lowest = min(finite, key=lambda i: smoothed[i])
    logs = [math.log10(lr) for lr in lrs]
    skip, reach = max(1, len(lrs) // 10), max(1, len(lrs) // 20)
    slopes = {}
    for i in range(skip, lowest + 1):
        a, b = max(i - reach, skip - 1), min(i + reach, lowest)
        if logs[b] > logs[a]:
            slopes[i] = (smoothed[b] - smoothed[a]) / (logs[b] - logs[a])
    steepest = min(slopes, key=slopes.get) if slopes else lowest
    return lrs[steepest], lrs[lowest]


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
                   on_line: Callable[[str], None] | None = None) -> RangeTest:
    """Trains once with the range schedule and stops at divergence. Raises EngineError when
    NiftyNet produced no loss to read."""
    schedule = LRRange(min_lr, max_lr, iterations)  # validates the bounds
    tracker = LossTracker(smoothing)
    if (run_dir / "model").exists():  # a previous test's checkpoints must not be resumed
        shutil.rmtree(run_dir / "model")
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = range_test_config(cfg, run_dir, split_file, min_lr, iterations)
    schedule_path = run_dir / "schedule.json"
    schedule_path.write_text(json.dumps({"schedule": schedule.to_dict(), "history": []}) + "\n")
    command = runtime.command([["train", "-a", APPLICATION, "-c", str(config_path)]])
    child = ChildProcess(command, env=runtime.environment({SCHEDULE_ENV: str(schedule_path)}),
                         cwd=run_dir, log_path=run_dir / "console.log")
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


def figure(result: RangeTest):
    """Loss (raw and smoothed) against lr on a log axis, the two suggestions marked."""
    import plotly.graph_objects as go

    lrs = [p[1] for p in result.points]
    fig = go.Figure()
    fig.add_scatter(x=lrs, y=[p[2] for p in result.points], mode="markers", name="loss",
                    marker={"size": 4, "opacity": 0.4})
    fig.add_scatter(x=lrs, y=[p[3] for p in result.points], mode="lines",
                    name=f"smoothed (EMA {result.smoothing:g})")
    finite = [p[2] for p in result.points if math.isfinite(p[2])] or [0.0]
    span = [min(finite), max(finite)]
    for lr, label in ((result.steepest_lr, "steepest descent"),
                      (result.last_stable_lr, "last stable")):
        fig.add_scatter(x=[lr, lr], y=span, mode="lines", line={"dash": "dash"},
                        name=f"{label}: {lr:.2g}")
    fig.update_layout(title=f"LR range test: {result.stopped}", xaxis_title="learning rate",
                      yaxis_title="training loss", template="plotly_white")
    fig.update_xaxes(type="log")
    return fig


def save_plot(result: RangeTest, html_path: Path) -> tuple[Path, Path | None, str | None]:
    """Writes the HTML (plotly inlined, works offline) and, where kaleido can start a browser,
    a PNG beside it. Returns ``(html, png or None, why there is no PNG)``."""
    fig = figure(result)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(html_path, include_plotlyjs=True)
    png_path = html_path.with_suffix(".png")
    if "BROWSER_PATH" not in os.environ and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"  # kaleido 1.x drives a Chromium
    try:
        fig.write_image(png_path, width=900, height=500)
    except Exception as error:  # noqa: BLE001 - no kaleido or no browser: HTML only
        text = str(error).strip().splitlines()
        return html_path, None, f"no PNG ({type(error).__name__}: {text[0] if text else ''})"
    return html_path, png_path, None


def narrow_to_range_test(study: optuna.Study, plan: StudyPlan,
                         message: Callable[[str], None]) -> StudyPlan:
    """``--lr-bounds auto``: the study's stored range test, or a new one (under the study lock,
    so only one worker runs it); the plan's space searches base_lr within its bounds."""
    from lrsearch.storage import study_lock

    with study_lock(plan.storage_url, plan.name):
        stored = study.user_attrs.get(STUDY_ATTR)
        if stored is None:
            ctx = plan.context
            message("Running the LR range test for --lr-bounds auto ...")
            result = run_range_test(ctx.config, ctx.runs_dir / "lr-find", ctx.split_file,
                                    ctx.runtime, min_lr=MIN_LR, max_lr=MAX_LR,
                                    iterations=ITERATIONS, smoothing=SMOOTHING)
            study.set_user_attr(STUDY_ATTR, result.to_dict())
            save_plot(result, ctx.runs_dir / "lr-find" / "lr_find.html")
        else:
            result = RangeTest.from_dict(stored)
    message(result.summary())
    space = dataclasses.replace(plan.space, base_lr=result.bounds)
    return dataclasses.replace(plan, space=space)
