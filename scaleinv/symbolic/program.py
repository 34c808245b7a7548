"""Straight-line programs with value numbering: the expression DAG that derivatives walk.

A :class:`Program` is a list of assignments ``v = f(a, b, ...)`` in an engine's terms
(:mod:`scaleinv.symbolic.engine`), each computed once. The arguments of a node are *leaves*:
an input, a param, a number or constant (pi), an earlier node, or a number times one of those
(so ``a - b`` needs no node of its own for ``-b``). :meth:`Program.intern` splits an
expression into such nodes bottom-up and looks every node up before it adds one (value
numbering): equal subexpressions, wherever they come from — the function, its partial
derivatives, tangents or adjoints — are one node. Programs start from the
common-subexpression elimination of the outputs (:meth:`Program.from_cse`), which also finds
shared partial sums such as the prefix sums of a chain's angles.

Examples
--------
>>> import sympy as sp
>>> from scaleinv.symbolic.engine import get_engine
>>> x, y = sp.symbols("x y")
>>> engine = get_engine("sympy")
>>> chunks = engine.cse_native([sp.sin(x * y), x * y])
>>> prog, outs = Program.from_cse(engine, [x, y], chunks)
>>> [str(e) for _, e in prog.nodes], [str(o) for o in outs]
(['x*y', 'sin(_g0)'], ['_g1', '_g0'])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sympy as sp

from scaleinv.symbolic.engine import Engine

__all__ = ["Program", "expansion"]


class Program:
    """A growing straight-line program over the inputs ``inputs`` (see the module docstring).

    Parameters
    ----------
    engine : Engine
        Whose expressions the nodes are.
    inputs : sequence
        The input symbols (engine terms); their positions index dependency sets.
    taken : iterable of str
        Names in use (the problem's symbols); node names never start like one of them.
    """

    def __init__(self, engine: Engine, inputs: Sequence[Any], taken: Iterable[str] = ()) -> None:
        self.engine = engine
        self.inputs = list(inputs)
        self.nodes: list[tuple[Any, Any]] = []
        self._table: dict[Any, Any] = {}
        self._memo: dict[Any, Any] = {}
        self._partials: dict[tuple[Any, Any], Any] = {}
        self._exprs: dict[Any, Any] = {}
        self._args: dict[Any, frozenset[Any]] = {}
        self.deps: dict[Any, frozenset[int]] = {x: frozenset({j}) for j, x in enumerate(inputs)}
        names = set(taken)
        prefix = "_g"
        while any(name.startswith(prefix) for name in names):
            prefix += "_"
        self._prefix = prefix

    @classmethod
    def from_cse(
        cls,
        engine: Engine,
        inputs: Sequence[Any],
        chunks: Sequence[tuple[Sequence[Any], Sequence[Any]]],
        taken: Iterable[str] = (),
    ) -> tuple[Program, list[Any]]:
        """The program of a common-subexpression elimination (``engine.cse_native`` of the
        outputs) and the leaf of each output."""
        prog = cls(engine, [engine.convert(x) for x in inputs], taken)
        leaves: list[Any] = []
        for temps, reduced in chunks:
            alias: dict[Any, Any] = {}
            for t, e in temps:
                alias[t] = prog.intern(engine.substitute(e, alias))
            leaves += [prog.intern(engine.substitute(e, alias)) for e in reduced]
        return prog, leaves

    # -- building -------------------------------------------------------------------------
    def intern(self, expr: Any) -> Any:
        """The leaf computing ``expr``, adding the nodes it needs that are not there yet."""
        if _is_leaf(expr):
            return expr
        hit = self._memo.get(expr)
        if hit is None:
            hit = self._node(expr.func(*[self.intern(a) for a in expr.args]))
            self._memo[expr] = hit
        return hit

    def _node(self, expr: Any) -> Any:
        """The leaf of an expression whose arguments are leaves (a new node if needed)."""
        if _is_leaf(expr):
            return expr
        if expr.is_Mul and expr.args[0].is_Number:  # c·(a·b): the coefficient stays a leaf's
            coeff, rest = expr.args[0], expr.func(*expr.args[1:])
            return coeff * self._node(rest)
        hit = self._table.get(expr)
        if hit is None:
            hit = self.engine.convert(sp.Symbol(f"{self._prefix}{len(self.nodes)}"))
            self.nodes.append((hit, expr))
            self._table[expr] = hit
            self._exprs[hit] = expr
            self._args[hit] = args = frozenset(self.engine.free_symbols(expr))
            self.deps[hit] = frozenset().union(*(self.deps.get(s, ()) for s in args))
        return hit

    def add(self, terms: Sequence[Any]) -> Any:
        """The leaf of ``Σ terms`` (terms are leaves)."""
        return self._node(self.engine.add(list(terms)))

    def mul(self, a: Any, b: Any) -> Any:
        """The leaf of ``a·b`` (both leaves)."""
        return self._node(a * b)

    # -- reading --------------------------------------------------------------------------
    def args(self, node: Any) -> frozenset[Any]:
        """The symbols (inputs, params, nodes) a node's expression uses."""
        return self._args[node]

    def active(self, node: Any) -> list[Any]:
        """The symbols of a node that depend on an input (the ones its derivatives go through)."""
        return [s for s in self.args(node) if self.deps.get(s)]

    def dependencies(self, leaf: Any) -> frozenset[int]:
        """Positions of the inputs a leaf depends on."""
        return frozenset().union(*(self.deps.get(s, ()) for s in self.engine.free_symbols(leaf)))

    def partial(self, node: Any, arg: Any) -> Any:
        """The leaf of ``∂f/∂arg`` for the node ``node = f(..., arg, ...)`` (computed once)."""
        key = (node, arg)
        hit = self._partials.get(key)
        if hit is None:
            hit = self._partials[key] = self.intern(self.engine.diff(self._exprs[node], arg))
        return hit

    def is_node(self, symbol: Any) -> bool:
        """Is ``symbol`` one of the program's nodes (not an input or a param)?"""
        return symbol in self._exprs

    def to_sympy(
        self, outputs: Sequence[Any], symbols: Mapping[str, sp.Symbol]
    ) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
        """``(temporaries, reduced)`` (SymPy) computing the leaves ``outputs``: the nodes they
        need in :meth:`schedule` order, renamed ``_t0, _t1, ...``; a node used once is written
        into its user (as cse does), so fewer arrays are live."""
        needed = self.ancestors(outputs)
        uses: Counter[Any] = Counter()
        for leaf in outputs:
            uses.update(s for s in self.engine.free_symbols(leaf) if s in needed)
        for node in needed:
            uses.update(s for s in self.args(node) if s in needed)
        inline: dict[Any, Any] = {}
        temps = []
        for node in self.schedule(outputs):
            expr = self.engine.substitute(self._exprs[node], inline)
            if uses[node] == 1:
                inline[node] = expr
            else:
                temps.append((node, expr))
        outputs = [self.engine.substitute(leaf, inline) for leaf in outputs]
        return self.engine.to_sympy_program(temps, outputs, symbols)

    def schedule(self, leaves: Sequence[Any]) -> list[Any]:
        """The nodes the leaves need, each right before its first use when the leaves are
        computed in order (depth first): what is live at a time is what one leaf still needs,
        not every node of a stage (a Hessian's tangents in all directions at once)."""
        order: list[Any] = []
        done: set[Any] = set()
        for leaf in leaves:
            stack = [(s, False) for s in self.engine.free_symbols(leaf) if self.is_node(s)]
            while stack:
                node, expanded = stack.pop()
                if node in done:
                    continue
                if expanded:
                    done.add(node)
                    order.append(node)
                    continue
                stack.append((node, True))
                stack.extend(
                    (s, False) for s in self.args(node) if self.is_node(s) and s not in done
                )
        return order

    def ancestors(self, leaves: Iterable[Any]) -> set[Any]:
        """Every node the leaves need (themselves included)."""
        seen: set[Any] = set()
        stack = [s for leaf in leaves for s in self.engine.free_symbols(leaf) if self.is_node(s)]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(s for s in self.args(node) if self.is_node(s) and s not in seen)
        return seen

    def size(self, outputs: Iterable[Any]) -> int:
        """Number of nodes needed for ``outputs`` (the program's statements before printing)."""
        return len(self.ancestors(outputs))


def _is_leaf(expr: Any) -> bool:
    """An atom (a number, a symbol, a constant such as pi), or a number times an atom."""
    if not expr.args:
        return True
    args = expr.args
    return bool(expr.is_Mul and len(args) == 2 and args[0].is_Number and not args[1].args)


def expansion(chunks: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> float:
    """How many times larger the outputs' expression trees are than their cse program.

    ``chunks`` as :meth:`Engine.cse_native <scaleinv.symbolic.engine.Engine.cse_native>`
    gives them; sizes count operations (subexpressions that are not leaves: a number times a
    symbol is one). 1.0: nothing is shared; a 12-link chain: 15.

    Examples
    --------
    >>> x, y = sp.symbols("x y")
    >>> chunks = [([(sp.Symbol("c"), sp.sin(x + y))], [sp.Symbol("c") ** 2, sp.Symbol("c") + x])]
    >>> expansion(chunks)  # trees: (x+y, sin, **2) + (x+y, sin, +); program: x+y, sin, **2, +
    1.5
    """
    tree_total = program_total = 0
    for temps, reduced in chunks:
        weight: dict[Any, int] = {}
        for t, e in temps:
            own, inner = _count(e, weight)
            weight[t] = own + inner
            program_total += own
        for e in reduced:
            own, inner = _count(e, weight)
            program_total += own
            tree_total += own + inner
    return tree_total / max(1, program_total)


def _count(expr: Any, weight: Mapping[Any, int]) -> tuple[int, int]:
    """(operations of ``expr``, tree operations of the temporaries it uses)."""
    own = inner = 0
    stack = [expr]
    while stack:
        e = stack.pop()
        if not _is_leaf(e):
            own += 1
            stack.extend(e.args)
        else:  # an atom, or a number times an atom: a leaf, as in a Program
            inner += weight.get(e.args[1] if e.args else e, 0)
    return own, inner
