"""Function graphs: spaces as nodes, maps as edges, composed and differentiated symbolically.

A :class:`FunctionGraph` wraps a networkx ``DiGraph``. Each node is a *space* (``"x"``,
``"theta"``, ``"y"``, ``"L"``) with a tuple of real SymPy symbols. A space that is computed
from others carries a *map*: one expression per symbol of the space, written in the symbols of
the spaces it reads. An edge ``u -> v`` records that the map of ``v`` reads ``u``, so
``y = f(x, theta)`` is one map stored on ``y`` with the two edges ``x -> y`` and
``theta -> y``. Spaces without a map are the *leaves* (the free inputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import networkx as nx
import sympy as sp

from scaleinv.errors import GraphError, ScaleinvError
from scaleinv.symbolic import Problem, output_symbols, parse_expr
from scaleinv.symbolic.parsing import make_symbol

__all__ = ["FunctionGraph"]

Exprs: TypeAlias = str | sp.Expr | Sequence[str | sp.Expr]


class FunctionGraph:
    """A DAG of spaces and the maps between them.

    Parameters
    ----------
    params : mapping of str or Symbol to float, optional
        Constants the maps may use (e.g. ``alpha``); they become the problem's params in
        :meth:`to_problem`. A name with a positive value becomes a positive symbol.

    Examples
    --------
    >>> g = FunctionGraph(params={"alpha": 3})
    >>> g.add_space("x", 2)
    (x0, x1)
    >>> g.add_space("y", 2)
    (y0, y1)
    >>> g.add_space("L", 1)
    (L0,)
    >>> g.add_map("y", ["x0", "alpha*x1"], inputs=["x"])
    >>> g.add_map("L", "y0**2 + y1**2")
    >>> g.order()
    ['x', 'y', 'L']
    >>> g.compose("L")
    Matrix([[alpha**2*x1**2 + x0**2]])
    >>> g.chain_jacobian("x", "L")
    Matrix([[2*x0, 2*alpha**2*x1]])
    """

    def __init__(self, params: Mapping[str | sp.Symbol, float] | None = None) -> None:
        self._g = nx.DiGraph()
        self._owner: dict[sp.Symbol, str] = {}
        self.params: dict[sp.Symbol, float] = {}
        for name, value in (params or {}).items():
            self.add_param(name, value)

    # -- building -------------------------------------------------------------------------
    def add_param(self, name: str | sp.Symbol, value: float) -> sp.Symbol:
        """Declare a constant the maps may use; returns its symbol."""
        value = float(value)
        symbol = name if isinstance(name, sp.Symbol) else _symbol(str(name), value > 0, "param")
        if str(symbol) in self._names():
            raise GraphError(f"param {symbol} is already a symbol of the graph")
        self.params[symbol] = value
        return symbol

    def add_space(
        self, name: str, symbols: int | Sequence[str | sp.Symbol]
    ) -> tuple[sp.Symbol, ...]:
        """Add a space; ``symbols`` is a size (symbols ``name0 .. name{k-1}``) or the symbols.

        Returns the space's symbols. Symbols must be real and belong to one space only.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise GraphError(f"space name {name!r} is not an identifier")
        if name in self._g:
            raise GraphError(f"space {name!r} already exists")
        if isinstance(symbols, bool):
            raise GraphError(f"space {name!r} needs a size or symbols, got {symbols!r}")
        if isinstance(symbols, int):
            if symbols < 1:
                raise GraphError(f"space {name!r} needs a positive size, got {symbols}")
            syms = tuple(_symbol(f"{name}{i}", False, f"space {name!r}") for i in range(symbols))
        else:
            syms = tuple(
                s if isinstance(s, sp.Symbol) else _symbol(str(s), False, f"space {name!r}")
                for s in symbols
            )
        if not syms:
            raise GraphError(f"space {name!r} needs at least one symbol")
        taken = self._names()
        for s in syms:
            if s.is_real is not True:
                raise GraphError(f"symbol {s} of space {name!r} is not declared real")
            if str(s) in taken or [str(t) for t in syms].count(str(s)) > 1:
                where = taken.get(str(s), name)
                raise GraphError(f"symbol {s} of space {name!r} is already used by {where!r}")
        self._g.add_node(name, symbols=syms, exprs=None)
        self._owner.update({s: name for s in syms})
        return syms

    def add_map(self, target: str, exprs: Exprs, inputs: Sequence[str] | None = None) -> None:
        """Give ``target`` its map: one expression per symbol, in the symbols of ``inputs``.

        ``exprs`` are SymPy expressions or strings (parsed by the allow-list parser, never
        evaluated). ``inputs`` names the spaces the map reads; by default the spaces whose
        symbols it uses. The graph is unchanged when this raises :class:`GraphError`.
        """
        self._space(target)
        if self._g.nodes[target]["exprs"] is not None:
            raise GraphError(f"space {target!r} already has a map")
        names = list(dict.fromkeys(inputs)) if inputs is not None else list(self._g)
        for name in names:
            self._space(name)
        by_name = {str(s): s for s in self.params}
        for name in names:
            by_name.update({str(s): s for s in self._g.nodes[name]["symbols"]})
        items = [exprs] if isinstance(exprs, (str, sp.Basic)) else list(exprs)
        try:
            parsed = tuple(
                parse_expr(e, by_name) if isinstance(e, str) else sp.sympify(e, strict=True)
                for e in items
            )
        except (ScaleinvError, sp.SympifyError) as err:
            raise GraphError(f"map of {target!r}: {err}") from None
        size = len(self._g.nodes[target]["symbols"])
        if len(parsed) != size:
            raise GraphError(
                f"map of {target!r} has {len(parsed)} expressions, but space {target!r} has "
                f"{size} symbols"
            )
        used = set().union(*(e.free_symbols for e in parsed)) - set(self.params)
        stray = sorted((s for s in used if s not in self._owner), key=str)
        if stray:
            raise GraphError(f"map of {target!r} uses {stray}, which belong to no space or param")
        owners = {self._owner[s] for s in used}
        if inputs is None:
            names = [n for n in self._g if n in owners]
        outside = sorted(owners - set(names))
        if outside:
            raise GraphError(
                f"map of {target!r} reads spaces {outside}, not among its inputs {names}"
            )
        if target in names:
            raise GraphError(f"map of {target!r} reads its own space")
        self._g.add_edges_from((n, target) for n in names)
        if not nx.is_directed_acyclic_graph(self._g):
            cycle = nx.find_cycle(self._g, source=target)
            self._g.remove_edges_from((n, target) for n in names)
            path = " -> ".join([*(u for u, _ in cycle), cycle[0][0]])
            raise GraphError(f"map of {target!r} would close a cycle: {path}")
        self._g.nodes[target]["exprs"] = parsed

    @classmethod
    def from_chain(
        cls,
        steps: Sequence[tuple[str, Any]],
        params: Mapping[str | sp.Symbol, float] | None = None,
    ) -> FunctionGraph:
        """A chain ``x -> y -> ... -> L``: the first step is ``(name, size or symbols)``, each
        later one ``(name, exprs)`` reading the space before it (sized by its expressions).

        Examples
        --------
        >>> g = FunctionGraph.from_chain([("x", 1), ("y", ["x0**2"]), ("L", "y0**2/2")])
        >>> g.compose("L")
        Matrix([[x0**4/2]])
        """
        if len(steps) < 2:
            raise GraphError("a chain needs an input space and at least one map")
        graph = cls(params)
        graph.add_space(*steps[0])
        previous = steps[0][0]
        for name, exprs in steps[1:]:
            count = 1 if isinstance(exprs, (str, sp.Basic)) else len(exprs)
            graph.add_space(name, count)
            graph.add_map(name, exprs, inputs=[previous])
            previous = name
        return graph

    # -- reading --------------------------------------------------------------------------
    @property
    def graph(self) -> nx.DiGraph:
        """A read-only view of the underlying networkx graph."""
        return self._g.copy(as_view=True)

    @property
    def spaces(self) -> dict[str, tuple[sp.Symbol, ...]]:
        """Every space's symbols, in the order the spaces were added."""
        return {n: d["symbols"] for n, d in self._g.nodes(data=True)}

    def symbols(self, space: str) -> tuple[sp.Symbol, ...]:
        """The symbols of ``space``."""
        return self._g.nodes[self._space(space)]["symbols"]

    def map_of(self, space: str) -> tuple[sp.Expr, ...] | None:
        """The expressions of ``space``'s map, or None for a leaf."""
        return self._g.nodes[self._space(space)]["exprs"]

    def inputs_of(self, space: str) -> tuple[str, ...]:
        """The spaces ``space``'s map reads (empty for a leaf)."""
        return tuple(self._g.predecessors(self._space(space)))

    def leaves(self, of: str | None = None) -> tuple[str, ...]:
        """Spaces without a map (all of them, or those ``of`` depends on), in order."""
        pool = set(self._g) if of is None else nx.ancestors(self._g, self._space(of))
        return tuple(n for n in self.order() if n in pool and self._g.nodes[n]["exprs"] is None)

    def order(self) -> list[str]:
        """The spaces in topological order (ties broken by insertion order)."""
        rank = {n: i for i, n in enumerate(self._g)}
        return list(nx.lexicographical_topological_sort(self._g, key=rank.__getitem__))

    # -- composing and differentiating -----------------------------------------------------
    def values(self) -> dict[sp.Symbol, sp.Expr]:
        """Every mapped symbol as an expression of the leaf symbols (and params)."""
        values: dict[sp.Symbol, sp.Expr] = {}
        for name in self.order():
            exprs = self._g.nodes[name]["exprs"]
            if exprs is not None:
                syms = self._g.nodes[name]["symbols"]
                values.update({s: e.xreplace(values) for s, e in zip(syms, exprs)})
        return values

    def compose(self, target: str = "L") -> sp.Matrix:
        """``target`` as a column of expressions of its leaf inputs, substituting in topological
        order. Raises :class:`GraphError` if ``target`` is a leaf (nothing to compose)."""
        if self.map_of(target) is None:
            raise GraphError(f"space {target!r} is a leaf: no map leads to it")
        values = self.values()
        return sp.Matrix([values[s] for s in self.symbols(target)])

    def edge_jacobian(self, src: str, dst: str) -> sp.Matrix:
        """``∂dst/∂src`` of the single map on ``dst`` (size(dst)×size(src)), in its own symbols."""
        self._space(src)
        self._space(dst)
        if not self._g.has_edge(src, dst):
            raise GraphError(
                f"no edge {src!r} -> {dst!r}: the map of {dst!r} does not read {src!r}"
            )
        return sp.Matrix(self.map_of(dst)).jacobian(self.symbols(src))

    def chain_jacobian(self, src: str, dst: str) -> sp.Matrix:
        r"""The total derivative ``d dst/d src`` by the chain rule, in the leaf symbols.

        .. math:: \frac{d v}{d s} = \sum_{\text{paths } s \to v} \prod_{(a,b)}
           \frac{\partial b}{\partial a}

        The sum over paths is accumulated in topological order (one product per edge, not per
        path); each edge Jacobian is evaluated at the composed values. For a leaf ``src`` it
        equals ``compose(dst).jacobian(symbols(src))``.
        """
        self._space(src)
        self._space(dst)
        if src == dst or not nx.has_path(self._g, src, dst):
            raise GraphError(f"no path from {src!r} to {dst!r}")
        values = self.values()
        reach = nx.descendants(self._g, src) & (nx.ancestors(self._g, dst) | {dst})
        total = {src: sp.eye(len(self.symbols(src)))}
        for node in self.order():
            if node not in reach:
                continue
            acc = sp.zeros(len(self.symbols(node)), len(self.symbols(src)))
            for pred in self._g.predecessors(node):
                if pred in total:
                    acc += self.edge_jacobian(pred, node).xreplace(values) * total[pred]
            total[node] = acc
        return total[dst]

    # -- bridges ----------------------------------------------------------------------------
    def to_problem(self, loss_node: str = "L", output_node: str | None = None) -> Problem:
        """The :class:`~scaleinv.symbolic.Problem` ``L(P(x))`` this graph describes.

        Inputs are the leaf symbols ``loss_node`` depends on. Outputs are ``output_node``
        composed (default: the one space the loss map reads; if it reads several, all of them,
        concatenated in order), and the loss is the loss map in ``y0 .. y{m-1}``. With an
        explicit ``output_node``, the loss must depend on the leaves only through it.

        Examples
        --------
        >>> g = FunctionGraph.from_chain([("x", 2), ("y", ["x0", "x1**2"]), ("L", "y0**2 + y1**2")])
        >>> p = g.to_problem()
        >>> p.outputs, p.loss
        ((x0, x1**2), y0**2 + y1**2)
        """
        exprs = self.map_of(loss_node)
        if exprs is None or len(exprs) != 1:
            raise GraphError(f"loss space {loss_node!r} must be a mapped space of size 1")
        if output_node is None:
            reads = self.inputs_of(loss_node)
            loss_expr = exprs[0]
        else:
            if not nx.has_path(self._g, self._space(output_node), loss_node):
                raise GraphError(f"no path from {output_node!r} to {loss_node!r}")
            reads = (output_node,)
            loss_expr = self._cut_at(output_node, loss_node)
        values = self.values()
        old = [s for name in reads for s in self.symbols(name)]
        ys = output_symbols(len(old))
        inputs = [s for name in self.leaves(loss_node) for s in self.symbols(name)]
        clash = sorted(map(str, set(inputs) & set(ys)))
        if clash:
            raise GraphError(
                f"input symbols {clash} clash with the output symbols y0..; rename them"
            )
        outputs = [values.get(s, s) for s in old]
        loss = loss_expr.xreplace(dict(zip(old, ys)))
        return Problem(tuple(inputs), tuple(outputs), loss, params=dict(self.params))

    def draw(self, ax: Any = None) -> Any:
        """Draw the graph left to right in topological layers; returns the matplotlib Axes.

        Nodes read ``name [size]`` (leaves in green); edges read ``∂dst/∂src``. Without ``ax`` a new
        :class:`matplotlib.figure.Figure` is made (no pyplot state is touched).
        """
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(6, 3)).add_subplot()
        pos = {}
        for col, layer in enumerate(nx.topological_generations(self._g)):
            for row, name in enumerate(sorted(layer, key=list(self._g).index)):
                pos[name] = (float(col), -float(row) + (len(layer) - 1) / 2)
        labels = {n: f"{n} [{len(d['symbols'])}]" for n, d in self._g.nodes(data=True)}
        edge_labels = {(u, v): f"∂{v}/∂{u}" for u, v in self._g.edges}
        colors = [
            "#e3f1dd" if d["exprs"] is None else "#dde8f5" for _, d in self._g.nodes(data=True)
        ]
        nx.draw_networkx_nodes(self._g, pos, ax=ax, node_color=colors, node_size=1400)
        nx.draw_networkx_labels(self._g, pos, labels=labels, ax=ax, font_size=9)
        nx.draw_networkx_edges(self._g, pos, ax=ax, arrows=True, node_size=1400)
        nx.draw_networkx_edge_labels(self._g, pos, edge_labels=edge_labels, ax=ax, font_size=8)
        ax.set_axis_off()
        return ax

    def __repr__(self) -> str:
        parts = [f"{n}[{len(self.symbols(n))}]" for n in self.order()]
        return f"FunctionGraph({', '.join(parts)}; {self._g.number_of_edges()} edges)"

    # -- helpers --------------------------------------------------------------------------
    def _names(self) -> dict[str, str]:
        """Every symbol name in use, with the space (or "params") it belongs to."""
        return {str(s): n for s, n in self._owner.items()} | {str(p): "params" for p in self.params}

    def _space(self, name: str) -> str:
        if name not in self._g:
            raise GraphError(f"unknown space {name!r}; known: {list(self._g)}")
        return name

    def _cut_at(self, cut: str, target: str) -> sp.Expr:
        """``target``'s expression in ``cut``'s symbols, expanding every space but ``cut``."""
        values: dict[sp.Symbol, sp.Expr] = {}
        for name in self.order():
            exprs = self._g.nodes[name]["exprs"]
            if exprs is not None and name != cut:
                syms = self._g.nodes[name]["symbols"]
                values.update({s: e.xreplace(values) for s, e in zip(syms, exprs)})
        expr = values[self.symbols(target)[0]]
        around = sorted(map(str, expr.free_symbols - set(self.symbols(cut)) - set(self.params)))
        if around:
            raise GraphError(f"{target!r} depends on {around} other than through {cut!r}")
        return expr


def _symbol(name: str, positive: bool, what: str) -> sp.Symbol:
    try:
        return make_symbol(name, positive=positive)
    except ScaleinvError as err:
        raise GraphError(f"{what}: {err}") from None
