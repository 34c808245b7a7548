"""Vectorised kernels of an :class:`~scaleinv.symbolic.indexed.IndexedProblem`.

Every point formula is printed once, by the printing seam of every kernel
(:func:`scaleinv.numeric.kernels.compile_kernel`, cse included), as a *point kernel*: its
arguments are the accesses of one grid point (``u[i-1], u[i], u[i+1]``) and the point's
static data (the index, per-point params, the target), stacked on the last axis; its leading
axes are the batch and the grid. So the source does not grow with the grid: a 10⁶-point
problem prints the same few lines as an 8-point one.

Around the point kernels, plain NumPy on the grid:

* :meth:`IndexedKernels.accesses` pads each field by the stencil's width with the boundary
  rule (``wrap`` / the dirichlet value / ``reflect``) and slices out every access;
* J and H are COO matrices with a static pattern (:class:`Placement`, built once with integer
  array operations): J's entries are the values of the stencil's diagonals at each row point,
  H's the point Hessians ``W`` placed at the columns their accesses read (duplicates, e.g. the
  folds of a neumann boundary, are summed when the matrix is formed);
* the gradient ``Jᵀ(P − y*)`` is one ``bincount`` over J's pattern.

Inputs are flat, field-major (see :mod:`scaleinv.symbolic.indexed`): ``x`` of shape
``(..., n)``. Samples are evaluated a chunk at a time (:data:`CHUNK_POINTS` grid points per
chunk), so temporaries stay linear in the grid and bounded in the batch.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from scaleinv.errors import ProblemError
from scaleinv.numeric.indexed_fused import FusedKernel, fuse, sum_shifted
from scaleinv.numeric.indexed_source import compile_point_kernel
from scaleinv.numeric.kernels import real_array
from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["IndexedKernels", "Placement", "compile_indexed", "CHUNK_POINTS", "BLOCK_POINTS"]
__all__ += ["add_shifted", "band", "shift"]

#: Grid points (samples × points) evaluated at once by a kernel call: a chunk's temporaries
#: stay at a few tens of MB however large the batch.
CHUNK_POINTS = 1 << 20
#: Grid points (samples × points) a point kernel evaluates at once inside a chunk: its
#: temporaries then stay in the CPU's cache (at 10⁶ points, 2× faster than the whole grid).
BLOCK_POINTS = 1 << 14


@dataclass(frozen=True)
class Placement:
    """Where a point kernel's values go in a sparse matrix (COO, duplicates add).

    The kernel writes ``(B, K, points)``; entry ``(k, p)`` goes to ``(rows[k·points + p],
    cols[k·points + p])``, then the kernel rows listed in ``mirror`` once more (their
    transposed entries: H is symmetric and ``W`` holds ``α ≤ β`` only). ``mask`` (``(K,
    points)``, or None) zeroes entries whose access reads a dirichlet ghost (their row and
    column are then the diagonal, so the pattern stays static and the zeros add nothing).
    """

    rows: np.ndarray
    cols: np.ndarray
    mirror: np.ndarray
    mask: np.ndarray | None
    shape: tuple[int, int]

    def values(self, point_values: np.ndarray) -> np.ndarray:
        """The COO values ``(B, nnz)`` from point values ``(B, K, points)``."""
        if self.mask is not None:
            point_values = point_values * self.mask
        flat = point_values.reshape((point_values.shape[0], -1))
        if not len(self.mirror):
            return flat
        mirrored = point_values[:, self.mirror].reshape((point_values.shape[0], -1))
        return np.concatenate([flat, mirrored], axis=1)

    def matrix(self, values: np.ndarray) -> Any:
        """One sample's matrix as SciPy CSC (duplicates summed)."""
        import scipy.sparse

        return scipy.sparse.csc_matrix((values, (self.rows, self.cols)), shape=self.shape)


@dataclass(frozen=True, eq=False)
class IndexedKernels:
    """The compiled kernels of one indexed problem (see the module docstring).

    ``P(x)``, ``loss(x)``, ``gradient(x)`` take flat points ``(..., n)``; ``jacobian_values`` and
    ``hessian_values`` give COO values ``(..., nnz)`` at :attr:`jacobian_pattern` and
    :attr:`hessian_pattern`; ``jacobian_matrix(x)`` / ``hessian_matrix(x)`` one sample's SciPy
    matrix. :attr:`sources` holds the printed point kernels.
    """

    problem: IndexedProblem
    kernels: Mapping[str, Callable[..., np.ndarray]]
    sources: Mapping[str, str]
    static: tuple[np.ndarray, ...]
    target: np.ndarray

    @cached_property
    def jacobian_pattern(self) -> Placement:
        """J's static COO pattern (built on first use: the banded steps do not need it)."""
        return _jacobian_placement(self.problem)

    @cached_property
    def hessian_pattern(self) -> Placement:
        """H's static COO pattern (built on first use)."""
        return _hessian_placement(self.problem)

    @cached_property
    def point_newton(self) -> FusedKernel:
        """``P − y*``, J's diagonals and W in one point kernel (one cse over the three: W
        repeats them; :func:`~scaleinv.numeric.indexed_fused.fuse`), for
        :meth:`gradient_and_hessian_band`; compiled on first use."""
        p = self.problem
        diagonals = [d.formula for d in p.jacobian_stencil]
        exprs = [*p.residuals, *diagonals, *p.point_hessian.values()]
        doc = "P − y*, J's diagonals and the point Hessians W"
        return fuse("point_PJW", exprs, _symbols(p), dict(p.params), doc, self.periodic)

    @cached_property
    def point_ig(self) -> FusedKernel:
        """``P − y*`` and J's diagonals in one point kernel, for
        :meth:`residual_and_jacobian_band`; compiled on first use."""
        p = self.problem
        exprs = [*p.residuals, *(d.formula for d in p.jacobian_stencil)]
        doc = "P − y* and J's diagonals"
        return fuse("point_PJ", exprs, _symbols(p), dict(p.params), doc, self.periodic)

    @cached_property
    def point_curved(self) -> FusedKernel:
        """``P − y*``, J's diagonals and the curvature ``C = Σ r_a ∇²P_a`` in one point kernel
        (one cse over the three: C repeats the residuals), every number kept a number (a
        constant diagonal is never a column): Newton's matrix-free route
        (:mod:`scaleinv.numeric.indexed_cg`), evaluated by :meth:`fused_values`."""
        p = self.problem
        diagonals = [d.formula for d in p.jacobian_stencil]
        exprs = [*p.residuals, *diagonals, *p.point_curvature.values()]
        doc = "P − y*, J's diagonals and the curvature C"
        return fuse("point_PJC", exprs, _symbols(p), dict(p.params), doc)

    @cached_property
    def point_jacobian(self) -> FusedKernel:
        """J's diagonals, for :meth:`jacobian_band` (the kernel ``point_J``, its numbers
        columns too: compiled once, with the problem)."""
        count, source = self.counts["point_J"], self.sources["point_J"]
        columns = tuple(range(count))
        return FusedKernel(self.kernels["point_J"], count, columns, (0.0,) * count, source)

    @property
    def source(self) -> str:
        """Every printed point kernel (independent of the grid size)."""
        return "\n".join(self.sources.values())

    # -- evaluation ---------------------------------------------------------------------------
    def accesses(self, x: np.ndarray) -> list[np.ndarray]:
        """Every input access of every point from flat ``x`` ``(B, n)``: views ``(B, *shape)``
        of the fields padded by the stencil's width with the boundary rule."""
        p = self.problem
        fields = x.reshape((x.shape[0], len(p.fields)) + p.shape)
        width = p.width
        pads = [(0, 0)] + [(w, w) for w in width]
        padded = []
        for b, name in enumerate(p.fields):
            field = fields[:, b]
            if not any(width):
                padded.append(field)
            elif p.boundary.kind == "periodic":
                padded.append(np.pad(field, pads, mode="wrap"))
            elif p.boundary.kind == "neumann":
                padded.append(np.pad(field, pads, mode="reflect"))
            else:
                value = p.boundary.values.get(name, 0.0)
                padded.append(np.pad(field, pads, mode="constant", constant_values=value))
        views = []
        for symbol in p.input_accesses:
            access = p.accesses[symbol]
            window = tuple(
                slice(w + d, w + d + size) for w, d, size in zip(width, access.offset, p.shape)
            )
            views.append(padded[p.fields.index(access.field)][(slice(None), *window)])
        return views

    def _window(self, f: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Points ``start … stop − 1`` of flat samples ``f`` ``(B, n)`` of a banded problem
        (one field, 1-D), those beyond the grid by the boundary rule (periodic: wrapped,
        dirichlet: its value): a view of ``f`` where the window lies in the grid, so a
        blocked pass copies only its first and last blocks' (not the whole field padded)."""
        n = f.shape[-1]  # the grid's points (problem.points computes a product per call)
        if 0 <= start and stop <= n:
            return f[:, start:stop]
        index = np.arange(start, stop)
        if self.periodic:
            return f[:, index % n]
        inside = (index >= 0) & (index < n)
        out = np.full(
            (len(f), stop - start), self.problem.boundary.values.get(self.problem.fields[0], 0.0)
        )
        out[:, inside] = f[:, index[inside]]
        return out

    def _flat(self, x: Any) -> tuple[np.ndarray, tuple[int, ...], int]:
        """``x`` as ``(B, n)``, its batch shape, and samples per chunk."""
        x = real_array(x, "x", self.problem.n)
        step = max(1, CHUNK_POINTS // self.problem.points)
        return x.reshape((-1, self.problem.n)), x.shape[:-1], step

    def point(self, name: str, x: np.ndarray) -> np.ndarray:
        """Point kernel ``name`` on flat samples ``(B, n)``: ``(B, K, points)``, evaluated a
        block of the grid at a time (:meth:`blocks`)."""
        views = self.accesses(x)
        out = np.empty((len(x), self.counts[name]) + self.problem.shape)
        for block in self.blocks(len(x)):
            self.evaluate(name, out[:, :, block], views, block)
        return out.reshape((len(x), -1, self.problem.points))

    def fused_values(self, kernel: FusedKernel, x: np.ndarray) -> list[np.ndarray]:
        """Each formula of the fused ``kernel`` at flat samples ``x`` ``(B, n)``, evaluated a
        block of the grid at a time: ``(B, points)``, or ``(B, 1)`` where it is a number."""
        views = self.accesses(x)
        out = np.empty((len(x), kernel.count) + self.problem.shape)
        for block in self.blocks(len(x)):
            kernel.kernel(out[:, :, block], *self.block_arguments(views, block))
        flat = out.reshape((len(x), kernel.count, -1))
        return [
            flat[:, c] if c is not None else np.full((len(x), 1), number)
            for c, number in zip(kernel.columns, kernel.constants)
        ]

    def blocks(self, samples: int) -> list[slice]:
        """Slices of the grid's first axis of about :data:`BLOCK_POINTS` points over
        ``samples`` samples: a kernel's temporaries on one stay in the CPU's cache."""
        shape = self.problem.shape
        rows = max(1, BLOCK_POINTS * shape[0] // (samples * self.problem.points))
        return [slice(a, min(a + rows, shape[0])) for a in range(0, shape[0], rows)]

    def evaluate(
        self, name: str, out: np.ndarray, views: list[np.ndarray], block: slice
    ) -> np.ndarray:
        """Point kernel ``name`` on a block of the grid (first axis): ``views`` from
        :meth:`accesses`, ``out`` ``(B, K, *block shape)``; returns ``out``."""
        return self.kernels[name](out, *self.block_arguments(views, block))

    def block_arguments(self, views: list[np.ndarray], block: slice) -> list[np.ndarray]:
        """A point kernel's arguments on a block of the grid: the accesses and static data."""
        return [v[:, block] for v in views] + [s[block] for s in self.static]

    @property
    def counts(self) -> dict[str, int]:
        """How many formulas each point kernel writes."""
        p = self.problem
        return {
            "point_P": p.fields_out,
            "point_J": max(1, len(p.jacobian_stencil)),
            "point_W": max(1, len(p.point_hessian)),
        }

    def _batched(self, x: Any, one: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        flat, batch, step = self._flat(x)
        parts = [one(flat[start : start + step]) for start in range(0, len(flat), step)]
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return out.reshape(batch + out.shape[1:])

    def P(self, x: Any) -> np.ndarray:
        """``P(x)``: ``(..., m)``, field-major."""
        return self._batched(x, lambda f: self.point("point_P", f).reshape((len(f), -1)))

    def residual(self, x: Any) -> np.ndarray:
        """``P(x) − y*``."""
        return self.P(x) - self.target

    def loss(self, x: Any) -> np.ndarray:
        """``½|P(x) − y*|²`` per sample."""
        r = self.residual(x)
        return np.asarray(0.5 * np.einsum("...k,...k->...", r, r))  # 0-d: an array too

    def jacobian_values(self, x: Any) -> np.ndarray:
        """J's COO values ``(..., nnz)`` at :attr:`jacobian_pattern`."""
        return self._batched(x, lambda f: self.jacobian_pattern.values(self.point("point_J", f)))

    def hessian_values(self, x: Any) -> np.ndarray:
        """H's COO values ``(..., nnz)`` at :attr:`hessian_pattern` (H of ``½|P − y*|²``)."""
        return self._batched(x, lambda f: self.hessian_pattern.values(self.point("point_W", f)))

    def transpose_times(self, jacobian: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """``Jᵀ v`` per sample from J's COO values ``(..., nnz)`` and ``v`` ``(..., m)``."""
        pattern = self.jacobian_pattern
        batch = vector.shape[:-1]
        flat_j = jacobian.reshape((-1, jacobian.shape[-1]))
        flat_v = vector.reshape((-1, vector.shape[-1]))
        out = np.empty((len(flat_v), self.problem.n))
        for k, (values, v) in enumerate(zip(flat_j, flat_v)):
            weights = values * v[pattern.rows]
            out[k] = np.bincount(pattern.cols, weights=weights, minlength=self.problem.n)
        return out.reshape(batch + (self.problem.n,))

    def gradient(self, x: Any) -> np.ndarray:
        """``∂L/∂x = Jᵀ (P − y*)``: ``(..., n)``."""

        def one(f: np.ndarray) -> np.ndarray:
            r = self.point("point_P", f).reshape((len(f), -1)) - self.target
            return self.gradient_from(self.point("point_J", f), r)

        return self._batched(x, one)

    @property
    def shifts(self) -> bool:
        """Do entries move by plain shifts (periodic: rolls, dirichlet: zero-filled), so the
        gradient and the banded matrices need no COO pattern? (neumann folds: they do.)"""
        return self.problem.boundary.kind != "neumann"

    def gradient_from(self, diagonals: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """``Jᵀ r`` from J's diagonals ``(B, K, points)`` and ``r`` ``(B, m)``: ``(B, n)``."""
        p = self.problem
        if not self.shifts:
            return self.transpose_times(self.jacobian_pattern.values(diagonals), residual)
        samples = len(diagonals)
        grid = (samples,) + p.shape
        r = residual.reshape((samples, p.fields_out) + p.shape)
        values = diagonals.reshape((samples, -1) + p.shape)
        g = np.zeros((samples, len(p.fields)) + p.shape)
        moved = np.empty(grid)
        for k, diag in enumerate(p.jacobian_stencil):
            np.multiply(values[:, k], r[:, diag.row_field], out=moved)
            add_shifted(g[:, diag.col_field], moved, diag.offset, self.periodic)
        return g.reshape((samples, p.n))

    @property
    def periodic(self) -> bool:
        """Is the boundary periodic?"""
        return self.problem.boundary.kind == "periodic"

    @property
    def banded(self) -> bool:
        """Are J and H banded matrices (one field on a 1-D grid, shifts) for LAPACK's band
        solves (:mod:`scaleinv.numeric.indexed_solve`)? Else steps solve with SciPy's sparse
        LU."""
        p = self.problem
        return len(p.shape) == 1 and len(p.fields) == 1 and p.fields_out == 1 and self.shifts

    def jacobian_band(self, f: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """J of flat samples ``f`` ``(B, n)`` in LAPACK's general band storage (as :func:`band`
        gives it, but for the first ``l`` rows, the LU's room, which are not set; tridiagonal,
        each sample's rows contiguous, as ``dgtsv`` takes them), in one blocked pass over the
        grid (see :meth:`gradient_and_hessian_band`): band row ``l + u − d`` at column ``j``
        is ``J_d(j − d)``."""
        return self._jacobian_band(f, None)

    def residual_and_jacobian_band(
        self, f: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """``P − y*`` ``(B, n)`` and :meth:`jacobian_band` in one pass over the grid."""
        r = np.empty((len(f), self.problem.points))
        return (r, *self._jacobian_band(f, r))

    def _jacobian_band(
        self, f: np.ndarray, r: np.ndarray | None
    ) -> tuple[np.ndarray, tuple[int, int]]:
        offsets = [d.offset[0] for d in self.problem.jacobian_stencil]
        lower, upper = max([0] + [-d for d in offsets]), max([0] + offsets)
        size, rows = (len(f), self.problem.points), 2 * lower + upper + 1
        if (lower, upper) == (1, 1):  # rows contiguous: dgtsv takes them without copies
            ab = np.empty((size[0], rows, size[1]))
        else:
            ab = np.empty(size + (rows,)).transpose(0, 2, 1)
        first = 0 if r is None else 1  # P − y* first
        kernel = self.point_jacobian if r is None else self.point_ig

        def write(block: slice, values: np.ndarray, width: int, spare: np.ndarray) -> None:
            if r is not None:
                sum_shifted(r[:, block], values, [(0, 0)], kernel, width, spare)
            for row in range(-upper, lower + 1):  # i − j
                terms = [(d, first + k) for k, d in enumerate(offsets) if d == -row]
                out = ab[:, lower + upper + row, block]
                sum_shifted(out, values, terms, kernel, width, spare)

        self._blocked(f, kernel, write)
        return ab, (lower, upper)

    def _blocked(
        self,
        f: np.ndarray,
        kernel: FusedKernel,
        write: Callable[[slice, np.ndarray, int, np.ndarray], None],
    ) -> None:
        """A fused point ``kernel`` on blocks of a 1-D grid: ``write(block, values, w,
        spare)`` with ``values`` ``(B, count, size + 2w)`` of the block's points and ``w``
        (the stencil's width) more on each side (in the CPU's cache; off a dirichlet grid
        zeroed: those points are dropped), and ``spare`` the buffers of
        :func:`~scaleinv.numeric.indexed_fused.sum_shifted`."""
        w, n = self.problem.width[0], self.problem.points
        offsets = [self.problem.accesses[s].offset[0] for s in self.problem.input_accesses]
        static = self.halo_static
        blocks = self.blocks(len(f))
        buffer = np.empty((len(f), kernel.count, blocks[0].stop + 2 * w))  # one block's
        spare = np.empty((2, len(f), blocks[0].stop))
        for block in blocks:
            size = block.stop - block.start
            halo = slice(block.start, block.stop + 2 * w)  # the block's points, ± w
            values = buffer[:, :, : size + 2 * w]
            points = self._window(f, block.start - 2 * w, block.stop + 2 * w)  # the accesses'
            views = [points[:, w + d : w + d + size + 2 * w] for d in offsets]
            kernel.kernel(values, *views, *[s[halo] for s in static])
            if not self.periodic:
                values[:, :, : max(0, w - block.start)] = 0.0
                values[:, :, max(0, n + w - block.start) :] = 0.0
            write(block, values, w, spare)

    def hessian_band(
        self, f: np.ndarray, symmetric: bool = True
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """H of flat samples ``f`` in band storage: each point Hessian entry ``W[α, β]`` at
        ``(p + d_α, p + d_β)`` and its mirror; ``symmetric``: the lower triangle only (the
        storage of LAPACK's band Cholesky), else the general storage of its band LU."""
        values = self.point("point_W", f)
        offsets = [self.problem.accesses[s].offset[0] for s in self.problem.input_accesses]
        parts = []
        for k, (alpha, beta) in enumerate(self.problem.point_hessian):
            low, high = sorted((offsets[alpha], offsets[beta]))
            parts.append((high, low, values[:, k]))
            if alpha != beta and not symmetric:
                parts.append((low, high, values[:, k]))
        return band(parts, self.problem.points, self.periodic, symmetric)

    @cached_property
    def halo_static(self) -> tuple[np.ndarray, ...]:
        """The static data padded by the stencil's width (1-D): the index, per-point params
        and targets of the points just beyond the grid, wrapped on a periodic grid (else the
        edge's: those points are dropped)."""
        pads = [(w, w) for w in self.problem.width]
        if self.periodic:
            return tuple(np.pad(s, pads, mode="wrap") for s in self.static)
        return tuple(np.pad(s, pads, mode="edge") for s in self.static)

    def gradient_and_hessian_band(
        self, f: np.ndarray, scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """``scale · ∇L`` and H in lower band storage (as :meth:`gradient` and
        :meth:`hessian_band` give them) of flat samples ``f``, in one pass over the grid
        (banded problems; ``scale``, e.g. Newton's ``−η``, applied in the cache).

        A block of columns at a time, each value written once: P, J and W of the block's
        points and ``w`` (the stencil's width) more on each side (in the CPU's cache), then
        ``∇L_j = Σ_d (J_d r)(j − d)`` and ``H[j + q, j] = Σ W_αβ(j − d_α)`` over the pairs
        with ``d_β − d_α = q`` (shifted views of the block's values). Off a dirichlet grid the
        extra points are dropped (their values zeroed)."""
        p = self.problem
        offsets = [p.accesses[s].offset[0] for s in p.input_accesses]
        outputs, diagonals = p.fields_out, len(p.jacobian_stencil)
        terms: dict[int, list[tuple[int, int]]] = {}  # band row: (column offset, W's index)
        for k, (alpha, beta) in enumerate(p.point_hessian):
            low, high = sorted((offsets[alpha], offsets[beta]))
            terms.setdefault(high - low, []).append((low, outputs + diagonals + k))
        lower = max([0, *terms])
        gradient = np.empty((len(f), p.points))
        ab = np.empty((len(f), p.points, lower + 1)).transpose(0, 2, 1)
        products = [(d.offset[0], outputs + k) for k, d in enumerate(p.jacobian_stencil)]
        fused = self.point_newton

        def write(block: slice, values: np.ndarray, width: int, spare: np.ndarray) -> None:
            r = values[:, fused.columns[0]]  # P − y* (y* varies: never a number)
            g = gradient[:, block]
            sum_shifted(g, values, products, fused, width, spare, factor=r)
            if scale != 1.0:
                g *= scale
            for q in range(lower + 1):
                sum_shifted(ab[:, q, block], values, terms.get(q, []), fused, width, spare)

        self._blocked(f, fused, write)
        return gradient, ab, (lower, 0)

    def jacobian_matrix(self, x: Any) -> Any:
        """J at one point (flat ``x`` of shape ``(n,)``) as a SciPy CSC matrix."""
        return self.jacobian_pattern.matrix(self.jacobian_values(np.asarray(x)[None])[0])

    def hessian_matrix(self, x: Any) -> Any:
        """H at one point as a SciPy CSC matrix."""
        return self.hessian_pattern.matrix(self.hessian_values(np.asarray(x)[None])[0])


#: The kernels of each problem, compiled once.
_COMPILED: weakref.WeakKeyDictionary[IndexedProblem, IndexedKernels] = weakref.WeakKeyDictionary()


def compile_indexed(problem: IndexedProblem) -> IndexedKernels:
    """Print and compile the point kernels of ``problem`` and place its J and H (once: cached
    per problem)."""
    if problem not in _COMPILED:
        _COMPILED[problem] = _compile(problem)
    return _COMPILED[problem]


def _symbols(problem: IndexedProblem) -> list:
    """A point kernel's arguments: the accesses, the index, per-point params, the targets."""
    return [
        *problem.input_accesses,
        *problem.index,
        *problem.param_accesses,
        *problem.target_symbols,
    ]


def _compile(problem: IndexedProblem) -> IndexedKernels:
    symbols = _symbols(problem)
    params = dict(problem.params)
    formulas = {
        "point_P": (list(problem.outputs), "P at every point"),
        "point_J": ([d.formula for d in problem.jacobian_stencil] or [0], "J's diagonals"),
        "point_W": (list(problem.point_hessian.values()) or [0], "the point Hessians W"),
    }
    sources, kernels = {}, {}
    for name, (exprs, doc) in formulas.items():
        sources[name], kernels[name] = compile_point_kernel(name, exprs, symbols, params, doc)
    grids = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in problem.shape), indexing="ij")
    static = [*grids]
    static += [problem.point_params[problem.accesses[s].field] for s in problem.param_accesses]
    static += [np.zeros(problem.shape)] * problem.fields_out  # the targets: filled below
    partial = IndexedKernels(
        problem,
        MappingProxyType(kernels),
        MappingProxyType(sources),
        tuple(static),
        np.zeros(problem.m),
    )
    target = _target(problem, partial)
    first = len(static) - problem.fields_out
    static[first:] = list(target.reshape((problem.fields_out,) + problem.shape))
    for array in (*static, target):
        array.setflags(write=False)
    return replace(partial, static=tuple(static), target=target)


def _target(problem: IndexedProblem, kernels: IndexedKernels) -> np.ndarray:
    """``y*`` flat: the target formulas on the grid, or ``P(x*)``."""
    if problem.target_state is not None:
        y = kernels.P(problem.target_state)
        if not np.isfinite(y).all():
            raise ProblemError("target_from: P(x*) is not finite")
        return np.array(y)
    if problem.target is None:
        return np.zeros(problem.m)
    return np.concatenate([problem.grid_values(t).ravel() for t in problem.target])


def _columns(problem: IndexedProblem, offset: tuple[int, ...]) -> np.ndarray:
    """For every grid point p (flat), the flat point ``p + offset`` reads, or -1 (a ghost)."""
    coords = np.meshgrid(*(np.arange(s) for s in problem.shape), indexing="ij", sparse=True)
    flat = np.zeros(problem.shape, dtype=np.int64)
    ghost = np.zeros(problem.shape, dtype=bool)
    for c, d, size in zip(coords, offset, problem.shape):
        position = c + d
        if problem.boundary.kind == "periodic":
            position = position % size
        elif problem.boundary.kind == "neumann":
            period = 2 * (size - 1)
            position = np.abs(position) if period == 0 else position % period
            position = np.where(position >= size, period - position, position)
        else:
            ghost = ghost | (position < 0) | (position >= size)
            position = np.clip(position, 0, size - 1)
        flat = flat * size + position
    return np.where(ghost, -1, flat).ravel()


def _jacobian_placement(problem: IndexedProblem) -> Placement:
    points = problem.points
    base = np.arange(points)
    rows, cols, masks = [], [], []
    for diag in problem.jacobian_stencil:
        target = _columns(problem, diag.offset)
        keep = target >= 0
        rows.append(diag.row_field * points + base)
        cols.append(
            np.where(keep, diag.col_field * points + target, diag.row_field * points + base)
        )
        masks.append(keep)
    if not rows:  # P does not depend on x: one zero diagonal
        rows, cols, masks = [base], [base], [np.zeros(points, dtype=bool)]
    return _placement(rows, cols, masks, [], (problem.m, problem.n))


def _hessian_placement(problem: IndexedProblem) -> Placement:
    points = problem.points
    accesses = [problem.accesses[s] for s in problem.input_accesses]
    fields = [problem.fields.index(a.field) for a in accesses]
    targets = [_columns(problem, a.offset) for a in accesses]
    base = np.arange(points)
    rows, cols, masks, mirror = [], [], [], []
    pairs = list(problem.point_hessian)
    for alpha, beta in pairs:
        keep = (targets[alpha] >= 0) & (targets[beta] >= 0)
        rows.append(np.where(keep, fields[alpha] * points + targets[alpha], base))
        cols.append(np.where(keep, fields[beta] * points + targets[beta], base))
        masks.append(keep)
    for k, (alpha, beta) in enumerate(pairs):
        if alpha != beta:
            rows.append(cols[k])
            cols.append(rows[k])
            mirror.append(k)
    if not pairs:
        rows, cols, masks = [base], [base], [np.zeros(points, dtype=bool)]
    return _placement(rows, cols, masks, mirror, (problem.n, problem.n))


def _placement(
    rows: list, cols: list, masks: list, mirror: list, shape: tuple[int, int]
) -> Placement:
    keep = np.stack(masks)
    return Placement(
        np.concatenate(rows),
        np.concatenate(cols),
        np.array(mirror, dtype=np.int64),
        None if keep.all() else keep.astype(np.float64),
        shape,
    )


def shift(values: np.ndarray, offset: tuple[int, ...], periodic: bool) -> np.ndarray:
    """``values`` (``(B, *grid)``) moved by ``offset``: ``out[p + offset] = values[p]``,
    wrapping (periodic) or dropping what leaves the grid and filling with zeros."""
    if periodic:
        axes = tuple(range(1, values.ndim))
        return np.roll(values, offset, axis=axes) if any(offset) else values
    out = np.zeros_like(values)
    source, target = [slice(None)], [slice(None)]
    for d, size in zip(offset, values.shape[1:]):
        if abs(d) >= size:
            return out
        source.append(slice(max(0, -d), size - max(0, d)))
        target.append(slice(max(0, d), size - max(0, -d)))
    out[tuple(target)] = values[tuple(source)]
    return out


def add_shifted(
    out: np.ndarray, values: np.ndarray, offset: tuple[int, ...], periodic: bool
) -> None:
    """``out[p + offset] += values[p]`` in place over the grid axes: ``out`` ``(B, *grid)``,
    ``values`` ``(B, *block)`` no larger than the grid (a block starting at ``start`` adds
    at ``start + d``), wrapping (periodic) or dropping what leaves the grid. :func:`shift`
    and add, without temporaries."""
    pieces: list[list[tuple[slice, slice]]] = []
    for d, size, length in zip(offset, out.shape[1:], values.shape[1:]):
        if periodic:
            d %= size
            first = min(length, size - d)
            axis = [(slice(0, first), slice(d, d + first))]
            if first < length:
                axis.append((slice(first, length), slice(0, length - first)))
        else:
            low, high = max(d, 0), min(d + length, size)
            if low >= high:
                return
            axis = [(slice(low - d, high - d), slice(low, high))]
        pieces.append(axis)
    for combination in itertools.product(*pieces):
        source = (slice(None),) + tuple(s for s, _ in combination)
        target = (slice(None),) + tuple(t for _, t in combination)
        out[target] += values[source]


def band(
    parts: list[tuple[int, int, np.ndarray]], size: int, periodic: bool, symmetric: bool = False
) -> tuple[np.ndarray, tuple[int, int]]:
    """A matrix given as ``(row offset, column offset, values (B, size))`` entries — value
    ``values[:, p]`` at ``(p + row offset, p + column offset)`` — in LAPACK's band storage,
    with its ``(l, u)``: general, ``ab[:, l + u + i − j, j] = A[i, j]`` (``(B, 2l + u + 1,
    size)``: the first ``l`` rows are room for the LU); ``symmetric`` (parts of the lower
    triangle only), ``ab[:, i − j, j] = A[i, j]`` (``(B, l + 1, size)``). Each sample
    ``ab[b]`` is Fortran-contiguous: LAPACK factors it in place.

    On a periodic grid the entries that wrap around land in the slots LAPACK ignores (row
    ``j + q − u`` outside the grid); :mod:`scaleinv.numeric.indexed_solve` reads them back as
    the corners of the matrix. Off the grid (dirichlet) those slots hold entries of rows that do
    not exist, and are ignored."""
    lower = max([0] + [r - c for r, c, _ in parts])
    upper = max([0] + [c - r for r, c, _ in parts])
    first = 0 if symmetric else lower + upper
    count = parts[0][2].shape[0] if parts else 1
    rows = lower + 1 if symmetric else 2 * lower + upper + 1
    ab = np.zeros((count, size, rows)).transpose(0, 2, 1)
    for r, c, values in parts:
        add_shifted(ab[:, first + r - c], values, (c,), periodic)
    return ab, (lower, upper)
