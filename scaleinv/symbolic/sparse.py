"""Structurally sparse exact derivatives: each output differentiated only where it can vary.

A discretized PDE step or a mechanism has outputs that each depend on a few inputs. Here the
Jacobian, the gradient and the Hessian are dictionaries of their structurally nonzero entries
(``(row, col) -> expr``); no dense matrix of zeros is built. The Hessian comes from the chain
rule on the pattern,

.. math:: H = J^T L_{yy} J + \\sum_k L_{y_k} \\nabla^2 P_k,

summing only over the nonzero entries of ``J`` and ``L_yy`` and differentiating each
Jacobian entry only by the inputs it contains. The loss is differentiated term by term, so
``½|y − y*|²`` with a thousand outputs costs a thousand derivatives, not a million.
Differentiation goes through an :class:`~scaleinv.symbolic.engine.Engine` (SymPy, or
SymEngine where installed); results are SymPy.

These expanded entries are what users and reports see. Kernels are printed from
:meth:`SparseDerivatives.program`: for deep compositions (where ``P``'s expression trees are
much larger than its DAG) the Jacobian, gradient and Hessian kernels come from derivatives
taken on the graph (:mod:`scaleinv.symbolic.autodiff`), with the same pattern.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef

from scaleinv.errors import ProblemError
from scaleinv.symbolic.autodiff import GraphDerivatives, supported
from scaleinv.symbolic.budget import cheap_simplify
from scaleinv.symbolic.engine import Engine, get_engine
from scaleinv.symbolic.program import expansion

__all__ = ["Sparsity", "SparseDerivatives", "derive_sparse", "newton_step_in_y", "to_matrix"]

#: Entry-wise ``cheap_simplify`` runs only on results with at most this many entries (the
#: dense-matrix rule the problem's derivatives always followed).
SIMPLIFY_ENTRIES = 36
#: Kernels of J, ∇L and H come from the graph when the expression trees of ``P`` are at least
#: this many times its cse program (see :func:`~scaleinv.symbolic.program.expansion`).
#: Measured (NumPy operations in the printed kernels): on planar chains of 2, 3, 6, 12, 24 links
#: (trees 1.4-15x the program at 2-12 links) the graph's gradient and Hessian kernels are
#: 1.1-5.8x smaller than the cse of the expanded entries and its Jacobian within 10%; on the
#: diffusion step (trees = program, 1.0) the graph's Hessian kernel is 1.3x larger.
GRAPH_EXPANSION = 1.25
ROUTES = ("auto", "graph", "expanded")

Pattern = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Sparsity:
    """The static nonzero patterns of a problem's Jacobian and Hessian.

    Attributes
    ----------
    jacobian, hessian : tuple of (row, col)
        Sorted index pairs of the structurally nonzero entries (the Hessian's both triangles).
    jacobian_shape, hessian_shape : (int, int)
        ``(m, n)`` and ``(n, n)``.

    Examples
    --------
    >>> from scaleinv import Problem
    >>> p = Problem.from_strings(["a", "b", "c"], ["a*b", "c**2"])
    >>> s = p.sparsity
    >>> s.jacobian, s.hessian_nnz, s.hessian_bandwidth, s.hessian_blocks
    (((0, 0), (0, 1), (1, 2)), 5, 1, ((0, 1), (2,)))
    """

    jacobian: Pattern
    hessian: Pattern
    jacobian_shape: tuple[int, int]
    hessian_shape: tuple[int, int]

    @property
    def jacobian_nnz(self) -> int:
        """Number of structurally nonzero Jacobian entries."""
        return len(self.jacobian)

    @property
    def hessian_nnz(self) -> int:
        """Number of structurally nonzero Hessian entries (both triangles)."""
        return len(self.hessian)

    @property
    def jacobian_density(self) -> float:
        """Fraction of the ``m × n`` Jacobian that is structurally nonzero."""
        m, n = self.jacobian_shape
        return self.jacobian_nnz / (m * n)

    @property
    def hessian_density(self) -> float:
        """Fraction of the ``n × n`` Hessian that is structurally nonzero."""
        n = self.hessian_shape[0]
        return self.hessian_nnz / (n * n)

    @property
    def hessian_bandwidth(self) -> int:
        """``max |i − j|`` over the Hessian's nonzeros (0: diagonal)."""
        return max((abs(i - j) for i, j in self.hessian), default=0)

    @property
    def hessian_blocks(self) -> tuple[tuple[int, ...], ...]:
        """The inputs grouped into independent blocks (connected components of the pattern)."""
        return _components(self.hessian_shape[0], self.hessian)


@dataclass(frozen=True, eq=False)
class SparseDerivatives:
    """Nonzero entries of the problem's derivatives (x-space unless said otherwise).

    ``jacobian[k, j] = ∂P_k/∂x_j``; ``gradient[j] = ∂L/∂x_j``; ``hessian[a, b]`` (both
    triangles); ``loss_x = L(P(x))``; ``loss_y[k] = ∂L/∂y_k`` and ``loss_yy[k, l]`` in the
    output symbols. These are SymPy, converted from the engine on first use; :attr:`native`
    holds the engine's own entries, which :meth:`cse` eliminates without converting them.
    """

    native: Mapping[str, Mapping[Any, Any]]
    m: int
    n: int
    engine: Engine
    symbols: Mapping[str, sp.Symbol]
    inputs: tuple[Any, ...] = ()
    ys: tuple[Any, ...] = ()

    def _size(self, kind: str) -> int:
        """Entries of the dense form of ``kind`` (what decides whether it is simplified;
        ``P`` and ``L(P(x))`` never are: simplifying a sum of squares can make it negative)."""
        m, n = self.m, self.n
        sizes = {"jacobian": m * n, "hessian": n * n, "gradient": n, "loss_y": m, "newton_dy": m}
        sizes["loss_yy"] = m * m
        return sizes.get(kind, SIMPLIFY_ENTRIES + 1)

    def table(self, kind: str) -> Mapping[Any, Any]:
        """The engine's entries of ``kind`` (a key of :attr:`native`, or ``"newton_dy"``)."""
        if kind == "newton_dy":
            return self._newton_dy_native
        return self.native[kind]

    @cached_property
    def _newton_dy_native(self) -> Mapping[int, Any]:
        loss_y, loss_yy = self.native["loss_y"], self.native["loss_yy"]
        step = newton_step_in_y(loss_y, loss_yy, self.m, self.engine, self.symbols)
        return MappingProxyType(step)

    def _sympy(self, kind: str) -> Mapping[Any, sp.Expr]:
        out = {k: self.engine.to_sympy(e, self.symbols) for k, e in self.table(kind).items()}
        if self._size(kind) <= SIMPLIFY_ENTRIES:
            out = {k: cheap_simplify(e) for k, e in out.items()}
        return MappingProxyType({k: e for k, e in out.items() if e != 0})

    @cached_property
    def jacobian(self) -> Mapping[tuple[int, int], sp.Expr]:
        """``{(k, j): ∂P_k/∂x_j}``."""
        return self._sympy("jacobian")

    @cached_property
    def gradient(self) -> Mapping[int, sp.Expr]:
        """``{j: ∂L/∂x_j}``."""
        return self._sympy("gradient")

    @cached_property
    def hessian(self) -> Mapping[tuple[int, int], sp.Expr]:
        """``{(a, b): ∂²L/∂x_a∂x_b}``, both triangles."""
        return self._sympy("hessian")

    @cached_property
    def loss_x(self) -> Mapping[tuple[()], sp.Expr]:
        """``{(): L(P(x))}``."""
        return self._sympy("loss_x")

    @cached_property
    def loss_y(self) -> Mapping[int, sp.Expr]:
        """``{k: ∂L/∂y_k}`` in the output symbols."""
        return self._sympy("loss_y")

    @cached_property
    def loss_yy(self) -> Mapping[tuple[int, int], sp.Expr]:
        """``{(k, l): ∂²L/∂y_k∂y_l}`` in the output symbols."""
        return self._sympy("loss_yy")

    @cached_property
    def newton_dy(self) -> Mapping[int, sp.Expr]:
        """``{k: (−L_yy⁻¹ L_y)_k}`` in the output symbols (see :func:`newton_step_in_y`)."""
        return self._sympy("newton_dy")

    @cached_property
    def sparsity(self) -> Sparsity:
        """The patterns of the Jacobian and the Hessian (structurally nonzero entries)."""
        return Sparsity(
            tuple(sorted(self.native["jacobian"])),
            tuple(sorted(self.native["hessian"])),
            (self.m, self.n),
            (self.n, self.n),
        )

    def cse(self, kind: str, keys: Sequence[Any]) -> tuple[list, list]:
        """``(temporaries, reduced)`` (SymPy) of the entries ``keys`` of ``kind``, in order.

        ``kind`` is a key of :attr:`native` or ``"newton_dy"``; every key must be an entry
        of it. The elimination runs on the engine's own (never simplified) entries and
        only the program is converted: kernels do not wait for display simplification.
        """
        if kind == "P" and list(keys) == list(range(self.m)):
            return self.engine.chunks_to_sympy(self._P_chunks, self.symbols)
        table = self.table(kind)
        return self.engine.cse([table[k] for k in keys], self.symbols)

    @cached_property
    def _P_chunks(self) -> list[tuple[list[Any], list[Any]]]:
        """The engine's cse of ``P`` (the P kernel's program and the graph's start)."""
        return self.engine.cse_native([self.native["P"][k] for k in range(self.m)])

    @cached_property
    def graph(self) -> GraphDerivatives | None:
        """J, ∇L and H on the expression graph of ``P`` (:mod:`scaleinv.symbolic.autodiff`);
        ``None`` where ``P`` or ``∂L/∂y`` use a function the graph route does not know."""
        P = [self.native["P"][k] for k in range(self.m)]
        if not supported([*P, *self.native["loss_y"].values()]):
            return None
        loss_y, taken = self.native["loss_y"], list(self.symbols)
        return GraphDerivatives.build(
            self.engine, self.inputs, self._P_chunks, loss_y, self.ys, taken
        )

    @cached_property
    def route(self) -> str:
        """How kernels of J, ∇L and H are derived: ``"graph"`` where ``P`` is a deep
        composition (its expression trees at least :data:`GRAPH_EXPANSION` times its cse
        program) and the graph route knows its functions, ``"expanded"`` (cse of the
        expanded entries) otherwise."""
        if expansion(self._P_chunks) < GRAPH_EXPANSION or self.graph is None:
            return "expanded"
        return "graph"

    def program(self, kind: str, keys: Sequence[Any], route: str = "auto") -> tuple[list, list]:
        """``(temporaries, reduced)`` (SymPy) of a kernel of the entries ``keys`` of ``kind``.

        ``route`` ``"auto"`` is :attr:`route`; ``"graph"`` (J, ``"gradient"``, H only)
        differentiates on the graph, ``"expanded"`` is :meth:`cse`. Both give the entries'
        values up to rounding.
        """
        if route not in ROUTES:
            raise ProblemError(f"unknown derivative route {route!r}; known: {', '.join(ROUTES)}")
        if route == "auto":
            route = self.route
        if route == "expanded" or kind not in ("jacobian", "gradient", "hessian"):
            return self.cse(kind, keys)
        if self.graph is None:
            raise ProblemError(
                "the graph route differentiates only arithmetic and elementary functions"
            )
        return self.graph.program(kind, keys, self.symbols)


def derive_sparse(
    inputs: Sequence[sp.Symbol],
    outputs: Sequence[sp.Expr],
    loss: sp.Expr,
    ys: Sequence[sp.Symbol],
    *,
    engine: str = "auto",
) -> SparseDerivatives:
    """Differentiate ``L(P(x))`` on the structural pattern (see the module docstring).

    ``engine="auto"`` is SymEngine where installed, except for problems with undefined
    functions or unevaluated derivatives (SymPy keeps those).

    Examples
    --------
    >>> x0, x1, y0, y1 = sp.symbols("x0 x1 y0 y1")
    >>> d = derive_sparse([x0, x1], [x0 * x1, x1**2], (y0**2 + y1**2) / 2, [y0, y1])
    >>> dict(d.jacobian)
    {(0, 0): x1, (0, 1): x0, (1, 1): 2*x1}
    >>> d.hessian[0, 1]
    2*x0*x1
    """
    if engine == "auto" and not _plain(outputs, loss):
        engine = "sympy"  # undefined functions and unevaluated derivatives stay in SymPy
    eng = get_engine(engine)
    every = set(inputs) | set(ys) | loss.free_symbols
    for expr in outputs:
        every |= expr.free_symbols
    names = {s.name: s for s in every if isinstance(s, sp.Symbol)}
    xs = [eng.convert(s) for s in inputs]
    ye = [eng.convert(s) for s in ys]
    x_index = {s: j for j, s in enumerate(xs)}
    y_index = {s: k for k, s in enumerate(ye)}
    P = [eng.convert(e) for e in outputs]

    # Jacobian: P_k by the inputs it contains.
    jac: dict[tuple[int, int], Any] = {}
    jac_rows: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    for k, p_k in enumerate(P):
        for j in sorted(x_index[s] for s in eng.free_symbols(p_k) if s in x_index):
            d = eng.diff(p_k, xs[j])
            if not eng.is_zero(d):
                jac[k, j] = d
                jac_rows[k].append((j, d))

    # Loss: term by term, each term by the outputs it contains.
    parts: dict[int, list[Any]] = defaultdict(list)
    for term in eng.terms(eng.convert(loss)):
        for s in eng.free_symbols(term):
            if s in y_index:
                parts[y_index[s]].append(eng.diff(term, s))
    loss_y = {k: e for k, e in ((k, eng.add(v)) for k, v in parts.items()) if not eng.is_zero(e)}
    loss_yy: dict[tuple[int, int], Any] = {}
    for k, g_k in loss_y.items():
        for s in eng.free_symbols(g_k):
            if s in y_index:
                d = eng.diff(g_k, s)
                if not eng.is_zero(d):
                    loss_yy[k, y_index[s]] = d

    # Chain rule on the pattern.
    at_P = dict(zip(ye, P))
    weight = {k: eng.substitute(g, at_P) for k, g in loss_y.items()}
    grad_parts: dict[int, list[Any]] = defaultdict(list)
    for (k, j), d in jac.items():
        if k in weight:
            grad_parts[j].append(d * weight[k])
    hess_parts: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for (k, l), c in loss_yy.items():
        c_x = eng.substitute(c, at_P)
        for a, ja in jac_rows.get(k, ()):
            for b, jb in jac_rows.get(l, ()):
                if a <= b:
                    hess_parts[a, b].append(ja * c_x * jb)
    for k, w_k in weight.items():
        for a, ja in jac_rows.get(k, ()):
            for s in eng.free_symbols(ja):
                col = x_index.get(s)
                if col is not None and col >= a:
                    d2 = eng.diff(ja, s)
                    if not eng.is_zero(d2):
                        hess_parts[a, col].append(w_k * d2)

    def nonzero(entries: Mapping[Any, list[Any]]) -> dict[Any, Any]:
        summed = ((key, eng.add(terms)) for key, terms in sorted(entries.items()))
        return {key: e for key, e in summed if not eng.is_zero(e)}

    upper = nonzero(hess_parts)
    hessian = dict(sorted({**upper, **{(b, a): e for (a, b), e in upper.items()}}.items()))
    native: dict[str, dict[Any, Any]] = {
        "P": dict(enumerate(P)),
        "jacobian": jac,
        "gradient": nonzero(grad_parts),
        "hessian": hessian,
        "loss": {(): eng.convert(loss)},
        "loss_x": {(): eng.substitute(eng.convert(loss), at_P)},
        "loss_y": loss_y,
        "loss_yy": loss_yy,
    }
    frozen = MappingProxyType
    return SparseDerivatives(
        native=frozen({k: frozen(v) for k, v in native.items()}),
        m=len(P),
        n=len(xs),
        engine=eng,
        symbols=frozen(names),
        inputs=tuple(xs),
        ys=tuple(ye),
    )


def newton_step_in_y(
    loss_y: Mapping[int, Any],
    loss_yy: Mapping[tuple[int, int], Any],
    m: int,
    engine: Engine | None = None,
    symbols: Mapping[str, sp.Symbol] | None = None,
) -> dict[int, Any]:
    """``−L_yy⁻¹ L_y`` (in the output symbols), solved block by block on the pattern of L_yy.

    A diagonal ``L_yy`` (the default loss) costs one division per output, in the engine's
    own terms; coupled outputs are solved together (a SymPy LU per block). Raises
    :class:`ProblemError` when a block is singular.

    Examples
    --------
    >>> y0, y1 = sp.symbols("y0 y1")
    >>> newton_step_in_y({0: y0 - 1, 1: 4 * y1}, {(0, 0): 1, (1, 1): 4}, 2)
    {0: 1 - y0, 1: -y1}
    """
    eng = engine or get_engine("sympy")
    names = dict(symbols or {})
    step: dict[int, Any] = {}
    for block in _components(m, loss_yy):
        if len(block) == 1:
            k = block[0]
            c = loss_yy.get((k, k))
            if c is None or eng.is_zero(c):
                raise ProblemError(f"loss Hessian in y is zero on the diagonal at y{k}")
            if k in loss_y:
                step[k] = -loss_y[k] / c
            continue
        zero = eng.convert(sp.Integer(0))
        hyy = sp.Matrix(
            [[eng.to_sympy(loss_yy.get((r, c), zero), names) for c in block] for r in block]
        )
        if hyy.det() == 0:
            raise ProblemError(f"loss Hessian in y is singular on outputs {block}")
        rhs = sp.Matrix([eng.to_sympy(loss_y.get(k, zero), names) for k in block])
        step.update(zip(block, (eng.convert(e) for e in -hyy.LUsolve(rhs))))
    return {k: e for k, e in sorted(step.items()) if not eng.is_zero(e)}


def to_matrix(entries: Mapping[Any, sp.Expr], shape: tuple[int, int]) -> sp.Matrix:
    """A dense SymPy matrix of the given shape from ``{(i, j): e}`` or ``{i: e}`` (a column).

    Examples
    --------
    >>> to_matrix({(0, 1): sp.Symbol("a")}, (2, 2))
    Matrix([
    [0, a],
    [0, 0]])
    """
    flat = {(k if isinstance(k, tuple) else (k, 0)): e for k, e in entries.items()}
    return sp.Matrix(shape[0], shape[1], lambda i, j: flat.get((i, j), sp.Integer(0)))


def _plain(outputs: Sequence[sp.Expr], loss: sp.Expr) -> bool:
    """Only the closed-form functions every engine knows (no ``f(x)``, ``Derivative``, ...)."""
    symbolic = (AppliedUndef, sp.Derivative, sp.Subs, sp.Integral)
    return not any(e.atoms(*symbolic) for e in (*outputs, loss))


def _components(size: int, pattern: Any) -> tuple[tuple[int, ...], ...]:
    """Connected components of ``range(size)`` under the edges of ``pattern``, sorted."""
    parent = list(range(size))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pattern:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(size):
        groups[root(i)].append(i)
    return tuple(tuple(g) for g in sorted(groups.values()))
