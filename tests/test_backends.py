"""The LLVM backend of the kernels (SymEngine ``Lambdify``) agrees with the NumPy kernels.

Every kernel of the chain, a small diffusion step, the catalogue and the shipped report specs
is evaluated by both backends over batch shapes ``()``, ``(k,)``, ``(k, l)`` and with params
(default, overridden, broadcast arrays); the results agree to 1e-12 of each point's largest
entry. ``backend="auto"`` chooses by measurement (forced both ways here), keeps NumPy without
SymEngine, and the driver's steps call the chosen kernels.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from catalogue import CATALOGUE, shipped_specs
from conftest import optional_module

import scaleinv
from scaleinv import Problem
from scaleinv.errors import ProblemError
from scaleinv.numeric import backends, kernels
from scaleinv.symbolic.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-12


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(
        f"scaleinv_bench_{name}", ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _problems() -> dict[str, Problem]:
    bench = _bench("kernels")
    x = sp.symbols("x0:8", real=True)  # the diffusion step of benchmarks/derive.py, n = 8
    diffusion = [
        x[i] + sp.Rational(1, 10) * ((x[(i + 1) % 8] - 2 * x[i] + x[i - 1]) + x[i] ** 3 / 2)
        for i in range(8)
    ]
    problems = {
        "chain4": bench.chain_problem(4, [1.0, 0.5, 2.0, 1.5]),
        "diffusion8": Problem(x, diffusion, target=[0.1 * i for i in range(8)]),
    }
    problems.update(CATALOGUE)
    for path in shipped_specs():
        if path.stem != "diffusion":  # n = 256: the same code as diffusion8, at length
            problems[f"spec:{path.stem}"] = load_spec(path).problem
    return problems


PROBLEMS = _problems()


def _close(got: np.ndarray, want: np.ndarray, kernel_ndim: int) -> None:
    """Agreement to RTOL of each point's largest entry, NaNs in the same places."""
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    width = int(np.prod(want.shape[want.ndim - kernel_ndim :]))
    got, want = np.nan_to_num(got).reshape(-1, width), np.nan_to_num(want).reshape(-1, width)
    scale = np.abs(want).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= RTOL * scale), np.abs(got - want).max()


def _arguments(problem: Problem, kernel, shape: tuple[int, ...], rng) -> np.ndarray:
    """Points for ``kernel``: x, or y near P(x) for the y-space kernels."""
    x = rng.uniform(0.3, 1.7, shape + (problem.n,))
    if kernel.name in ("loss_of_y", "loss_y", "newton_dy"):
        return problem.compile("numpy").P(x) + rng.normal(0.0, 0.1, shape + (problem.m,))
    return x


def _params(problem: Problem, shape: tuple[int, ...], rng) -> list[dict]:
    """No keywords (the defaults), and each param scaled per point (broadcast over the last
    batch axis: a ``(k, l)`` batch gets ``(l,)`` params), signs kept (positive ones stay so)."""
    keywords = kernels.param_keywords(problem.params)
    if not keywords:
        return [{}]
    axis = shape[-1:]
    return [
        {},
        {kw: float(problem.params[s]) * rng.uniform(0.5, 1.5, axis) for s, kw in keywords.items()},
    ]


@pytest.fixture(scope="module")
def symengine():
    return optional_module("symengine", "fast")


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_llvm_kernels_equal_the_numpy_kernels(name: str, symengine) -> None:
    problem = PROBLEMS[name]
    reference, compiled = problem.compile("numpy"), problem.compile("llvm")
    rng = np.random.default_rng(7)
    for want_k, got_k in zip(reference.all(), compiled.all(), strict=True):
        assert got_k.name == want_k.name and got_k.source == want_k.source
        assert want_k.backend == "numpy" and got_k.backend == "llvm", got_k.backend_reason
        for shape in [(), (3,), (2, 3)]:
            arg = _arguments(problem, want_k, shape, rng)
            for params in _params(problem, shape, rng):
                _close(got_k(arg, **params), want_k(arg, **params), len(want_k.shape))
        # read-only (e.g. a broadcast or a memory map; Lambdify refused them) and strided
        frozen = _arguments(problem, want_k, (4,), rng)
        frozen.setflags(write=False)
        strided = np.repeat(frozen, 2, axis=-1)[..., ::2]
        for arg in (frozen, strided):
            _close(got_k(arg), want_k(arg), len(want_k.shape))


def test_llvm_kernels_keep_the_guards_keywords_and_empty_batches(symengine) -> None:
    a, b, k = sp.Symbol("a"), sp.Symbol("b"), sp.Symbol("k", positive=True)
    problem = Problem((a, b), (a * k, b**2 / k), params={k: 2.0})
    fast, slow = problem.compile("llvm"), problem.compile("numpy")
    with pytest.raises(ProblemError, match=r"must have shape \(\.\.\., 2\)"):
        fast.jacobian(np.ones(3))
    with pytest.raises(ProblemError, match="param k is declared positive"):
        fast.jacobian(np.ones(2), k=-1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'q'"):
        fast.jacobian.func(np.ones(2), q=1.0)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        fast.jacobian.func(np.ones(3))
    for kernel, twin in zip(fast.all(), slow.all()):
        arg = np.ones((0, kernel.sizes[0]))
        assert kernel(arg).shape == twin(arg).shape == (0, *kernel.shape)
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    _close(fast.P(x, k=np.array([[1.0], [4.0]])), slow.P(x, k=np.array([[1.0], [4.0]])), 1)
    assert fast.P(x, k=np.array([[1.0], [4.0]])).shape == (2, 2, 2)  # params broadcast


def test_auto_keeps_the_backend_measured_faster(monkeypatch, symengine) -> None:
    monkeypatch.setattr(backends, "HOT_POINTS", 40)
    monkeypatch.setattr(backends, "MARGIN", np.inf)  # any LLVM time counts as faster
    bench = _bench("kernels")
    problem = bench.chain_problem(3)
    auto, reference = problem.compile(), problem.compile("numpy")
    assert problem.compile("auto") is auto
    assert auto.hessian.backend == "numpy" and "until 40 points" in auto.hessian.backend_reason
    x = np.random.default_rng(1).uniform(-3, 3, (25, 3))
    auto.hessian(x)
    assert auto.hessian.backend == "numpy"  # 25 points so far: not hot yet
    _close(auto.hessian(x), reference.hessian(x), 2)  # 50 points: measured, LLVM kept
    assert auto.hessian.backend == "llvm"
    assert auto.hessian.backend_reason.startswith("auto: LLVM (took")
    assert auto.hessian_values.backend == "llvm"  # the gather around the dense kernel
    assert "hessian: llvm" in auto.hessian_values.backend_reason
    assert auto.P.backend == "numpy"  # every kernel chooses for itself
    _close(auto.hessian_values(x), reference.hessian_values(x), 1)

    monkeypatch.setattr(backends, "MARGIN", 0.0)  # LLVM never fast enough
    slow = bench.chain_problem(3).compile()
    slow.hessian(np.zeros((50, 3)))
    assert slow.hessian.backend == "numpy" and "LLVM took" in slow.hessian.backend_reason


def test_auto_keeps_numpy_where_llvm_disagrees(monkeypatch, symengine) -> None:
    monkeypatch.setattr(backends, "HOT_POINTS", 1)
    monkeypatch.setattr(backends, "MARGIN", np.inf)
    original = backends.LLVMKernel.__call__

    def off(self, *arrays, **params):  # an LLVM form wrong by 1e-9: must not be kept
        return original(self, *arrays, **params) * (1 + 1e-9)

    monkeypatch.setattr(backends.LLVMKernel, "__call__", off)
    kernels_ = _bench("kernels").chain_problem(3).compile()
    x = np.random.default_rng(3).uniform(-3, 3, (10, 3))
    kernels_.hessian(x)
    assert kernels_.hessian.backend == "numpy"
    assert "LLVM disagreed with NumPy beyond 1e-12" in kernels_.hessian.backend_reason


def test_auto_leaves_large_and_unsupported_programs_to_numpy(monkeypatch, symengine) -> None:
    monkeypatch.setattr(backends, "HOT_POINTS", 1)
    monkeypatch.setattr(backends, "MARGIN", np.inf)
    a, b = sp.symbols("a b", real=True)
    problem = Problem((a, b), (sp.atan2(a, b), a * b))  # NumPy prints atan2; LLVM not given it
    auto = problem.compile()
    x = np.array([[-1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(auto.P(x), problem.compile("numpy").P(x))
    assert auto.P.backend == "numpy" and "uses atan2" in auto.P.backend_reason
    _close(auto.jacobian(x), problem.compile("numpy").jacobian(x), 2)
    assert auto.jacobian.backend == "llvm"  # its derivatives are rational: compiled
    with pytest.raises(ProblemError, match="backend 'llvm': kernel P: it uses atan2"):
        problem.compile("llvm")
    monkeypatch.setattr(backends, "MAX_SIZE", 3)
    big = Problem.from_strings(["a", "b"], ["a*b + sin(a)", "a - b"]).compile()
    big.P(x)
    assert big.P.backend == "numpy" and "> 3: long to compile" in big.P.backend_reason


def test_driver_steps_run_on_the_chosen_kernels(monkeypatch, symengine) -> None:
    monkeypatch.setattr(backends, "HOT_POINTS", 1)
    bench = _bench("kernels")
    x0 = np.random.default_rng(2).uniform(-1, 1, (40, 3))
    runs = {}
    for margin in (np.inf, 0.0):  # LLVM kept; NumPy kept
        monkeypatch.setattr(backends, "MARGIN", margin)
        problem = bench.chain_problem(3)
        runs[margin] = scaleinv.minimize(problem, scaleinv.rules.newton(0.5), x0, steps=4)
        chosen = problem.compile()
        expected = "llvm" if margin else "numpy"
        assert chosen.gradient.backend == chosen.hessian.backend == expected
    np.testing.assert_allclose(runs[np.inf].x, runs[0.0].x, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(runs[np.inf].status, runs[0.0].status)


def test_without_symengine_auto_is_numpy_and_llvm_says_what_to_install(monkeypatch) -> None:
    from scaleinv.symbolic import engine

    monkeypatch.setitem(sys.modules, "symengine", None)  # import symengine fails
    monkeypatch.setattr(engine, "symengine_available", lambda: False)
    monkeypatch.setattr(backends, "symengine_available", lambda: False)
    monkeypatch.setattr(backends, "HOT_POINTS", 1)
    problem = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    auto = problem.compile()
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_array_equal(auto.hessian(x), problem.compile("numpy").hessian(x))
    assert all(k.backend == "numpy" for k in auto.all())
    assert "SymEngine is not installed" in auto.hessian.backend_reason
    with pytest.raises(
        ProblemError, match=r"needs the symengine package: pip install 'scaleinv\[fast\]'"
    ):
        problem.compile("llvm")


def test_unknown_backends_and_flavours_are_refused() -> None:
    problem = Problem.from_strings(["x"], ["x**2"])
    with pytest.raises(
        ProblemError, match="unknown kernel backend 'gpu'; known: auto, numpy, llvm"
    ):
        problem.compile("gpu")
    with pytest.raises(ProblemError, match="backend 'llvm' compiles NumPy kernels, not the jax"):
        kernels.compile_problem(problem, "jax", "llvm")


def test_export_writes_the_numpy_source_for_every_backend(symengine) -> None:
    from scaleinv.numeric.export import module_source

    problem = _bench("kernels").chain_problem(2)
    fast = problem.compile("llvm")
    text = module_source(problem)
    assert all(k.source in text for k in fast.all())
    assert "symengine" not in text.lower() and "lambdify" not in text.lower()


def test_importing_scaleinv_and_its_backends_imports_no_compiler() -> None:
    code = (
        "import sys, scaleinv, scaleinv.numeric.backends; "
        "print(sorted(m for m in ('symengine', 'numba', 'llvmlite') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_auto_never_waits_while_another_thread_measures(monkeypatch, symengine) -> None:
    # The measuring thread held a lock the others waited on without a timeout.
    import threading

    monkeypatch.setattr(backends, "HOT_POINTS", 40)
    auto = Problem.from_strings(["x0", "x1"], ["x0*x1", "sin(x1)"]).compile()
    chooser = auto.P.func
    assert isinstance(chooser, backends._Auto)
    x = np.random.default_rng(2).uniform(-1, 1, (50, 2))
    results: list[np.ndarray] = []
    chooser._lock.acquire()  # as if another thread were measuring
    try:
        worker = threading.Thread(target=lambda: results.append(auto.P(x)), daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "a kernel call waited for the measuring thread"
    finally:
        chooser._lock.release()
    np.testing.assert_allclose(results[0], np.stack([x[:, 0] * x[:, 1], np.sin(x[:, 1])], -1))
    assert "until 40 points" in auto.P.backend_reason  # the waiting call was not counted
    auto.P(x)  # counted now: measured
    assert "until" not in auto.P.backend_reason
