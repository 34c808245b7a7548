"""The symbolic layer: problems, exact derivatives, local inverses and update formulas."""

from __future__ import annotations

from scaleinv.symbolic.indexed import IndexedProblem
from scaleinv.symbolic.inverse import Branch, LocalInverse, input_periods, local_inverse
from scaleinv.symbolic.parsing import parse_expr
from scaleinv.symbolic.problem import Problem, output_symbols
from scaleinv.symbolic.spec import RuleSpec, Spec, load_spec, parse_spec

__all__ = [
    "Problem",
    "IndexedProblem",
    "output_symbols",
    "parse_expr",
    "Spec",
    "RuleSpec",
    "load_spec",
    "parse_spec",
    "Branch",
    "LocalInverse",
    "local_inverse",
    "input_periods",
]
