"""Every benchmark script runs at a tiny size (``--quick``) and prints its table: the machine
line (load average, BLAS threads) that the shared harness prints with every table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import optional_module

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"budget_overhead.py": ["--quick"]}
#: Minutes each on the 2-core machine under a load of 13-17 (inverse 8, report 7, kernels 4):
#: derivations that use up their work limits, JAX and LLVM compiles, a Dask cluster, commands.
SLOW = {
    "driver.py": ["--quick", "--study"],
    "derive.py": ["--quick"],
    "dask_starts.py": ["--quick"],
    "invariance_theorems.py": ["--quick"],
    "inverse.py": ["--quick"],
    "kernels.py": ["--quick", "--no-lambdify", "--points", "2000"],
    "report.py": ["--quick"],
}


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch):
    """``benchmarks/`` importable; what ``_harness`` sets in ``os.environ`` stays in the test."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import _harness

    return _harness


def _run(script: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def _check(script: str, args: list[str]) -> None:
    done = _run(script, args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "machine: load average" in done.stdout and "BLAS threads 1" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_benchmark_runs_at_a_tiny_size_and_prints_its_table(script: str) -> None:
    _check(script, SCRIPTS[script])


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SLOW))
def test_a_slow_benchmark_runs_at_a_tiny_size_and_prints_its_table(script: str) -> None:
    if script == "dask_starts.py":  # it times scaleinv's Dask route
        optional_module("dask", "distributed")
    _check(script, SLOW[script])


def test_every_benchmark_script_is_run_here() -> None:
    # indexed.py runs at tiny sizes in tests/test_benchmarks_indexed.py; _*.py are helpers
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SCRIPTS) | set(SLOW) | {"indexed.py"}


def test_kernels_anchors_flag_never_means_no_anchors(harness) -> None:
    """``--anchors`` with no value was ``[]``: a table without its anchors, silently."""
    import kernels

    assert kernels.arguments([]).anchors == list(kernels.ANCHORS)
    assert kernels.arguments(["--anchors", "jax"]).anchors == ["jax"]
    assert kernels.arguments(["--no-anchors"]).anchors == []
    with pytest.raises(SystemExit):
        kernels.arguments(["--anchors"])


def test_a_missing_anchor_is_printed(harness, capsys) -> None:
    _harness = harness
    assert _harness.installed("surely_not_a_module_xyz") is not None
    lines = _harness.missing(["jax", "casadi"], {"casadi": "not installed"})
    assert lines == ["MISSING anchor casadi: not installed"]
    assert capsys.readouterr().out == "MISSING anchor casadi: not installed\n"


def test_rounds_interleave_every_tool_once_per_round_in_a_shuffled_order(harness) -> None:
    _harness = harness
    order = list(_harness.rounds_of(["a", "b", "c"], 20))
    rounds = [order[k : k + 3] for k in range(0, 60, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # not the same order every round
    calls: list[str] = []
    runs = _harness.interleave({t: (lambda t=t: calls.append(t)) for t in "ab"}, 3)
    assert sorted(calls) == ["a"] * 3 + ["b"] * 3 and all(len(v) == 3 for v in runs.values())


def test_interleave_gives_the_cpu_seconds_of_each_run(harness) -> None:
    import time

    def spin() -> None:  # CPU-bound for a few milliseconds
        end = time.process_time() + 0.005
        while time.process_time() < end:
            pass

    cpu: dict[str, list[float]] = {}
    runs = harness.interleave({"spin": spin, "sleep": lambda: time.sleep(0.01)}, 2, cpu=cpu)
    assert len(cpu["spin"]) == len(cpu["sleep"]) == 2
    assert all(c >= 0.005 for c in cpu["spin"]) and all(c < 0.005 for c in cpu["sleep"])
    assert all(w >= 0.01 for w in runs["sleep"])
