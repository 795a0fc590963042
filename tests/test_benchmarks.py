"""The benchmark scripts are not run in CI (they take hours), but they must still import: a
module they use that moved would otherwise break them silently."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _load(script: Path, monkeypatch):
    """The benchmark script as a module, with the repository and benchmarks/ on the path (the
    scripts import their siblings by name)."""
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.syspath_prepend(str(script.parents[1]))
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports_and_has_a_main(script: Path, monkeypatch) -> None:
    module = _load(script, monkeypatch)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"


@pytest.mark.parametrize("spec, pruner, fields", [
    ("hyperband@0.05", "hyperband", {"pruner_warmup_fraction": 0.05, "pruner_top_k": None}),
    ("curve", "curve", {"pruner_warmup_fraction": 0.25}),
    ("top_k_rung@0.1:3/10+peak", "top_k_rung",
     {"pruner_warmup_fraction": 0.1, "pruner_top_k": 3, "pruner_hold_until": 10,
      "pruner_after_warmup": True}),
])
def test_pruner_arms_space_differs_from_the_default_in_its_pruner_only(
        spec, pruner, fields, tmp_path, monkeypatch) -> None:
    """pruner_arms.py --pruners: each arm searches the default space under another pruner."""
    import dataclasses

    from lrsearch.paths import DEFAULT_SPACE
    from lrsearch.search.space import load_space

    arms = _load(BENCHMARKS[0].parent / "pruner_arms.py", monkeypatch)
    default = load_space(DEFAULT_SPACE)
    assert arms.pruner_space(tmp_path, "default") == DEFAULT_SPACE
    space = load_space(arms.pruner_space(tmp_path, spec))
    assert space.pruner == pruner
    assert {key: getattr(space, key) for key in fields} == fields
    pruner_fields = {f.name: getattr(default, f.name) for f in dataclasses.fields(space)
                     if f.name.startswith("pruner")}
    assert dataclasses.replace(space, **pruner_fields) == default
