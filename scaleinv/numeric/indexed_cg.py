"""Matrix-free, batched, preconditioned conjugate gradients for the Hessian of an indexed
problem (large grids, where a sparse LU's fill grows faster than the grid).

H is never assembled: ``H v = Jᵀ(J v) + C v``, J by its stencil diagonals (one formula per
offset, most of them one number) and ``C = Σ r_a ∇²P_a`` (the curvature,
:attr:`~scaleinv.symbolic.indexed.IndexedProblem.point_curvature`) by its diagonals gathered
once per step from the point entries (entry ``C[α, β]`` of point p sits at row
``(field α, p + d_α)``, column ``(field β, p + d_β)``, and its mirror): ``D[(r, c, δ)][q]``
multiplies ``v[c, q + δ]`` in row ``(r, q)``. Every product ``Σ D · v[c, · + δ]`` runs over
the whole batch ``(B, n)`` at once, each term a window of ``v`` padded once
(:class:`~scaleinv.numeric.indexed_stencil.StencilProduct`). A neumann grid (whose folds are
no plain shifts) multiplies with one block-diagonal sparse H of the batch instead.

The preconditioner is Jacobi (block Jacobi where several fields meet at a point: H's F × F
block there, inverted) or spectral (:mod:`scaleinv.numeric.indexed_spectral`: the FFT /
sine / cosine transform of the grid-mean stencil, a k × k solve per frequency);
``"auto"`` (the default) takes the spectral one where the grid-mean stencil is
ill-conditioned (:data:`SPECTRAL_CONDITION`). Measured (warm Newton step on 10 samples at
256², iterations to ``|r| ≤ 10⁻¹⁴ |b|``, Jacobi / block Jacobi / spectral): the Brusselator
of ``benchmarks/indexed.py`` 16 / 13 / 16 (its H is well conditioned, ≈ 2.5; the variation
of its coefficients from point to point, not the grid coupling, sets the count); heat with a
cubic source 76 / – / 13. The shipped Brusselator (``reports/brusselator.toml``, κ_v = 0.2)
near its solution (condition of H ≈ 10⁶ at 32², ≈ 3·10⁷ at 256²): Jacobi stalls (378
iterations, then a ~25 s SuperLU per sample at 256²), spectral converges (54 iterations at
32²).

A sample whose CG meets ``pᵀHp ≤ 0`` (H not positive definite: near a solution of an
ill-conditioned problem, or far from one) is solved by MINRES with the spectral
preconditioner (:func:`minres_solve`); what that does not solve either goes to the direct
route (:func:`scaleinv.numeric.indexed_steps.solve_hessian`).

:func:`solve_cg` runs the same CG as one compiled JAX program
(:mod:`scaleinv.numeric.indexed_cg_jax`) where :func:`~scaleinv.numeric.engines.choose_cg_engine`
picks JAX (installed, a large CG) and it can run the operator (:func:`jax_cg_unsupported`):
its steps equal NumPy's to rounding, and its failed samples take the same fallbacks.

What the tolerance guarantees: the stopping rule ``|b − H x| ≤ 10⁻¹⁴ |b|`` (the recursively
updated residual; rounding keeps the true one within a few ``ε κ(H)``) bounds the error by
``|x − H⁻¹b| ≤ κ(H) · 10⁻¹⁴ · |H⁻¹b|``: at ``κ ≤ 10⁴`` the step equals the direct solve to
10⁻¹⁰, what the tests pin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp
from scipy.linalg.blas import daxpy

from scaleinv.errors import RuleError
from scaleinv.numeric.engines import choose_cg_engine
from scaleinv.numeric.indexed_kernels import IndexedKernels, Placement, shift
from scaleinv.numeric.indexed_spectral import (
    condition,
    floored_inverse,
    normal_symbol,
    spectral_inverse,
    spectral_symbol,
    symbol_eigenvalues,
)
from scaleinv.numeric.indexed_stencil import StencilProduct
from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["hessian_operator", "normal_operator", "cg_solve", "CG_POINTS"]
__all__ += ["gradient_and_hessian_operator", "curved_values"]
__all__ += ["CG_ITERATIONS", "CG_TOLERANCE", "CG_STALL", "CG_STALL_FLOOR", "usable_diagonal"]
__all__ += ["PRECONDITIONER", "PRECONDITIONERS"]
__all__ += ["SPECTRAL_CONDITION", "make_preconditioner", "minres_solve"]
__all__ += ["GaussNewtonProduct", "Jacobi", "BlockJacobi", "solve_cg", "jax_cg_unsupported"]

Operator = Callable[[np.ndarray], np.ndarray]

#: Newton (H) and IG (J, by CGNR) solve by CG from this many unknowns on where they would
#: take the sparse LU (not banded); smaller problems keep the direct LU. Measured on 10
#: samples (CPU ms, SuperLU / CG with the default preconditioner, H then J): heat 16²
#: (256 unknowns) 23 / 9, 13 / 8; Brusselator 16² (512) 65 / 11, 28 / 12; Brusselator 32²
#: (2048) 418 / 22, 115 / 19; heat 8² (64) 6 / 7, 4 / 6. CG's steps differ from the LU's by
#: about κ(H) · 10⁻¹⁴ (10⁻¹⁴ to 10⁻¹³ in these cases).
CG_POINTS = 512
#: Stop when ``|r| ≤ CG_TOLERANCE · |b|`` (per sample), or when the residual stagnates.
CG_TOLERANCE = 1e-14
#: At most this many iterations (then: not converged, the direct route solves the sample).
CG_ITERATIONS = 500
#: A sample whose residual has not fallen for this many iterations stops: converged if its
#: best residual is within ``CG_STALL_FLOOR · CG_TOLERANCE · |b|`` (the floor of rounding).
CG_STALL = 20
CG_STALL_FLOOR = 1e3
#: The preconditioners CG knows (see :func:`make_preconditioner`), and the default.
PRECONDITIONERS = ("auto", "spectral", "jacobi")
PRECONDITIONER = "auto"
#: ``"auto"`` takes the spectral preconditioner where the grid-mean stencil's symbol has a
#: condition number above this (a spectral step costs about one more H·v than a Jacobi
#: step). Measured at 256², 10 samples, warm Newton step, iterations Jacobi / spectral:
#: Brusselator of ``benchmarks/indexed.py`` (symbol condition 2.6) 16 / 16; heat with a cubic
#: source (condition ≈ 25) 76 / 13.
SPECTRAL_CONDITION = 10.0


def hessian_operator(
    k: IndexedKernels, f: np.ndarray, preconditioner: str = PRECONDITIONER
) -> tuple[Operator, np.ndarray, Operator]:
    """``(H·v, diag H, M⁻¹·r)`` at flat samples ``f`` ``(B, n)``: ``H·v`` and ``M⁻¹·r`` map
    ``(B, n) → (B, n)``; ``M`` is ``preconditioner`` (see :func:`make_preconditioner`).

    On a grid of shifts ``H v = Jᵀ(J v) + C v`` (:func:`_gauss_newton_hessian`: J's few
    diagonals, most of them constant, and the curvature ``C`` of
    :attr:`~scaleinv.symbolic.indexed.IndexedProblem.point_curvature`); on a neumann grid one
    block-diagonal sparse H of the batch."""
    p = k.problem
    if k.shifts:
        return _shifted_operator(k, f, preconditioner)[2]
    accesses = [p.accesses[s] for s in p.input_accesses]
    fields = [p.fields.index(a.field) for a in accesses]
    square = (len(p.fields),) * 2
    values = k.point("point_W", f)
    times, diagonal = _sparse_operator(k, values)
    entries = _point_entries(p.point_hessian, values.mean(axis=2), accesses, fields)

    def symbol(pooled: bool) -> np.ndarray:
        return spectral_symbol(_pooled(entries) if pooled else entries, square, p.shape, _kind(k))

    return times, diagonal, make_preconditioner(k, preconditioner, diagonal, symbol)


def gradient_and_hessian_operator(
    k: IndexedKernels, f: np.ndarray, preconditioner: str = PRECONDITIONER
) -> tuple[np.ndarray, tuple[Operator, np.ndarray, Operator]]:
    """``∇L = Jᵀ(P − y*)`` ``(B, n)`` and :func:`hessian_operator` at flat samples ``f`` on a
    grid of shifts: one pass of one point kernel over the grid
    (:attr:`~scaleinv.numeric.indexed_kernels.IndexedKernels.point_curved`: the residuals, J
    and C share their subexpressions), ``Jᵀ r`` by H's own ``Jᵀ`` product."""
    residual, transpose, operator = _shifted_operator(k, f, preconditioner)
    return transpose(residual), operator


def _shifted_operator(
    k: IndexedKernels, f: np.ndarray, preconditioner: str
) -> tuple[np.ndarray, Operator, tuple[Operator, np.ndarray, Operator]]:
    """``P − y*``, ``w ↦ Jᵀ w`` and :func:`hessian_operator` on a grid of shifts."""
    p = k.problem
    accesses = [p.accesses[s] for s in p.input_accesses]
    fields = [p.fields.index(a.field) for a in accesses]
    residual, jacobian, curvature = curved_values(k, f)
    times, diagonal, precondition, transpose = _gauss_newton_hessian(
        k, jacobian, curvature, preconditioner, accesses, fields
    )
    return residual, transpose, (times, diagonal, precondition)


def curved_values(k: IndexedKernels, f: np.ndarray) -> tuple[np.ndarray, list, list]:
    """``P − y*`` ``(B, m)``, J's diagonals and C's entries (lists of ``(B, points)``, or
    ``(B, 1)`` where a formula is a number) at flat samples ``f``, by one point kernel."""
    p = k.problem
    values = k.fused_values(k.point_curved, f)
    outputs, count = p.fields_out, len(p.jacobian_stencil)
    residual = np.concatenate(
        [np.broadcast_to(r, (len(f), p.points)) for r in values[:outputs]], axis=1
    )
    return residual, values[outputs : outputs + count], values[outputs + count :]


def _gauss_newton_hessian(
    k: IndexedKernels,
    jacobian: list[np.ndarray],
    curvature: list[np.ndarray],
    preconditioner: str,
    accesses: list,
    fields: list[int],
) -> tuple[Operator, np.ndarray, Operator, StencilProduct]:
    """H = JᵀJ + C on a grid of shifts from J's diagonals and C's entries (as
    :func:`curved_values` gives them), and ``w ↦ Jᵀ w``: a product with H is J·v, Jᵀ·w and
    C·v, about a third of the terms of H's own stencil (the Brusselator: 12 + 12 + 3 against
    52 diagonals), and J's constant diagonals are numbers. ``diag H`` = the column sums of J's
    squares + C's."""
    p = k.problem
    forward, backward = _jacobian_times(k, jacobian)
    square = (len(p.fields),) * 2
    diagonal = _normal_diagonal(k, jacobian)
    bent = None
    if p.point_curvature:
        bent, bent_diagonal = _symmetric_stencil(
            k, curvature, p.point_curvature, accesses, fields, forward.width
        )
        diagonal += bent_diagonal

    times = GaussNewtonProduct(forward, backward, bent)
    bends = _point_entries(p.point_curvature, _means(curvature), accesses, fields)
    slopes = _jacobian_entries(p, _means(jacobian))

    def symbol(pooled: bool) -> np.ndarray:
        pick = _pooled if pooled else (lambda e: e)
        fields_j = (p.fields_out, len(p.fields))
        total = normal_symbol(spectral_symbol(pick(slopes), fields_j, p.shape, _kind(k)))
        if bends:
            total = total + spectral_symbol(pick(bends), square, p.shape, _kind(k))
        return total

    def blocks() -> np.ndarray:
        return _point_blocks(k, jacobian, curvature, diagonal, accesses, fields)

    made = make_preconditioner(k, preconditioner, diagonal, symbol, blocks)
    return times, diagonal, made, backward


class GaussNewtonProduct:
    """``v ↦ H v = Jᵀ(J v) + C v`` from the stencil products of J, Jᵀ and C (``bent``, None
    where P is linear): J·v straight into Jᵀ's padded buffer, C reading v from J's where it
    reaches no farther."""

    def __init__(
        self, forward: StencilProduct, backward: StencilProduct, bent: StencilProduct | None
    ) -> None:
        self.forward, self.backward, self.bent = forward, backward, bent

    def __call__(self, v: np.ndarray) -> np.ndarray:
        forward, backward, bent = self.forward, self.backward, self.bent
        padded = forward.load(v)
        forward.apply(padded, out=backward.interior(len(v)))
        out = backward.apply(backward.wrap(len(v)))
        if bent is not None and bent.width == forward.width:  # C reads v from J's buffer
            bent.apply(padded, out=out, accumulate=True)
        elif bent is not None:  # C reaches farther than J: its own padding
            bent(v, out=out, accumulate=True)
        return out


def _point_blocks(
    k: IndexedKernels,
    jacobian: list[np.ndarray],
    curvature: list[np.ndarray],
    diagonal: np.ndarray,
    accesses: list,
    fields: list[int],
) -> np.ndarray:
    """H's ``F × F`` block at each grid point (the fields coupled at one point) ``(B, F, F,
    points)``: ``diag H`` on its diagonal; off it, ``(JᵀJ)[(r, q), (c, q)]`` (the products of
    two diagonals of J in one row field at one offset δ, moved to q = p + δ) and C's entries
    between accesses at one offset."""
    p = k.problem
    count, batch = len(p.fields), len(diagonal)
    grid = (batch,) + p.shape
    blocks = np.zeros((batch, count, count) + p.shape)
    for r in range(count):
        blocks[:, r, r] = diagonal.reshape((batch, count) + p.shape)[:, r]
    stencil = p.jacobian_stencil
    for one, first in enumerate(stencil):
        for two, second in enumerate(stencil):
            same_row = first.row_field == second.row_field and first.offset == second.offset
            if same_row and first.col_field < second.col_field:
                product = _on_grid(jacobian[one] * jacobian[two], grid)
                blocks[:, first.col_field, second.col_field] += shift(
                    product, first.offset, k.periodic
                )
    for j, (alpha, beta) in enumerate(p.point_curvature):
        r, c = sorted((fields[alpha], fields[beta]))
        if r != c and accesses[alpha].offset == accesses[beta].offset:
            moved = shift(_on_grid(curvature[j], grid), accesses[alpha].offset, k.periodic)
            blocks[:, r, c] += moved
    for r in range(count):
        for c in range(r):
            blocks[:, r, c] = blocks[:, c, r]
    return blocks.reshape((batch, count, count, -1))


def normal_operator(
    k: IndexedKernels, f: np.ndarray, preconditioner: str = PRECONDITIONER
) -> tuple[Operator, np.ndarray, Operator, Operator, Operator]:
    """``(JᵀJ·v, diag JᵀJ, M⁻¹·r, J·v, Jᵀ·r)`` at flat samples ``f`` (J square): CG on the
    normal equations ``JᵀJ x = Jᵀ b`` (CGNR) solves ``J x = b`` with J nonsymmetric; the
    spectral ``M`` has the symbol ``ĴᴴĴ`` of J's grid-mean stencil."""
    values = k.point("point_J", f)
    p = k.problem
    batch = len(f)
    if not k.shifts:  # folds: entries of one (row, column) add before they square
        matrix = _block_matrix(k.jacobian_pattern, k.jacobian_pattern.values(values))
        squares = np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()
        diagonal = squares.reshape((batch, -1))
        forward = _block_times(matrix, batch)
        backward = _block_times(matrix.T.tocsr(), batch)
    else:
        diagonals = _diagonals(p, values)
        forward, backward = _jacobian_times(k, diagonals)
        diagonal = _normal_diagonal(k, diagonals)
    entries = _jacobian_entries(p, values.mean(axis=2))
    fields = (p.fields_out, len(p.fields))

    def symbol(pooled: bool) -> np.ndarray:
        chosen = _pooled(entries) if pooled else entries
        return normal_symbol(spectral_symbol(chosen, fields, p.shape, _kind(k)))

    precondition = make_preconditioner(k, preconditioner, diagonal, symbol)
    return (lambda v: backward(forward(v))), diagonal, precondition, forward, backward


def _diagonals(p: IndexedProblem, values: np.ndarray) -> list[np.ndarray]:
    """J's diagonals ``(B, K, points)`` as :func:`curved_values` gives them: a list, each
    ``(B, points)``, or ``(B, 1)`` where its formula is one number (free of the point)."""
    constant = _constant_entries(p, [d.formula for d in p.jacobian_stencil])
    return [values[:, j, :1] if j in constant else values[:, j] for j in range(values.shape[1])]


def _means(values: list[np.ndarray]) -> np.ndarray:
    """The grid means ``(B, K)`` of point values given as :func:`curved_values` lists."""
    return np.stack([v.mean(axis=1) for v in values], axis=1) if values else np.zeros((0, 0))


def _on_grid(value: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """Point values ``(B, points)`` or a number per sample ``(B, 1)`` as ``(B, *grid)``."""
    return np.broadcast_to(value, (grid[0], int(np.prod(grid[1:])))).reshape(grid)


def _is_number(value: np.ndarray) -> bool:
    return value.shape[1] == 1


def _jacobian_times(
    k: IndexedKernels, values: list[np.ndarray]
) -> tuple[StencilProduct, StencilProduct]:
    """``(v ↦ J v, w ↦ Jᵀ w)`` from J's diagonals (as :func:`curved_values` gives them) on a
    grid of shifts; a diagonal whose formula is one number is kept as that number."""
    p = k.problem
    batch = len(values[0]) if values else 0
    grid = (batch,) + p.shape
    forward_terms, backward_terms = [], []
    for j, d in enumerate(p.jacobian_stencil):
        back = tuple(-x for x in d.offset)  # Jᵀ: row q takes the entry of row q − δ
        if _is_number(values[j]):
            w = values[j].reshape((batch,) + (1,) * len(p.shape))
            moved = w
        else:
            w = values[j].reshape(grid)
            moved = shift(w, d.offset, k.periodic)
        forward_terms.append((d.row_field, d.col_field, d.offset, w))
        backward_terms.append((d.col_field, d.row_field, back, moved))
    fields = (p.fields_out, len(p.fields))
    forward = StencilProduct(forward_terms, fields, p.shape, k.periodic)
    backward = StencilProduct(backward_terms, fields[::-1], p.shape, k.periodic)
    return forward, backward


def _normal_diagonal(k: IndexedKernels, values: list[np.ndarray]) -> np.ndarray:
    """``diag JᵀJ`` ``(B, n)`` from J's diagonals (as :func:`curved_values` gives them) on a
    grid of shifts: column ``(c, q)`` sums the squares of its entries, ``J_δ[q − δ]²`` (where
    row ``q − δ`` is on the grid). On a periodic grid a diagonal that is one number adds one
    number."""
    p = k.problem
    batch = len(values[0]) if values else 0
    grid = (batch,) + p.shape
    out = np.zeros((batch, len(p.fields)) + p.shape)
    numbers = np.zeros((batch, len(p.fields)) + (1,) * len(p.shape))  # added once a field
    for j, d in enumerate(p.jacobian_stencil):
        square = values[j] ** 2
        if _is_number(square) and k.periodic:
            numbers[:, d.col_field] += square.reshape(numbers.shape[:1] + numbers.shape[2:])
        else:
            out[:, d.col_field] += shift(_on_grid(square, grid), d.offset, k.periodic)
    if k.periodic:
        out += numbers
    return out.reshape((batch, -1))


def _jacobian_entries(p: IndexedProblem, means: np.ndarray) -> list:
    """J's stencil as spectral entries ``(row field, column field, δ, grid mean (B,))``."""
    return [
        (d.row_field, d.col_field, d.offset, means[:, j]) for j, d in enumerate(p.jacobian_stencil)
    ]


def _point_entries(
    pairs: Mapping[tuple[int, int], Any], means: np.ndarray, accesses: list, fields: list[int]
) -> list:
    """A symmetric stencil given per point (``W`` or ``C`` over pairs of accesses) as spectral
    entries, the mirror of each off-diagonal pair included."""
    entries = []
    for j, (alpha, beta) in enumerate(pairs):
        da, db = accesses[alpha].offset, accesses[beta].offset
        entries.append((fields[alpha], fields[beta], _minus(db, da), means[:, j]))
        if alpha != beta:
            entries.append((fields[beta], fields[alpha], _minus(da, db), means[:, j]))
    return entries


def _pooled(entries: list) -> list:
    """The entries' grid means pooled over the batch: one stencil, one symbol."""
    return [(r, c, delta, mean.mean(keepdims=True)) for r, c, delta, mean in entries]


def _kind(k: IndexedKernels) -> str:
    return k.problem.boundary.kind


def _symmetric_stencil(
    k: IndexedKernels,
    values: list[np.ndarray],
    pairs: Mapping[tuple[int, int], Any],
    accesses: list,
    fields: list[int],
    width: Sequence[int] = (),
) -> tuple[StencilProduct, np.ndarray]:
    """``A·v`` and ``diag A`` of the symmetric operator given per point by ``pairs`` (``W``
    or ``C``: entry ``(α, β)`` of point p at row ``p + d_α``, column ``p + d_β``, and its
    mirror; as :func:`curved_values` gives C's), by its stencil diagonals (gathered once), a
    diagonal constant over a periodic grid kept as one number per sample."""
    p = k.problem
    batch = len(values[0])
    grid = (batch,) + p.shape
    diagonals: dict[tuple[int, int, tuple[int, ...]], np.ndarray] = {}

    def add(row: int, col: int, alpha: int, beta: int, j: int) -> None:
        da, db = accesses[alpha].offset, accesses[beta].offset
        key = (fields[row], fields[col], _minus(db, da))
        if _is_number(values[j]) and k.periodic:
            moved = values[j].reshape((batch,) + (1,) * len(p.shape))
        else:
            moved = shift(_on_grid(values[j], grid), da, k.periodic)
        diagonals[key] = diagonals[key] + moved if key in diagonals else moved

    for j, (alpha, beta) in enumerate(pairs):
        add(alpha, beta, alpha, beta, j)
        if alpha != beta:
            add(beta, alpha, beta, alpha, j)
    count = len(p.fields)
    diagonal = np.zeros((batch, count) + p.shape)
    for (r, c, delta), d in diagonals.items():
        if r == c and not any(delta):
            diagonal[:, r] += d
    terms = [(r, c, delta, d) for (r, c, delta), d in diagonals.items()]
    product = StencilProduct(terms, (count, count), p.shape, k.periodic, width)
    return product, diagonal.reshape((batch, -1))


def _minus(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x - y for x, y in zip(a, b))


def _constant_entries(problem: IndexedProblem, formulas: list) -> frozenset[int]:
    """The indices of ``formulas`` (point formulas) that are the same number at every point of
    every sample (free of the accesses, the index, per-point params and the target)."""
    varying = set(problem.input_accesses) | set(problem.index) | set(problem.param_accesses)
    varying |= set(problem.target_symbols)
    return frozenset(
        j for j, formula in enumerate(formulas) if not sp.sympify(formula).free_symbols & varying
    )


def make_preconditioner(
    k: IndexedKernels,
    kind: str,
    diagonal: np.ndarray,
    symbol: Callable[[bool], np.ndarray],
    blocks: Callable[[], np.ndarray] | None = None,
) -> Operator:
    """``M⁻¹`` for CG: ``"jacobi"`` (``diag⁻¹``; block Jacobi with the ``F × F`` blocks of
    several fields at one point, ``blocks()``, where given), ``"spectral"``
    (:mod:`scaleinv.numeric.indexed_spectral`, from ``symbol(False)``: the symbol of the
    operator's grid-mean stencil per sample) or ``"auto"``: spectral where the condition
    number of ``symbol(True)`` (the stencil pooled over the batch: one symbol, cheap) is above
    :data:`SPECTRAL_CONDITION`, else Jacobi. Jacobi where the transform does not exist."""
    if kind not in PRECONDITIONERS:
        raise RuleError(f"unknown preconditioner {kind!r}; known: {', '.join(PRECONDITIONERS)}")
    shape, where = k.problem.shape, k.problem.boundary.kind
    if kind == "auto":
        ill = condition(symbol_eigenvalues(symbol(True)))
        kind = "spectral" if ill > SPECTRAL_CONDITION else "jacobi"
    if kind == "spectral":
        made = spectral_inverse(symbol(False), shape, where)
        if made is not None:
            return made
    if blocks is not None and len(k.problem.fields) > 1:
        return BlockJacobi(_block_inverse(blocks()))
    with np.errstate(all="ignore"):  # |diag|: positive definite for MINRES too
        return Jacobi(np.where(diagonal != 0, 1.0 / np.abs(diagonal), 0.0))


class Jacobi:
    """``r ↦ inverse · r``, ``inverse`` ``(B, n)``: ``|diag H|⁻¹`` (0 where the diagonal is)."""

    def __init__(self, inverse: np.ndarray) -> None:
        self.inverse = inverse

    def __call__(self, r: np.ndarray) -> np.ndarray:
        return self.inverse * r


class BlockJacobi:
    """``r ↦ |B|⁻¹ r`` per grid point, ``inverse`` = ``|B|⁻¹`` ``(B, F, F, points)``
    (:func:`_block_inverse`)."""

    def __init__(self, inverse: np.ndarray) -> None:
        self.inverse = inverse

    def __call__(self, r: np.ndarray) -> np.ndarray:  # one pass: einsum sums in place
        batch, count = self.inverse.shape[:2]
        fields = r.reshape((batch, count, -1))
        return np.einsum("brcp,bcp->brp", self.inverse, fields).reshape(r.shape)


def _block_inverse(blocks: np.ndarray) -> np.ndarray:
    """``|B|⁻¹`` for the point blocks ``B`` ``(B, F, F, points)`` (eigenvalue magnitudes
    floored as the spectral preconditioner's: positive definite); two fields whose blocks are
    all positive definite by the closed form."""
    count = blocks.shape[1]
    if count == 2:
        a, b, d = blocks[:, 0, 0], blocks[:, 0, 1], blocks[:, 1, 1]
        with np.errstate(all="ignore"):
            det = a * d - b * b
        if (a > 0).all() and (det > 0).all():
            inverse = np.empty_like(blocks)
            np.divide(d, det, out=inverse[:, 0, 0])
            np.divide(a, det, out=inverse[:, 1, 1])
            np.negative(np.divide(b, det, out=inverse[:, 0, 1]), out=inverse[:, 0, 1])
            inverse[:, 1, 0] = inverse[:, 0, 1]
            return inverse
    return floored_inverse(blocks)


def minres_solve(
    k: IndexedKernels, f: np.ndarray, rhs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``H x = rhs`` per sample by SciPy's MINRES (H symmetric, indefinite allowed) with
    the spectral preconditioner (symmetric positive definite): the samples CG did not solve.
    Returns ``(x, converged)``; converged where the normwise backward error is that of CG's
    acceptance, ``|rhs − H x| ≤ 10³ · CG_TOLERANCE · (‖H‖ |x| + |rhs|)`` (‖H‖ by a few power
    steps): x is the exact step of a matrix within 10⁻¹¹ of H (the direct LU: within
    ~10⁻¹⁶). Its error is at most κ(H) times that: near a solution where κ(H) ≈ 10⁷ the
    direct solve is no more accurate than ~10⁻⁹ either. A singular H with ``rhs`` off its
    range has a nearby regular matrix too, so also ``|rhs − H x| ≤ 10⁻⁶ |rhs|``: its residual
    stays of the order of ``|rhs|`` and the direct route says singular."""
    from scipy.sparse.linalg import minres

    x = np.zeros(rhs.shape)
    converged = np.zeros(len(rhs), dtype=bool)
    size = rhs.shape[1]
    for s in range(len(rhs)):
        times, _, precondition = hessian_operator(k, f[s : s + 1], "spectral")
        h, m = _one_sample(times, size), _one_sample(precondition, size)
        with np.errstate(all="ignore"):
            x[s], _ = minres(h, rhs[s], M=m, rtol=CG_TOLERANCE, maxiter=CG_ITERATIONS)
            error = np.linalg.norm(times(x[s][None])[0] - rhs[s])
            bound = _norm_estimate(times, size) * np.linalg.norm(x[s]) + np.linalg.norm(rhs[s])
        relative = error <= 1e-6 * np.linalg.norm(rhs[s])
        converged[s] = relative and error <= 1e3 * CG_TOLERANCE * bound
    return x, converged


def _norm_estimate(times: Operator, size: int, steps: int = 6) -> float:
    """‖H‖ (a batch of one) from below by power steps on a fixed random vector."""
    v = np.random.default_rng(0).standard_normal((1, size))
    estimate = 0.0
    for _ in range(steps):
        v /= np.linalg.norm(v)
        v = times(v)
        estimate = float(np.linalg.norm(v))
    return estimate


def _one_sample(operator: Operator, size: int) -> Any:
    """A batch-of-one operator as SciPy's ``LinearOperator`` on vectors ``(size,)``."""
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator((size, size), matvec=lambda v: operator(v[None])[0], dtype=float)


def _sparse_operator(k: IndexedKernels, values: np.ndarray) -> tuple[Operator, np.ndarray]:
    """H of the whole batch as one block-diagonal CSR matrix (the folds of a neumann grid)."""
    matrix = _block_matrix(k.hessian_pattern, k.hessian_pattern.values(values))
    return _block_times(matrix, len(values)), matrix.diagonal().reshape((len(values), -1))


def _block_matrix(pattern: Placement, coo: np.ndarray) -> Any:
    """The matrices of a batch (COO values ``(B, nnz)`` at ``pattern``) as one block-diagonal
    CSR matrix (duplicates summed)."""
    import scipy.sparse

    batch, (m, n) = len(coo), pattern.shape
    rows = ((np.arange(batch) * m)[:, None] + pattern.rows).ravel()
    cols = ((np.arange(batch) * n)[:, None] + pattern.cols).ravel()
    return scipy.sparse.csr_matrix((coo.ravel(), (rows, cols)), shape=(batch * m, batch * n))


def _block_times(matrix: Any, batch: int) -> Operator:
    return lambda v: (matrix @ v.ravel()).reshape((batch, -1))


def cg_solve(
    times: Operator,
    diagonal: np.ndarray,
    precondition: Operator,
    rhs: np.ndarray,
    tolerance: float = CG_TOLERANCE,
    iterations: int = CG_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``H x = rhs`` per sample (``rhs`` ``(B, n)``) by CG preconditioned with
    ``precondition`` (``r ↦ M⁻¹ r``, symmetric positive definite), all samples at once.
    Returns ``(x, converged)``; a sample stops on its own once converged, on breakdown
    (``pᵀHp ≤ 0`` or a non-positive/non-finite ``diagonal`` of H: not converged) or when its
    residual has not fallen for :data:`CG_STALL` iterations (converged if within
    :data:`CG_STALL_FLOOR` ``· tolerance``: the floor of rounding, else not)."""
    batch = len(rhs)
    usable = usable_diagonal(diagonal)
    x = np.zeros(rhs.shape)
    r = np.array(rhs, dtype=float, order="C")
    z = precondition(r)
    p = np.array(z, dtype=float, order="C")
    rz = _dots(r, z)
    norm_b = np.sqrt(_dots(rhs, rhs))
    best = norm_b.copy()
    since = np.zeros(batch, dtype=np.int64)
    converged = norm_b == 0
    active = usable & ~converged
    for _ in range(iterations):
        if not active.any():
            break
        hp = times(p)
        php = _dots(p, hp)
        broken = active & ~(php > 0)
        active &= ~broken
        alpha = np.where(active, rz / np.where(active, php, 1.0), 0.0)
        _axpy(alpha, p, x)
        _axpy(-alpha, hp, r)
        norm_r = np.sqrt(_dots(r, r))
        done = active & (norm_r <= tolerance * norm_b)
        converged |= done
        active &= ~done
        since = np.where(norm_r < best, 0, since + 1)
        best = np.minimum(best, norm_r)
        stalled = active & (since >= CG_STALL)
        converged |= stalled & (best <= CG_STALL_FLOOR * tolerance * norm_b)
        active &= ~stalled
        z = precondition(r)
        rz_new = _dots(r, z)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        rz = rz_new
        z = np.ascontiguousarray(z, dtype=float)  # p ← z + β p in z's buffer (not r's)
        if np.may_share_memory(z, r):
            z = z.copy()
        _axpy(beta, p, z)
        p = z
    return x, converged & np.isfinite(x).all(axis=1)


def usable_diagonal(diagonal: np.ndarray) -> np.ndarray:
    """Per sample: is ``diag H`` positive and finite (else CG breaks down at once)?"""
    return (diagonal > 0).all(axis=1) & np.isfinite(diagonal).all(axis=1)


def solve_cg(
    times: Operator,
    diagonal: np.ndarray,
    precondition: Operator,
    rhs: np.ndarray,
    engine: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cg_solve` on the engine :func:`~scaleinv.numeric.engines.choose_cg_engine`
    picks for ``rhs`` (``engine``: ``None``/``"auto"``, ``"numpy"`` or ``"jax"``): on JAX
    (:func:`~scaleinv.numeric.indexed_cg_jax.jax_cg_solve`, the same iteration and stopping
    rule as one compiled program) where it is chosen and can run ``times`` and
    ``precondition`` (:func:`jax_cg_unsupported`), else on NumPy."""
    chosen, _ = choose_cg_engine(rhs.shape[1], len(rhs), engine)
    if chosen == "jax" and jax_cg_unsupported(times, precondition) is None:
        from scaleinv.numeric.indexed_cg_jax import jax_cg_solve

        assert isinstance(times, GaussNewtonProduct)
        assert isinstance(precondition, Jacobi | BlockJacobi)
        products = [times.forward, times.backward] + ([times.bent] if times.bent else [])
        blocks = isinstance(precondition, BlockJacobi)
        rule = (CG_TOLERANCE, CG_ITERATIONS, CG_STALL, CG_STALL_FLOOR)
        usable = usable_diagonal(diagonal)
        return jax_cg_solve(products, usable, precondition.inverse, blocks, rhs, rule)
    return cg_solve(times, diagonal, precondition, rhs)


def jax_cg_unsupported(times: Operator, precondition: Operator) -> str | None:
    """Why the JAX CG cannot run ``times`` with ``precondition``; None if it can: it runs
    ``H = JᵀJ + C`` on a grid of shifts (:class:`GaussNewtonProduct`) with the (block)
    Jacobi preconditioner."""
    if not isinstance(times, GaussNewtonProduct):
        return "H·v is not the stencil product JᵀJ + C of a grid of shifts"
    if not isinstance(precondition, Jacobi | BlockJacobi):
        return "the spectral preconditioner runs on NumPy (SciPy's transforms)"
    return None


def _axpy(alpha: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """``y[s] += alpha[s] · x[s]`` in place for each sample whose ``alpha`` is not zero (one
    BLAS pass a sample: NumPy's product and sum would be two over the batch), ``x`` and
    ``y`` C-contiguous ``(B, n)``."""
    for s in np.flatnonzero(alpha):
        daxpy(x[s], y[s], a=alpha[s])


def _dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``aᵢ · bᵢ`` per sample of ``(B, n)`` arrays."""
    return np.einsum("bi,bi->b", a, b)
