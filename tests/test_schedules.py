"""Schedule families against their published formulas, computed by hand at chosen iterations."""

from __future__ import annotations

import doctest
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lrsearch.search import schedules as s

REPO = Path(__file__).resolve().parents[1]
PY37 = "/root/.pyenv/versions/3.7.16/bin/python"

approx = pytest.approx


def lrs(schedule, iterations, history=()):
    return [schedule.lr(i, history) for i in iterations]


def test_constant():
    assert lrs(s.Constant(3e-4), [0, 1, 10**9]) == [3e-4] * 3


def test_step_at_interval_boundaries():
    step = s.Step(1.0, step_size=10, gamma=0.5)
    assert lrs(step, [0, 9, 10, 19, 20]) == approx([1.0, 1.0, 0.5, 0.5, 0.25])


def test_multistep_at_milestones():
    multistep = s.MultiStep(1.0, milestones=(5, 8), gamma=0.1)
    assert lrs(multistep, [0, 4, 5, 7, 8, 1000]) == approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_exponential():
    assert lrs(s.Exponential(2.0, gamma=0.9), [0, 1, 3]) == approx([2.0, 1.8, 2.0 * 0.729])


def test_polynomial_is_nnunet_poly_and_holds_end_lr():
    poly = s.Polynomial(1.0, total_iters=10, power=0.9)
    assert lrs(poly, [0, 5, 10, 20]) == approx([1.0, 0.5 ** 0.9, 0.0, 0.0])
    linear = s.Polynomial(1.0, total_iters=10, power=1.0, end_lr=0.1)
    assert lrs(linear, [5, 10, 11]) == approx([0.55, 0.1, 0.1])


def test_cosine_closed_form_then_held_at_eta_min():
    cosine = s.Cosine(1.0, total_iters=100, eta_min=0.1)
    quarter = 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2
    assert lrs(cosine, [0, 25, 50, 100, 150]) == approx([1.0, quarter, 0.55, 0.1, 0.1])


def test_cosine_restarts_at_restart_boundaries():
    sgdr = s.CosineRestarts(1.0, t_0=10, t_mult=2)  # periods 10, 20, 40: restarts at 10, 30, 70
    just_before = (1 + math.cos(math.pi * 9 / 10)) / 2
    last_of_second = (1 + math.cos(math.pi * 19 / 20)) / 2
    assert lrs(sgdr, [0, 5, 9, 10, 20, 29, 30, 50, 70]) == approx(
        [1.0, 0.5, just_before, 1.0, 0.5, last_of_second, 1.0, 0.5, 1.0])
    fixed = s.CosineRestarts(1.0, t_0=10, t_mult=1, eta_min=0.2)
    assert lrs(fixed, [0, 5, 10, 15, 25]) == approx([1.0, 0.6, 1.0, 0.6, 0.6])


def test_cyclic_triangular_and_asymmetric():
    tri = s.Cyclic(0.1, max_lr=1.0, step_size_up=4)
    assert lrs(tri, [0, 2, 4, 6, 8, 12]) == approx([0.1, 0.55, 1.0, 0.55, 0.1, 1.0])
    # up 2, down 6: the peak at 2, half way down at 5
    skew = s.Cyclic(0.1, max_lr=1.0, step_size_up=2, step_size_down=6)
    assert lrs(skew, [1, 2, 5, 8]) == approx([0.55, 1.0, 0.55, 0.1])


def test_cyclic_triangular2_halves_the_amplitude_each_cycle():
    tri2 = s.Cyclic(0.1, max_lr=1.0, step_size_up=4, mode="triangular2")
    assert lrs(tri2, [4, 12, 20, 16]) == approx([1.0, 0.1 + 0.9 / 2, 0.1 + 0.9 / 4, 0.1])


def test_cyclic_exp_range_scales_by_gamma_per_iteration():
    exp = s.Cyclic(0.1, max_lr=1.0, step_size_up=4, mode="exp_range", gamma=0.9)
    assert lrs(exp, [0, 4, 12]) == approx([0.1, 0.1 + 0.9 * 0.9 ** 4, 0.1 + 0.9 * 0.9 ** 12])


def test_one_cycle_two_phases():
    # PyTorch: initial = max/div = 0.04, min = initial/final = 4e-6, peak at 0.3*100 - 1 = 29
    cycle = s.OneCycle(1.0, total_steps=100)
    assert cycle.base_lr == 1.0
    assert lrs(cycle, [0, 29, 99, 500]) == approx([0.04, 1.0, 4e-6, 4e-6])
    middle_of_fall = 29 + 35  # pct 0.5 of the second phase (29 → 99): half way by cosine
    assert cycle.lr(middle_of_fall) == approx((1.0 + 4e-6) / 2)
    linear = s.OneCycle(1.0, total_steps=100, anneal_strategy="linear")
    assert linear.lr(10) == approx(0.04 + 0.96 * 10 / 29)


def test_one_cycle_three_phases():
    cycle = s.OneCycle(1.0, total_steps=100, three_phase=True)  # phase ends 29, 58, 99
    assert lrs(cycle, [0, 29, 58, 99]) == approx([0.04, 1.0, 0.04, 4e-6])


def test_warmup_ramps_then_runs_the_inner_schedule_shifted():
    warm = s.Warmup(s.Cosine(1.0, total_iters=100), warmup_iters=10, start_factor=0.1)
    assert warm.base_lr == 1.0
    assert lrs(warm, [0, 5, 10, 60, 110]) == approx([0.1, 0.55, 1.0, 0.5, 0.0])


def test_warmup_stable_decay():
    wsd = s.WarmupStableDecay(1.0, warmup_iters=10, decay_start=80, total_iters=100)
    assert lrs(wsd, [0, 4, 9, 10, 79, 80, 90, 100, 200]) == approx(
        [0.1, 0.5, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0])
    cos = s.WarmupStableDecay(1.0, 0, 80, 100, end_lr=0.2, decay="cosine")
    assert lrs(cos, [0, 85, 90, 100]) == approx(
        [1.0, 0.2 + 0.8 * (1 + math.cos(math.pi / 4)) / 2, 0.6, 0.2])


def test_inverse_sqrt():
    inv = s.InverseSqrt(1.0, warmup_iters=4)  # update s = iteration + 1
    assert lrs(inv, [0, 1, 3, 15, 99]) == approx([0.25, 0.5, 1.0, 0.5, 0.2])
    assert lrs(s.InverseSqrt(1.0, warmup_iters=0), [0, 3]) == approx([1.0, 0.5])


def test_plateau_replays_patience_cooldown_and_min_lr():
    plateau = s.Plateau(1.0, factor=0.5, patience=2, threshold=0.01, cooldown=1, min_lr=0.2)
    # 0.6 then no value above 0.6 * 1.01: the third bad evaluation reduces, the one after a
    # reduction is cooldown, then three more bad ones reduce again; 0.125 is floored at 0.2.
    history = [0.5, 0.6, 0.6, 0.605, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    expected = [1.0] * 5 + [0.5] * 4 + [0.25] * 4 + [0.2, 0.2]
    assert [plateau.lr(0, history[:k]) for k in range(len(history) + 1)] == approx(expected)
    assert plateau.lr(10**6, history) == plateau.lr(0, history)  # iteration plays no part


def test_plateau_improvement_resets_the_count():
    plateau = s.Plateau(1.0, factor=0.5, patience=2)
    assert plateau.lr(0, [0.5, 0.4, 0.4, 0.6, 0.4, 0.4]) == 1.0
    assert plateau.lr(0, [0.5, 0.4, 0.4, 0.6, 0.4, 0.4, 0.4]) == 0.5
    absolute = s.Plateau(1.0, factor=0.5, patience=0, threshold=0.05, threshold_mode="abs")
    assert absolute.lr(0, [0.5, 0.54]) == 0.5  # +0.04 is not an improvement of 0.05


def test_warmup_passes_history_to_the_inner_schedule():
    warm = s.Warmup(s.Plateau(1.0, factor=0.5, patience=0), warmup_iters=10, start_factor=0.5)
    assert warm.lr(0, [0.5, 0.4]) == approx(0.25)
    assert warm.lr(20, [0.5, 0.4]) == approx(0.5)


EXAMPLES = [
    s.Constant(1e-3),
    s.Step(1e-3, step_size=300, gamma=0.5),
    s.MultiStep(1e-3, milestones=(500, 750)),
    s.Exponential(1e-3, gamma=0.999),
    s.Polynomial(1e-3, total_iters=1000, power=0.9),
    s.Cosine(3e-4, total_iters=1000, eta_min=1e-6),
    s.CosineRestarts(1e-3, t_0=100, t_mult=2, eta_min=1e-5),
    s.Cyclic(1e-4, max_lr=1e-3, step_size_up=50, mode="exp_range", gamma=0.999),
    s.OneCycle(1e-3, total_steps=1000, three_phase=True),
    s.Warmup(s.Cosine(3e-4, total_iters=800), warmup_iters=200, start_factor=0.01),
    s.WarmupStableDecay(1e-3, warmup_iters=50, decay_start=800, total_iters=1000,
                        decay="cosine"),
    s.InverseSqrt(1e-3, warmup_iters=100),
    s.Plateau(1e-3, factor=0.5, patience=3, cooldown=1, min_lr=1e-6),
]


def test_examples_cover_every_family():
    assert {example.family for example in EXAMPLES} == set(s.FAMILIES)


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda x: x.family)
def test_to_dict_round_trips_through_json(schedule):
    spec = json.loads(json.dumps(schedule.to_dict()))
    assert spec["family"] == schedule.family
    again = s.from_dict(spec)
    assert again == schedule
    assert lrs(again, range(0, 1200, 37), [0.5, 0.6]) == lrs(schedule, range(0, 1200, 37),
                                                               [0.5, 0.6])


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda x: x.family)
def test_describe_names_the_family_and_the_learning_rate(schedule):
    text = schedule.describe()
    inner = schedule.schedule if isinstance(schedule, s.Warmup) else schedule
    assert text.startswith(inner.family)
    assert "e-" in text  # learning rates like 1e-3 appear


def test_describe_reads_like_words():
    warm = s.Warmup(s.Cosine(3e-4, total_iters=1000), warmup_iters=200, start_factor=0.01)
    assert warm.describe() == ("cosine, base lr 3e-4 → 0 over 1000 iterations, "
                               "200 warmup iterations from 0.01×")


def test_curve_samples_first_and_last_iteration():
    points = s.curve(s.Cosine(1.0, total_iters=1000), 1000, points=50)
    iterations = [i for i, _ in points]
    assert iterations[0] == 0 and iterations[-1] == 999 and len(points) <= 50
    assert iterations == sorted(set(iterations))
    assert points[0][1] == 1.0
    assert s.curve(s.Constant(1.0), 3) == [(0, 1.0), (1, 1.0), (2, 1.0)]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: s.Constant(-1.0), "base_lr must be a positive finite number, but got -1.0"),
    (lambda: s.Constant(float("nan")), "base_lr must be a positive finite number"),
    (lambda: s.Step(1.0, step_size=10, gamma=1.5), "gamma must be in (0, 1], but got 1.5"),
    (lambda: s.Step(1.0, step_size=0), "step_size must be a positive integer, but got 0"),
    (lambda: s.Step(1.0, step_size=2.5), "step_size must be a positive integer, but got 2.5"),
    (lambda: s.MultiStep(1.0, milestones=(5, 5)), "milestones must be a non-empty, strictly"),
    (lambda: s.MultiStep(1.0, milestones=()), "milestones must be a non-empty"),
    (lambda: s.Polynomial(1.0, total_iters=10, end_lr=2.0), "end_lr must be in [0, base_lr="),
    (lambda: s.Cosine(1.0, total_iters=10, eta_min=-0.1), "eta_min must be in [0, base_lr="),
    (lambda: s.CosineRestarts(1.0, t_0=10, t_mult=0), "t_mult must be a positive integer"),
    (lambda: s.Cyclic(1.0, max_lr=0.5), "max_lr must be at least base_lr=1.0, but got 0.5"),
    (lambda: s.Cyclic(0.1, max_lr=1.0, mode="triangle"), "mode must be one of 'triangular'"),
    (lambda: s.OneCycle(1.0, total_steps=100, pct_start=0.6, three_phase=True),
     "pct_start must be at most 0.5 with three_phase, but got 0.6"),
    (lambda: s.OneCycle(1.0, total_steps=100, anneal_strategy="cosine"),
     "anneal_strategy must be one of 'cos', 'linear', but got 'cosine'"),
    (lambda: s.Warmup(s.Constant(1.0), warmup_iters=0, start_factor=0.1),
     "warmup_iters must be a positive integer, but got 0"),
    (lambda: s.Warmup(s.Constant(1.0), warmup_iters=5, start_factor=0.0),
     "start_factor must be in (0, 1], but got 0.0"),
    (lambda: s.Warmup({"family": "constant"}, warmup_iters=5, start_factor=0.1),
     "schedule must be a Schedule"),
    (lambda: s.WarmupStableDecay(1.0, warmup_iters=50, decay_start=10, total_iters=100),
     "decay_start must be an integer >= 50, but got 10"),
    (lambda: s.WarmupStableDecay(1.0, warmup_iters=0, decay_start=100, total_iters=100),
     "total_iters must be an integer >= 101, but got 100"),
    (lambda: s.Plateau(1.0, factor=1.0), "factor must be in (0, 1), but got 1.0"),
    (lambda: s.Plateau(1.0, threshold_mode="relative"), "threshold_mode must be one of"),
    (lambda: s.Constant(1.0).lr(-1), "iteration must be a non-negative integer, but got -1"),
    (lambda: s.Constant(1.0).lr(1.5), "iteration must be a non-negative integer, but got 1.5"),
    (lambda: s.from_dict({"family": "cosin", "base_lr": 1.0, "total_iters": 10}),
     "unknown schedule family 'cosin' (did you mean 'cosine'?)"),
    (lambda: s.from_dict({"family": "step", "base_lr": 1.0, "step_sise": 10}),
     "unknown key 'step_sise' for family 'step' (did you mean 'step_size'?)"),
    (lambda: s.from_dict({"family": "step", "base_lr": 1.0}),
     "family 'step' needs key 'step_size'"),
    (lambda: s.from_dict({"base_lr": 1.0}), "a schedule must be a mapping with a 'family' key"),
])
def test_invalid_values_are_refused_with_the_rule_and_the_value(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


def test_every_docstring_example_prints_what_lr_returns():
    """Each family documents its formula with a doctest example; running them keeps them true."""
    documented = [*s.FAMILIES.values(), s.LRRange]
    assert [cls.__name__ for cls in documented if ">>> " not in (cls.__doc__ or "")] == []
    result = doctest.testmod(s, report=False)
    assert result.failed == 0
    assert result.attempted >= len(documented)


def test_schedules_are_frozen():
    with pytest.raises(AttributeError):
        s.Constant(1.0).base_lr = 2.0


# Runs under a bare interpreter (-S: no site-packages): any import outside the standard library
# fails, and the values must match the ones computed here.
_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from lrsearch.search import schedules
out = []
for spec in json.loads(sys.argv[2]):
    schedule = schedules.from_dict(spec)
    out.append([schedule.lr(i, [0.5, 0.6, 0.6, 0.6, 0.6]) for i in (0, 1, 99, 250, 999, 5000)])
print(json.dumps(out))
"""


@pytest.mark.parametrize("python", [sys.executable, PY37], ids=["this-python", "python3.7"])
def test_module_runs_on_the_bare_standard_library(python):
    if not os.path.exists(python):
        pytest.skip(f"{python} is not installed")
    specs = json.dumps([example.to_dict() for example in EXAMPLES])
    result = subprocess.run([python, "-S", "-c", _PROBE, str(REPO), specs],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    expected = [lrs(example, (0, 1, 99, 250, 999, 5000), [0.5, 0.6, 0.6, 0.6, 0.6])
                for example in EXAMPLES]
    assert json.loads(result.stdout) == [approx(row) for row in expected]
