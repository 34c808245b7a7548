"""Reports, derivations and verdicts of an indexed spec: the formula and its stencils shown
once, verdicts per field (the same as the expanded problem's at a small grid), a PDF."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from catalogue import shipped_specs

from scaleinv import rules
from scaleinv.analysis.invariance import scale_invariance
from scaleinv.analysis.invariance_indexed import field_scaling_invariance
from scaleinv.analysis.transforms import InputScaling
from scaleinv.cli.main import main
from scaleinv.reports.indexed_tex import index_tex
from scaleinv.reports.indexed_text import gradient_stencil
from scaleinv.symbolic.indexed import IndexedProblem

SPEC = """\
title = "indexed heat"
[problem]
inputs = "u[0:n]"
outputs = "u[i] + dt*(nu*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3)"
boundary = {boundary}
target = "sin(2*pi*i/n)"
[params]
n = 48
dt = 0.1
nu = 0.5
c = 0.2
[run]
starts = [0.5]
steps = 6
[units]
u = "temperature"
dt = "time"
nu = "1/time"
c = "1/(time*temperature**2)"
[study]
starts = 4
spread = 0.1
steps = 12
[[rules]]
name = "gd"
eta = 0.5
[[rules]]
name = "newton"
[[rules]]
name = "ig"
"""


def _spec(tmp_path, boundary='"periodic"'):
    path = tmp_path / "heat.toml"
    path.write_text(SPEC.format(boundary=boundary), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The report of the indexed heat spec, built once (LaTeX when installed)."""
    from scaleinv.reports.builder import build

    folder = tmp_path_factory.mktemp("indexed_report")
    path = _spec(folder, '{kind = "dirichlet", value = 0.25}')
    return build(path, folder / "out")


@pytest.mark.slow
def test_report_shows_the_formula_once_and_its_stencils(built):
    text = built.tex.read_text(encoding="utf-8")
    assert text.count("P_{i} =") == 1  # the point formula, once
    assert "Derivatives as stencils" in text and "Boundary rows" in text
    assert "ghost values (u = 0.25)" in text
    assert "Many starts" in text and "spread" not in text.split("Many starts")[0]
    assert text.count("\\frac{\\partial P_{i}}{\\partial u_{") == 3  # J's three diagonals
    assert {f.stem for f in built.figures} >= {"sparsity", "profile", "loss"}
    verdicts = {(v.subject.split(" ")[0], v.check): v.verdict for v in built.verdicts}
    assert verdicts[("Newton", "scale invariance")] == "proved"
    assert verdicts[("GD", "scale invariance")] == "refuted"
    assert verdicts[("IG", "units")] == "consistent"


@pytest.mark.slow
def test_report_pdf(built, tex):
    assert built.pdf is not None and built.pdf.exists()
    assert len(built.pages()) >= 3


def test_derive_prints_stencils_not_entries(tmp_path, capsys):
    assert main(["derive", str(_spec(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert out.count("P[i] = ") == 1
    assert "Jacobian stencil (3 diagonals" in out and "Hessian stencil of L (5 diagonals" in out
    assert "u47" not in out and "x47" not in out  # nothing per entry


def test_verify_exit_code(tmp_path, capsys):
    assert main(["verify", str(_spec(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "0 failed and 0 not decided" in out


def test_gradient_stencil_equals_the_gradient_kernel():
    """The printed interior-row gradient, evaluated at a point, is the kernel's gradient."""
    problem = small_heat()
    [(_, formula)] = gradient_stencil(problem)
    x = np.random.default_rng(0).normal(size=problem.n)
    kernels = problem.compile()
    target = kernels.target
    i = 7
    values = {sp.Symbol("i", integer=True): i}
    for s in formula.free_symbols:
        name = s.name
        if name.startswith(("u[", "y*[")):
            offset = int(name[name.index("[i") + 2 : -1] or 0)
            array = x if name.startswith("u") else target
            values[s] = array[(i + offset) % problem.n]
        elif s.name in {str(k) for k in problem.params}:
            values[s] = problem.params[next(k for k in problem.params if str(k) == s.name)]
    assert float(formula.subs(values)) == pytest.approx(kernels.gradient(x)[i], rel=1e-12)


def small_heat() -> IndexedProblem:
    params = {"n": 16, "dt": 0.1, "nu": 0.5, "c": 0.2}
    return IndexedProblem.from_strings(
        "u[0:n]",
        "u[i] + dt*(nu*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3)",
        boundary="periodic",
        params=params,
        target="sin(2*pi*i/n)",
    )


@pytest.mark.slow
@pytest.mark.parametrize(("rule", "verdict"), [("gd", "refuted"), ("newton", "proved")])
def test_invariance_matches_the_expanded_problem(rule, verdict):
    """The stencil-form verdict equals scale_invariance's on the problem written out."""
    problem = IndexedProblem.from_strings(
        "u[0:n]", "u[i] + dt*(u[i+1] - u[i-1])", boundary="periodic",
        params={"n": 3, "dt": 0.1}, target="i",
    )  # fmt: skip
    start = np.array([0.5, -0.2, 0.3])
    found = field_scaling_invariance(problem, rule, start, 0.1)
    twin = problem.to_problem()
    scales = {str(x): "s" for x in twin.inputs}  # one scale for the whole field
    expanded = scale_invariance(twin, rules.REGISTRY[rule](sp.Symbol("eta")), InputScaling(scales),
                                rng=0)  # fmt: skip
    assert str(found.verdict) == verdict == str(expanded.verdict)


def test_index_tex_names_accesses_and_targets():
    u1, ystar = sp.Symbol("u[i+1]"), sp.Symbol("y*[i-1]")
    assert index_tex(u1 + ystar) in ("u_{i+1} + y^{*}_{i-1}", "y^{*}_{i-1} + u_{i+1}")
    assert index_tex(sp.Symbol("v[i, j-1]")) == "v_{i,j-1}"


@pytest.mark.slow
@pytest.mark.parametrize("path", shipped_specs(indexed=True), ids=lambda p: p.stem)
def test_shipped_indexed_specs_build(path, tmp_path, tex):
    from scaleinv.reports.builder import build

    result = build(path, tmp_path / "out")
    text = result.tex.read_text(encoding="utf-8")
    assert "Derivatives as stencils" in text and result.pdf is not None
    assert len(result.pages()) >= 3
