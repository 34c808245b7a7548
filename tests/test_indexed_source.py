"""Printed point kernels: a product's numbers and params are multiplied first (once, not per
grid point), and the kernel's values are the formulas' (SymPy's own evaluation as the twin)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from scaleinv.numeric.indexed_source import compile_point_kernel

a0, a1, p, q, x = sp.symbols("a0 a1 p q x")
s0, s1 = sp.symbols("_a _b")  # accesses' names sort first, as the kernels' _s<k> do
#: ``x`` is a reserved name: its keyword is ``x_``.
PARAMS = {p: 0.5, q: 3.0, x: -1.25}


@pytest.mark.parametrize(
    ("formulas", "arrays", "printed"),
    [
        ([6 * a0 * a1 * p * q], [a0, a1], ["out[:, 0] = 6*p*q*a0*a1"]),
        ([a0 * a1 * x], [a0, a1], ["out[:, 0] = x_*a0*a1"]),
        # sin(p) is a scalar temporary; its name sorts after the accesses' (_s<k>)
        (
            [sp.sin(p) * s0, sp.sin(p) * s1 * q],
            [s0, s1],
            ["_t0 = numpy.sin(p)", "out[:, 0] = _t0*_s", "out[:, 1] = _t0*q*_s"],
        ),
    ],
)
def test_products_multiply_their_scalars_before_the_grid(formulas, arrays, printed):
    source, kernel = compile_point_kernel("f", formulas, arrays, PARAMS)
    lines = [line.strip() for line in source.splitlines()]
    for start in printed:
        assert any(line.startswith(start) for line in lines), (start, lines)
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((2, 4)) for _ in arrays]
    out = kernel(np.empty((2, len(formulas), 4)), *values)
    for k, formula in enumerate(formulas):
        for b in range(2):
            for i in range(4):
                point = {s: float(v[b, i]) for s, v in zip(arrays, values)}
                expected = float(formula.subs({**PARAMS, **point}))
                assert abs(out[b, k, i] - expected) <= 1e-14 * (1 + abs(expected))
