"""The analysis layer: function graphs, units, invariance proofs and the claims ledger."""

from __future__ import annotations

from scaleinv.analysis.graph import FunctionGraph
from scaleinv.analysis.units import (
    Dimensions,
    UnitsReport,
    UnitsVerdict,
    check_units,
    dimension_of,
    format_dimension,
    parse_dimension,
    problem_dimensions,
    same_dimension,
)

__all__ = [
    "FunctionGraph",
    "Dimensions",
    "UnitsReport",
    "UnitsVerdict",
    "check_units",
    "dimension_of",
    "format_dimension",
    "parse_dimension",
    "problem_dimensions",
    "same_dimension",
]
