"""Parse NiftyNet's console stream into events.

NiftyNet prints one line per iteration through TF logging, e.g.::

    \x1b[1mINFO:niftynet:\x1b[0m training iter 4, total_loss=0.5556, lr=0.001 (0.137380s)
    \x1b[1mINFO:niftynet:\x1b[0m     validation iter 4, total_loss=0.3962, dice_fg=0.61 (0.04s)

(``engine/application_iteration.py``: ``"{} iter {}, {} ({:3f}s)"``; the file log has a timestamp
where the console has the bold ``INFO:niftynet:`` prefix). Validation runs
``validation_max_iter`` times after training iteration N, every line carrying the same N.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ITERATION = re.compile(
    r"(?P<phase>training|validation) iter (?P<iter>\d+), (?P<vars>.*) "
    r"\((?P<secs>[0-9.eE+-]+)s\)\s*$"
)
_VARIABLE = re.compile(r"([A-Za-z_][\w/.-]*)=([^,]+?)(?:,\s*|$)")


@dataclass(frozen=True)
class IterationLine:
    """One iteration line: phase (training|validation), NiftyNet's iteration, variables."""

    phase: str
    iteration: int
    values: dict[str, float]
    seconds: float

    @property
    def diverged(self) -> bool:
        return any(math.isnan(v) or math.isinf(v) for v in self.values.values())


def _number(text: str) -> float:
    text = text.strip().strip("[]")
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_line(line: str) -> IterationLine | None:
    """The iteration event on this console or log line, or None for any other line."""
    match = _ITERATION.search(_ANSI.sub("", line))
    if match is None:
        return None
    values = {name: _number(value) for name, value in _VARIABLE.findall(match["vars"])}
    return IterationLine(match["phase"], int(match["iter"]), values, float(match["secs"]))


class ValidationRounds:
    """Groups validation lines into one mean value per iteration (a validation round).

    A round is complete once a line of another iteration (or another phase) arrives, or when
    :meth:`close` is called at the end of the stream.
    """

    def __init__(self, metric: str):
        self.metric = metric
        self._iteration: int | None = None
        self._values: list[float] = []

    def feed(self, event: IterationLine) -> tuple[int, float] | None:
        """Returns ``(iteration, mean metric)`` when this event completes a round."""
        done = None
        if self._iteration is not None and (
            event.phase != "validation" or event.iteration != self._iteration
        ):
            done = self.close()
        if event.phase == "validation" and self.metric in event.values:
            self._iteration = event.iteration
            self._values.append(event.values[self.metric])
        return done

    def close(self) -> tuple[int, float] | None:
        if self._iteration is None or not self._values:
            return None
        round_ = (self._iteration, sum(self._values) / len(self._values))
        self._iteration, self._values = None, []
        return round_
