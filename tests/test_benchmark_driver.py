"""The anchors of ``benchmarks/driver.py`` follow scaleinv's trajectories: the hand-written
in-place NumPy loops (and the JAX scans where JAX is installed) against
``minimize(record="all")``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
    assert bench.check("comparison", [name], [None], size=300, steps=40) == []


def test_the_check_catches_a_wrong_anchor(monkeypatch) -> None:
    right = bench.numpy_steps

    def off_by_a_bit(name, eta):
        return right(name, eta * (1 + 1e-6))

    monkeypatch.setattr(bench, "numpy_steps", off_by_a_bit)
    found = bench.check("comparison", ["gd"], [None], size=50, steps=5)
    assert any("numpy leaves" in p for p in found)


def test_the_default_column_names_the_engine_of_the_timed_size() -> None:
    # the default engine depends on the run's size: the column must not probe a tiny run
    from scaleinv.numeric.engines import JAX_MIN_WORK, jax_installed

    problem = bench.comparison_problem()
    assert bench.default_engine(problem, "gd", 0.01, 1000, 10) == "numpy"
    large = bench.default_engine(problem, "gd", 0.01, JAX_MIN_WORK, 1)
    assert large == ("jax" if jax_installed() else "numpy")
