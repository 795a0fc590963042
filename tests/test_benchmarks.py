"""The benchmark scripts are not run in CI (they take hours), but they must still import: a
module they use that moved would otherwise break them silently."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports_and_has_a_main(script: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(script.parents[1]))
    spec = importlib.util.spec_from_file_location(f"benchmarks.{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
