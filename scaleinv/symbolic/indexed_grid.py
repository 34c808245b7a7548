"""The grid of an indexed problem: its index symbols, its accesses and its boundary rule.

The lowest piece of :mod:`scaleinv.symbolic.indexed`: what both the problem
(:class:`~scaleinv.symbolic.indexed.IndexedProblem`) and its parser
(:mod:`~scaleinv.symbolic.indexed_parsing`) need, so that the parser does not import the
problem it parses for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import sympy as sp

from scaleinv.errors import ProblemError

__all__ = ["Access", "Boundary", "BOUNDARY_KINDS", "INDEX_NAMES", "grid_values", "index_symbols"]

#: The boundary rules: what an access outside the grid reads.
BOUNDARY_KINDS = ("periodic", "dirichlet", "neumann")
#: The index symbols of a 1-, 2- and 3-D grid, in axis order.
INDEX_NAMES = ("i", "j", "k")


@dataclass(frozen=True)
class Access:
    """``field[i + offset]``: an input field (or a per-point param) read near the point."""

    field: str
    offset: tuple[int, ...]
    param: bool = False

    def text(self, index: Sequence[sp.Symbol]) -> str:
        """``u[i+1]``, ``v[i, j-1]``."""
        parts = [str(s + d).replace(" ", "") for s, d in zip(index, self.offset)]
        return f"{self.field}[{', '.join(parts)}]"


@dataclass(frozen=True)
class Boundary:
    """What an access outside the grid reads.

    ``kind`` is one of :data:`BOUNDARY_KINDS`; ``values`` (dirichlet only) the ghost value
    of each input field.
    """

    kind: str = "periodic"
    values: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in BOUNDARY_KINDS:
            raise ProblemError(f"boundary must be one of {BOUNDARY_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def source(self, position: int, size: int) -> int | None:
        """The grid position an access at ``position`` (maybe outside ``0..size-1``) reads;
        None where it reads the fixed ghost value (dirichlet)."""
        if 0 <= position < size:
            return position
        if self.kind == "periodic":
            return position % size
        if self.kind == "dirichlet":
            return None
        period = 2 * (size - 1)  # neumann: mirror about the end points
        position = position % period if period else 0
        return period - position if position >= size else position


def index_symbols(dims: int) -> tuple[sp.Symbol, ...]:
    """``(i,)``, ``(i, j)`` or ``(i, j, k)``: integer symbols of a grid's axes."""
    if not 1 <= dims <= len(INDEX_NAMES):
        raise ProblemError(f"grids have 1 to {len(INDEX_NAMES)} axes, got {dims}")
    return tuple(sp.Symbol(name, integer=True) for name in INDEX_NAMES[:dims])


def grid_values(
    formula: sp.Expr, shape: tuple[int, ...], params: Mapping[sp.Symbol, float]
) -> np.ndarray:
    """A formula of the index symbols and ``params`` evaluated on every point of ``shape``."""
    formula = sp.sympify(formula).xreplace({s: sp.Float(v) for s, v in params.items()})
    if not formula.free_symbols:
        return np.full(shape, float(formula))
    grids = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in shape), indexing="ij")
    function = sp.lambdify(index_symbols(len(shape)), formula, modules="numpy")
    return np.broadcast_to(np.asarray(function(*grids), dtype=np.float64), shape).copy()
