"""The standalone module :func:`scaleinv.export` writes for an indexed problem.

The point formulas and the stencil's diagonals are printed once, by the same kernel printer as
the in-process kernels (:func:`scaleinv.numeric.source.kernel_source`, in the flavour's
printer), as *point kernels* over the accesses of one grid point; around them, the grid is
read with :func:`~scaleinv.numeric.grid_ops.grid_read` (rolls, slices and concatenations,
the boundary rule applied) and the gradient ``Jᵀ(P − y*)`` is summed back with its adjoint
:func:`~scaleinv.numeric.grid_ops.grid_scatter`. Nothing in the source grows with the grid:
its shape is one literal tuple. NumPy, JAX (``jit`` traces every function) and PyTorch
(autograd intact) modules run the same source.

Functions: ``P``, ``loss``, ``gradient``, ``jacobian_diagonals`` (the value of each diagonal
of J at every row point, as :data:`DIAGONALS` lists them), ``hessian_vector`` (``H v`` without
forming ``H``: each point's loss Hessian over the accesses it reads, ``W``, applied to ``v``
read at those accesses and summed back with the adjoint read; O(n) memory and work, exact at
every boundary, what a Krylov solver such as ``jax.scipy.sparse.linalg.cg`` needs) and
``gd_step``. Newton, IG and PG solve a sparse system with the stencil's pattern (SciPy's
sparse LU, in process): the module names them as not exported. Per-point params (``a[i]``)
are keyword arguments of every function (arrays of the grid's shape, no default): their
values would make the source grow.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sympy as sp

from scaleinv.numeric import grid_ops, pysource
from scaleinv.numeric.flavors import check_flavor, prelude_source, printer_of
from scaleinv.numeric.source import kernel_source, param_keywords

if TYPE_CHECKING:
    from scaleinv.numeric.rules import Rule
    from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["indexed_module_source"]

_NEEDS = {
    "numpy": "Needs only NumPy.",
    "jax": "Needs only JAX (jit traces every function; float64 with x64 on).",
    "torch": "Needs only PyTorch (autograd intact; the input's dtype is kept).",
}


def _grid_source() -> str:
    lines = inspect.getsource(grid_ops).splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("import "))
    return "\n".join(lines[start + 1 :]).strip() + "\n"


def _ident(k: int) -> sp.Symbol:
    """The identifier of the k-th argument of a point kernel (accesses print as ``u[i+1]``)."""
    return sp.Symbol(f"_a{k}", real=True)


def indexed_module_source(
    problem: IndexedProblem,
    rules: Sequence[Rule] | None = None,
    title: str | None = None,
    flavor: str = "numpy",
) -> str:
    """The text of the module :func:`scaleinv.export` writes for ``problem`` (see above)."""
    spec = check_flavor(flavor)
    p = problem
    accesses = list(p.input_accesses)
    statics = [*p.index, *p.param_accesses]
    names = {s: _ident(k) for k, s in enumerate([*accesses, *statics, *p.target_symbols])}
    acc_syms = [names[s] for s in accesses]
    static_syms = [names[s] for s in statics]
    target_syms = [names[s] for s in p.target_symbols]
    params = dict(p.params)
    args = [("x", acc_syms), ("y", static_syms + target_syms)]
    outputs = [f.xreplace(names) for f in p.outputs]
    diagonals = [d.formula.xreplace(names) for d in p.jacobian_stencil] or [sp.Integer(0)]
    hessian = [w.xreplace(names) for w in p.point_hessian.values()] or [sp.Integer(0)]
    parts = [_grid_source()]
    kernels = (("point_P", outputs), ("point_J", diagonals), ("point_W", hessian))
    for name, exprs in kernels:
        source, _ = kernel_source(name, exprs, args, params, "", spec.name)
        parts.append(source)
    parts.append(_target_source(p, spec.name))
    etas = [getattr(r, "eta", None) for r in rules or () if r.name == "gd"]
    gd = [float(e) for e in etas if isinstance(e, (int, float))]
    parts.append(_grid_kernels(p, gd[0] if gd else 0.01))
    keywords = param_keywords(params)
    skipped = []
    for rule in rules or ():
        if rule.name != "gd":
            skipped.append(
                f"{rule.name}_step (it solves with the sparse pattern of J or H: SciPy's "
                "sparse LU, in process with scaleinv.minimize)"
            )
    exported = ["P", "loss", "gradient", "jacobian_diagonals", "hessian_vector", "gd_step"]
    header = _header(p, title, exported, skipped, spec.name, keywords)
    constants = _constants(p)
    body = "\n\n".join(part.strip() + "\n" for part in parts)
    return header + "\n" + constants + "\n\n" + body + f"\n__all__ = {exported!r}\n"


def _header(
    p: IndexedProblem,
    title: str | None,
    names: Sequence[str],
    skipped: Sequence[str],
    flavor: str,
    keywords: dict[sp.Symbol, str],
) -> str:
    from scaleinv._version import __version__

    axes = " × ".join(name or str(size) for name, size in zip(p.sizes, p.shape))
    sizes = " × ".join(map(str, p.shape))
    grid = f"{axes} = {sizes}" if axes != sizes else sizes
    params = ", ".join(f"{keywords[k]} = {v!r}" for k, v in sorted(p.params.items(), key=str))
    points = ", ".join(p.point_params) or "none"
    lines = [
        f"{title or 'scaleinv kernels'} — generated by scaleinv {__version__}; do not edit.",
        "",
        f"Indexed problem on a grid of {grid} points ({p.boundary.kind} boundary), fields "
        f"{', '.join(p.fields)}; for {p.range_text}:",
        *(
            f"  {name}[{', '.join(map(str, p.index))}] = {f}"
            for name, f in zip(p.output_names, p.outputs)
        ),  # fmt: skip
        "Loss L = ½|P(x) − y*|² summed over the grid.",
        f"Params (keyword arguments of every function, with these defaults): {params or 'none'}.",
        f"Per-point params (keyword arguments, arrays of shape {p.shape}, required): {points}.",
        "",
        f"x is flat and field-major: shape (..., {p.n}) = (..., fields × grid points), in C",
        f"order; P(x) has shape (..., {p.m}). Every function is vectorised over the grid",
        "(rolls and slices) and batched over leading axes. gd_step returns (dx, status);",
        "hessian_vector(x, v) is H v in O(n), H never formed (for a Krylov solve of Newton's",
        "step, e.g. jax.scipy.sparse.linalg.cg where H is positive definite).",
        _NEEDS[flavor],
        "",
        f"Functions: {', '.join(names)}.",
        *(f"Not exported: {s}." for s in skipped),
    ]
    return pysource.docstring("\n".join(lines)) + "\n\n" + prelude_source(flavor)


def _constants(p: IndexedProblem) -> str:
    accesses = [p.accesses[s] for s in p.input_accesses]
    reads = tuple((p.fields.index(a.field), a.offset) for a in accesses)
    ghosts = tuple(float(p.boundary.values.get(f, 0.0)) for f in p.fields)
    diagonals = tuple((d.row_field, d.col_field, d.offset) for d in p.jacobian_stencil)
    return "\n".join(
        [
            f"SHAPE = {tuple(int(s) for s in p.shape)!r}",
            f"FIELDS = {len(p.fields)}",
            f"OUTPUT_FIELDS = {p.fields_out}",
            f"BOUNDARY = {p.boundary.kind!r}",
            f"GHOSTS = {ghosts!r}",
            "#: (field, offset) of each access, in the point kernels' order",
            f"READS = {reads!r}",
            "#: (output field, input field, offset) of each diagonal of J",
            f"DIAGONALS = {diagonals!r}",
            "#: (access, access) of each entry of a point's loss Hessian W (point_W's order)",
            f"HESSIAN_PAIRS = {tuple(p.point_hessian)!r}",
            f"POINT_PARAMS = {tuple(p.point_params)!r}",
            "#: the scalar params' defaults",
            f"PARAMS = {_defaults(p)!r}",
        ]
    )


def _defaults(p: IndexedProblem) -> dict[str, float]:
    keywords = param_keywords(p.params)
    return {keywords[s]: float(v) for s, v in sorted(p.params.items(), key=str)}


def _target_source(p: IndexedProblem, flavor: str) -> str:
    """``_target(like, **params)``: ``y*`` on the grid, shape ``(*SHAPE, OUTPUT_FIELDS)``."""
    printer = printer_of(flavor)
    keywords = param_keywords(p.params)
    subs = {s: sp.Symbol(keywords[s]) for s in p.params}
    index = ", ".join(str(s) for s in p.index)
    lines = [
        "def _target(like, params):",
        f"    {index}, = _index(like)" if len(p.index) == 1 else f"    {index} = _index(like)",
        *(f"    {k} = params.get({k!r}, PARAMS[{k!r}])" for k in sorted(keywords.values())),
    ]
    if p.target_from is not None:
        states = [printer.doprint(sp.sympify(f).xreplace(subs)) for f in p.target_from]
        lines += [
            "    _zero = numpy.zeros_like(_index(like)[0])",
            f"    _x = numpy.stack([{', '.join(f'_zero + ({v})' for v in states)}], axis=0)",
            "    return _point(point_P, _x.reshape((-1,)), _static(like, params, None), params)",
        ]
    else:
        targets = p.target or (sp.Integer(0),) * p.fields_out
        values = [printer.doprint(sp.sympify(f).xreplace(subs)) for f in targets]
        lines += [
            "    _zero = numpy.zeros_like(_index(like)[0])",
            f"    return numpy.stack([{', '.join(f'_zero + ({v})' for v in values)}], axis=-1)",
        ]
    return "\n".join(lines) + "\n"


def _grid_kernels(p: IndexedProblem, eta: float) -> str:
    grid_axes = len(p.shape)
    return f'''
def _index(like):
    """The index of every grid point along each axis, as float arrays of shape SHAPE."""
    out = []
    for axis, size in enumerate(SHAPE):
        shape = [1] * len(SHAPE)
        shape[axis] = size
        line = numpy.arange(size, dtype=like.dtype).reshape(tuple(shape))
        out.append(line + numpy.zeros(SHAPE, dtype=like.dtype))
    return out


def _split(params):
    """(scalar params, per-point params) of the keyword arguments."""
    scalars = {{k: v for k, v in params.items() if k not in POINT_PARAMS}}
    missing = [k for k in POINT_PARAMS if k not in params]
    if missing:
        raise TypeError("missing per-point params (arrays of shape %r): %s" % (SHAPE, missing))
    return scalars, [numpy.asarray(params[k], dtype=numpy.float64) for k in POINT_PARAMS]


def _static(like, params, target):
    """(*SHAPE, S): the index, the per-point params and y* at every point."""
    scalars, points = _split(params)
    columns = _index(like) + [numpy.zeros_like(_index(like)[0]) + a for a in points]
    if target is not None:
        columns += [target[..., k] for k in range(OUTPUT_FIELDS)]
    else:
        columns += [numpy.zeros_like(_index(like)[0])] * OUTPUT_FIELDS
    return numpy.stack(columns, axis=-1)


def _accesses(x, ghosts=GHOSTS):
    """(..., *SHAPE, A): every access of every point, the boundary rule applied (a
    direction v reads 0 at a dirichlet ghost: ghosts=(0.0,) * FIELDS)."""
    grid = x.reshape(tuple(x.shape[:-1]) + (FIELDS,) + SHAPE)
    pick = (slice(None),) * {grid_axes}
    reads = [grid_read(grid[(Ellipsis, b) + pick], offset, BOUNDARY, ghosts[b])
             for b, offset in READS]
    return numpy.stack(reads, axis=-1)


def _gather(values, like):
    """The adjoint of _accesses: (..., *SHAPE, A) per access, summed back into each field."""
    fields = [numpy.zeros_like(like) for _ in range(FIELDS)]
    for k, (b, offset) in enumerate(READS):
        fields[b] = fields[b] + grid_scatter(values[..., k], offset, BOUNDARY)
    return numpy.stack(fields, axis=-1)


def _point(kernel, x, static, params):
    x = numpy.asarray(x, dtype=numpy.float64)
    scalars, _ = _split(params)
    return kernel(_accesses(x), static, **scalars)


def _flat(values, batch):
    """(..., *SHAPE, K) -> (..., K * points), field-major."""
    moved = numpy.moveaxis(values, -1, -1 - {grid_axes})
    return moved.reshape(tuple(batch) + (-1,))


def _residual(x, params):
    x = numpy.asarray(x, dtype=numpy.float64)
    target = _target(x, params)
    values = _point(point_P, x, _static(x, params, None), params)
    return values - target, x


def P(x, **params):
    """P(x): shape (..., m), field-major."""
    x = numpy.asarray(x, dtype=numpy.float64)
    values = _point(point_P, x, _static(x, params, None), params)
    return _flat(values, x.shape[:-1])


def loss(x, **params):
    """½|P(x) − y*|² per sample."""
    r, x = _residual(x, params)
    return 0.5 * numpy.sum((r * r).reshape(tuple(x.shape[:-1]) + (-1,)), axis=-1)


def jacobian_diagonals(x, **params):
    """(..., *SHAPE, D): the value of each diagonal of J (DIAGONALS) at every row point."""
    x = numpy.asarray(x, dtype=numpy.float64)
    return _point(point_J, x, _static(x, params, None), params)


def gradient(x, **params):
    """dL/dx = Jᵀ (P − y*): shape (..., n), field-major."""
    r, x = _residual(x, params)
    diagonals = jacobian_diagonals(x, **params)
    fields = [numpy.zeros_like(r[..., 0]) for _ in range(FIELDS)]
    for k, (a, b, offset) in enumerate(DIAGONALS):
        fields[b] = fields[b] + grid_scatter(diagonals[..., k] * r[..., a], offset, BOUNDARY)
    return _flat(numpy.stack(fields, axis=-1), x.shape[:-1])


def hessian_vector(x, v, **params):
    """H v for H = d2L/dx2 at x: shape (..., n), field-major; H is never formed."""
    x = numpy.asarray(x, dtype=numpy.float64)
    v = numpy.asarray(v, dtype=x.dtype)
    weights = _point(point_W, x, _static(x, params, _target(x, params)), params)
    read = _accesses(v, (0.0,) * FIELDS)
    per_access = [numpy.zeros_like(read[..., 0]) for _ in READS]
    for k, (alpha, beta) in enumerate(HESSIAN_PAIRS):
        per_access[alpha] = per_access[alpha] + weights[..., k] * read[..., beta]
        if alpha != beta:
            per_access[beta] = per_access[beta] + weights[..., k] * read[..., alpha]
    out = _gather(numpy.stack(per_access, axis=-1), read[..., 0])
    return _flat(out, x.shape[:-1])


def gd_step(x, eta={eta!r}, **params):
    """Gradient descent: (dx, status) with dx = −eta dL/dx and status 0 (running)."""
    g = gradient(x, **params)
    return -eta * g, numpy.zeros(tuple(g.shape[:-1]), dtype=numpy.int8)
'''
