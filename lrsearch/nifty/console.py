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


# --- why a child failed ---------------------------------------------------------------------

_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")
# An exception line as Python prints it: at column 0, a (dotted) class name, then ": message".
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*(?P<name>[A-Z]\w*(?:Error|Exception|Exit|"
                        r"Interrupt|Failure|Warning))(?::\s?(?P<message>.*))?$")
# Another exception named inside a message (TensorFlow wraps a py_func's error in its own).
_EMBEDDED = re.compile(r".*\b(?P<name>[A-Z]\w*(?:Error|Exception)): (?P<message>\S.*)$")
_OP_LOCATION = re.compile(r"^\s*\[\[.*\]\]\s*$")  # TensorFlow's "[[node …]]" lines


def _exception(line: str) -> str | None:
    """``Name: message`` of a Python exception line, the innermost one a message names."""
    match = _EXCEPTION.match(line)
    if match is None:
        return None
    name, message = match["name"], (match["message"] or "").strip()
    inner = _EMBEDDED.match(message)  # the last one named: the innermost
    if inner is not None:
        name, message = inner["name"], inner["message"].strip()
    return f"{name}: {message}" if message else name


class FailureTail:
    """Keeps what tells why a child failed: its last traceback chain (bounded) and last lines.

    A chain starts at ``Traceback (most recent call last):`` and goes on through Python's
    "During handling…"/"direct cause" separators; TensorFlow prints chains of thousands of
    lines, so only the chain's first and last ``limit`` lines are kept (the original cause is
    at its start). A training iteration after a traceback means it did not stop the child:
    :meth:`progressed` forgets it.
    """

    def __init__(self, limit: int = 2000, last: int = 30):
        self.limit, self.last = limit, last
        self.head: list[str] = []  # the chain's first lines
        self.rest: list[str] = []  # its lines after head, the last ``limit`` of them
        self.tail: list[str] = []  # the last lines of output, traceback or not
        self._separated = False  # a chain separator came since the last traceback line

    def feed(self, line: str) -> None:
        text = _ANSI.sub("", line).rstrip()
        self.tail = (self.tail + [text])[-self.last:]
        if text == _TRACEBACK and not self._separated:
            self.head, self.rest = [], []
        if text == _TRACEBACK:
            self._separated = False
        elif text in _CHAINED:
            self._separated = True
        if text == _TRACEBACK or self.head:
            if len(self.head) < self.limit:
                self.head.append(text)
            else:
                self.rest = (self.rest + [text])[-self.limit:]

    def progressed(self) -> None:
        self.head, self.rest = [], []

    @property
    def exception(self) -> str | None:
        """The original exception of the last traceback chain, if one was printed."""
        return failure_cause(self.head + self.rest)

    def cause(self) -> str | None:
        """The original exception of the last traceback chain, else the last error-like line."""
        return self.exception or _error_line(self.tail)


def failure_cause(lines) -> str | None:
    """The original cause in console ``lines`` that hold a Python traceback chain.

    In a chain the first exception is the original one; one that names an inner exception in
    its message (TensorFlow's ``UnknownError: … AssertionError: window size …``) gives the
    inner one. An exception without a message is passed over for one with a message.
    """
    found = []
    for line in lines:
        text = _ANSI.sub("", line).rstrip()
        exception = _exception(text) if text and not text[0].isspace() else None
        if exception is not None:
            found.append(exception)
    with_message = [e for e in found if ": " in e]
    return (with_message or found or [None])[0]


def _error_line(lines) -> str | None:
    """The last line that looks like an error, without TensorFlow's op locations."""
    for line in reversed(lines):
        text = line.strip()
        if text and not _OP_LOCATION.match(text) and \
                ("Error" in text or "error" in text or "CRITICAL" in text):
            return text[-300:]
    return None
