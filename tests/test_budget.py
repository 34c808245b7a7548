from __future__ import annotations

import time

import pytest
import sympy as sp

from scaleinv.errors import BudgetExceeded
from scaleinv.symbolic.budget import WALL_FACTOR, cheap_simplify, with_budget


def _spin(seconds: float) -> float:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def test_budget_stops_a_slow_step_and_lets_a_fast_one_finish() -> None:
    assert with_budget(lambda: _spin(0.01), 1.0, "fast") == 0.01
    with pytest.raises(BudgetExceeded, match="slow exceeded its time budget of 0.1 s"):
        with_budget(lambda: _spin(2.0), 0.1, "slow")


def test_nested_budgets_charge_the_outer_one_and_never_outlive_it() -> None:
    with pytest.raises(BudgetExceeded, match="inner"):
        with_budget(lambda: with_budget(lambda: _spin(2.0), 0.1, "inner"), 1.0, "outer")
    with pytest.raises(BudgetExceeded, match="outer"):
        with_budget(lambda: with_budget(lambda: _spin(2.0), 5.0, "inner"), 0.2, "outer")
    started = time.monotonic()
    with pytest.raises(BudgetExceeded, match="outer"):
        with_budget(
            lambda: [with_budget(lambda: _spin(0.1), 1.0, "inner") for _ in range(20)], 0.3, "outer"
        )
    assert time.monotonic() - started < 0.3 * WALL_FACTOR + 1.5  # CPU budget, wall net


def test_cheap_simplify_leaves_large_inputs_alone() -> None:
    x = sp.Symbol("x")
    assert cheap_simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2) == 1
    big = sum(sp.sin(k * x) ** 2 + sp.cos(k * x) ** 2 for k in range(1, 30))
    assert cheap_simplify(big) == big  # too many operations: returned as is
    matrix = sp.Matrix(7, 7, lambda i, j: sp.sin(x) ** 2 + sp.cos(x) ** 2)
    assert cheap_simplify(matrix) == matrix  # too many entries


def _swallowing(seconds: float) -> float:
    """Like SymPy's solvers: a broad ``except Exception`` that swallows an alarm."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            _spin(0.01)
        except Exception:
            pass
    return seconds


def _c_level(seconds: float) -> int:
    """One long C call that never returns to Python bytecode (no signal handler runs)."""
    return sum(range(int(seconds * 2e8)))


@pytest.mark.parametrize("step", [_swallowing, _c_level], ids=["swallowed-alarm", "c-level"])
def test_budget_holds_inside_steps_that_ignore_signals(step) -> None:
    started = time.monotonic()
    with pytest.raises(BudgetExceeded, match="stubborn exceeded its time budget of 0.3 s"):
        with_budget(lambda: step(20.0), 0.3, "stubborn")
    assert time.monotonic() - started < 0.3 * WALL_FACTOR + 1.5


def test_budget_holds_on_any_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(with_budget, lambda: _swallowing(20.0), 0.3, "threaded")
        with pytest.raises(BudgetExceeded, match="threaded"):
            future.result(timeout=10)
    assert time.monotonic() - started < 0.3 * WALL_FACTOR + 1.5
    with ThreadPoolExecutor(1) as pool:  # a fast step still returns its (pickled) result
        x = sp.Symbol("x", real=True)
        assert pool.submit(with_budget, lambda: sp.diff(x**3, x), 5.0, "d").result() == 3 * x**2


def test_budget_passes_errors_and_unpicklable_results_back() -> None:
    from scaleinv.errors import ParseError
    from scaleinv.symbolic.parsing import parse_expr

    with pytest.raises(ParseError, match="unknown name") as info:
        with_budget(lambda: parse_expr("z", {}), 5.0, "parse")
    assert info.value.offending == "z"  # the error kept its data across processes
    assert with_budget(lambda: lambda: 7, 5.0, "closure")() == 7


def test_budgets_count_cpu_seconds_with_a_wall_safety_net() -> None:
    # Waiting costs no CPU: a load-independent budget lets it finish, up to the wall net
    # (WALL_FACTOR x budget + 1 s), past which the worker is killed all the same.
    assert with_budget(lambda: time.sleep(0.4) or 7, 0.2, "sleepy") == 7
    started = time.monotonic()
    with pytest.raises(BudgetExceeded, match="asleep"):
        with_budget(lambda: time.sleep(30), 0.1, "asleep")
    assert time.monotonic() - started < 0.1 * WALL_FACTOR + 1.5
