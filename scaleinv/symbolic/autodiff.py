"""Derivatives on the expression graph: forward and reverse mode over a straight-line program.

Differentiating an expanded formula and then eliminating common subexpressions again loses
the structure of deep compositions: every joint angle of a 12-link chain feeds every later
link, so the chain's Hessian comes out ~40x the size of the chain itself. Here derivatives are
taken on the :class:`~scaleinv.symbolic.program.Program` of ``P`` (the DAG that cse gives),
each node differentiated once, and the derivative nodes go into the same program, reusing the
function's nodes:

* Jacobian — forward mode, one sparse tangent per node (only the inputs it depends on),

  .. math:: \\dot v_j = \\sum_{u \\in \\arg v} \\frac{\\partial f_v}{\\partial u} \\dot u_j;

* gradient — reverse mode from the seeds ``∂L/∂y_k`` at ``y = P(x)``,
  :math:`\\bar u = \\sum_{v \\ni u} \\bar v\\, \\partial f_v / \\partial u`;
* Hessian — forward mode over the gradient's program (forward-over-reverse), one triangle of
  the pattern (whichever needs fewer nodes), mirrored.

The programs compute the entries of :mod:`scaleinv.symbolic.sparse` (same keys, same values
up to rounding); the expanded formulas stay what users and reports see.

Examples
--------
>>> import sympy as sp
>>> from scaleinv.symbolic.engine import get_engine
>>> x0, x1, y0 = sp.symbols("x0 x1 y0")
>>> engine = get_engine("sympy")
>>> P = engine.cse_native([sp.sin(x0 * x1)])
>>> g = GraphDerivatives.build(engine, [x0, x1], P, {0: y0}, [y0])
>>> temps, (d0, d1) = g.program("jacobian", [(0, 0), (0, 1)], {})
>>> [str(e) for _, e in temps], d0, d1
(['cos(x0*x1)'], _t0*x1, _t0*x0)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy as sp

from scaleinv.symbolic.engine import Engine
from scaleinv.symbolic.program import Program

__all__ = ["GraphDerivatives", "forward", "reverse", "supported"]

#: The functions the graph route differentiates (what the kernels' printer has a fast form
#: for); anything else (Piecewise, Abs, undefined functions, ...) stays on expanded formulas.
FUNCTIONS = frozenset(
    {"sin", "cos", "tan", "exp", "log", "sinh", "cosh", "tanh", "asin", "acos", "atan"}
)
_ARITHMETIC = frozenset({"Add", "Mul", "Pow"})

Tangent = dict[int, Any]


def supported(exprs: Sequence[Any]) -> bool:
    """Are ``exprs`` (engine terms) made only of arithmetic, numbers and :data:`FUNCTIONS`?

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> supported([sp.sin(x) * x**2 + 1]), supported([sp.Abs(x)])
    (True, False)
    """
    seen: set[Any] = set()
    stack = list(exprs)
    while stack:
        e = stack.pop()
        if e in seen or not e.args:  # numbers, symbols, constants (E, pi)
            continue
        seen.add(e)
        kind = type(e).__name__
        if kind not in _ARITHMETIC and kind.lower() not in FUNCTIONS:
            return False
        stack.extend(e.args)
    return True


def forward(prog: Program, leaves: Sequence[Any]) -> list[Tangent]:
    """Tangents ``{j: ∂leaf/∂x_j}`` (nonzero ones) of ``leaves``, adding their nodes to ``prog``.

    Every node the leaves need gets its tangent once, in program order, from the tangents of
    its arguments and its partial derivatives.
    """
    needed = prog.ancestors(leaves)
    one = prog.engine.convert(sp.Integer(1))
    tangents: dict[Any, Tangent] = {x: {j: one} for j, x in enumerate(prog.inputs)}
    for node, _ in list(prog.nodes):  # a snapshot: derivative nodes are appended
        if node not in needed:
            continue
        terms: dict[int, list[Any]] = defaultdict(list)
        for arg in prog.active(node):
            partial = prog.partial(node, arg)
            for j, d in tangents.get(arg, {}).items():
                terms[j].append(prog.mul(partial, d))
        tangents[node] = _sums(prog, terms)
    return [_leaf_tangent(prog, leaf, tangents) for leaf in leaves]


def reverse(prog: Program, seeds: Sequence[tuple[Any, Any]]) -> dict[int, Any]:
    """``{j: Σ_k w_k ∂leaf_k/∂x_j}`` for seeds ``(leaf_k, w_k)`` (reverse mode), nonzero ones.

    Adjoints are summed once per node, when every node using it has passed its share on.
    """
    shares: dict[Any, list[Any]] = defaultdict(list)
    for leaf, weight in seeds:
        for symbol in prog.engine.free_symbols(leaf):
            if prog.dependencies(symbol):
                shares[symbol].append(prog.mul(prog.engine.diff(leaf, symbol), weight))
    for node, _ in reversed(list(prog.nodes)):
        if node not in shares:
            continue
        adjoint = prog.add(shares.pop(node))
        if adjoint == 0:
            continue
        for arg in prog.active(node):
            shares[arg].append(prog.mul(prog.partial(node, arg), adjoint))
    grad = _sums(prog, {j: shares.get(x, []) for j, x in enumerate(prog.inputs)})
    return grad


def _sums(prog: Program, terms: Mapping[int, list[Any]]) -> Tangent:
    out = {j: prog.add(ts) for j, ts in terms.items() if ts}
    return {j: v for j, v in out.items() if v != 0}


def _leaf_tangent(prog: Program, leaf: Any, tangents: Mapping[Any, Tangent]) -> Tangent:
    """The tangent of a leaf (an atom, or a number times an atom)."""
    if not leaf.args:
        return dict(tangents.get(leaf, {}))
    coeff, atom = leaf.args
    return {j: prog.mul(coeff, d) for j, d in tangents.get(atom, {}).items()}


@dataclass(frozen=True, eq=False)
class GraphDerivatives:
    """The Jacobian, gradient and Hessian programs of ``L(P(x))`` on one graph.

    Build with :meth:`build`; :meth:`program` gives the kernel of some entries. One
    :class:`Program` holds ``P``, the seeds ``∂L/∂y`` at ``P``, the Jacobian's tangents, the
    gradient's adjoints and the Hessian's tangents, so everything is shared.
    """

    prog: Program
    outputs: tuple[Any, ...]
    seeds: tuple[tuple[Any, Any], ...]

    @classmethod
    def build(
        cls,
        engine: Engine,
        inputs: Sequence[Any],
        chunks: Sequence[tuple[Sequence[Any], Sequence[Any]]],
        loss_y: Mapping[int, Any],
        ys: Sequence[Any],
        taken: Sequence[str] = (),
    ) -> GraphDerivatives:
        """The graph of ``P`` (its ``engine.cse_native`` chunks) and of the seeds ``loss_y``
        (``{k: ∂L/∂y_k}`` in the output symbols ``ys``, engine terms) at ``y = P``."""
        prog, leaves = Program.from_cse(engine, inputs, chunks, taken)
        at_P = {engine.convert(y): leaf for y, leaf in zip(ys, leaves)}
        seeds = tuple(
            (leaves[k], prog.intern(engine.substitute(engine.convert(w), at_P)))
            for k, w in sorted(loss_y.items())
        )
        return cls(prog, tuple(leaves), seeds)

    @cached_property
    def jacobian(self) -> dict[tuple[int, int], Any]:
        """``{(k, j): leaf}`` of the nonzero Jacobian entries (forward mode)."""
        tangents = forward(self.prog, self.outputs)
        return {(k, j): v for k, t in enumerate(tangents) for j, v in t.items()}

    @cached_property
    def gradient(self) -> dict[int, Any]:
        """``{j: leaf}`` of the nonzero gradient entries (reverse mode)."""
        return reverse(self.prog, self.seeds)

    @cached_property
    def hessian(self) -> dict[tuple[int, int], Any]:
        """``{(a, b): leaf}``, both triangles: forward over the gradient's program, the
        triangle that needs fewer nodes computed and mirrored."""
        rows = sorted(self.gradient)
        tangents = dict(zip(rows, forward(self.prog, [self.gradient[a] for a in rows])))
        lower = {(a, b): v for a, t in tangents.items() for b, v in t.items() if b <= a}
        upper = {(a, b): v for a, t in tangents.items() for b, v in t.items() if b >= a}
        if self.prog.size(upper.values()) < self.prog.size(lower.values()):
            lower = {(b, a): v for (a, b), v in upper.items()}
        return {**lower, **{(b, a): v for (a, b), v in lower.items()}}

    def program(
        self, kind: str, keys: Sequence[Any], symbols: Mapping[str, sp.Symbol]
    ) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
        """``(temporaries, reduced)`` (SymPy) of the entries ``keys`` of ``kind``
        (``"jacobian"``, ``"gradient"`` or ``"hessian"``), zero where an entry is
        structurally zero on the graph."""
        table = getattr(self, kind)
        zero = self.prog.engine.convert(sp.Integer(0))
        return self.prog.to_sympy([table.get(k, zero) for k in keys], symbols)
