"""Study TOML → Optuna suggestions (define-by-run, conditional).

A study file lists the schedule families to search, the range of the one learning rate they all
share and, per family, the range of each of its parameters::

    [study]
    families = ["cosine", "step"]
    base_lr = [1e-5, 1e-1]          # log scale

    [cosine]
    eta_min_ratio = [0.0, 0.1]      # eta_min as a fraction of base_lr

    [step]
    step_frac = [0.1, 0.5]          # step_size as a fraction of the trial's iterations
    gamma = [0.1, 0.7]

A trial first draws ``family``, then ``base_lr``, then only that family's parameters, named
``<family>.<parameter>``. Those names are stored in the study and are permanent: a name keeps its
meaning and scale forever; a new meaning gets a new name. ``base_lr`` is one name across families
(the peak learning rate: ``max_lr`` for cyclic and one_cycle) so the sampler learns it once.
Positions in time are fractions of the trial's iterations, so one space fits any trial length,
and floor learning rates are ratios of ``base_lr``.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.errors import SpaceError
from lrsearch.search import repeats as repeat_maths
from lrsearch.search import schedules
from lrsearch.search.baselines import parse_baselines
from lrsearch.search.objectives import OBJECTIVES, parse_objective

if TYPE_CHECKING:
    import optuna

__all__ = ["FAMILY_NAMES", "OBJECTIVES", "OPTIMISERS", "PARAMS", "SearchSpace", "TrialSetup",
           "load_space", "parse_space"]

# NiftyNet 0.6.0's names (engine/application_factory.py SUPPORTED_OPTIMIZERS).
OPTIMISERS = ("adam", "gradientdescent", "momentum", "nesterov", "adagrad", "rmsprop")
OPTIMISER_PARAM = "optimiser"  # the Optuna parameter of a searched optimiser


@dataclass(frozen=True)
class _Param:
    """How one parameter is sampled: its kind, the interval its bounds must lie in, its scale."""

    kind: str  # "float", "int" or "choice"
    domain: str = ""  # e.g. "(0, 1]"
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[str, Any] | None = None  # (earlier parameter, value): sampled only then


def _float(domain: str, log: bool = False, when: tuple[str, Any] | None = None) -> _Param:
    return _Param("float", domain, log, when=when)


def _int(domain: str) -> _Param:
    return _Param("int", domain)


def _choice(*choices: Any, when: tuple[str, Any] | None = None) -> _Param:
    return _Param("choice", choices=choices, when=when)


_BASE_LR = _float("(0, inf)", log=True)

# Namespace → parameter → how it is sampled. The Optuna name is "<namespace>.<parameter>".
# Append only: changing a kind, scale or meaning here changes what a stored name means.
PARAMS: dict[str, dict[str, _Param]] = {
    "constant": {},
    "step": {"step_frac": _float("(0, 1]"), "gamma": _float("(0, 1]", log=True)},
    "multistep": {
        "first_frac": _float("(0, 1)"),  # first milestone; the others split the rest evenly
        "count": _int("[1, inf)"),
        "gamma": _float("(0, 1]", log=True),
    },
    "exponential": {"end_ratio": _float("(0, 1]", log=True)},  # lr at the end / base_lr
    "polynomial": {"power": _float("(0, inf)"), "end_ratio": _float("[0, 1]")},
    "cosine": {"eta_min_ratio": _float("[0, 1]")},
    "cosine_restarts": {
        "t0_frac": _float("(0, 1]"),
        "t_mult": _int("[1, inf)"),
        "eta_min_ratio": _float("[0, 1]"),
    },
    "cyclic": {
        "mode": _choice("triangular", "triangular2", "exp_range"),
        "lower_ratio": _float("(0, 1]", log=True),  # base_lr of the cycle / max_lr
        "step_frac": _float("(0, 1]"),  # half-cycle (step_size_up = step_size_down)
        # exp_range: amplitude left at the end of the trial
        "end_scale": _float("(0, 1]", log=True, when=("mode", "exp_range")),
    },
    "one_cycle": {
        "pct_start": _float("[0, 0.5]"),
        "anneal_strategy": _choice("cos", "linear"),
        "div_factor": _float("[1, inf)", log=True),
        "final_div_factor": _float("[1, inf)", log=True),
        "three_phase": _choice(False, True),
    },
    "warmup_stable_decay": {
        "warmup_frac": _float("[0, 1]"),
        "decay_frac": _float("(0, 1]"),
        "end_ratio": _float("[0, 1]"),
        "decay": _choice("linear", "cosine"),
    },
    "inverse_sqrt": {"warmup_frac": _float("[0, 1]")},
    "plateau": {
        "factor": _float("(0, 1)"),
        "patience": _int("[0, inf)"),  # validation evaluations
        "threshold": _float("(0, inf)", log=True),  # relative improvement that counts
        "cooldown": _int("[0, inf)"),
        "min_lr_ratio": _float("[0, 1]"),
    },
    # not a family: a linear warm-up put in front of the families that start at their peak
    "warmup": {
        "enabled": _choice(False, True),
        "iters_frac": _float("(0, 1)", when=("enabled", True)),
        "start_factor": _float("(0, 1]", log=True, when=("enabled", True)),
    },
}

FAMILY_NAMES = tuple(name for name in schedules.FAMILIES if name != "warmup")
# These start low on their own; a warm-up in front of them would be a second one.
_OWN_WARMUP = frozenset({"cyclic", "one_cycle", "warmup_stable_decay", "inverse_sqrt"})


def _iters(fraction: float, total: int) -> int:
    return max(1, round(fraction * total))


def _multistep(lr: float, v: Mapping[str, Any], n: int) -> schedules.Schedule:
    first, count = v["first_frac"], v["count"]
    fractions = [first + (1.0 - first) * k / count for k in range(count)]
    milestones = tuple(sorted({_iters(f, n) for f in fractions}))
    return schedules.MultiStep(lr, milestones=milestones, gamma=v["gamma"])


def _cyclic(lr: float, v: Mapping[str, Any], n: int) -> schedules.Schedule:
    half = _iters(v["step_frac"], n)
    gamma = v["end_scale"] ** (1.0 / n) if v["mode"] == "exp_range" else 1.0
    return schedules.Cyclic(lr * v["lower_ratio"], max_lr=lr, step_size_up=half,
                            step_size_down=half, mode=v["mode"], gamma=gamma)


def _warmup_stable_decay(lr: float, v: Mapping[str, Any], n: int) -> schedules.Schedule:
    decay_start = n - _iters(v["decay_frac"], n)
    warmup = min(round(v["warmup_frac"] * n), decay_start)
    return schedules.WarmupStableDecay(lr, warmup_iters=warmup, decay_start=decay_start,
                                       total_iters=n, end_lr=lr * v["end_ratio"],
                                       decay=v["decay"])


# family → (base_lr, sampled values by short name, iterations) → schedule
_BUILD: dict[str, Callable[[float, Mapping[str, Any], int], schedules.Schedule]] = {
    "constant": lambda lr, v, n: schedules.Constant(lr),
    "step": lambda lr, v, n: schedules.Step(lr, _iters(v["step_frac"], n), v["gamma"]),
    "multistep": _multistep,
    "exponential": lambda lr, v, n: schedules.Exponential(lr, v["end_ratio"] ** (1.0 / n)),
    "polynomial": lambda lr, v, n: schedules.Polynomial(
        lr, total_iters=n, power=v["power"], end_lr=lr * v["end_ratio"]),
    "cosine": lambda lr, v, n: schedules.Cosine(lr, total_iters=n,
                                                eta_min=lr * v["eta_min_ratio"]),
    "cosine_restarts": lambda lr, v, n: schedules.CosineRestarts(
        lr, t_0=_iters(v["t0_frac"], n), t_mult=v["t_mult"], eta_min=lr * v["eta_min_ratio"]),
    "cyclic": _cyclic,
    "one_cycle": lambda lr, v, n: schedules.OneCycle(
        lr, total_steps=n, pct_start=v["pct_start"], anneal_strategy=v["anneal_strategy"],
        div_factor=v["div_factor"], final_div_factor=v["final_div_factor"],
        three_phase=v["three_phase"]),
    "warmup_stable_decay": _warmup_stable_decay,
    "inverse_sqrt": lambda lr, v, n: schedules.InverseSqrt(lr, round(v["warmup_frac"] * n)),
    "plateau": lambda lr, v, n: schedules.Plateau(
        lr, factor=v["factor"], patience=v["patience"], threshold=v["threshold"],
        cooldown=v["cooldown"], min_lr=lr * v["min_lr_ratio"]),
}


@dataclass(frozen=True)
class TrialSetup:
    """What a trial trains with. ``optimiser`` None: keep the one the NiftyNet config names.
    ``baseline``: the baseline's name (lrsearch.search.baselines) when the schedule was not
    sampled; ``repeat_of``: the trial a finalist repeat retrains. Neither is ever pruned."""

    schedule: schedules.Schedule
    optimiser: str | None = None
    baseline: str | None = None
    repeat_of: int | None = None

    @property
    def prunable(self) -> bool:
        return self.baseline is None and self.repeat_of is None


@dataclass(frozen=True)
class SearchSpace:
    """A validated study definition; build it with :func:`load_space` or :func:`parse_space`.

    ``ranges`` maps each permanent parameter name (``"step.gamma"``, ``"warmup.iters_frac"``)
    to ``(low, high)`` or, for a categorical parameter, to its choices. Warm-up is searched when
    the ``warmup.*`` names are present.
    """

    families: tuple[str, ...]
    base_lr: tuple[float, float]
    ranges: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    optimisers: tuple[str, ...] = ()
    max_iter: int | None = None  # iterations per trial; None: the NiftyNet config's max_iter
    runtime: str = "tf2"
    objective: str = "final_dice"
    baselines: tuple[str, ...] | None = None  # lrsearch.search.baselines; None: not given
    # finalist repeats (lrsearch.search.repeats): top schedules repeated, fresh seeds each
    finalists: int = repeat_maths.FINALISTS
    repeats: int = repeat_maths.REPEATS
    # Pruning (see lrsearch.search.strategy.make_pruner): which rule, the share of a trial's
    # iterations during which it is never pruned (asha, hyperband, top_k_rung: the first rung),
    # complete trials before any pruning (median, curve), the share of trials kept at each rung
    # (asha, hyperband, top_k_rung: 1 / reduction_factor), how many standard deviations a
    # forecast must fall short by (curve), how many trials go on from the rung (top_k_rung;
    # None: the share), whether a trial still warming up at the rung is judged only once it has
    # warmed up (top_k_rung; SearchSpace.warmed_up), how many trials must have reached the rung
    # before any goes on (top_k_rung; the others are held and continued). A space without a
    # [pruner] table gets studies/default.toml's choice.
    pruner: str = "top_k_rung"
    pruner_startup_trials: int = 5
    pruner_warmup_fraction: float = 0.05
    pruner_reduction_factor: int = 3
    pruner_sigmas: float = 1.0
    pruner_top_k: int | None = 2
    pruner_after_warmup: bool = False  # top_k_rung: judge a trial still warming up once warmed up
    pruner_hold_until: int = 0  # top_k_rung: trials at the rung before any goes on (0: none)

    def suggest(self, trial: optuna.trial.BaseTrial, total_iters: int) -> TrialSetup:
        """Draw one schedule (and optimiser) for a trial of ``total_iters`` iterations."""
        if isinstance(total_iters, bool) or not isinstance(total_iters, int) or total_iters < 1:
            raise ValueError(f"total_iters must be a positive integer, but got {total_iters!r}")
        family = trial.suggest_categorical("family", self.families)
        base_lr = trial.suggest_float("base_lr", *self.base_lr, log=True)
        values = self._suggest_namespace(trial, family)
        warmup: Mapping[str, Any] = {}
        if family not in _OWN_WARMUP and "warmup.enabled" in self.ranges:
            warmup = self._suggest_namespace(trial, "warmup")
        warmup_iters = 0
        if warmup.get("enabled"):
            warmup_iters = min(_iters(warmup["iters_frac"], total_iters), total_iters - 1)
        schedule = _BUILD[family](base_lr, values, total_iters - warmup_iters)
        if warmup_iters:
            schedule = schedules.Warmup(schedule, warmup_iters, warmup["start_factor"])
        optimiser = None
        if self.optimisers:
            optimiser = trial.suggest_categorical(OPTIMISER_PARAM, self.optimisers)
        return TrialSetup(schedule, optimiser)

    def warmed_up(self, trial: optuna.trial.FrozenTrial, total_iters: int) -> int:
        """How many updates ``trial``'s schedule makes before its first at its highest learning
        rate: 0 for a schedule that starts at its peak; the length of a warm-up, of one-cycle's
        rise or of a cyclic schedule's first half-cycle otherwise. Reads the trial's stored
        parameters."""
        schedule = self.suggest(trial, total_iters).schedule
        rates = [schedule.lr(i) for i in range(total_iters)]
        return rates.index(max(rates))

    def _suggest_namespace(self, trial: optuna.trial.BaseTrial,
                           namespace: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, param in PARAMS[namespace].items():
            if param.when is not None and values[param.when[0]] != param.when[1]:
                continue
            key = f"{namespace}.{name}"
            bounds = self.ranges[key]
            if param.kind == "float":
                values[name] = trial.suggest_float(key, *bounds, log=param.log)
            elif param.kind == "int":
                values[name] = trial.suggest_int(key, *bounds)
            else:
                values[name] = trial.suggest_categorical(key, bounds)
        return values


# --- loading -----------------------------------------------------------------------------------

_STUDY_KEYS = ("families", "base_lr", "optimisers", "max_iter", "runtime", "objective",
               "baselines", "finalists", "repeats")
OWN_KIND_WARMUP = 0.25  # warmup_fraction of a [pruner] table that names its kind but not this

_PRUNER_KEYS = ("kind", "startup_trials", "warmup_fraction", "reduction_factor", "sigmas",
                "top_k", "after_warmup", "hold_until")
# lrsearch.search.strategy.make_pruner builds each
PRUNERS = ("asha", "hyperband", "median", "curve", "top_k_rung", "none")


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a study TOML. Every mistake is a SpaceError naming file and key."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            doc = tomllib.load(handle)
    except FileNotFoundError:
        raise SpaceError(f"{source}: no such study file") from None
    except tomllib.TOMLDecodeError as exc:  # the message carries line and column
        raise SpaceError(f"{source}: invalid TOML: {exc}") from None
    return parse_space(doc, source)


def parse_space(doc: Mapping[str, Any], source: str = "<space>") -> SearchSpace:
    """Validate a parsed study document (the TOML's tables as dicts)."""

    def fail(message: str) -> SpaceError:
        return SpaceError(f"{source}: {message}")

    tables = ("study", "pruner", *PARAMS)
    for name, value in doc.items():
        if not isinstance(value, Mapping):
            raise fail(f"unknown top-level key {name!r}: settings go in a table such as [study]")
        if name not in tables:
            raise fail(f"unknown table [{name}]{_hint(name, tables, '[{}]')}")
    if "study" not in doc:
        raise fail("missing table [study] (with families and base_lr)")
    study = doc["study"]
    _check_keys(study, "study", _STUDY_KEYS, ("families", "base_lr"), fail)

    families = _names(study["families"], "families", FAMILY_NAMES, fail)
    optimisers = _names(study.get("optimisers", []), "optimisers", OPTIMISERS, fail,
                        allow_empty=True)
    base_lr = _bounds(study["base_lr"], _BASE_LR, "[study] base_lr", fail)
    max_iter = study.get("max_iter")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, int)
                                 or max_iter < 1):
        raise fail(f"[study] max_iter must be a positive integer, but got {max_iter!r}")
    runtime = _one_of(study.get("runtime", "tf2"), "runtime", RUNTIMES, fail)
    try:  # canonical spelling: "iters_to:0.90" is stored as "iters_to:0.9"
        objective = parse_objective(study.get("objective", "final_dice")).name
    except ValueError as error:
        raise fail(f"[study] {error}") from None
    baselines = study.get("baselines")
    if baselines is not None:
        if not isinstance(baselines, list):
            raise fail(f"[study] baselines must be a list of names such as [\"config\", "
                       f"\"poly\"] ([] for none), but got {baselines!r}")
        try:
            baselines = parse_baselines(baselines, "[study] baselines")
        except ValueError as error:
            raise fail(str(error)) from None

    counts = {}
    for key, least in (("finalists", 1), ("repeats", 0)):
        value = study.get(key, getattr(SearchSpace, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise fail(f"[study] {key} must be an integer >= {least}, but got {value!r}")
        counts[key] = value

    pruner = doc.get("pruner", {})
    _check_keys(pruner, "pruner", _PRUNER_KEYS, (), fail)
    kind = _one_of(pruner.get("kind", SearchSpace.pruner), "kind", PRUNERS, fail, "pruner")
    factor = pruner.get("reduction_factor", SearchSpace.pruner_reduction_factor)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise fail(f"[pruner] reduction_factor must be an integer >= 2, but got {factor!r}")
    startup = pruner.get("startup_trials", SearchSpace.pruner_startup_trials)
    if isinstance(startup, bool) or not isinstance(startup, int) or startup < 0:
        raise fail(f"[pruner] startup_trials must be a non-negative integer, but got {startup!r}")
    # the default rule's warm-up and top_k go with it: a table naming its own kind keeps the
    # first quarter of a trial unjudged and, for top_k_rung, the share (1 / reduction_factor)
    own = "kind" in pruner
    warmup_fraction = pruner.get("warmup_fraction",
                                 OWN_KIND_WARMUP if own else SearchSpace.pruner_warmup_fraction)
    if isinstance(warmup_fraction, bool) or not isinstance(warmup_fraction, (int, float)) \
            or not 0 <= warmup_fraction <= 1:
        raise fail(f"[pruner] warmup_fraction must be in [0, 1], but got {warmup_fraction!r}")
    sigmas = pruner.get("sigmas", SearchSpace.pruner_sigmas)
    if isinstance(sigmas, bool) or not isinstance(sigmas, (int, float)) or not sigmas >= 0:
        raise fail(f"[pruner] sigmas must be a number >= 0, but got {sigmas!r}")
    top_k = pruner.get("top_k", None if own else SearchSpace.pruner_top_k)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise fail(f"[pruner] top_k must be a positive integer, but got {top_k!r}")
    after_warmup = pruner.get("after_warmup",
                              False if own else SearchSpace.pruner_after_warmup)
    if not isinstance(after_warmup, bool):
        raise fail(f"[pruner] after_warmup must be true or false, but got {after_warmup!r}")
    hold_until = pruner.get("hold_until", 0 if own else SearchSpace.pruner_hold_until)
    if isinstance(hold_until, bool) or not isinstance(hold_until, int) or hold_until < 0:
        raise fail(f"[pruner] hold_until must be a non-negative integer, but got {hold_until!r}")
    for key in ("after_warmup", "hold_until"):
        if pruner.get(key) and kind != "top_k_rung":
            raise fail(f"[pruner] {key} is a top_k_rung option, but kind is {kind!r}: "
                       f"remove it or set kind = \"top_k_rung\"")

    ranges: dict[str, tuple[Any, ...]] = {}
    for namespace, params in PARAMS.items():
        if namespace not in doc:
            if namespace in families and params:
                raise fail(f"missing table [{namespace}] for family {namespace!r} "
                           f"listed in [study] families")
            continue
        table = doc[namespace]
        _check_keys(table, namespace, tuple(params), tuple(params), fail)
        for name, param in params.items():
            where = f"[{namespace}] {name}"
            ranges[f"{namespace}.{name}"] = _bounds(table[name], param, where, fail)
    return SearchSpace(families=families, base_lr=base_lr, ranges=ranges,
                       optimisers=optimisers, max_iter=max_iter, runtime=runtime,
                       objective=objective, baselines=baselines, **counts, pruner=kind,
                       pruner_startup_trials=startup,
                       pruner_warmup_fraction=float(warmup_fraction),
                       pruner_reduction_factor=factor, pruner_sigmas=float(sigmas),
                       pruner_top_k=top_k, pruner_after_warmup=after_warmup,
                       pruner_hold_until=hold_until)


def _hint(word: str, options: Sequence[str], form: str = "{!r}") -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    if close:
        return f" (did you mean {form.format(close[0])}?)"
    return f" (valid: {', '.join(form.format(o) for o in options)})"


def _check_keys(table: Mapping[str, Any], name: str, valid: Sequence[str],
                required: Sequence[str], fail: Callable[[str], SpaceError]) -> None:
    for key in table:
        if key not in valid:
            raise fail(f"unknown key {key!r} in [{name}]{_hint(key, valid)}")
    for key in required:
        if key not in table:
            raise fail(f"missing key {key!r} in [{name}]")


def _one_of(value: Any, key: str, valid: Sequence[str],
            fail: Callable[[str], SpaceError], table: str = "study") -> str:
    if value not in valid:
        raise fail(f"[{table}] {key} must be one of {', '.join(map(repr, valid))}, "
                   f"but got {value!r}{_hint(str(value), valid)}")
    return value


def _names(value: Any, key: str, valid: Sequence[str], fail: Callable[[str], SpaceError],
           allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not (value or allow_empty):
        raise fail(f"[study] {key} must be a non-empty list of names, but got {value!r}")
    for name in value:
        if name not in valid:
            extra = ": warm-up is the [warmup] table" if name == "warmup" else ""
            raise fail(f"[study] {key}: unknown name {name!r}{extra}{_hint(str(name), valid)}")
    if len(set(value)) != len(value):
        raise fail(f"[study] {key} must not repeat a name, but got {value!r}")
    return tuple(value)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # TOML's 1 is not true


def _inside(value: float, domain: str) -> bool:
    low, high = (float(bound) for bound in domain[1:-1].split(","))
    above = value > low if domain[0] == "(" else value >= low
    below = value < high if domain[-1] == ")" else value <= high
    return above and below


def _bounds(value: Any, param: _Param, where: str,
            fail: Callable[[str], SpaceError]) -> tuple[Any, ...]:
    """A TOML value → Optuna bounds: ``(low, high)``, or the choices of a categorical."""
    if param.kind == "choice":
        listed = ", ".join(repr(c) for c in param.choices)
        if not isinstance(value, list) or not value:
            raise fail(f"{where} must be a non-empty list of choices from {listed}, "
                       f"but got {value!r}")
        for choice in value:
            if not any(_same(choice, c) for c in param.choices):
                raise fail(f"{where}: unknown choice {choice!r} (valid: {listed})")
        if len(set(value)) != len(value):
            raise fail(f"{where} must not repeat a choice, but got {value!r}")
        return tuple(value)
    kinds: tuple[type, ...] = (int,) if param.kind == "int" else (int, float)
    if (not isinstance(value, list) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, kinds) for v in value)):
        what = "integers" if param.kind == "int" else "numbers"
        raise fail(f"{where} must be [low, high] of {what}, but got {value!r}")
    low, high = value
    if param.log and low <= 0:
        raise fail(f"{where} is searched on a log scale, so its bounds must be positive, "
                   f"but got {value!r}")
    if not (_inside(low, param.domain) and _inside(high, param.domain)):
        raise fail(f"{where} must lie within {param.domain}, but got {value!r}")
    if low > high:
        raise fail(f"{where} must have low <= high, but got {value!r}")
    if param.kind == "int":
        return (low, high)
    return (float(low), float(high))


RUNTIMES = ("tf2", "tf1")
