"""JAX and PyTorch flavours of the exported module equal the NumPy kernels and steps, and behave
as their framework expects (jit, vmap, grad; autograd, dtype)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from catalogue import shipped_specs
from conftest import optional_module

from scaleinv import export, load_spec, rules
from scaleinv.errors import ScaleinvError
from scaleinv.numeric.flavors import namespace_of
from scaleinv.numeric.flavors.loader import load_module
from scaleinv.numeric.inverse import numeric_inverse_note

SPECS = shipped_specs()
# diffusion.toml (256 inputs) is left out: flavours hold J and H dense, and tracing a stack of
# 256 x 256 Hessian entries takes minutes (a known limit, see the README)
FLAVOR_SPECS = [p for p in SPECS if p.stem != "diffusion"]
Y_ARGS = ("loss_of_y", "loss_y", "newton_dy")


def _jax():
    jax = optional_module("jax", "jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def _framework(flavor: str):
    if flavor == "jax":
        jax = _jax()
        return jax.numpy.asarray
    torch = optional_module("torch", "torch")
    return torch.as_tensor


def _points(spec, size: int) -> np.ndarray:
    """Random points around the spec's starts (where its rules are defined)."""
    rng = np.random.default_rng(7)
    starts = np.array(spec.starts, dtype=float)
    picks = starts[rng.integers(0, len(starts), size)]
    return picks * rng.uniform(0.5, 1.5, picks.shape) + rng.uniform(-0.1, 0.1, picks.shape)


def _calls(module, x: np.ndarray):
    """Every exported function's arguments at the points ``x`` (NumPy arrays)."""
    y = module.P(x)
    for name in module.__all__:
        if name == "local_inverse":
            yield name, (y * 0.9, x)
        elif name in Y_ARGS:
            yield name, (y,)
        else:
            yield name, (x,)


@pytest.mark.parametrize("flavor", ["jax", "torch"])
@pytest.mark.parametrize("path", FLAVOR_SPECS, ids=lambda p: p.stem)
def test_flavor_equals_numpy_on_every_shipped_spec(path: Path, flavor: str) -> None:
    convert = _framework(flavor)
    spec = load_spec(path)
    reference = load_module(spec.problem, "numpy")
    module = load_module(spec.problem, flavor)
    # a numeric (path-following) local inverse is NumPy-only: PG is left out of the others
    numeric = numeric_inverse_note(spec.problem, rules.pg()) is not None
    dropped = {"local_inverse", "pg_step"} if numeric else set()
    assert module.__all__ == [name for name in reference.__all__ if name not in dropped]
    x = _points(spec, 16)
    for name, args in _calls(reference, x):
        want = getattr(reference, name)(*args)
        got = getattr(module, name)(*map(convert, args))
        want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
        for w, g in zip(want, got, strict=True):
            g = np.asarray(g)
            assert g.dtype == w.dtype, name
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"{path.stem}:{name}")


def _comparison():
    return load_spec(SPECS[0].parent / "comparison.toml").problem


def test_jax_jacfwd_of_p_is_the_jacobian_and_vmap_and_grad_trace() -> None:
    jax = _jax()
    module = load_module(_comparison(), "jax", [rules.pg(0.3), rules.newton(0.5)])
    x = jax.numpy.asarray(np.random.default_rng(3).uniform(-2, 2, (6, 2)))
    jac = jax.vmap(jax.jacfwd(module.P))(x)
    np.testing.assert_allclose(jac, module.jacobian(x), rtol=1e-13)
    grad = jax.vmap(jax.grad(module.loss))(x)
    np.testing.assert_allclose(grad, module.gradient(x), rtol=1e-13)
    assert module.P(x).dtype == jax.numpy.float64
    dx, status = jax.vmap(module.newton_step)(x)
    np.testing.assert_allclose(dx, module.newton_step(x)[0], rtol=1e-13)


def test_jit_compiled_pg_step_equals_numpy_step() -> None:
    jax = _jax()
    problem = load_spec(SPECS[0].parent / "spring.toml").problem  # periodic-free, two branches
    for p, points in [(_comparison(), None), (problem, "spring")]:
        module = load_module(p, "jax", [rules.pg(0.3, fallback="ig")])
        reference = load_module(p, "numpy", [rules.pg(0.3, fallback="ig")])
        rng = np.random.default_rng(5)
        x = rng.uniform(0.5, 3, (32, p.n)) * (rng.choice([-1, 1], (32, p.n)) if not points else 1)
        dx, status = jax.jit(module.pg_step)(x)
        want_dx, want_status = reference.pg_step(x)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(status, want_status)


def test_jit_pg_step_takes_the_periodic_shift() -> None:
    jax = _jax()
    from scaleinv import Problem

    p = Problem.from_strings(["x"], ["sin(x)"], target=[0.5])
    module = load_module(p, "jax", [rules.pg(0.5)])
    reference = load_module(p, "numpy", [rules.pg(0.5)])
    x = np.linspace(-20, 20, 41)[:, None] + 0.3  # many periods away from the principal branch
    dx, status = jax.jit(module.pg_step)(x)
    want_dx, want_status = reference.pg_step(x)
    assert np.abs(want_dx).max() < 1.5  # the shift kept every step within its period
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(status, want_status)


def test_jit_local_inverse_equals_numpy_with_status_residual_and_grad() -> None:
    """The traced closed-form inverse: same x, status (NO_INVERSE where exp(v) = y1 <= 0) and
    residual as the blocked NumPy one under jit, and jax.grad through it is 1 / P'(x)."""
    jax = _jax()
    from catalogue import CATALOGUE

    p = CATALOGUE["cubic_exp"]  # (u, v) -> (u**3, exp(v))
    module, reference = load_module(p, "jax", [rules.pg()]), load_module(p, "numpy", [rules.pg()])
    rng = np.random.default_rng(6)
    y, x0 = rng.uniform(-8, 8, (64, 2)), rng.uniform(-2, 2, (64, 2))
    got, want = jax.jit(module.local_inverse)(y, x0), reference.local_inverse(y, x0)
    assert (want[1] == 4).any() and (want[1] == 0).any()  # both outcomes are exercised
    for g, w in zip(got, want, strict=True):
        assert np.asarray(g).dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    target, start = jax.numpy.array([[27.0, 5.0]]), jax.numpy.array([[2.0, 1.0]])
    grad = jax.grad(lambda t: module.local_inverse(t, start)[0].sum())(target)
    np.testing.assert_allclose(grad, [[1 / (3 * 3.0**2), 1 / 5.0]], rtol=1e-12)


def test_numeric_inverse_steps_are_numpy_only_with_a_reason() -> None:
    """PG steps that need the numeric (path-following) inverse are not written for JAX or
    PyTorch: the module says so; the NumPy module has them."""
    _jax()
    from catalogue import CATALOGUE

    from scaleinv.numeric.export import module_source

    cases = [
        (CATALOGUE["overdetermined"], rules.pg(0.5)),
        (_comparison(), rules.pg(inverse="numeric")),
    ]
    for problem, rule in cases:
        text = module_source(problem, [rule, rules.newton()], flavor="jax")
        module = load_module(problem, "jax", [rule, rules.newton()])
        assert rule.step_name not in module.__all__ and "newton_step" in module.__all__
        assert f"Not exported: {rule.step_name} (its local inverse is numeric" in text
        assert "runs on NumPy only" in text
        numpy_module = load_module(problem, "numpy", [rule])
        assert rule.step_name in numpy_module.__all__


def test_torch_autograd_of_loss_is_the_gradient_and_dtype_is_kept() -> None:
    torch = optional_module("torch", "torch")
    module = load_module(_comparison(), "torch", [rules.pg(0.3)])
    x = torch.tensor(np.random.default_rng(4).uniform(-2, 2, (6, 2)), requires_grad=True)
    module.loss(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), module.gradient(x.detach()).numpy(), rtol=1e-13)
    # autograd flows through a PG step too: d(x + dx)/dx of the branch x1 -> sqrt(0.7) x1
    z = torch.tensor([[1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    (z + module.pg_step(z)[0])[0, 1].backward()
    np.testing.assert_allclose(z.grad.numpy(), [[0.0, np.sqrt(0.7)]], rtol=1e-8)
    x32 = torch.ones((3, 2), dtype=torch.float32)
    assert module.P(x32).dtype == torch.float32
    assert module.pg_step(x32)[0].dtype == torch.float32


def test_export_flavor_writes_a_module_that_needs_only_its_framework(tmp_path: Path) -> None:
    optional_module("torch", "torch")
    target = tmp_path / "kernels_torch.py"
    export(_comparison(), target, flavor="torch", rules=[rules.pg(0.3)])
    runner = (
        "import sys; sys.path.insert(0, sys.argv[1]); import kernels_torch, torch;"
        "assert 'sympy' not in sys.modules and 'scaleinv' not in sys.modules;"
        "dx, s = kernels_torch.pg_step(torch.tensor([[3.0, 3.0]], dtype=torch.float64));"
        "print(round(float(dx[0, 1]), 6))"
    )
    out = subprocess.run(
        [sys.executable, "-c", runner, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(round(3 * np.sqrt(0.7) - 3, 6))


def test_unknown_flavor_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScaleinvError, match="unknown flavor 'tensorflow'; known: numpy, jax"):
        export(_comparison(), tmp_path / "k.py", flavor="tensorflow")
    with pytest.raises(ScaleinvError, match="unknown flavor"):
        namespace_of("mlx")


def test_importing_scaleinv_imports_no_framework() -> None:
    code = (
        "import sys, scaleinv, scaleinv.cli.main, scaleinv.numeric.flavors;"
        "print(sorted(m for m in ('jax', 'torch', 'dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_export_flavor(tmp_path: Path, capsys) -> None:
    from scaleinv.cli.main import main

    _jax()
    target = tmp_path / "k.py"
    assert main(["export", "reports/comparison.toml", "--to", str(target), "--flavor", "jax"]) == 0
    text = target.read_text()
    assert "import jax.numpy" in text and "def pg_step(" in text and "import numpy\n" not in text


def test_a_missing_framework_names_its_extra(monkeypatch) -> None:
    from scaleinv.numeric import flavors

    missing = flavors.Flavor("torch", "torch", "no_such_fw", "no_such_fw.namespace")
    monkeypatch.setitem(flavors.FLAVORS, "torch", missing)
    with pytest.raises(ScaleinvError, match=r"needs no_such_fw: pip install 'scaleinv\[torch\]'"):
        namespace_of("torch")


MAX_MIN_SPEC = """
[problem]
inputs = ["x0", "x1"]
outputs = ["Max(x0, 0) + x1", "min(x1, 1, x0**2)*x0"]
target = [1, 0.5]
"""


@pytest.mark.parametrize("flavor", ["numpy", "jax", "torch"])
def test_max_and_min_kernels_run_and_equal_sympy_and_finite_differences(
    flavor: str, tmp_path: Path
) -> None:
    """``Max``/``Min`` printed as SymPy prints them for NumPy (``functools.reduce(...)``) were
    a NameError in the generated code; PyTorch's ``torch.max(0, x)`` a TypeError."""
    convert = np.asarray if flavor == "numpy" else _framework(flavor)
    path = tmp_path / "relu.toml"
    path.write_text(MAX_MIN_SPEC)
    problem = load_spec(path).problem
    module = load_module(problem, flavor)
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (200, 2))
    kinks = np.stack([x[:, 0], x[:, 1] - 1, x[:, 1] - x[:, 0] ** 2, x[:, 0] ** 2 - 1], axis=1)
    x = x[np.abs(kinks).min(axis=1) > 0.05][:24]  # away from where Max/Min switch arguments
    values = np.asarray(module.P(convert(x)))
    exact = [
        [float(p.xreplace(dict(zip(problem.inputs, row)))) for p in problem.outputs] for row in x
    ]
    np.testing.assert_allclose(values, exact, rtol=1e-14, atol=1e-15)
    h = 1e-6
    columns = [
        (module.P(convert(x + h * e)) - module.P(convert(x - h * e))) / (2 * h) for e in np.eye(2)
    ]
    fd = np.stack([np.asarray(c) for c in columns], axis=-1)
    np.testing.assert_allclose(np.asarray(module.jacobian(convert(x))), fd, rtol=1e-7, atol=1e-8)
    kernels = problem.compile()  # the in-process NumPy kernels: the same printer's other path
    np.testing.assert_allclose(kernels.P(x), exact, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(kernels.jacobian(x), fd, rtol=1e-7, atol=1e-8)
    assert np.isfinite(np.asarray(module.hessian(convert(x)))).all()


@pytest.mark.slow
def test_a_mostly_zero_hessian_is_gathered_not_stacked_entry_by_entry() -> None:
    """A flat problem of many inputs: its Hessian kernel stacked all n² entries (zeros too),
    a minute of tracing under jax.jit at n = 128; now the nonzero ones, then one gather."""
    from scaleinv import Problem

    n = 12
    xs = [f"x{k}" for k in range(n)]
    outputs = [
        f"x{k} + 0.1*(x{(k + 1) % n} - 2*x{k} + x{(k - 1) % n}) + 0.05*x{k}**3" for k in range(n)
    ]
    problem = Problem.from_strings(xs, outputs, target=[str(np.sin(k)) for k in range(n)])
    x = np.random.default_rng(4).normal(size=(5, n))
    want = problem.compile().hessian(x)  # the in-process NumPy kernels
    assert np.count_nonzero(want[0]) < n * n / 2
    for flavor in ("jax", "torch"):
        convert = _framework(flavor)
        module = load_module(problem, flavor)
        got = np.asarray(module.hessian(convert(x)))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    jax = _jax()
    module = load_module(problem, "jax")
    jaxpr = jax.make_jaxpr(module.hessian)(x)
    widest = max(len(eqn.invars) for eqn in jaxpr.jaxpr.eqns)
    assert widest < n * n / 2  # no op takes every entry


def test_exp_of_a_derivative_is_printed_as_exp_not_a_power_of_e() -> None:
    """Derivatives on the expression graph keep ``Pow(E, a)`` unevaluated; SymPy printed it as
    ``e**a``: under JAX a general ``pow`` per element, far slower than ``exp`` on the CPU (the
    fused engine's GD on the coupled map ran 1.6x its ``jax.grad`` twin). Every flavour now
    prints ``exp``; values equal the in-process NumPy kernels, which print ``exp`` already."""
    import sympy as sp

    from scaleinv import Problem
    from scaleinv.numeric.flavors import printer_of

    x = sp.Symbol("x0", real=True)
    power = sp.Mul(3, sp.Pow(sp.E, 2 * x, evaluate=False), evaluate=False)
    for flavor, module in (("numpy", "numpy"), ("jax", "jax.numpy"), ("torch", "torch")):
        assert printer_of(flavor).doprint(power) == f"3*{module}.exp(2*x0)"
    problem = Problem.from_strings(["x0", "x1"], ["x0*x1 + exp(x0)/3", "x1**2"], target=[1, 2])
    points = np.random.default_rng(3).uniform(-1, 1, (8, 2))
    kernels = problem.compile()
    jax = _jax()
    module = load_module(problem, "jax")
    for name in ("gradient", "hessian"):
        primitives = {e.primitive.name for e in jax.make_jaxpr(getattr(module, name))(points).eqns}
        assert "exp" in primitives and "pow" not in primitives, name
        got = np.asarray(getattr(module, name)(jax.numpy.asarray(points)))
        np.testing.assert_allclose(got, getattr(kernels, name)(points), rtol=1e-14, atol=1e-15)
