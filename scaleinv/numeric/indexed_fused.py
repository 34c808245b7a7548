"""Fused point kernels of the band route, and the shifted sums that assemble their values.

A band step needs several formulas at every point (``P − y*``, J's diagonals, the point
Hessians W) and sums them at shifted points into ∇L and the band of J or H. Many of those
formulas are numbers (a linear stencil's coefficients: ``dt*nu``) or repeat one another (W's
mirrored pairs), so :func:`fuse` compiles one point kernel writing each distinct formula that
varies over the grid once, and gives every formula its column there or its number. The sums
then add a number instead of a column of copies of it: in 1-D diffusion's Newton kernel five
of the ten formulas are numbers and one repeats another (4 columns instead of 10).

:func:`sum_shifted` forms one sum of shifted values, keeping the running sum in a contiguous
buffer and writing its destination once (a band row of LAPACK's storage is strided: each
pass over it costs twice a contiguous one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from scaleinv.numeric.indexed_source import compile_point_kernel

__all__ = ["FusedKernel", "fuse", "sum_shifted"]


@dataclass(frozen=True)
class FusedKernel:
    """A point kernel writing ``count`` columns; formula ``k`` of the fused list is column
    ``columns[k]`` of its output, or, where that is None, the number ``constants[k]``."""

    kernel: Callable[..., np.ndarray]
    count: int
    columns: tuple[int | None, ...]
    constants: tuple[float, ...]
    source: str


def _number(expr: sp.Expr, params: Mapping[sp.Symbol, float]) -> float | None:
    """``expr``'s value where it depends on the params only (and is a finite real), else None."""
    if not expr.free_symbols <= set(params):
        return None
    value = expr.xreplace({s: sp.Float(v) for s, v in params.items()})
    try:
        number = float(value)
    except TypeError:  # complex or undefined (zoo, nan): the kernel computes it as it is
        return None
    return number if math.isfinite(number) else None


def fuse(
    name: str,
    exprs: Sequence[sp.Expr],
    symbols: Sequence[sp.Symbol],
    params: Mapping[sp.Symbol, float],
    doc: str = "",
    numbers: bool = True,
) -> FusedKernel:
    """One point kernel of ``exprs`` (see the module docstring): the distinct formulas, in
    their first order, one column each; with ``numbers``, those that are numbers not at all
    (off a periodic grid the points beyond it must add nothing: their columns are zeroed, so
    there every formula is a column)."""
    distinct: dict[sp.Expr, int] = {}
    columns: list[int | None] = []
    constants: list[float] = []
    for expr in map(sp.sympify, exprs):
        number = _number(expr, params) if numbers else None
        columns.append(distinct.setdefault(expr, len(distinct)) if number is None else None)
        constants.append(0.0 if number is None else number)
    source, kernel = compile_point_kernel(name, list(distinct) or [0], symbols, params, doc)
    return FusedKernel(kernel, max(1, len(distinct)), tuple(columns), tuple(constants), source)


def sum_shifted(
    out: np.ndarray,
    values: np.ndarray,
    terms: Sequence[tuple[int, int]],
    fused: FusedKernel,
    width: int,
    spare: np.ndarray,
    factor: np.ndarray | None = None,
) -> None:
    """``out[:, j] = Σ v_k(j − c) · factor(j − c)`` over ``terms`` ``(c, k)``, ``v_k`` formula
    ``k`` of ``fused`` (its column of ``values`` ``(B, count, size + 2·width)``, whose points
    start ``width`` before ``out``'s, or its number); without ``factor``, ``Σ v_k(j − c)``.
    ``spare`` holds two contiguous ``(B, ≥ size)`` buffers (the running sum, a product)."""
    size = out.shape[-1]
    numbers = 0.0
    arrays: list[np.ndarray | tuple[np.ndarray, np.ndarray | float]] = []
    for c, k in terms:
        shifted = slice(width - c, width - c + size)
        column = fused.columns[k]
        value: np.ndarray | float = (
            fused.constants[k] if column is None else values[:, column, shifted]
        )
        if factor is not None:
            arrays.append((factor[:, shifted], value))
        elif isinstance(value, np.ndarray):
            arrays.append(value)
        else:
            numbers += value
    if not arrays:
        out.fill(numbers)  # on a strided row 1.5x faster than out[...] = numbers
        return
    total, product = spare[0, :, :size], spare[1, :, :size]
    contiguous = out.strides[-1] == out.itemsize
    steps = [*arrays, numbers] if numbers else arrays
    running = None
    for position, step in enumerate(steps):
        target = out if contiguous or position == len(steps) - 1 else total
        if isinstance(step, tuple):
            if running is None:
                running = np.multiply(*step, out=target)
                continue
            step = np.multiply(*step, out=product)
        if running is None:
            if len(steps) == 1:
                np.copyto(out, step)
            running = step  # a view: the next step reads it
            continue
        running = np.add(running, step, out=target)
