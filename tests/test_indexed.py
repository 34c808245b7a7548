"""Indexed problems, symbolic side: parsing, the spec route, stencils against the problem
written out entry by entry (:meth:`IndexedProblem.to_problem`)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from scaleinv.errors import ParseError, ProblemError, SpecError
from scaleinv.symbolic import IndexedProblem, Problem
from scaleinv.symbolic.indexed import Boundary
from scaleinv.symbolic.spec import parse_spec

DIFFUSION = "u[i] + 0.1*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3"


def diffusion(n: int = 8, boundary: object = "periodic", **kw: object) -> IndexedProblem:
    return IndexedProblem.from_strings(
        "u[0:n]", DIFFUSION, boundary=boundary, params={"n": n, "c": 0.05}, **kw
    )


@pytest.mark.parametrize(
    ("inputs", "formula", "offending"),
    [
        ("u[0:n]", "u[2*i]", "u[2*i]"),
        ("u[0:n]", "u[i] + u[i+0.5]", "u[i+0.5]"),
        ("u[0:n]", "u[i] + w[i]", "w[i]"),
        ("u[0:n]", "u[i, i]", "u[i, i]"),
        ("u[0:n]", "u[i+n]", "u[i+n]"),
        ("u[0:n, 0:n]", "u[j, i]", "u[j, i]"),
        ("u[0:n, 0:n]", "u[i]", "u[i]"),
        ("u[0:n]", "u[i:i+2]", "u[i:i+2]"),
        ("u[0:n]", "u[i].real", "u[i].real"),
    ],
)
def test_a_bad_index_is_a_one_line_error_naming_it(inputs: str, formula: str, offending: str):
    with pytest.raises(ParseError) as err:
        IndexedProblem.from_strings(inputs, formula, params={"n": 8})
    message = str(err.value)
    assert "\n" not in message
    assert repr(offending) in message


def test_a_per_point_param_is_read_at_the_point():
    with pytest.raises(ParseError, match=r"read at the point itself.*'a\[i\+1\]'"):
        IndexedProblem.from_strings("u[0:n]", "u[i]*a[i+1]", params={"n": 8, "a": "i"})


@pytest.mark.parametrize(
    ("inputs", "params", "reason"),
    [
        ("u[1:n]", {"n": 4}, "starts at 0"),
        ("u[0:m]", {"n": 4}, "a size is"),
        ("u[0:n]", {"n": 2.5}, "positive integer"),
        ("u[0:n:2]", {"n": 4}, "range 0:size"),
        ("u", {"n": 4}, r"name\[0:size\]"),
    ],
)
def test_a_bad_grid_is_refused(inputs: str, params: dict, reason: str):
    with pytest.raises(ParseError, match=reason):
        IndexedProblem.from_strings(inputs, "1", params=params)


def test_fields_share_one_grid_and_boundaries_are_checked():
    with pytest.raises(ProblemError, match="one grid"):
        IndexedProblem.from_strings(["u[0:n]", "v[0:m]"], ["u[i]", "v[i]"], params={"n": 4, "m": 5})
    with pytest.raises(ProblemError, match="boundary must be one of"):
        diffusion(boundary="open")
    with pytest.raises(ProblemError, match="takes no value"):
        diffusion(boundary={"kind": "neumann", "value": 1})
    with pytest.raises(ProblemError, match="needs more points"):
        diffusion(n=1)


@pytest.mark.parametrize(
    ("inputs", "outputs", "params", "shown"),
    [
        ("u[0:n]", "1.0", {"n": 4}, r"u\[i\]"),
        ("u[0:n, 0:n]", ["a[i, j]**2"], {"n": 3, "a": [[1.0] * 3] * 3}, r"u\[i, j\]"),
    ],
)
def test_outputs_that_read_no_input_field_are_refused(inputs, outputs, params, shown):
    with pytest.raises(ProblemError, match=f"no output reads an input field.*{shown}"):
        IndexedProblem.from_strings(inputs, outputs, params=params)


def test_the_spec_route_follows_how_inputs_are_written():
    indexed = parse_spec(
        {
            "problem": {"inputs": "u[0:n]", "outputs": DIFFUSION, "boundary": "neumann"},
            "params": {"n": 16, "c": 0.05},
            "run": {"starts": [0.0, "0.1*i"]},
        }
    )
    assert isinstance(indexed.problem, IndexedProblem)
    assert indexed.problem.boundary.kind == "neumann"
    np.testing.assert_array_equal(indexed.starts[1], 0.1 * np.arange(16))
    listed = parse_spec({"problem": {"inputs": ["x0"], "outputs": ["x0**2"]}})
    assert isinstance(listed.problem, Problem)
    with pytest.raises(SpecError, match="did you mean 'boundary'"):
        parse_spec(
            {
                "problem": {"inputs": "u[0:n]", "outputs": "u[i]", "boundry": "periodic"},
                "params": {"n": 4},
            }
        )
    with pytest.raises(SpecError, match=r"\[problem\.outputs\] .*u\[2\*i\]"):
        parse_spec({"problem": {"inputs": "u[0:n]", "outputs": "u[2*i]"}, "params": {"n": 4}})


def test_boundary_sources_match_numpy_padding():
    """The boundary rule's reads (used by to_problem) against NumPy's pad modes (used by the
    kernels): an independent second path."""
    size, width = 6, 3
    grid = np.arange(size)
    for kind, mode in (("periodic", "wrap"), ("neumann", "reflect")):
        padded = np.pad(grid, width, mode=mode)
        rule = Boundary(kind)
        assert [rule.source(p, size) for p in range(-width, size + width)] == list(padded)
    assert Boundary("dirichlet").source(-1, size) is None


@pytest.mark.parametrize("boundary", ["periodic", "neumann", "dirichlet"])
def test_the_jacobian_stencil_is_the_expanded_jacobian(boundary: str):
    """Each diagonal's formula, read at point i, is the entry (i, i + d) of the Jacobian of the
    problem written out entry by entry (interior rows; periodic: every row)."""
    p = diffusion(9, boundary)
    q = p.to_problem()
    jacobian = q.jacobian
    n = p.points
    for i in range(1, n - 1):
        row = {}
        for diag in p.jacobian_stencil:
            row[(i + diag.offset[0]) % n] = diag.formula.xreplace(_at(p, q, i))
        for col in range(n):
            assert sp.simplify(jacobian[i, col] - row.get(col, 0)) == 0


def test_the_hessian_stencil_is_the_expanded_hessian_on_a_periodic_grid():
    p = diffusion(9, target="0.5*sin(2*pi*i/n)")
    q = p.to_problem()
    hessian = q.hessian
    n = p.points
    for i in range(n):
        values = _at(p, q, i)
        for d in range(-2, 3):  # the targets around i, as y0*[i+d]
            name = "y0*" if d == 0 else f"y0*[i{d:+d}]".replace("+", "+")
            values[sp.Symbol(name, real=True)] = q.target[(i + d) % n]
        for diag in p.hessian_stencil:
            col = (i + diag.offset[0]) % n
            assert sp.simplify(hessian[i, col] - diag.formula.xreplace(values)) == 0
        assert sum(1 for col in range(n) if hessian[i, col] != 0) == len(p.hessian_stencil)


def _at(p: IndexedProblem, q: Problem, i: int) -> dict:
    """Accesses of p around point i as q's inputs (periodic wrap), and the index."""
    n = p.points
    values: dict = {p.index[0]: i}
    for d in range(-3, 4):
        values[sp.Symbol(f"u[{p.index[0] + d}]".replace(" ", ""), real=True)] = q.inputs[
            (i + d) % n
        ]
    return values


def test_representative_rows_and_sizes():
    p = diffusion(5000)
    rows = p.representative_rows()
    assert [col for _, col, _ in rows["J"]] == ["u[i-1]", "u[i]", "u[i+1]"]
    assert [col for _, col, _ in rows["H"]] == ["u[i-2]", "u[i-1]", "u[i]", "u[i+1]", "u[i+2]"]
    assert p.range_text == "i = 0 … n − 1"
    assert (p.n, p.m, p.width) == (5000, 5000, (1,))
    with pytest.raises(ProblemError, match="max_points"):
        p.to_problem()


def test_target_from_is_the_output_at_the_state():
    p = diffusion(6, target_from="0.5*sin(2*pi*i/n)")
    q = p.to_problem()
    star = [0.5 * np.sin(2 * np.pi * i / 6) for i in range(6)]
    by_hand = [
        star[i] + 0.1 * (star[(i + 1) % 6] - 2 * star[i] + star[i - 1]) + 0.05 * star[i] ** 3
        for i in range(6)
    ]
    values = {s: v for s, v in q.params.items()}
    np.testing.assert_allclose(
        [float(t.subs(values)) for t in q.target], by_hand, rtol=1e-14, atol=1e-15
    )


def test_per_point_params_from_a_formula_or_a_list():
    from_formula = IndexedProblem.from_strings("u[0:n]", "a[i]*u[i]", params={"n": 4, "a": "1 + i"})
    from_list = IndexedProblem.from_strings(
        "u[0:n]", "a[i]*u[i]", params={"n": 4, "a": [1, 2, 3, 4]}
    )
    np.testing.assert_array_equal(from_formula.point_params["a"], [1, 2, 3, 4])
    np.testing.assert_array_equal(from_list.point_params["a"], [1, 2, 3, 4])
    expanded = from_list.to_problem().outputs
    assert [float(e.coeff(s)) for e, s in zip(expanded, from_list.to_problem().inputs)] == [
        1,
        2,
        3,
        4,
    ]
    with pytest.raises(ProblemError, match="needs"):
        IndexedProblem.from_strings("u[0:n]", "a[i]*u[i]", params={"n": 4, "a": [1, 2]})


def test_dirichlet_ghosts_take_their_values():
    p = IndexedProblem.from_strings(
        ["u[0:n]", "v[0:n]"],
        ["u[i-1] + v[i+1]", "v[i]"],
        boundary={"kind": "dirichlet", "value": {"u": 2, "v": -1}},
        params={"n": 3},
    )
    outputs = p.to_problem().outputs
    assert outputs[0] == 2 + sp.Symbol("v1", real=True)
    assert outputs[2] == sp.Symbol("u1", real=True) - 1


def test_paths_for_one_kind_of_problem_name_the_other_kind():
    # spec.problem is either kind; a function for one kind says so instead of failing inside.
    from scaleinv.reports.spec_verdicts import spec_verdicts
    from scaleinv.reports.study_indexed import run_indexed_study

    indexed = parse_spec({"problem": {"inputs": "u[0:n]", "outputs": "u[i]"}, "params": {"n": 4}})
    with pytest.raises(SpecError, match=r"\[problem\] is indexed; spec_verdicts takes a problem"):
        spec_verdicts(indexed)
    listed = parse_spec({"problem": {"inputs": ["x0"], "outputs": ["x0**2"]}})
    with pytest.raises(SpecError, match=r"\[problem\] is not indexed; run_study studies it"):
        run_indexed_study(listed, starts=2)


def test_an_index_name_the_grid_does_not_have_may_name_a_param():
    """``k`` (a diffusivity, say) is free on a 2-D grid, ``j`` on a 1-D one: the problem is
    the one with the param renamed; a name of the grid's own index is refused."""
    heat = "u[i,j] + {0}*(u[i+1,j] + u[i,j-1] - 2*u[i,j]) + 0.05*u[i,j]**3"
    params = {"n": 3, "m": 4}
    named_k = IndexedProblem.from_strings(
        "u[0:n, 0:m]", heat.format("k"), params={**params, "k": 0.1}, target="0.1*i*j"
    )
    named_d = IndexedProblem.from_strings(
        "u[0:n, 0:m]", heat.format("d"), params={**params, "d": 0.1}, target="0.1*i*j"
    )
    x = np.random.default_rng(0).standard_normal((2, named_k.n))
    k, d = named_k.compile(), named_d.compile()
    for kernel in ("P", "loss", "gradient"):
        np.testing.assert_array_equal(getattr(k, kernel)(x), getattr(d, kernel)(x))
    one = IndexedProblem.from_strings(
        "u[0:n]", "u[i] + j*u[i+1]**2", params={"n": 5, "j": 0.5}, target="1"
    )
    np.testing.assert_allclose(one.compile().P(np.ones(5)), 1.5)
    with pytest.raises(ProblemError, match="'j' names an index of the grid"):
        IndexedProblem.from_strings("u[0:n, 0:m]", "u[i,j]*j", params={**params, "j": 1})
