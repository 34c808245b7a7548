"""The baselines of ``benchmarks/driver.py`` follow scaleinv's trajectories: the hand-written
NumPy loops (and the JAX loops where JAX is installed) against ``minimize(record="all")``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "driver.py"


def _load():
    spec = importlib.util.spec_from_file_location("scaleinv_benchmark_driver", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.mark.parametrize("name", sorted(bench.RULES))
def test_hand_written_loops_follow_scaleinv(name) -> None:
    assert bench.check(bench.comparison_problem(), [name], size=300, steps=40) == []


def test_the_check_catches_a_wrong_baseline(monkeypatch) -> None:
    right = bench.hand_step

    def off_by_a_bit(name, eta, xp):
        return right(name, eta * (1 + 1e-6), xp)

    monkeypatch.setattr(bench, "hand_step", off_by_a_bit)
    assert any("numpy leaves" in p for p in bench.check(bench.comparison_problem(), ["gd"], 50, 5))


def test_the_table_prints_medians_and_ratios() -> None:
    runs = {("gd", "scaleinv"): [2.0, 4.0, 3.0], ("gd", "steps"): [1.5], ("gd", "numpy"): [1.0]}
    text = bench.table(runs, {}, 1000, 10, 3, {"gd": [1.0, 2.5, 2.0]})
    row = next(line for line in text.splitlines() if line.startswith("gd "))
    assert "3*" not in row and "1.5*" in row and "3.00x" in row and "50%" in row
    assert "scaleinv CPU s (process time of the same runs, median): gd 2" in text
    assert "jax: not installed" in text
    np.testing.assert_equal(bench.starts(4).shape, (4, 2))
