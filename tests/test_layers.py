"""The package's architecture as a checked contract.

- Roles import downward only (``[tool.importlinter]`` in pyproject.toml, import-linter's
  ``layers`` contract), and no two siblings import each other, lazily or not
  (``acyclic_siblings``): import-linter reads every import statement, function-level ones too.
- What the NiftyNet child loads runs under the tf1 runtime's Python 3.7 too: standard library
  only, apart from TensorFlow and NiftyNet (and their numpy and nibabel) in the child's own
  package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lrsearch"
CHILD = "lrsearch.engines.child"
CHILD_ENTRIES = (f"{CHILD}.main", f"{CHILD}.application", f"{CHILD}.probe", f"{CHILD}.tf2compat")
CHILD_THIRD_PARTY = {"tensorflow", "niftynet", "numpy", "nibabel", "pkg_resources"}


def test_import_contracts_are_kept():
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def _file(module: str) -> Path:
    path = REPO / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imports(module: str) -> set[str]:
    """Every module named in an import statement of ``module``, at any depth of its code."""
    tree = ast.parse(_file(module).read_text())
    package = module if _file(module).name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _child_closure() -> tuple[set[str], dict[str, set[str]]]:
    """lrsearch modules the child imports (packages' __init__ included), and what else each
    imports outside lrsearch."""
    seen: set[str] = set()
    outside: dict[str, set[str]] = {}
    todo = list(CHILD_ENTRIES)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages run first
        for name in _imports(module):
            if name.split(".")[0] == "lrsearch":
                while not _file(name).is_file():
                    name = name.rpartition(".")[0]
                todo.append(name)
            elif name.split(".")[0] != "__future__":
                outside.setdefault(module, set()).add(name.split(".")[0])
    return seen, outside


def test_what_the_child_loads_is_standard_library_only():
    modules, outside = _child_closure()
    assert {"lrsearch.nifty.contract", "lrsearch.search.schedules"} <= modules
    for module, names in outside.items():
        allowed = set(sys.stdlib_module_names)
        if module.startswith(CHILD + "."):
            allowed |= CHILD_THIRD_PARTY
        assert names <= allowed, f"{module} imports {sorted(names - allowed)}"


def test_what_the_child_loads_imports_under_the_tf1_runtime():
    from lrsearch.engines.runtime import get_runtime

    runtime = get_runtime("tf1", build=False)
    modules, _ = _child_closure()
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint('ok')"
    done = subprocess.run([runtime.python, "-c", code, *sorted(modules)],
                          env=runtime.environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
