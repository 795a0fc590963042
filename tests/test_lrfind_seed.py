"""The LR range test trains with a seed when given one, as trials do: the same seed gives the
same losses, so a study's range test (--lr-bounds auto with --seed) is repeatable."""

from __future__ import annotations

import json

import pytest

from lrsearch import cli
from tests.tiny import tiny_config


def _losses(tmp_path, config, name: str, seed: int) -> list[float]:
    out = tmp_path / name
    code = cli.main(["lr-find", "-c", str(config), "--min-lr", "1e-4", "--max-lr", "1e-2",
                     "--iterations", "4", "--seed", str(seed), "-o", str(out), "-q"])
    assert code == 0
    return [p[2] for p in json.loads((out / "lr_find.json").read_text())["points"]]


@pytest.mark.slow
def test_same_seed_same_range_test_losses(tmp_path):
    config = tiny_config(tmp_path, subjects=4)
    first = _losses(tmp_path, config, "a", 7)
    again = _losses(tmp_path, config, "b", 7)
    # unseeded, NiftyNet's initial weights and windows differ run to run, and so would these
    assert len(first) == 4 and first == again
