"""The exported module of an indexed problem: vectorised over the grid (its source does not grow
with n), equal to the problem written out entry by entry and to the in-process kernels, in
NumPy, JAX (under jit) and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue import shipped_specs
from conftest import optional_module

from scaleinv import export, load_spec
from scaleinv.numeric.export import module_source
from scaleinv.symbolic.indexed import IndexedProblem

DIFFUSION = "u[i] + dt*(nu*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3) + a[i]*u[i+2]"
BOUNDARIES = ["periodic", {"kind": "dirichlet", "value": 0.5}, "neumann"]


def diffusion(n: int, boundary) -> IndexedProblem:
    params = {"n": n, "dt": 0.1, "nu": 1.0, "c": 0.3, "a": "1 + i/n"}
    return IndexedProblem.from_strings(
        "u[0:n]", DIFFUSION, boundary=boundary, params=params, target="sin(i)"
    )


def brusselator(nx: int, ny: int, boundary) -> IndexedProblem:
    u = "u[i,j] + dt*(D*(u[i+1,j] + u[i-1,j] + u[i,j+1] + u[i,j-1] - 4*u[i,j]) + A"
    u += " - (B+1)*u[i,j] + u[i,j]**2*v[i,j])"
    v = "v[i,j] + dt*(D*(v[i+1,j] - 2*v[i,j] + v[i-1,j]) + B*u[i,j] - u[i,j]**2*v[i,j])"
    return IndexedProblem.from_strings(
        ["u[0:nx, 0:ny]", "v[0:nx, 0:ny]"],
        [u, v],
        boundary=boundary,
        params={"nx": nx, "ny": ny, "dt": 0.1, "D": 0.2, "A": 1.0, "B": 3.0},
        target_from=["1 + 0.1*i", "2 - 0.1*j"],
    )


def _module(problem: IndexedProblem, flavor: str) -> dict:
    scope: dict = {"__name__": f"exported_{flavor}"}
    exec(compile(module_source(problem, flavor=flavor), "<exported>", "exec"), scope)  # noqa: S102
    return scope


def _point_params(problem: IndexedProblem) -> dict:
    return {k: np.array(v) for k, v in problem.point_params.items()}  # writable: torch


def _check(problem: IndexedProblem, module: dict, convert, jit=lambda f: f) -> None:
    """P, loss and gradient equal the entry-by-entry twin's and the in-process kernels'."""
    x = np.random.default_rng(1).normal(size=(3, problem.n))
    twin = problem.to_problem().compile()
    kernels = problem.compile()
    extra = {k: convert(v) for k, v in _point_params(problem).items()}
    for name in ("P", "loss", "gradient"):
        got = np.asarray(jit(lambda z, f=module[name]: f(z, **extra))(convert(x)))
        np.testing.assert_allclose(got, getattr(twin, name)(x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got, getattr(kernels, name)(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=["periodic", "dirichlet", "neumann"])
@pytest.mark.parametrize("n", [7, 12])
def test_numpy_module_equals_twin_and_kernels(n, boundary):
    problem = diffusion(n, boundary)
    _check(problem, _module(problem, "numpy"), np.asarray)


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=["periodic", "dirichlet", "neumann"])
def test_two_fields_on_a_2d_grid(boundary):
    problem = brusselator(4, 5, boundary)
    _check(problem, _module(problem, "numpy"), np.asarray)


@pytest.mark.parametrize("n", [7, 12])
def test_jax_module_under_jit(n):
    jax = optional_module("jax", "jax")
    jax.config.update("jax_enable_x64", True)
    for problem in (diffusion(n, "neumann"), brusselator(4, n // 2, "periodic")):
        _check(problem, _module(problem, "jax"), jax.numpy.asarray, jax.jit)


def test_torch_module_keeps_autograd():
    torch = optional_module("torch", "torch")
    problem = diffusion(9, {"kind": "dirichlet", "value": 0.5})
    module = _module(problem, "torch")
    _check(problem, module, torch.as_tensor)
    x = torch.tensor(np.random.default_rng(2).normal(size=(2, problem.n)), requires_grad=True)
    extra = {k: torch.as_tensor(v) for k, v in _point_params(problem).items()}
    module["loss"](x, **extra).sum().backward()  # autograd's gradient: a second path
    expected = module["gradient"](x.detach(), **extra)
    np.testing.assert_allclose(x.grad.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("flavor", ["numpy", "jax", "torch"])
def test_source_does_not_grow_with_n(flavor):
    """The module at n = 16 and n = 10⁶ differ only in the grid's size where it is written."""
    if flavor != "numpy":
        optional_module(flavor, flavor)
    small, large = (module_source(diffusion(n, "periodic"), flavor=flavor) for n in (16, 10**6))
    assert small.replace("16", "N") == large.replace("1000000", "N")


def test_gd_step_and_export_to_file(tmp_path):
    from scaleinv import rules

    problem = diffusion(8, "periodic")
    path = export(problem, tmp_path / "kernels.py", rules=[rules.gd(0.05), rules.newton()])
    text = path.read_text(encoding="utf-8")
    assert "Not exported: newton_step" in text
    scope: dict = {}
    exec(compile(text, str(path), "exec"), scope)  # noqa: S102
    x = np.linspace(0, 1, problem.n)[None]
    dx, status = scope["gd_step"](x, eta=0.05, **_point_params(problem))
    np.testing.assert_allclose(dx, -0.05 * problem.compile().gradient(x), rtol=1e-12)
    assert status.tolist() == [0]


def test_missing_point_param_is_a_clear_error():
    module = _module(diffusion(8, "periodic"), "numpy")
    with pytest.raises(TypeError, match="missing per-point params"):
        module["P"](np.zeros(8))


@pytest.mark.parametrize("path", shipped_specs(indexed=True), ids=lambda p: p.stem)
def test_shipped_indexed_specs_export_their_kernels(path):
    """Each shipped indexed spec, at its own size: the NumPy module equals the kernels."""
    problem = load_spec(path).problem
    module = _module(problem, "numpy")
    x = np.asarray(load_spec(path).starts[0]) * (
        1 + 0.1 * np.random.default_rng(0).normal(size=problem.n)
    )
    kernels = problem.compile()
    extra = _point_params(problem)
    for name in ("P", "loss", "gradient"):
        np.testing.assert_allclose(
            module[name](x, **extra), getattr(kernels, name)(x), rtol=1e-12, atol=1e-12
        )


def test_cli_export_says_what_is_not_exported(tmp_path, capsys):
    from scaleinv.cli.main import main

    spec = tmp_path / "heat.toml"
    spec.write_text(
        'title = "heat"\n[problem]\ninputs = "u[0:n]"\noutputs = "u[i] + 0.1*(u[i+1] - u[i])"\n'
        '[params]\nn = 8\n[[rules]]\nname = "gd"\neta = 0.3\n[[rules]]\nname = "newton"\n',
        encoding="utf-8",
    )
    optional_module("jax", "jax")
    assert main(["export", str(spec), "--to", str(tmp_path / "k.py"), "--flavor", "jax"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "not exported: newton_step" in out
    text = (tmp_path / "k.py").read_text(encoding="utf-8")
    assert "def gd_step(x, eta=0.3" in text and "import jax" in text
    # the docstring named the grid's size param ("Functions: n.") instead of the functions
    scope: dict = {}
    exec(compile(text, "k.py", "exec"), scope)  # noqa: S102
    assert f"Functions: {', '.join(scope['__all__'])}." in text


def _hessian_vector_check(problem: IndexedProblem, module: dict, convert, jit=lambda f: f):
    """H v equals the in-process kernels' assembled sparse H times v, and the finite difference
    of the exported gradient along v."""
    rng = np.random.default_rng(2)
    x, v = rng.normal(size=(2, problem.n)), rng.normal(size=(2, problem.n))
    extra = {k: convert(a) for k, a in _point_params(problem).items()}
    product = jit(lambda z, w: module["hessian_vector"](z, w, **extra))
    got = np.asarray(product(convert(x), convert(v)))
    kernels = problem.compile()
    for k in range(2):
        want = kernels.hessian_matrix(x[k]) @ v[k]
        np.testing.assert_allclose(got[k], want, rtol=1e-10, atol=1e-10)
    h = 1e-6
    gradient = module["gradient"]
    fd = (np.asarray(gradient(convert(x + h * v), **extra))
          - np.asarray(gradient(convert(x - h * v), **extra))) / (2 * h)  # fmt: skip
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=str)
def test_hessian_vector_is_h_times_v_at_every_boundary(boundary):
    _hessian_vector_check(diffusion(12, boundary), _module(diffusion(12, boundary), "numpy"),
                          np.asarray)  # fmt: skip
    two = brusselator(5, 4, boundary)
    _hessian_vector_check(two, _module(two, "numpy"), np.asarray)


def test_jax_hessian_vector_under_jit_never_forms_h():
    jax = optional_module("jax", "jax")
    jax.config.update("jax_enable_x64", True)
    problem = brusselator(6, 5, "neumann")
    module = _module(problem, "jax")
    _hessian_vector_check(problem, module, jax.numpy.asarray, jax.jit)
    x, v = np.ones((1, problem.n)), np.ones((1, problem.n))
    jaxpr = jax.make_jaxpr(lambda z, w: module["hessian_vector"](z, w))(x, v)
    sizes = [int(np.prod(var.aval.shape)) for eqn in jaxpr.jaxpr.eqns for var in eqn.outvars]
    assert max(sizes) < problem.n * 20  # no n × n array: O(n) per intermediate
