"""Indexed (array) problems: ``P`` written once over a grid index, with a boundary rule.

An :class:`IndexedProblem` holds one or more input fields on one grid (1-D ``u[0:n]``, 2-D
``u[0:nx, 0:ny]``, ...) and one *point formula* per output field, written at a generic grid
point ``i`` (``i, j`` in 2-D) in terms of *accesses* such as ``u[i+1]`` or ``v[i, j-1]``::

    >>> p = IndexedProblem.from_strings(
    ...     "u[0:n]", "u[i] + 0.1*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3",
    ...     boundary="periodic", params={"n": 8, "c": 0.05})
    >>> p.shape, p.n, p.m
    ((8,), 8, 8)
    >>> [(d.offset, d.formula) for d in p.jacobian_stencil]
    [((-1,), 1/10), ((0,), 3*c*u[i]**2 + 4/5), ((1,), 1/10)]

Nothing here grows with the grid: derivatives are *stencils* (:class:`Diagonal`: for each
output field, input field and offset one SymPy formula, the value of that diagonal at row
point ``i``), derived once from the point formulas. The boundary rule says what an access
outside the grid reads (:class:`Boundary`): ``periodic`` wraps, ``dirichlet`` reads a fixed
ghost value (that entry drops out of J), ``neumann`` reads the mirror image ``u[-k] = u[k]``,
``u[n-1+k] = u[n-1-k]`` (entries fold onto the mirrored column).

The flat layout (what :func:`scaleinv.minimize` and the numeric kernels take) is field-major,
then the grid in C order: ``x = [u.ravel(), v.ravel()]``, ``n = fields · prod(shape)``.

Other pieces:

* per-point params ``a[i]`` (read at the point itself), given as a formula of the index or a
  list of values (:attr:`IndexedProblem.point_params`, arrays of the grid's shape);
* a target per output field, a formula of the index and params (default 0), or
  ``target_from``: the outputs at a given input state ``x*`` (the inverse problem's answer is
  then known); the loss is ``½|y − y*|²`` summed over the grid;
* :meth:`IndexedProblem.to_problem` writes the problem out expression by expression at a
  small grid (today's :class:`~scaleinv.symbolic.problem.Problem`): dense and per-entry SymPy
  matrices on request, and the twin the tests compare every kernel against;
* :meth:`IndexedProblem.representative_rows`: "for i = 0 … n − 1" rows for reports.

Strings are parsed by :mod:`scaleinv.symbolic.indexed_parsing` (the same allow-list as every
expression: nothing is evaluated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from scaleinv.errors import ProblemError
from scaleinv.symbolic.indexed_grid import (
    BOUNDARY_KINDS,
    INDEX_NAMES,
    Access,
    Boundary,
    grid_values,
    index_symbols,
)
from scaleinv.symbolic.indexed_parsing import parse_indexed_parts

if TYPE_CHECKING:
    from scaleinv.symbolic.problem import Problem

__all__ = ["IndexedProblem", "Access", "Boundary", "Diagonal", "BOUNDARY_KINDS", "INDEX_NAMES"]
__all__ += ["grid_values", "index_symbols"]


@dataclass(frozen=True)
class Diagonal:
    """One diagonal of a stencil matrix: entry ``(row_field, i) , (col_field, i + offset)``
    has the value ``formula`` at row point ``i`` (in the accesses of ``i`` and the index)."""

    row_field: int
    col_field: int
    offset: tuple[int, ...]
    formula: sp.Expr


@dataclass(frozen=True, eq=False)
class IndexedProblem:
    """Minimize ``½|P(x) − y*|²`` for ``P`` written once over a grid index.

    Parameters
    ----------
    fields : tuple of str
        The input fields (``("u", "v")``).
    shape : tuple of int
        The grid (every field on the same grid).
    sizes : tuple of str or None
        The param naming each axis's size (``("n",)``), None for a literal size.
    outputs : tuple of Expr
        One point formula per output field, in :attr:`accesses`' symbols, the index symbols
        and scalar params.
    accesses : mapping of Symbol to Access
        Every ``u[i+1]``-style symbol the formulas use.
    boundary : Boundary
    params : mapping of Symbol to float
        Scalar params (the axis sizes among them).
    point_params : mapping of str to ndarray
        Per-point params, each an array of the grid's shape.
    target : tuple of Expr, optional
        ``y*`` per output field, a formula of the index and params (default 0).
    target_from : tuple of Expr, optional
        Instead of ``target``: ``x*`` per input field; then ``y* = P(x*)``.
    """

    fields: tuple[str, ...]
    shape: tuple[int, ...]
    sizes: tuple[str | None, ...]
    outputs: tuple[sp.Expr, ...]
    accesses: Mapping[sp.Symbol, Access]
    boundary: Boundary = field(default_factory=Boundary)
    params: Mapping[sp.Symbol, float] = field(default_factory=dict)
    point_params: Mapping[str, np.ndarray] = field(default_factory=dict)
    target: tuple[sp.Expr, ...] | None = None
    target_from: tuple[sp.Expr, ...] | None = None

    def __post_init__(self) -> None:
        if not self.fields or not self.outputs:
            raise ProblemError("an indexed problem needs at least one field and one output")
        if not self.shape or any(int(s) < 1 for s in self.shape):
            raise ProblemError(f"grid sizes must be positive, got {self.shape}")
        if self.target is not None and self.target_from is not None:
            raise ProblemError("give target or target_from, not both")
        points = {}
        for name, values in dict(self.point_params).items():
            array = np.array(values, dtype=np.float64)
            if array.shape != tuple(self.shape) or not np.isfinite(array).all():
                raise ProblemError(
                    f"per-point param {name!r} needs {self.shape} finite values, got shape "
                    f"{array.shape}"
                )
            array.setflags(write=False)
            points[name] = array
        object.__setattr__(self, "point_params", MappingProxyType(points))
        object.__setattr__(self, "accesses", MappingProxyType(dict(self.accesses)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        if self.boundary.kind == "dirichlet":
            unknown = set(self.boundary.values) - set(self.fields)
            if unknown:
                raise ProblemError(f"dirichlet values for unknown fields {sorted(unknown)}")
        width = self.width
        for axis, size in enumerate(self.shape):
            if self.boundary.kind != "dirichlet" and width[axis] >= size:
                raise ProblemError(
                    f"the stencil reaches {width[axis]} points along axis {axis}, the grid has "
                    f"only {size}: a {self.boundary.kind} boundary needs more points"
                )
        allowed = set(self.accesses) | set(self.index) | set(self.params)
        for a, formula in enumerate(self.outputs):
            unknown = formula.free_symbols - allowed
            if unknown:
                raise ProblemError(f"output {a} uses unknown symbols {sorted(map(str, unknown))}")
        for what, formulas in (("target", self.target), ("target_from", self.target_from)):
            for formula in formulas or ():
                unknown = sp.sympify(formula).free_symbols - set(self.index) - set(self.params)
                if unknown:
                    raise ProblemError(f"{what} uses unknown symbols {sorted(map(str, unknown))}")
        count = len(self.fields) if self.target_from is not None else self.fields_out
        given = self.target_from if self.target_from is not None else self.target
        if given is not None and len(given) != count:
            raise ProblemError(f"the target has {len(given)} entries, expected {count}")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_strings(
        cls,
        inputs: str | Sequence[str],
        outputs: str | Sequence[str],
        *,
        boundary: Any = "periodic",
        params: Mapping[str, Any] | None = None,
        target: Any = None,
        target_from: Any = None,
    ) -> IndexedProblem:
        """Parse an indexed problem from untrusted strings (see
        :func:`scaleinv.symbolic.indexed_parsing.parse_indexed_parts`)."""
        parts = parse_indexed_parts(inputs, outputs, boundary, params, target, target_from)
        return cls(**parts._asdict())

    # -- sizes and symbols --------------------------------------------------------------------
    @property
    def index(self) -> tuple[sp.Symbol, ...]:
        """The index symbols ``i`` (``i, j``)."""
        return index_symbols(len(self.shape))

    @property
    def points(self) -> int:
        """Grid points ``prod(shape)``."""
        return int(np.prod(self.shape))

    @property
    def fields_out(self) -> int:
        """Number of output fields."""
        return len(self.outputs)

    @property
    def n(self) -> int:
        """Number of inputs (``fields · points``)."""
        return len(self.fields) * self.points

    @property
    def m(self) -> int:
        """Number of outputs (``output fields · points``)."""
        return self.fields_out * self.points

    @property
    def param_symbols(self) -> tuple[sp.Symbol, ...]:
        """The scalar params, sorted by name."""
        return tuple(sorted(self.params, key=str))

    @cached_property
    def input_accesses(self) -> tuple[sp.Symbol, ...]:
        """The accesses of input fields, ordered by field then offset."""
        inputs = [s for s, a in self.accesses.items() if not a.param]
        return tuple(
            sorted(
                inputs,
                key=lambda s: (self.fields.index(self.accesses[s].field), self.accesses[s].offset),
            )
        )

    @cached_property
    def param_accesses(self) -> tuple[sp.Symbol, ...]:
        """The accesses of per-point params (``a[i]``), ordered by name."""
        return tuple(sorted((s for s, a in self.accesses.items() if a.param), key=str))

    @cached_property
    def width(self) -> tuple[int, ...]:
        """How far the stencil reaches along each axis (the largest ``|offset|``)."""
        reach = [0] * len(self.shape)
        for access in self.accesses.values():
            for axis, d in enumerate(access.offset):
                reach[axis] = max(reach[axis], abs(d))
        return tuple(reach)

    @cached_property
    def target_symbols(self) -> tuple[sp.Symbol, ...]:
        """Symbols standing for ``y*`` at the point, one per output field (``u*``)."""
        return tuple(sp.Symbol(f"y{a}*", real=True) for a in range(self.fields_out))

    # -- stencils -----------------------------------------------------------------------------
    @cached_property
    def jacobian_stencil(self) -> tuple[Diagonal, ...]:
        """J as diagonals: ``∂P_a(i)/∂u_b[i+d]`` for every output field ``a`` and access."""
        diagonals = []
        for a, formula in enumerate(self.outputs):
            for symbol in self.input_accesses:
                value = sp.diff(formula, symbol)
                if value != 0:
                    access = self.accesses[symbol]
                    diagonals.append(
                        Diagonal(a, self.fields.index(access.field), access.offset, value)
                    )
        return tuple(diagonals)

    @cached_property
    def residuals(self) -> tuple[sp.Expr, ...]:
        """``P_a(i) − y*_a(i)`` per output field, with :attr:`target_symbols` for ``y*``."""
        return tuple(f - t for f, t in zip(self.outputs, self.target_symbols))

    @cached_property
    def point_curvature(self) -> Mapping[tuple[int, int], sp.Expr]:
        """``C[α, β]`` (α ≤ β, nonzero entries only): the second-derivative part of
        :attr:`point_hessian`, ``Σ_a r_a ∂²P_a/∂α∂β`` (empty where P is linear in the
        accesses). H = JᵀJ + the sum over points of ``C`` placed as ``W`` is."""
        entries = {}
        accesses = self.input_accesses
        for alpha in range(len(accesses)):
            for beta in range(alpha, len(accesses)):
                total = sp.Integer(0)
                for formula, r in zip(self.outputs, self.residuals):
                    total += r * sp.diff(formula, accesses[alpha], accesses[beta])
                if total != 0:
                    entries[(alpha, beta)] = total
        return MappingProxyType(entries)

    @cached_property
    def point_hessian(self) -> Mapping[tuple[int, int], sp.Expr]:
        """``W[α, β]`` (α ≤ β indexing :attr:`input_accesses`): the Hessian of the loss at one
        output point by the accesses it reads, ``Σ_a g_aα g_aβ`` plus :attr:`point_curvature`.
        H is the sum over points of ``W`` placed at the columns the accesses read."""
        gradients = [[sp.diff(f, s) for s in self.input_accesses] for f in self.outputs]
        entries = {}
        count = len(self.input_accesses)
        for alpha in range(count):
            for beta in range(alpha, count):
                total = self.point_curvature.get((alpha, beta), sp.Integer(0))
                for g in gradients:
                    total += g[alpha] * g[beta]
                if total != 0:
                    entries[(alpha, beta)] = total
        return MappingProxyType(entries)

    @cached_property
    def hessian_stencil(self) -> tuple[Diagonal, ...]:
        """H of ``½|P − y*|²`` as diagonals at an interior row point ``i`` (offsets up to twice
        the stencil's width): ``H_e(i) = Σ_d W[(b, d), (c, d + e)](i − d)``. Exact on a periodic
        grid; rows near a dirichlet or neumann boundary differ (the numeric kernels assemble
        them from :attr:`point_hessian`)."""
        accesses = [self.accesses[s] for s in self.input_accesses]
        sums: dict[tuple[int, int, tuple[int, ...]], sp.Expr] = {}
        for (alpha, beta), value in self.point_hessian.items():
            pairs = {(alpha, beta), (beta, alpha)}
            for one, two in pairs:
                first, second = accesses[one], accesses[two]
                shift = tuple(-d for d in first.offset)
                offset = tuple(e - d for d, e in zip(first.offset, second.offset))
                key = (self.fields.index(first.field), self.fields.index(second.field), offset)
                sums[key] = sums.get(key, sp.Integer(0)) + self.shifted(value, shift)
        return tuple(Diagonal(b, c, e, f) for (b, c, e), f in sorted(sums.items()) if f != 0)

    def shifted(self, formula: sp.Expr, shift: tuple[int, ...]) -> sp.Expr:
        """``formula`` read at point ``i + shift``: accesses and the index move, targets too
        (a target symbol ``y0*`` becomes ``y0*[i+shift]``, a per-point value)."""
        if not any(shift):
            return formula
        moves: dict[sp.Basic, sp.Expr] = {}
        for symbol, access in self.accesses.items():
            if symbol in formula.free_symbols:
                moved = Access(
                    access.field, tuple(d + s for d, s in zip(access.offset, shift)), access.param
                )
                moves[symbol] = self.access_symbol(moved)
        for symbol, s in zip(self.index, shift):
            moves[symbol] = symbol + s
        for symbol in self.target_symbols:
            if symbol in formula.free_symbols:
                moves[symbol] = sp.Symbol(Access(str(symbol), shift).text(self.index), real=True)
        return formula.xreplace(moves)

    def access_symbol(self, access: Access) -> sp.Symbol:
        """The symbol of ``access`` (the one in :attr:`accesses`, or a new one named alike)."""
        for symbol, known in self.accesses.items():
            if known == access:
                return symbol
        return sp.Symbol(access.text(self.index), real=True)

    def representative_rows(self) -> dict[str, list[tuple[str, str, sp.Expr]]]:
        """For reports: ``{"P": [...], "J": [...], "H": [...]}``, each a list of
        ``(row, column, formula)`` texts at a generic point, "for i = 0 … n − 1"."""
        index = self.index
        rows: dict[str, list[tuple[str, str, sp.Expr]]] = {"P": [], "J": [], "H": []}
        out_names = self.output_names
        for a, formula in enumerate(self.outputs):
            rows["P"].append((Access(out_names[a], (0,) * len(index)).text(index), "", formula))
        for kind, stencil, names in (
            ("J", self.jacobian_stencil, out_names),
            ("H", self.hessian_stencil, self.fields),
        ):
            for diag in stencil:
                row = Access(names[diag.row_field], (0,) * len(index)).text(index)
                col = Access(self.fields[diag.col_field], diag.offset).text(index)
                rows[kind].append((row, col, diag.formula))
        return rows

    @property
    def output_names(self) -> tuple[str, ...]:
        """``P`` for one output field, else ``P0, P1, ...``."""
        if self.fields_out == 1:
            return ("P",)
        return tuple(f"P{a}" for a in range(self.fields_out))

    @property
    def range_text(self) -> str:
        """``i = 0 … n − 1`` (``, j = 0 … n − 1``) for reports."""
        parts = []
        for symbol, size, name in zip(self.index, self.shape, self.sizes):
            parts.append(f"{symbol} = 0 … {name or size} − 1")
        return ", ".join(parts)

    # -- values on the grid -------------------------------------------------------------------
    def grid_values(self, formula: sp.Expr) -> np.ndarray:
        """A formula of the index and scalar params evaluated on the grid (float64 array)."""
        return grid_values(formula, self.shape, self.params)

    @cached_property
    def target_state(self) -> np.ndarray | None:
        """``x*`` (flat) when the target is given as ``target_from``, else None."""
        if self.target_from is None:
            return None
        return np.concatenate([self.grid_values(f).ravel() for f in self.target_from])

    # -- written out expression by expression -------------------------------------------------
    def to_problem(self, *, max_points: int = 4096) -> Problem:
        """The same problem written out entry by entry (today's per-expression
        :class:`~scaleinv.symbolic.problem.Problem`; inputs ``u0, u1, ...`` or ``u_0_1``),
        in the flat layout. Only for small grids (``points ≤ max_points``): its setup grows
        with the grid."""
        from scaleinv.symbolic.problem import Problem

        if self.points > max_points:
            raise ProblemError(
                f"to_problem writes every entry out: {self.points} points is more than "
                f"max_points={max_points}"
            )
        names = [
            [self._entry_name(f, point) for point in np.ndindex(*self.shape)] for f in self.fields
        ]
        symbols = {
            (f, p): sp.Symbol(names[b][k], real=True)
            for b, f in enumerate(self.fields)
            for k, p in enumerate(np.ndindex(*self.shape))
        }
        outputs = []
        for formula in self.outputs:
            for point in np.ndindex(*self.shape):
                outputs.append(formula.xreplace(self._point_values(point, symbols)))
        targets = self._expanded_target(symbols)
        inputs = tuple(symbols[(f, p)] for f in self.fields for p in np.ndindex(*self.shape))
        return Problem(inputs, tuple(outputs), None, targets, dict(self.params))

    def _entry_name(self, field_name: str, point: tuple[int, ...]) -> str:
        if len(point) == 1:
            return f"{field_name}{point[0]}"
        return field_name + "".join(f"_{k}" for k in point)

    def _point_values(
        self, point: tuple[int, ...], symbols: Mapping[tuple[str, tuple[int, ...]], sp.Symbol]
    ) -> dict[sp.Basic, sp.Expr]:
        values: dict[sp.Basic, sp.Expr] = dict(zip(self.index, map(sp.Integer, point)))
        for symbol, access in self.accesses.items():
            sources = [
                self.boundary.source(p + d, size)
                for p, d, size in zip(point, access.offset, self.shape)
            ]
            where = tuple(s for s in sources if s is not None)  # None: a dirichlet ghost
            if access.param:
                values[symbol] = sp.Float(float(self.point_params[access.field][where]))
            elif len(where) < len(sources):
                values[symbol] = sp.nsimplify(self.boundary.values.get(access.field, 0))
            else:
                values[symbol] = symbols[(access.field, where)]
        return values

    def _expanded_target(
        self, symbols: Mapping[tuple[str, tuple[int, ...]], sp.Symbol]
    ) -> tuple[sp.Expr, ...]:
        if self.target_from is None:
            formulas = self.target or (sp.Integer(0),) * self.fields_out
            return tuple(
                sp.sympify(f).xreplace(dict(zip(self.index, map(sp.Integer, p))))
                for f in formulas
                for p in np.ndindex(*self.shape)
            )
        star = {
            symbols[(f, p)]: sp.sympify(x).xreplace(dict(zip(self.index, map(sp.Integer, p))))
            for f, x in zip(self.fields, self.target_from)
            for p in np.ndindex(*self.shape)
        }
        return tuple(
            formula.xreplace(self._point_values(p, symbols)).xreplace(star)
            for formula in self.outputs
            for p in np.ndindex(*self.shape)
        )

    # -- numeric ------------------------------------------------------------------------------
    def compile(self) -> Any:
        """The vectorised kernels (:class:`scaleinv.numeric.indexed_kernels.IndexedKernels`),
        compiled once and cached: a convenience for :func:`scaleinv.compile` (the numeric
        layer, imported here on use; the package's own code calls that)."""
        from scaleinv.numeric import compile_problem

        return compile_problem(self)

    def __repr__(self) -> str:
        grid = " × ".join(map(str, self.shape))
        outputs = "; ".join(str(f) for f in self.outputs)
        return (
            f"IndexedProblem(fields={list(self.fields)}, grid={grid}, "
            f"boundary={self.boundary.kind!r}, P[i] = {outputs})"
        )
