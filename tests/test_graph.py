from __future__ import annotations

import io

import matplotlib
import networkx as nx
import numpy as np
import pytest
import sympy as sp
from catalogue import evaluate, finite_difference
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleinv.analysis import FunctionGraph
from scaleinv.errors import GraphError

matplotlib.use("Agg")


def _diamond() -> FunctionGraph:
    """x, theta -> y -> z, with x also feeding z directly, then L: two paths from x to L."""
    g = FunctionGraph(params={"c": 0.7})
    g.add_space("x", 2)
    g.add_space("theta", 1)
    g.add_space("y", 2)
    g.add_space("z", 2)
    g.add_space("L", 1)
    g.add_map("y", ["sin(x0)*theta0 + x1", "x0*x1**2 - exp(theta0)"], inputs=["x", "theta"])
    g.add_map("z", ["y0*y1 + c*x0", "tanh(y1) + x1**3"], inputs=["y", "x"])
    g.add_map("L", "(z0 - 1)**2/2 + c*(z1 + 2)**2/2")
    return g


def _stepwise(graph: FunctionGraph, leaf_values: dict[str, np.ndarray], cut=None) -> dict:
    """Evaluate the graph map by map with floats (lambdify per map) — a second evaluation path.

    ``cut`` = (space, values) overrides a mapped space's values, to perturb an inner space.
    """
    params = {str(s): v for s, v in graph.params.items()}
    values = {name: np.asarray(v, dtype=float) for name, v in leaf_values.items()}
    for name in graph.order():
        if cut is not None and name == cut[0]:
            values[name] = np.asarray(cut[1], dtype=float)
            continue
        exprs = graph.map_of(name)
        if exprs is None:
            continue
        args = [s for src in graph.inputs_of(name) for s in graph.symbols(src)]
        args += list(graph.params)
        fn = sp.lambdify(args, list(exprs), modules="math")
        flat = [float(v) for src in graph.inputs_of(name) for v in values[src]]
        flat += [params[str(s)] for s in graph.params]
        values[name] = np.array(fn(*flat), dtype=float)
    return values


def _at(expr, graph: FunctionGraph, leaf_values: dict[str, np.ndarray]) -> np.ndarray:
    subs = {
        s: float(v) for name, vals in leaf_values.items() for s, v in zip(graph.symbols(name), vals)
    }
    subs.update(graph.params)
    return np.array(sp.Matrix(expr).xreplace(subs).evalf(), dtype=float)


def _random_leaves(graph: FunctionGraph, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {n: rng.uniform(-1.2, 1.2, len(graph.symbols(n))) for n in graph.leaves()}


def test_order_is_topological_and_leaves_are_the_unmapped_spaces() -> None:
    g = _diamond()
    order = g.order()
    assert sorted(order) == sorted(g.spaces)
    for u, v in g.graph.edges:
        assert order.index(u) < order.index(v)
    assert g.leaves() == ("x", "theta")
    assert g.inputs_of("z") == ("y", "x")
    assert set(g.graph.predecessors("y")) == {"x", "theta"}


@pytest.mark.parametrize("src", ["x", "theta"])
def test_chain_jacobian_equals_jacobian_of_the_composition(src: str) -> None:
    g = _diamond()
    direct = g.compose("L").jacobian(g.symbols(src))
    chain = g.chain_jacobian(src, "L")
    assert chain.shape == direct.shape == (1, len(g.symbols(src)))
    assert sp.simplify(chain - direct) == sp.zeros(*direct.shape)


@pytest.mark.parametrize("src, dst", [("x", "L"), ("theta", "z"), ("x", "z"), ("x", "y")])
def test_chain_jacobian_matches_finite_differences_of_the_stepwise_map(src: str, dst: str) -> None:
    g = _diamond()
    rng = np.random.default_rng(11)
    for _ in range(4):
        leaves = _random_leaves(g, rng)

        def fn(v, leaves=leaves):
            return _stepwise(g, {**leaves, src: v})[dst]

        fd = finite_difference(fn, leaves[src])
        np.testing.assert_allclose(
            _at(g.chain_jacobian(src, dst), g, leaves), fd, rtol=1e-6, atol=1e-8
        )


def test_chain_jacobian_from_an_inner_space_matches_perturbing_that_space() -> None:
    g = _diamond()
    leaves = _random_leaves(g, np.random.default_rng(3))
    y = _stepwise(g, leaves)["y"]
    fd = finite_difference(lambda v: _stepwise(g, leaves, cut=("y", v))["L"], y)
    np.testing.assert_allclose(_at(g.chain_jacobian("y", "L"), g, leaves), fd, rtol=1e-6, atol=1e-8)
    # the chain rule factors through the inner space: dL/dtheta = dL/dy dy/dtheta
    factored = g.chain_jacobian("y", "L") * g.chain_jacobian("theta", "y")
    assert sp.simplify(factored - g.chain_jacobian("theta", "L")) == sp.zeros(1, 1)


def test_edge_jacobian_is_local_to_one_map() -> None:
    g = _diamond()
    jac = g.edge_jacobian("x", "z")
    c = next(iter(g.params))
    assert jac == sp.Matrix([[c, 0], [0, 3 * g.symbols("x")[1] ** 2]])
    assert g.edge_jacobian("y", "z").free_symbols <= set(g.symbols("y"))


def test_compose_equals_stepwise_evaluation() -> None:
    g = _diamond()
    rng = np.random.default_rng(2)
    for _ in range(5):
        leaves = _random_leaves(g, rng)
        steps = _stepwise(g, leaves)
        for space in ("y", "z", "L"):
            np.testing.assert_allclose(
                _at(g.compose(space), g, leaves)[:, 0], steps[space], rtol=1e-12
            )


def test_to_problem_has_the_loss_of_the_stepwise_evaluation() -> None:
    g = _diamond()
    problem = g.to_problem()
    assert [str(s) for s in problem.inputs] == ["x0", "x1", "theta0"]
    assert problem.m == 2 and dict(problem.params) == g.params
    rng = np.random.default_rng(4)
    for _ in range(5):
        leaves = _random_leaves(g, rng)
        x = np.concatenate([leaves["x"], leaves["theta"]])
        steps = _stepwise(g, leaves)
        np.testing.assert_allclose(evaluate(problem.loss_x, problem, x), steps["L"][0], rtol=1e-12)
        np.testing.assert_allclose(evaluate(problem.P, problem, x)[:, 0], steps["z"], rtol=1e-12)
    # the loss of the problem, differentiated directly, is the chain rule through the graph
    chain = g.chain_jacobian("x", "L").row_join(g.chain_jacobian("theta", "L"))
    direct = sp.Matrix([problem.loss_x]).jacobian(problem.inputs)
    x = rng.uniform(-1, 1, 3)
    np.testing.assert_allclose(
        evaluate(chain, problem, x), evaluate(direct, problem, x), rtol=1e-10
    )


def test_to_problem_with_an_inner_output_node() -> None:
    g = FunctionGraph.from_chain(
        [("x", 2), ("y", ["x0*x1", "x0 - x1"]), ("z", ["exp(y0)", "y0*y1"]), ("L", "z0**2 + z1")]
    )
    problem = g.to_problem(output_node="y")
    assert problem.outputs == tuple(g.compose("y"))
    assert problem.loss.free_symbols == set(problem.output_symbols)
    rng = np.random.default_rng(8)
    for point in rng.uniform(-1, 1, (5, 2)):
        steps = _stepwise(g, {"x": point})
        np.testing.assert_allclose(problem.compile().P(point), steps["y"], rtol=1e-12)
        np.testing.assert_allclose(problem.compile().loss(point), steps["L"][0], rtol=1e-12)
        default = g.to_problem().compile()
        np.testing.assert_allclose(default.P(point), steps["z"], rtol=1e-12)
        np.testing.assert_allclose(default.loss(point), steps["L"][0], rtol=1e-12)


def test_to_problem_of_a_loss_reading_several_spaces_concatenates_them() -> None:
    g = FunctionGraph()
    g.add_space("x", 2)
    g.add_space("y", 1)
    g.add_space("L", 1)
    g.add_map("y", ["x0*x1"])
    g.add_map("L", "(y0 - 2)**2 + x0**2/10", inputs=["y", "x"])
    problem = g.to_problem()
    x0, x1 = g.symbols("x")
    assert problem.outputs == (x0 * x1, x0, x1)
    kernels = problem.compile()
    rng = np.random.default_rng(9)
    for point in rng.uniform(-2, 2, (5, 2)):
        steps = _stepwise(g, {"x": point})
        np.testing.assert_allclose(kernels.loss(point), steps["L"][0], rtol=1e-12)
        gradient = evaluate(g.chain_jacobian("x", "L"), problem, point)[0]
        np.testing.assert_allclose(kernels.gradient(point), gradient, rtol=1e-10)


def test_from_chain_equals_the_graph_built_by_hand() -> None:
    g = FunctionGraph.from_chain(
        [("x", 2), ("y", ["x0**2", "alpha*x1"]), ("L", "y0**2 + y1**2")], params={"alpha": 3}
    )
    h = FunctionGraph(params={"alpha": 3})
    h.add_space("x", 2)
    h.add_space("y", 2)
    h.add_space("L", 1)
    h.add_map("y", ["x0**2", "alpha*x1"], inputs=["x"])
    h.add_map("L", "y0**2 + y1**2", inputs=["y"])
    assert g.order() == h.order() and g.spaces == h.spaces
    assert g.compose("L") == h.compose("L")
    assert g.to_problem().loss_x == sp.expand(h.compose("L")[0])


def test_draw_labels_nodes_and_edges() -> None:
    g = _diamond()
    ax = g.draw()
    texts = {t.get_text() for t in ax.texts}
    assert {"x [2]", "theta [1]", "y [2]", "z [2]", "L [1]"} <= texts
    assert {"∂y/∂x", "∂z/∂x", "∂L/∂z"} <= texts
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"


# -- errors ---------------------------------------------------------------------------------
def test_a_map_closing_a_cycle_is_refused_and_leaves_the_graph_unchanged() -> None:
    g = FunctionGraph.from_chain([("x", 1), ("y", ["x0"]), ("z", ["sin(y0)"])])
    edges = set(g.graph.edges)
    with pytest.raises(GraphError, match="map of 'x' would close a cycle: x -> y -> z -> x"):
        g.add_map("x", ["z0"])
    assert set(g.graph.edges) == edges
    assert g.map_of("x") is None and g.leaves() == ("x",)


def test_dangling_symbols_are_refused() -> None:
    g = FunctionGraph.from_chain([("x", 1), ("y", ["x0**2"])])
    g.add_space("z", 1)
    with pytest.raises(GraphError, match=r"map of 'z'.*unknown name: 'q'"):
        g.add_map("z", ["q + y0"])
    with pytest.raises(GraphError, match=r"uses \[q\], which belong to no space"):
        g.add_map("z", [sp.Symbol("q", real=True)])
    with pytest.raises(GraphError, match=r"reads spaces \['x'\], not among its inputs \['y'\]"):
        g.add_map("z", [g.symbols("x")[0] + g.symbols("y")[0]], inputs=["y"])
    with pytest.raises(GraphError, match="reads its own space"):
        g.add_map("z", [g.symbols("z")[0] + 1])
    assert g.map_of("z") is None


def test_unknown_spaces_and_size_mismatches_are_refused() -> None:
    g = FunctionGraph.from_chain([("x", 2), ("y", ["x0", "x1"])])
    with pytest.raises(GraphError, match=r"unknown space 'w'; known: \['x', 'y'\]"):
        g.add_map("w", ["x0"])
    g.add_space("z", 1)
    with pytest.raises(GraphError, match="unknown space 'v'"):
        g.add_map("z", ["x0"], inputs=["v"])
    with pytest.raises(GraphError, match="map of 'z' has 2 expressions, but space 'z' has 1"):
        g.add_map("z", ["x0", "x1"])
    with pytest.raises(GraphError, match="already exists"):
        g.add_space("x", 1)
    with pytest.raises(GraphError, match="x0 of space 'q' is already used by 'x'"):
        g.add_space("q", [g.symbols("x")[0]])
    with pytest.raises(GraphError, match="symbol c0 of space 'c' is already used by 'params'"):
        FunctionGraph(params={"c0": 1.0}).add_space("c", 1)
    with pytest.raises(GraphError, match="param x1 is already a symbol of the graph"):
        g.add_param("x1", 2.0)
    with pytest.raises(GraphError, match="not declared real"):
        g.add_space("q", [sp.Symbol("q0")])
    with pytest.raises(GraphError, match="already has a map"):
        g.add_map("y", ["x0", "x1"])
    with pytest.raises(GraphError, match="unknown space 'nope'"):
        g.edge_jacobian("nope", "y")


def test_composing_without_a_path_is_refused() -> None:
    g = FunctionGraph.from_chain([("x", 1), ("y", ["x0"])])
    g.add_space("u", 1)
    with pytest.raises(GraphError, match="space 'x' is a leaf"):
        g.compose("x")
    with pytest.raises(GraphError, match="no path from 'u' to 'y'"):
        g.chain_jacobian("u", "y")
    with pytest.raises(GraphError, match="no path from 'y' to 'x'"):
        g.chain_jacobian("y", "x")
    with pytest.raises(GraphError, match="no edge 'u' -> 'y'"):
        g.edge_jacobian("u", "y")
    with pytest.raises(GraphError, match="loss space 'x' must be a mapped space of size 1"):
        g.to_problem("x")
    with pytest.raises(GraphError, match="unknown space 'L'"):
        g.to_problem()


def test_to_problem_refuses_a_loss_that_bypasses_the_output_node() -> None:
    g = _diamond()
    with pytest.raises(GraphError, match=r"'L' depends on \['x0', 'x1'\] other than through 'y'"):
        g.to_problem(output_node="y").loss  # noqa: B018
    h = FunctionGraph.from_chain([("y", 2), ("L", "y0 + y1")])
    with pytest.raises(GraphError, match="clash with the output symbols"):
        h.to_problem()


# -- property: random DAGs -----------------------------------------------------------------
_TEMPLATES = [lambda a, b: a * b, lambda a, b: sp.sin(a) + b**2, lambda a, b: a - sp.exp(b) / 3]


@st.composite
def random_graphs(draw):
    g = FunctionGraph()
    pool: list[sp.Symbol] = []
    n_leaves = draw(st.integers(1, 2))
    for k in range(n_leaves):
        pool += g.add_space(f"u{k}", draw(st.integers(1, 2)))
    for k in range(draw(st.integers(1, 3))):
        size = draw(st.integers(1, 2))
        syms = g.add_space(f"v{k}", size)
        exprs = []
        for _ in range(size):
            a, b = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
            exprs.append(draw(st.sampled_from(_TEMPLATES))(a, b))
        g.add_map(f"v{k}", exprs)
        pool += syms
    return g


@settings(max_examples=25, deadline=None)
@given(random_graphs())
def test_chain_rule_equals_composition_on_random_dags(g: FunctionGraph) -> None:
    last = g.order()[-1]
    assert nx.is_directed_acyclic_graph(g.graph)
    if g.map_of(last) is None:
        return
    composed = g.compose(last)
    for leaf in g.leaves(last):
        diff = g.chain_jacobian(leaf, last) - composed.jacobian(g.symbols(leaf))
        symbols = [s for name in g.leaves() for s in g.symbols(name)]
        point = dict(zip(symbols, np.random.default_rng(0).uniform(-1, 1, len(symbols))))
        np.testing.assert_allclose(np.array(diff.xreplace(point), dtype=float), 0, atol=1e-10)


def test_a_boolean_space_size_is_refused_by_name() -> None:
    # True is an int in Python: it once fell through to iterating the "symbols" (TypeError)
    with pytest.raises(GraphError, match="space 'x' needs a size or symbols, got True"):
        FunctionGraph().add_space("x", True)
