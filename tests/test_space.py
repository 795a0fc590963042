"""Study TOML → Optuna: real in-memory studies over the shipped spaces, and every refusal."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from lrsearch.errors import SpaceError
from lrsearch.search import schedules
from lrsearch.search.space import PARAMS, SearchSpace, TrialSetup, load_space

STUDIES = Path(__file__).resolve().parents[1] / "studies"
SHARED = {"family", "base_lr", "optimiser"}
# families that carry their own warm-up are never wrapped
OWN_WARMUP = {"cyclic", "one_cycle", "warmup_stable_decay", "inverse_sqrt"}
LENGTHS = (1, 2, 3, 10, 1000)  # trial lengths, rounding edge cases included

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def default_space() -> SearchSpace:
    return load_space(STUDIES / "default.toml")


def test_default_space_covers_every_family(default_space):
    assert set(default_space.families) == set(schedules.FAMILIES) - {"warmup"}
    assert default_space.base_lr == (1e-5, 1e-1)
    assert default_space.optimisers == ("adam",)
    assert (default_space.runtime, default_space.objective) == ("tf2", "final_dice")
    assert default_space.max_iter is None
    every_name = {f"{ns}.{name}" for ns, params in PARAMS.items() for name in params}
    assert set(default_space.ranges) == every_name


def test_default_pruner_is_one_short_rung_keeping_the_top_two():
    from lrsearch.search.pruners import TopKRungPruner
    from lrsearch.search.strategy import make_pruner

    space = load_space(STUDIES / "default.toml")
    assert (space.pruner, space.pruner_warmup_fraction, space.pruner_top_k) == \
        ("top_k_rung", 0.05, 2)
    pruner = make_pruner(200, space.pruner_startup_trials, space.pruner_warmup_fraction,
                         space.pruner, space.pruner_reduction_factor, space.pruner_sigmas,
                         space.pruner_top_k)
    assert isinstance(pruner, TopKRungPruner)
    # the rung is iteration 10 of 200: a trial goes on only among the best two of all trials
    # that reached it, and is never judged again after it
    study = optuna.create_study(direction="maximize", pruner=pruner)
    decisions = {}
    for number, dice in enumerate([0.9, 0.5, 0.95, 0.4, 0.3, 0.2, 0.85, 0.97]):
        trial = study.ask()
        trial.report(dice, 5)
        early = trial.should_prune()
        trial.report(dice, 10)
        pruned = trial.should_prune()
        trial.report(0.0, 100)  # a collapse after the rung is not judged
        later = trial.should_prune()
        decisions[number] = (early, pruned, later)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED) if pruned else \
            study.tell(trial, dice)
    assert not any(early or later for early, _, later in decisions.values())
    kept = [n for n, (_, pruned, _) in decisions.items() if not pruned]
    assert kept == [0, 1, 2, 7]  # each among the best two at iteration 10 when it got there
    assert isinstance(make_pruner(200, kind="asha"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(200, kind="median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner(200, kind="none"), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="unknown pruner kind 'hyperbnd'"):
        make_pruner(200, kind="hyperbnd")


def test_tiny_space_is_small():
    tiny = load_space(STUDIES / "tiny.toml")
    assert set(tiny.families) == {"constant", "cosine", "step"}
    assert tiny.max_iter is not None and tiny.max_iter <= 50
    assert not any(name.startswith("warmup.") for name in tiny.ranges)


def run_study(space: SearchSpace, sampler: optuna.samplers.BaseSampler, n_trials: int):
    setups: dict[int, tuple[int, TrialSetup]] = {}

    def objective(trial: optuna.Trial) -> float:
        total = LENGTHS[trial.number % len(LENGTHS)]
        setup = space.suggest(trial, total)
        setups[trial.number] = (total, setup)
        return abs(math.log10(trial.params["base_lr"]) + 3)  # something for TPE to learn

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return study, setups


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("make_sampler", [
    lambda: optuna.samplers.RandomSampler(seed=1),
    lambda: optuna.samplers.TPESampler(seed=1, multivariate=True, group=True),
], ids=["random", "tpe-multivariate-group"])
def test_study_draws_conditional_namespaced_parameters(default_space, make_sampler):
    study, setups = run_study(default_space, make_sampler(), n_trials=200)
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 200
    assert {t.params["family"] for t in trials} == set(default_space.families)
    wrapped = 0
    for trial in trials:
        family = trial.params["family"]
        own = {name for name in trial.params if name not in SHARED}
        allowed = {f"{family}.{name}" for name in PARAMS[family]}
        if family not in OWN_WARMUP:
            allowed |= {f"warmup.{name}" for name in PARAMS["warmup"]}
        assert own <= allowed, (family, own - allowed)
        assert trial.params["optimiser"] == "adam"

        total, setup = setups[trial.number]
        schedule = setup.schedule
        inner = schedule.schedule if isinstance(schedule, schedules.Warmup) else schedule
        assert inner.family == family
        peak = inner.max_lr if family == "cyclic" else schedule.base_lr  # PyTorch's naming
        assert peak == pytest.approx(trial.params["base_lr"])
        assert isinstance(schedule, schedules.Warmup) == (
            trial.params.get("warmup.enabled", False) and total > 1)
        wrapped += isinstance(schedule, schedules.Warmup)
        for iteration, lr in schedules.curve(schedule, total):
            assert math.isfinite(lr) and lr > 0, (schedule, iteration, lr)
        assert schedules.from_dict(schedule.to_dict()) == schedule
    assert wrapped > 0


def test_parameter_names_keep_one_distribution_across_trials(default_space):
    study, _ = run_study(default_space, optuna.samplers.RandomSampler(seed=2), n_trials=150)
    seen: dict[str, optuna.distributions.BaseDistribution] = {}
    for trial in study.trials:
        for name, distribution in trial.distributions.items():
            assert seen.setdefault(name, distribution) == distribution, name
    assert seen["base_lr"] == optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)


def test_conditional_parameter_only_with_its_condition(default_space):
    study, _ = run_study(default_space, optuna.samplers.RandomSampler(seed=3), n_trials=300)
    for trial in study.trials:
        if trial.params["family"] == "cyclic":
            assert ("cyclic.end_scale" in trial.params) == (
                trial.params["cyclic.mode"] == "exp_range")
        if "warmup.enabled" in trial.params:
            assert ("warmup.iters_frac" in trial.params) == trial.params["warmup.enabled"]


def test_fractions_become_absolute_iterations(default_space):
    trial = optuna.trial.FixedTrial({"family": "step", "base_lr": 1e-3, "step.step_frac": 0.25,
                                     "step.gamma": 0.5, "warmup.enabled": False,
                                     "optimiser": "adam"})
    assert default_space.suggest(trial, 1000) == TrialSetup(schedules.Step(1e-3, 250, 0.5),
                                                            "adam")
    trial = optuna.trial.FixedTrial({"family": "cosine", "base_lr": 1e-3,
                                     "cosine.eta_min_ratio": 0.1, "warmup.enabled": True,
                                     "warmup.iters_frac": 0.1, "warmup.start_factor": 0.01,
                                     "optimiser": "adam"})
    expected = schedules.Warmup(schedules.Cosine(1e-3, total_iters=900, eta_min=1e-4),
                                warmup_iters=100, start_factor=0.01)
    assert default_space.suggest(trial, 1000).schedule == expected


def test_base_lr_is_the_peak_of_cyclic_and_one_cycle(default_space):
    trial = optuna.trial.FixedTrial({
        "family": "cyclic", "base_lr": 1e-3, "cyclic.mode": "exp_range",
        "cyclic.lower_ratio": 0.1, "cyclic.step_frac": 0.1, "cyclic.end_scale": 0.5,
        "optimiser": "adam"})
    cyclic = default_space.suggest(trial, 1000).schedule
    assert (cyclic.base_lr, cyclic.max_lr, cyclic.step_size_up) == (pytest.approx(1e-4), 1e-3,
                                                                     100)
    assert cyclic.gamma ** 1000 == pytest.approx(0.5)
    trial = optuna.trial.FixedTrial({
        "family": "one_cycle", "base_lr": 1e-3, "one_cycle.pct_start": 0.3,
        "one_cycle.anneal_strategy": "cos", "one_cycle.div_factor": 25.0,
        "one_cycle.final_div_factor": 1e4, "one_cycle.three_phase": False, "optimiser": "adam"})
    assert default_space.suggest(trial, 1000).schedule == schedules.OneCycle(1e-3, 1000)


def test_without_optimisers_the_config_keeps_its_own(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[study]\nfamilies = ["constant"]\nbase_lr = [1e-4, 1e-2]\n')
    space = load_space(path)
    setup = space.suggest(optuna.trial.FixedTrial({"family": "constant", "base_lr": 1e-3}), 10)
    assert setup == TrialSetup(schedules.Constant(1e-3), None)


def test_suggest_refuses_an_empty_trial(default_space):
    with pytest.raises(ValueError, match="total_iters must be a positive integer, but got 0"):
        default_space.suggest(optuna.trial.FixedTrial({}), 0)


VALID = """\
[study]
families = ["constant", "step", "cyclic"]
base_lr = [1e-5, 1e-1]
optimisers = ["adam"]

[step]
step_frac = [0.1, 0.5]
gamma = [0.1, 0.7]

[cyclic]
mode = ["triangular", "exp_range"]
lower_ratio = [0.01, 0.5]
step_frac = [0.05, 0.25]
end_scale = [0.01, 0.5]

[plateau]
factor = [0.1, 0.7]
patience = [1, 5]
threshold = [1e-4, 1e-2]
cooldown = [0, 2]
min_lr_ratio = [0.0, 0.01]
"""


def test_valid_document_loads(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(VALID)
    space = load_space(path)
    assert space.ranges["step.gamma"] == (0.1, 0.7)
    assert space.ranges["cyclic.mode"] == ("triangular", "exp_range")
    assert space.ranges["plateau.patience"] == (1, 5)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("families =", "familes =", "unknown key 'familes' in [study] (did you mean 'families'?)"),
    ("[step]", "[stpe]", "unknown table [stpe] (did you mean [step]?)"),
    ('"step", ', '"stpe", ', "[study] families: unknown name 'stpe' (did you mean 'step'?)"),
    ('"step", ', '"warmup", ', "unknown name 'warmup': warm-up is the [warmup] table"),
    ("gamma = [0.1, 0.7]", "gamma = [0.7, 0.1]",
     "[step] gamma must have low <= high, but got [0.7, 0.1]"),
    ("gamma = [0.1, 0.7]", "gamma = [0.1, 1.5]",
     "[step] gamma must lie within (0, 1], but got [0.1, 1.5]"),
    ("gamma = [0.1, 0.7]", "gamma = 0.5", "[step] gamma must be [low, high] of numbers"),
    ("gamma = [0.1, 0.7]\n", "", "missing key 'gamma' in [step]"),
    ("gamma = [0.1, 0.7]", "gamma = [0.1, 0.7]\ngama = 1",
     "unknown key 'gama' in [step] (did you mean 'gamma'?)"),
    ("base_lr = [1e-5, 1e-1]", "base_lr = [0, 1e-1]",
     "[study] base_lr is searched on a log scale, so its bounds must be positive, "
     "but got [0, 0.1]"),
    ("base_lr = [1e-5, 1e-1]\n", "", "missing key 'base_lr' in [study]"),
    ("lower_ratio = [0.01, 0.5]", "lower_ratio = [-0.01, 0.5]", "[cyclic] lower_ratio"),
    ('mode = ["triangular", "exp_range"]', 'mode = ["triangle"]',
     "[cyclic] mode: unknown choice 'triangle'"),
    ("patience = [1, 5]", "patience = [1.5, 5]", "[plateau] patience must be [low, high] of integ"),
    ('optimisers = ["adam"]', 'optimisers = ["adamw"]',
     "[study] optimisers: unknown name 'adamw' (did you mean 'adam'?)"),
    ('optimisers = ["adam"]', 'runtime = "tf3"', "[study] runtime must be one of 'tf2'"),
    ('optimisers = ["adam"]', 'objective = "best_dice"', "[study] objective must be one of"),
    ('optimisers = ["adam"]', "max_iter = 0", "[study] max_iter must be a positive integer"),
    ("[step]\nstep_frac = [0.1, 0.5]\ngamma = [0.1, 0.7]\n", "", "missing table [step] for"),
    ("[study]", "families = 1\n[study]", "unknown top-level key 'families'"),
    ("[study]", '[pruner]\nkind = "successive_halving"\n[study]',
     "[pruner] kind must be one of 'asha', 'hyperband', 'median', 'curve', 'top_k_rung', "
     "'none', but got 'successive_halving'"),
    ("[study]", "[pruner]\nreduction_factor = 1\n[study]",
     "[pruner] reduction_factor must be an integer >= 2, but got 1"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path, old, new, message):
    assert old in VALID
    path = tmp_path / "bad.toml"
    path.write_text(VALID.replace(old, new, 1))
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_invalid_toml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(VALID.replace("gamma = [0.1, 0.7]", "gamma = = [0.1, 0.7]"))
    with pytest.raises(SpaceError, match=r"broken\.toml: invalid TOML: .*line 8"):
        load_space(path)


def test_missing_file(tmp_path):
    with pytest.raises(SpaceError, match="no such study file"):
        load_space(tmp_path / "absent.toml")
