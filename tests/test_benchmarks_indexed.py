"""``benchmarks/indexed.py``: its problems are the same in every tool, it catches a tool that
computes another step, lists every anchor it did not run, and runs end to end at tiny sizes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "indexed.py"


def _load():
    spec = importlib.util.spec_from_file_location("scaleinv_benchmark_indexed", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load()
CASES = [
    bench.Case("diffusion", (12,)),
    bench.Case("heat", (4, 5)),
    bench.Case("brusselator", (4, 3)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.problem)
def test_the_spec_scaleinv_runs_is_the_numpy_problem(case) -> None:
    # The formulas scaleinv parses and the NumPy update the anchors share give the same P and
    # the same target y* = P(x*).
    kernels = bench.scaleinv_problem(case).compile()
    x = bench.starts(case)
    np.testing.assert_allclose(kernels.P(x), bench.numpy_P(case, x), rtol=1e-13, atol=1e-14)
    residual = bench.numpy_P(case, x) - bench.target(case)
    np.testing.assert_allclose(kernels.residual(x), residual, rtol=1e-12, atol=1e-14)


def test_a_tool_with_another_step_is_reported() -> None:
    case = CASES[0]
    good = {"probe": [[1.0, 2.0]], "setup": 1.0, "step": 1.0, "warm": 1.0}
    off = {**good, "probe": [[1.0, 2.0 + 1e-6]]}
    runs = {("jax", case.key()): [good], ("scaleinv", case.key()): [good]}
    assert bench.disagreements(runs, [case]) == []
    runs["casadi", case.key()] = [off]
    assert bench.disagreements(runs, [case]) == [f"{case.label}: casadi differs from jax by 5e-07"]


def test_every_anchor_not_run_is_listed_with_its_reason() -> None:
    case = CASES[0]
    run = {"probe": [[1.0]], "setup": 2.0, "step": 0.5, "warm": 0.25, "warm_cpu": 0.125}
    jax_run = {**run, "setup": 4.0, "warm_cpu": 0.5}
    runs = {("scaleinv", case.key()): [run, run, run], ("jax", case.key()): [jax_run]}
    skipped = {("jax-cg", case.key()): "over the 60 s budget at diffusion 10"}
    text = bench.report(runs, skipped, [case], ["scaleinv", "jax", "jax-cg"], ["casadi"], 3)
    assert "casadi: not installed" in text
    assert f"jax-cg not run at {case.label}: over the 60 s budget" in text
    assert "load average" in text and "OPENBLAS_NUM_THREADS=1" in text
    setup_row = next(line for line in text.splitlines() if line.startswith(case.label))
    assert "0.5x" in setup_row  # scaleinv's 2 s over JAX's 4 s
    assert "4¹" in setup_row  # JAX's single run is marked
    cpu = text.split("CPU seconds", 1)[1]
    cpu_row = next(line for line in cpu.splitlines() if line.startswith(case.label))
    assert "0.125" in cpu_row and "0.25x" in cpu_row  # scaleinv's 0.125 s over JAX's 0.5 s


def test_n_selects_the_cases(monkeypatch) -> None:
    seen = []

    def fake(cases, tools, rounds, budget, dense_limit, fresh):
        seen.extend(cases)
        return {}, {}

    monkeypatch.setattr(bench, "run_rounds", fake)
    bench.main(["--only", "diffusion", "--n", "100000,1000000", "--tools", "scaleinv"])
    assert seen == [bench.Case("diffusion", (100_000,)), bench.Case("diffusion", (1_000_000,))]


def test_dense_jax_is_skipped_only_where_it_does_not_fit() -> None:
    small, large = bench.Case("diffusion", (1000,)), bench.Case("diffusion", (100_000,))
    assert bench.dense_gb(small) < 1 < bench.dense_gb(large)


@pytest.mark.slow
def test_the_script_runs_at_tiny_sizes() -> None:
    out = subprocess.run(
        [sys.executable, str(PATH), "--quick"], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all tools agree to 1e-08" in out.stdout
    header = next(line for line in out.stdout.splitlines() if line.startswith("case"))
    for tool in bench.TOOLS:
        assert (tool in header.split()) != (f"{tool}: not installed" in out.stdout)
    assert "scaleinv not run" not in out.stdout


def test_an_anchor_over_budget_is_stopped_only_at_larger_sizes(monkeypatch) -> None:
    # Rounds run small to large: an anchor too slow at n = 100 still gets every round at
    # n = 10, one run at n = 100, none at n = 1000.
    cases = [bench.Case("diffusion", (n,)) for n in (10, 100, 1000)]
    calls = []

    def fake(tool, case, timeout, fresh):
        calls.append((tool, case.n))
        seconds = 100.0 if tool == "casadi" and case.n >= 100 else 1.0
        return {"setup": seconds, "step": 0.0, "warm": 0.0, "probe": [[0.0]]}

    monkeypatch.setattr(bench, "_worker", fake)
    runs, skipped = bench.run_rounds(cases, ["scaleinv", "casadi"], 3, 30.0, 4.0)
    assert [len(runs["casadi", c.key()]) for c in cases[:2]] == [3, 1]
    assert [len(runs["scaleinv", c.key()]) for c in cases] == [3, 3, 3]
    assert skipped == {("casadi", cases[2].key()): "over the 30 s budget at diffusion 100"}
