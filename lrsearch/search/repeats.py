"""Finalist repeats and the verdict with uncertainty: pure arithmetic on stored Dice, no I/O.

One training run is one draw: the same schedule retrained on another seed lands elsewhere. So
the study's finalists (its top schedules) and its baselines are trained again on fresh seeds,
the same seed for every one of them in a repeat round (common random numbers: a seed that
happens to draw easy windows helps each of them alike), and each is judged by its **mean**
whole-volume Dice over its runs (the original is round 0, repeat ``j`` is round ``j``).

The leader against the user's config is a **paired** comparison: the differences of the two
schedules' Dice round by round, and a Student t-interval on their mean (``n - 1`` degrees of
freedom, ``n`` paired rounds). When that interval includes zero the study shows no measurable
gain at its budget and names no winner. With one paired round there is no interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FINALISTS = 3  # top searched schedules repeated (by the study's objective)
REPEATS = 2  # fresh seeds each finalist and baseline is trained on again
CONFIDENCE = 0.95  # of the paired interval

# verdict statuses
GAIN, NO_GAIN, CONFIG_LEADS, SINGLE_RUN = "gain", "no_measurable_gain", "config_leads", \
    "single_run"


def t_quantile(probability: float, freedom: int) -> float:
    """Student's t quantile (scipy's ``t.ppf``)."""
    from scipy.stats import t

    return float(t.ppf(probability, freedom))


@dataclass(frozen=True)
class Runs:
    """One schedule's runs: final whole-volume Dice by round (0: the original trial)."""

    trial: int  # the original trial's number
    dice: Mapping[int, float]  # round → final Dice
    schedule_text: str = ""
    label: str = ""  # "your config", "baseline poly"; "" for a searched schedule

    @property
    def runs(self) -> int:
        return len(self.dice)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.dice.values())

    @property
    def spread(self) -> float:
        """max − min of its runs' Dice (0 for one run)."""
        return max(self.dice.values()) - min(self.dice.values())

    def name(self) -> str:
        return f"trial {self.trial}{f' ({self.label})' if self.label else ''}"

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.trial, "label": self.label or None,
                "schedule_text": self.schedule_text, "runs": self.runs, "mean": self.mean,
                "spread": self.spread, "dice_by_round": {str(r): d for r, d in
                                                         sorted(self.dice.items())}}


@dataclass(frozen=True)
class Paired:
    """``a − b`` round by round over the rounds both ran, and the t-interval on the mean."""

    rounds: tuple[int, ...]
    differences: tuple[float, ...]
    interval: tuple[float, float] | None  # None with fewer than two paired rounds
    confidence: float = CONFIDENCE

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences)


def paired(a: Mapping[int, float], b: Mapping[int, float],
           confidence: float = CONFIDENCE) -> Paired | None:
    """The paired comparison of two schedules' runs; None when no round has both."""
    rounds = tuple(sorted(set(a) & set(b)))
    if not rounds:
        return None
    differences = tuple(a[r] - b[r] for r in rounds)
    interval = None
    if len(rounds) >= 2:
        mean = statistics.fmean(differences)
        half = t_quantile(0.5 + confidence / 2, len(rounds) - 1) * \
            statistics.stdev(differences) / math.sqrt(len(rounds))
        interval = (mean - half, mean + half)
    return Paired(rounds, differences, interval, confidence)


@dataclass(frozen=True)
class Verdict:
    """The candidates ranked by mean Dice, and the leader against the user's config."""

    ranked: tuple[Runs, ...]  # best mean first
    config: Runs
    status: str  # GAIN, NO_GAIN, CONFIG_LEADS or SINGLE_RUN
    comparison: Paired | None = None  # leader − config (None when the config leads)

    @property
    def leader(self) -> Runs:
        return self.ranked[0]

    @property
    def winner(self) -> Runs | None:
        """The schedule declared better than the config; None unless the gain is measurable
        (or, with one run each, the best single run, said to be one)."""
        return self.leader if self.status in (GAIN, SINGLE_RUN) else None

    @property
    def delta_mean(self) -> float:
        return self.leader.mean - self.config.mean

    def _interval_text(self) -> str:
        c = self.comparison
        if c is None or c.interval is None:
            return ""
        low, high = c.interval
        return (f"{c.confidence:.0%} paired t-interval [{low:+.4f}, {high:+.4f}] over "
                f"{len(c.rounds)} seed-paired rounds")

    def line(self) -> str:
        """The verdict for people, in one line."""
        lead, mine = self.leader, self.config
        means = (f"mean Dice {lead.mean:.4f} over {lead.runs} run{'s' * (lead.runs != 1)} "
                 f"vs your config's {mine.mean:.4f} over {mine.runs}")
        if self.status == CONFIG_LEADS:
            return (f"the best mean is your config: {mine.name()}, mean Dice {mine.mean:.4f} "
                    f"over {mine.runs} run{'s' * (mine.runs != 1)}; no other schedule's mean "
                    f"beats it")
        if self.status == NO_GAIN:
            return (f"no measurable gain over your config at this budget (highest mean: "
                    f"{lead.name()}, {means}; Δ {self.delta_mean:+.4f}, "
                    f"{self._interval_text()} includes 0)")
        if self.status == SINGLE_RUN:
            rounds = len(self.comparison.rounds) if self.comparison else 0
            return (f"{lead.name()} beats your config ({mine.name()}) by "
                    f"{self.delta_mean:+.4f} Dice ({means}); {rounds} seed-paired "
                    f"round{'s' * (rounds != 1)}: no interval (lrsearch confirm repeats the "
                    f"finalists and your config on fresh seeds)")
        return (f"{lead.name()} beats your config: {means}; Δ {self.delta_mean:+.4f}, "
                f"{self._interval_text()}")

    def to_json(self) -> dict[str, Any]:
        """``best --json``: ``finalists`` and the figures added to ``vs_baseline``."""
        c = self.comparison
        return {
            "finalists": [r.to_json() for r in self.ranked],
            "verdict": {"status": self.status, "winner": self.winner.trial if self.winner
                        else None, "line": self.line()},
            "vs_baseline": {
                "delta_dice_mean": self.delta_mean,
                "delta_dice_interval": list(c.interval) if c and c.interval else None,
                "interval_method": ("paired Student t over seed-paired rounds, "
                                    f"{CONFIDENCE:.0%}"),
                "paired_rounds": len(c.rounds) if c else 0,
                "runs": self.leader.runs, "mean": self.leader.mean,
                "spread": self.leader.spread,
                "baseline_runs": self.config.runs, "baseline_mean": self.config.mean,
                "baseline_spread": self.config.spread,
            },
        }


def decide(candidates: Sequence[Runs], config: Runs) -> Verdict:
    """Ranks ``candidates`` (the config among them or not) by mean Dice and compares the
    leader with ``config``: a gain only when the paired interval lies above zero."""
    pool = {r.trial: r for r in (*candidates, config)}
    ranked = tuple(sorted(pool.values(), key=lambda r: (-r.mean, r.trial)))
    lead = ranked[0]
    if lead.trial == config.trial:
        return Verdict(ranked, config, CONFIG_LEADS)
    comparison = paired(lead.dice, config.dice)
    if comparison is None or comparison.interval is None:
        return Verdict(ranked, config, SINGLE_RUN, comparison)
    status = GAIN if comparison.interval[0] > 0 else NO_GAIN
    return Verdict(ranked, config, status, comparison)
