"""scaleinv — exact derivations and batched kernels for scale-invariant optimization.

Examples
--------
>>> import scaleinv
>>> p = scaleinv.Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
>>> t = scaleinv.minimize(p, scaleinv.rules.newton(1 / 3), [3.0, 3.0], steps=10)
>>> t.x[-1].round(4)
array([0.052 , 0.9238])
"""

from __future__ import annotations

from scaleinv import errors
from scaleinv.numeric import Status, Trajectory, export, minimize, rules
from scaleinv.symbolic import IndexedProblem, Problem, load_spec

__all__ = ["Problem", "IndexedProblem", "load_spec", "minimize", "Trajectory", "Status", "rules"]
__all__ += ["export", "errors"]
__version__ = "0.1.0"
