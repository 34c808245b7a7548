"""scaleinv — exact derivations and batched kernels for scale-invariant optimization.

Examples
--------
>>> import scaleinv
>>> p = scaleinv.Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
>>> t = scaleinv.minimize(p, scaleinv.rules.newton(1 / 3), [3.0, 3.0], steps=10)
>>> t.x[-1].round(4)
array([0.052 , 0.9238])
>>> scaleinv.compile(p).loss([3.0, 3.0])  # the batched kernels (also ``p.compile()``)
array(90.)
"""

from __future__ import annotations

from scaleinv import errors
from scaleinv._version import __version__ as __version__
from scaleinv.numeric import Status, Trajectory, export, minimize, rules
from scaleinv.numeric import compile_problem as compile
from scaleinv.symbolic import IndexedProblem, Problem, load_spec

__all__ = ["Problem", "IndexedProblem", "load_spec", "compile", "minimize", "Trajectory"]
__all__ += ["Status", "rules", "export", "errors"]
