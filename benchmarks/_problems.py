"""Problems shared by the benchmarks (``derive.py`` times them, ``kernels.py --compile-times``
compiles them): their own module, so that neither script imports the other."""

from __future__ import annotations

import numpy as np


def diffusion_target(n: int) -> np.ndarray:
    """A fixed target: ``y*_i = 0.1 ((3 i) mod 7)``."""
    return 0.1 * ((3 * np.arange(n)) % 7)


def diffusion_problem(n: int):
    """The periodic nonlinear-diffusion step as a :class:`scaleinv.Problem`."""
    import sympy as sp

    from scaleinv import Problem

    x = sp.symbols(f"x0:{n}", real=True)
    outputs = [
        x[i] + sp.Rational(1, 10) * ((x[(i + 1) % n] - 2 * x[i] + x[i - 1]) + x[i] ** 3 / 2)
        for i in range(n)
    ]
    return Problem(x, outputs, target=[float(t) for t in diffusion_target(n)])
