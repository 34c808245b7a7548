"""The conjugate gradients of :mod:`scaleinv.numeric.indexed_cg` as one ``jax.jit`` program.

The NumPy CG (:func:`~scaleinv.numeric.indexed_cg.cg_solve`) makes one NumPy pass per term of
the stencil and per vector update: about 40 whole-grid passes per ``H·v`` on the Brusselator.
Here the whole loop — ``H v = Jᵀ(J v) + C v`` from the diagonals of the NumPy route's
:class:`~scaleinv.numeric.indexed_cg.GaussNewtonProduct` (J's, Jᵀ's moved ones, C's; each
array passed once), the (block) Jacobi preconditioner, the same stopping rule per sample — is
one XLA program (``lax.while_loop``), run one sample after the other (``lax.map``: each
sample's CG is independent of the others, so the results are the same, and one sample's
working set, ~20 grids, stays in the CPU's last-level cache where the batch's spills to
memory). Vectors are lists of fields; each field is padded once per product
(:func:`_padded`) and the terms of one output field read windows of it in one fused loop.
Measured (Brusselator 256², 10 samples, 13 iterations, CPU s of the warm Newton step,
interleaved with the NumPy CG): 0.25 against 0.46 (the CG alone 0.18 against ~0.32; the
batch at once in the program took 0.30 for the CG, memory bound at ~18 GB/s). Compiling
takes ~2 s of CPU once per stencil structure, grid and batch size.

It runs in float64 under ``jax.enable_x64(True)`` (a context: JAX's global setting is not
changed), compiled once per stencil structure, grid and batch size (``jax.jit``'s cache). Its
results equal the NumPy CG's to rounding (the two differ in the order of the sums only);
the samples it does not solve go to the NumPy fallbacks exactly as the NumPy CG's do.

This module imports JAX: it is imported only where the CG engine is JAX
(:func:`scaleinv.numeric.engines.choose_cg_engine`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from scaleinv.numeric.indexed_stencil import StencilProduct, Term

__all__ = ["jax_cg_solve"]

#: ``(row field, column field, offset δ, which diagonal)`` of one term: what the program is
#: built for (the diagonals themselves are its arguments, each passed once).
_Shape = tuple[int, int, tuple[int, ...], int]


def jax_cg_solve(
    products: Sequence[StencilProduct],
    usable: np.ndarray,
    inverse: np.ndarray,
    blocks: bool,
    rhs: np.ndarray,
    rule: tuple[float, int, int, float],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~scaleinv.numeric.indexed_cg.cg_solve` with ``H v = Jᵀ(J v) + C v`` given by
    the stencil ``products`` of J, Jᵀ and C (C's left out where P is linear; as
    :class:`~scaleinv.numeric.indexed_cg.GaussNewtonProduct` holds them), the samples whose
    ``diag H`` is ``usable`` (:func:`~scaleinv.numeric.indexed_cg.usable_diagonal`),
    preconditioned by Jacobi (``inverse`` = ``|diag H|⁻¹`` ``(B, n)``) or block Jacobi
    (``blocks``: ``inverse`` = the point blocks' ``(B, F, F, points)``), as one compiled
    program, stopping by ``rule`` = (tolerance, iterations, stall, stall floor) as
    :func:`~scaleinv.numeric.indexed_cg.cg_solve` does: ``(x, converged)``."""
    tolerance, iterations, stall, floor = rule
    diagonals: dict[int, np.ndarray] = {}  # by identity: Jᵀ's unmoved diagonals are J's
    structure = tuple(_structure(product.terms, diagonals) for product in products)
    forward = products[0]
    fields = (forward.rows, forward.cols)
    program = _program(
        structure, fields, forward.shape, forward.periodic, blocks, iterations, stall, floor
    )
    with jax.enable_x64(True):
        # NumPy arrays straight into the jitted call (JAX copies them in: ~10 ms here)
        x, converged = program(
            [np.asarray(d, dtype=float) for d in diagonals.values()],
            inverse,
            usable,
            np.asarray(rhs, dtype=float),
            np.float64(tolerance),
        )
        x, converged = np.array(x), np.array(converged)  # writable: fallbacks fill them
    return x, converged & np.isfinite(x).all(axis=1)


def _structure(terms: Sequence[Term], diagonals: dict[int, np.ndarray]) -> tuple[_Shape, ...]:
    """The terms' ``(r, c, δ, index)``, their diagonals added to ``diagonals`` (once each)."""
    out = []
    for r, c, delta, d in terms:
        diagonals.setdefault(id(d), d)
        out.append((r, c, tuple(delta), list(diagonals).index(id(d))))
    return tuple(out)


def _padded(grid: Any, width: tuple[int, ...], periodic: bool) -> Any:
    """A field ``(B, *grid)`` padded by ``width`` per axis (zeros; periodic: the halos then
    copied from the opposite side axis by axis, over the full extent of the axes before, so
    the corners too), as a buffer of its own: an optimization barrier keeps XLA from fusing
    the padding into every window read from it (a select per term and point: measured ~7x
    slower at 256²). ``jnp.pad(mode="wrap")`` would copy the grid twice."""
    if periodic and any(w > s for w, s in zip(width, grid.shape[1:])):  # wider than the grid
        padded = jnp.pad(grid, [(0, 0)] + [(w, w) for w in width], mode="wrap")
        return lax.optimization_barrier(padded)
    padded = lax.pad(grid, 0.0, [(0, 0, 0)] + [(w, w, 0) for w in width])
    if periodic:
        for a, (w, s) in enumerate(zip(width, grid.shape[1:])):
            if not w:
                continue
            before = (slice(None),) * (1 + a)
            halo = padded[before + (slice(s, s + w),)]
            padded = padded.at[before + (slice(0, w),)].set(halo)
            halo = padded[before + (slice(w, 2 * w),)]
            padded = padded.at[before + (slice(s + w, s + 2 * w),)].set(halo)
    return lax.optimization_barrier(padded)


def _window(padded: Any, delta: tuple[int, ...], width: tuple[int, ...]) -> Any:
    """``v[q + δ]`` at every grid point q, from :func:`_padded`."""
    inside = [slice(w + d, s - w + d) for w, d, s in zip(width, delta, padded.shape[1:])]
    return padded[(slice(None), *inside)]


@functools.cache
def _program(
    structure: tuple[tuple[_Shape, ...], ...],
    fields: tuple[int, int],
    shape: tuple[int, ...],
    periodic: bool,
    blocks: bool,
    iterations: int,
    stall: int,
    floor: float,
) -> Any:
    """The jitted CG for one stencil structure (jit compiles it once per batch size). Vectors
    are lists of fields ``(B, *grid)``: no concatenation, each field's terms one loop."""
    rows, cols = fields
    forward, backward, bent = structure if len(structure) == 3 else (*structure, ())
    width = tuple(
        max([abs(t[2][a]) for t in forward + backward + bent] + [0]) for a in range(len(shape))
    )
    axes = tuple(range(1, len(shape) + 1))

    def operator(diagonals: list) -> Any:
        def product(terms: tuple[_Shape, ...], padded: list, out: list) -> list:
            for r, c, delta, j in terms:
                out[r] = out[r] + diagonals[j] * _window(padded[c], delta, width)
            return [jnp.broadcast_to(f, padded[0].shape[:1] + shape) for f in out]

        def times(v: list) -> list:
            padded = [_padded(f, width, periodic) for f in v]
            jv = product(forward, padded, [0.0] * rows)  # a row no term reaches: zeros
            out = product(backward, [_padded(f, width, periodic) for f in jv], [0.0] * cols)
            return product(bent, padded, out)

        return times

    def preconditioner(inverse: Any) -> Any:
        """``r ↦ M⁻¹ r`` from ``|diag|⁻¹`` ``(B, n)`` or the blocks' ``(B, F, F, points)``."""
        if not blocks:
            parts = split(inverse)
            return lambda r: [i * f for i, f in zip(parts, r)]
        grid = inverse.reshape(inverse.shape[:3] + shape)
        matrix = [[grid[:, a, b] for b in range(cols)] for a in range(cols)]
        return lambda r: [sum(i * f for i, f in zip(line, r)) for line in matrix]

    def dots(a: list, b: list) -> Any:
        return sum(jnp.sum(f * g, axis=axes) for f, g in zip(a, b))

    def split(flat: Any) -> list:
        grid = flat.reshape((flat.shape[0], cols) + shape)
        return [grid[:, c] for c in range(cols)]

    def solve(
        diagonals: list,
        inverse: Any,
        usable: Any,
        flat: Any,
        tolerance: Any,
    ) -> tuple[Any, Any]:
        times = operator(diagonals)
        precondition = preconditioner(inverse)
        rhs = split(flat)
        z = precondition(rhs)
        norm_b = jnp.sqrt(dots(rhs, rhs))
        converged = norm_b == 0
        zero = jnp.zeros(len(flat), dtype=jnp.int64)
        x0 = [jnp.zeros_like(f) for f in rhs]
        state = (
            x0, rhs, z, dots(rhs, z), norm_b, zero, converged, usable & ~converged, 0
        )  # fmt: skip
        expand = (slice(None),) + (None,) * len(shape)

        def going(state: tuple) -> Any:
            return state[7].any() & (state[8] < iterations)

        def step(state: tuple) -> tuple:
            x, r, p, rz, best, since, converged, active, count = state
            hp = times(p)
            php = dots(p, hp)
            active = active & (php > 0)
            alpha = (rz / jnp.where(active, php, 1.0))[expand]
            on = active[expand]  # the others keep theirs (0 · inf would be NaN)
            x = [jnp.where(on, f + alpha * g, f) for f, g in zip(x, p)]
            r = [jnp.where(on, f - alpha * g, f) for f, g in zip(r, hp)]
            norm_r = jnp.sqrt(dots(r, r))
            done = active & (norm_r <= tolerance * norm_b)
            converged = converged | done
            active = active & ~done
            since = jnp.where(norm_r < best, 0, since + 1)
            best = jnp.minimum(best, norm_r)
            stalled = active & (since >= stall)
            converged = converged | (stalled & (best <= floor * tolerance * norm_b))
            active = active & ~stalled
            z = precondition(r)
            rz_new = dots(r, z)
            beta = (rz_new / jnp.where(rz != 0, rz, 1.0))[expand]
            on = active[expand]
            p = [jnp.where(on, f + beta * g, f) for f, g in zip(z, p)]
            return (x, r, p, rz_new, best, since, converged, active, count + 1)

        out = lax.while_loop(going, step, state)
        return jnp.stack(out[0], axis=1).reshape(flat.shape), out[6]

    def one_by_one(diagonals: list, inverse: Any, usable: Any, flat: Any, tolerance: Any) -> Any:
        def one(args: tuple) -> tuple:
            d, i, u, f = jax.tree_util.tree_map(lambda a: a[None], args)
            x, c = solve(d, i, u, f, tolerance)
            return x[0], c[0]

        return lax.map(one, (diagonals, inverse, usable, flat))

    return jax.jit(one_by_one)
