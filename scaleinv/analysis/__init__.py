"""The analysis layer: function graphs, units, invariance proofs and theorems; the claims
ledger is the subpackage :mod:`scaleinv.analysis.claims`."""

from __future__ import annotations

from scaleinv.analysis.branch_selection import SelectionReport, branch_selection
from scaleinv.analysis.claims import (
    CLAIMS,
    Claim,
    ClaimResult,
    ClaimVerdict,
    LedgerReport,
    average_gradient,
    local_inverse_limit,
    pg_exactness,
    pg_ig_agreement,
    quotient_remainder,
    run_ledger,
)
from scaleinv.analysis.composition import (
    CompositionReport,
    HessianReport,
    compose,
    composite_hessian_check,
    composition_report,
)
from scaleinv.analysis.graph import FunctionGraph
from scaleinv.analysis.invariance import (
    InvarianceReport,
    TrajectoryComparison,
    scale_invariance,
    trajectory_invariance,
)
from scaleinv.analysis.sensitivity import near_optimum, power_of, sensitivity
from scaleinv.analysis.theorems import Theorem, theorem, theorems
from scaleinv.analysis.transforms import InputScaling, OutputScaling, Reparametrization
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
from scaleinv.analysis.units_structure import units_by_structure
from scaleinv.analysis.verdict import Counterexample, Verdict, decide_equal

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
    "units_by_structure",
    "same_dimension",
    "CLAIMS",
    "Claim",
    "ClaimResult",
    "ClaimVerdict",
    "LedgerReport",
    "run_ledger",
    "pg_exactness",
    "pg_ig_agreement",
    "average_gradient",
    "quotient_remainder",
    "local_inverse_limit",
    "sensitivity",
    "near_optimum",
    "power_of",
    "Verdict",
    "Counterexample",
    "decide_equal",
    "InputScaling",
    "OutputScaling",
    "Reparametrization",
    "InvarianceReport",
    "TrajectoryComparison",
    "scale_invariance",
    "trajectory_invariance",
    "CompositionReport",
    "HessianReport",
    "compose",
    "composition_report",
    "composite_hessian_check",
    "Theorem",
    "theorem",
    "theorems",
    "SelectionReport",
    "branch_selection",
]
