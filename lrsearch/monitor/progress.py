"""Live progress of a study on the terminal.

Finished trials get one permanent line in Optuna's own wording ("Trial 3 finished with value:
… Best is trial 1 with value: …"); on a terminal a status line below them is rewritten in place
(trials complete/pruned/failed, best Dice, the running trial's iteration and last Dice).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

QUIET, NORMAL, VERBOSE = 0, 1, 2


class Progress:
    def __init__(self, total: int, verbosity: int = NORMAL, stream: TextIO | None = None):
        self.total = total
        self.verbosity = verbosity
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() and verbosity >= NORMAL
        self.counts = {"complete": 0, "pruned": 0, "failed": 0}
        self.best: tuple[int, float] | None = None
        self.current: dict[int, dict[str, object]] = {}  # running trials by number
        self.labels: dict[int, str] = {}  # baselines by number: "your config", ...
        self._lock = threading.RLock()  # trials of several slots report from their threads
        self._status_shown = False
        self._last_draw = 0.0

    # study-level events
    def study_loaded(self, name: str, storage: str, counts: dict[str, int],
                     best: tuple[int, float] | None) -> None:
        self.counts.update(counts)
        self.best = best
        done = sum(counts.values())
        self._print(f"Study '{name}' in {storage}: {done} of {self.total} trials finished"
                    + (f", best is trial {best[0]} with value: {best[1]:.4f}" if best else ""))

    def trial_started(self, number: int, description: str, label: str = "") -> None:
        """``label``: a baseline's name for people ("your config"), shown with its number."""
        with self._lock:
            self.current[number] = {"number": number, "text": description, "iteration": 0,
                                    "dice": None}
            if label:
                self.labels[number] = label
        if self.verbosity >= VERBOSE or not self.live:
            self._print(f"{self._trial(number)} started: {description}")
        self._draw(force=True)

    def trial_finished(self, number: int, state: str, value: float | None, reason: str = "",
                       params: dict | None = None, label: str = "", ranked: bool = True
                       ) -> None:
        """``ranked``: False for a finalist repeat, which never becomes the study's best (the
        winner is declared on means once repeats are in)."""
        with self._lock:
            if label:
                self.labels[number] = label
            self._finished(number, state, value, reason, params, ranked)

    def _trial(self, number: int, word: str = "Trial") -> str:
        """"Trial 3", or "Trial 0 (your config)" for a baseline."""
        label = self.labels.get(number)
        return f"{word} {number} ({label})" if label else f"{word} {number}"

    def _finished(self, number, state, value, reason, params, ranked=True) -> None:
        self.counts[state] = self.counts.get(state, 0) + 1
        improved = self.best is None or (value is not None and value > self.best[1])
        if state == "complete" and value is not None and improved and ranked:
            self.best = (number, value)
        best = (f" Best is {self._trial(self.best[0], 'trial')} with value: {self.best[1]:.4f}."
                if self.best else "")
        name = self._trial(number)
        if state == "complete":
            # a baseline samples no parameters: its schedule says what it ran
            shown = (f"schedule: {self.current.get(number, {}).get('text', '?')}"
                     if number in self.labels else f"parameters: {params or {}}")
            self._print(f"{name} finished with value: {value:.4f} and {shown}.{best}")
        elif state == "pruned":
            self._print(f"{name} pruned. {reason}")
        else:
            self._print(f"{name} failed: {reason}")
        with self._lock:
            self.current.pop(number, None)

    def message(self, text: str) -> None:
        self._print(text)

    # trial-level events (the trial runner's Observer)
    def trial_iteration(self, number: int, iteration: int, max_iter: int) -> None:
        with self._lock:
            self.current.setdefault(number, {"number": number}).update(
                iteration=iteration, max_iter=max_iter)
        self._draw()

    def trial_validation(self, number: int, iteration: int, dice: float) -> None:
        with self._lock:
            self.current.setdefault(number, {"number": number})["dice"] = dice
        if self.verbosity >= VERBOSE:
            self._print(f"  trial {number} iteration {iteration}: validation Dice {dice:.4f}")
        self._draw(force=True)

    def trial_line(self, number: int, line: str) -> None:
        if self.verbosity > VERBOSE:
            self._print(line.rstrip())

    def close(self) -> None:
        self._clear()

    # drawing
    def status(self) -> str:
        c = self.counts
        done = c["complete"] + c["pruned"] + c["failed"]
        parts = [f"{done}/{self.total} trials ({c['complete']} complete, {c['pruned']} pruned, "
                 f"{c['failed']} failed)"]
        parts.append(f"best Dice {self.best[1]:.4f} ({self._trial(self.best[0], 'trial')})"
                     if self.best
                     else "best Dice -")
        with self._lock:
            running = [self.current[n] for n in sorted(self.current)]
        for cur in running:
            text = (f"trial {cur['number']}: "
                    f"iter {cur.get('iteration', 0)}/{cur.get('max_iter', '?')}")
            if cur.get("dice") is not None:
                text += f", Dice {cur['dice']:.3f}"
            parts.append(text)
        return " | ".join(parts)

    def _draw(self, force: bool = False) -> None:
        if not self.live:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_draw < 0.2:
                return
            self._last_draw = now
            self.stream.write("\r\x1b[2K" + self.status())
            self.stream.flush()
            self._status_shown = True

    def _clear(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._status_shown = False

    def _print(self, text: str) -> None:
        if self.verbosity < NORMAL:
            return
        with self._lock:
            self._clear()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.stream.write(f"[I {stamp}] {text}\n")
            self.stream.flush()
            self._draw(force=True)
