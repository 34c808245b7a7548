"""scaleinv — exact derivations and batched kernels for scale-invariant optimization."""

from __future__ import annotations

from scaleinv import errors
from scaleinv.symbolic import Problem, load_spec

__all__ = ["Problem", "load_spec", "errors"]
__version__ = "0.1.0"
