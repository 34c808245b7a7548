"""The numeric layer: compiled batched kernels, update rules, the driver and export."""

from __future__ import annotations

from scaleinv.numeric import rules
from scaleinv.numeric.compiled import CompiledRule
from scaleinv.numeric.compiler import compile_problem
from scaleinv.numeric.driver import minimize
from scaleinv.numeric.export import export
from scaleinv.numeric.inverse import InverseEvaluator, compile_inverse, invert
from scaleinv.numeric.kernels import Kernel, ProblemKernels, compile_kernel
from scaleinv.numeric.status import Status
from scaleinv.numeric.trajectory import Trajectory

__all__ = [
    "rules",
    "CompiledRule",
    "Trajectory",
    "minimize",
    "Kernel",
    "ProblemKernels",
    "compile_kernel",
    "compile_problem",
    "Status",
    "export",
    "InverseEvaluator",
    "compile_inverse",
    "invert",
]
