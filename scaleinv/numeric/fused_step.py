"""One generated NumPy function per (problem, rule): the whole step on coordinate columns.

The NumPy engine's step of a small problem makes one call per kernel (the gradient, the
Hessian, then the solve, each over ``(samples, n)`` arrays whose columns are strided), and the
tolerance check evaluates the gradient again. For GD, Newton, IG and PG (closed-form, not
periodic) on problems of at most :data:`MAX_SOLVE_N` inputs (GD and PG: :data:`MAX_GD_N`),
this module prints instead one function ``fused(x, dx, ok, norm)`` over the points held as
one contiguous row per coordinate: the kernels' own straight-line programs one after the
other (the same expressions, so the same values bit for bit), then the rule's solve written
out as :func:`scaleinv.numeric.runtime.solve` computes it (Cramer's rule, ``b / diag`` for a
structurally diagonal matrix) or PG's nearest branch as its local inverse picks it first,
the trust test, and ``|dL/dx|²`` for the tolerance check.

``ok`` (not written for GD) is where :func:`~scaleinv.numeric.runtime.solve` trusts Cramer's
rule before the finiteness of the solution (PG: where the nearest candidate solves
``P(x) = y``); everywhere else the loop (:mod:`scaleinv.numeric.column_loop`) takes the
rule's own step, so statuses (singular samples, no inverse) come from the same code as before.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.numeric import inverse_source, runtime
from scaleinv.numeric.kernels import StraightLine, flavor_kernels
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.source import BLOCK, _clean, param_keywords, renaming_printer
from scaleinv.symbolic import Problem

__all__ = ["FusedStep", "fused_step", "MAX_SOLVE_N", "MAX_GD_N"]

#: Newton and IG are fused up to this many inputs (Cramer's rule; larger systems go to LAPACK).
MAX_SOLVE_N = 2
#: GD is fused up to this many inputs (beyond, the columns' Python overhead outweighs the gain).
MAX_GD_N = 8


@dataclass(frozen=True)
class FusedStep:
    """A rule's fused step: ``func(x, dx, ok, norm)`` writes, for the points ``x`` held as
    ``(n, size)`` (one contiguous row per coordinate), ``Δx`` into ``dx`` (``(n, size)``),
    where the step is trusted into ``ok`` and ``|dL/dx|²`` into ``norm`` (``(size,)`` each),
    a block of :data:`~scaleinv.numeric.source.BLOCK` samples at a time (the temporaries of a
    block stay in cache)."""

    func: Callable[..., None]
    source: str
    n: int
    #: Whether ``func`` writes where its step is trusted into ``ok`` (else: everywhere).
    has_trust: bool
    #: Whether ``func`` writes ``|dL/dx|²`` into ``norm``.
    has_norm: bool
    #: Whether stopped samples join the rule's own step where the fused one is not trusted:
    #: yes for a solve (:func:`~scaleinv.numeric.runtime.solve` decides over all of its
    #: samples), no for PG (its local inverse decides sample by sample).
    fallback_stopped: bool = True


_CACHE: weakref.WeakKeyDictionary[Problem, dict[tuple[Rule, bool], FusedStep | None]] = (
    weakref.WeakKeyDictionary()
)


def fused_step(problem: Problem, rule: Rule, with_norm: bool) -> FusedStep | None:
    """The fused step of ``rule`` on ``problem`` (cached), or None where there is none: other
    rules, too many inputs, a non-square Jacobian (IG's pseudo-inverse), a sparse matrix, PG
    without a closed form or with periodic branches or the IG fallback."""
    per_problem = _CACHE.setdefault(problem, {})
    key = (rule, with_norm)
    if key not in per_problem:
        per_problem[key] = _build(problem, rule, with_norm)
    return per_problem[key]


class _Writer:
    """Collects the lines of the fused function: programs printed one after the other with
    their temporaries renamed apart, inputs as ``_x<i>`` and params as their keywords."""

    def __init__(self, problem: Problem) -> None:
        self.keywords = param_keywords(problem.params)
        self.names: dict[sp.Basic, str] = dict(self.keywords)
        self.names.update((x, f"_x{i}") for i, x in enumerate(problem.inputs))
        self.names.update((y, f"_y{j}") for j, y in enumerate(problem.output_symbols))
        self.lines: list[str] = []
        self.programs = 0

    def program(
        self,
        program: StraightLine | None,
        prefix: str,
        reads: dict[sp.Basic, str] | None = None,
        known: dict[str, str] | None = None,
    ) -> dict[tuple[int, ...], str]:
        """Print ``program``'s temporaries and outputs; return each output entry's name, or
        its text where it is a constant or a symbol (a structurally zero entry is ``"0"``).
        ``reads`` names what some of its symbols read instead of the usual columns. ``known``
        maps the text of what earlier programs computed to its name: the same text is not
        computed again (only for names that are never rebound in between)."""
        if program is None:
            raise _NotFused("the kernel has no straight-line program")
        self.programs += 1
        names = {**self.names, **(reads or {})}
        names.update((t, f"_p{self.programs}t{k}") for k, (t, _) in enumerate(program.temps))
        printer = renaming_printer(names)

        def text(expr: sp.Expr) -> str:
            return str(printer.doprint(_clean(expr, {})))  # as the kernels print it

        known = {} if known is None else known

        def assign(name: str, expr: sp.Expr) -> str:
            value = text(expr)
            if value not in known:
                self.lines.append(f"{name} = {value}")
                known[value] = name
            return known[value]

        for t, expr in program.temps:
            printer.names[t] = assign(names[t], expr)
        entries = {index: "0" for index in np.ndindex(*program.shape)}
        for index, expr in program.outputs:
            if expr.is_Number or expr.is_Symbol:  # read where it is used (no pass, no copy)
                entries[index] = text(expr)
                continue
            entries[index] = assign(f"{prefix}{''.join(map(str, index))}", expr)
        return entries


class _NotFused(Exception):
    """The rule or problem has no fused step (the loop takes the rule's own)."""


def _build(problem: Problem, rule: Rule, with_norm: bool) -> FusedStep | None:
    n = problem.n
    limit = MAX_SOLVE_N if rule.name in ("newton", "ig") else MAX_GD_N
    if rule.name not in ("gd", "newton", "ig", "pg") or n > limit:
        return None
    kernels = flavor_kernels(problem)
    writer = _Writer(problem)
    eta = repr(float(rule.settings()["eta"]))
    try:
        g = None
        dx: list[tuple[str, ...] | None]  # per coordinate: ufunc and arguments, or None (written)
        if rule.name in ("gd", "newton") or with_norm:
            g = writer.program(kernels.gradient.program, "_g")
        trusted = "None"
        if rule.name == "pg":
            dx, trusted = _pg_lines(problem, rule, writer, eta)
        elif rule.name == "gd":
            dx = [("multiply", f"(-{eta})", g[(i,)]) for i in range(n)] if g else []
        elif rule.name == "newton":
            if kernels.hessian_pattern.sparse:
                return None
            a = writer.program(kernels.hessian.program, "_h")
            assert g is not None
            x, trusted = _solve_lines(writer.lines, a, [g[(i,)] for i in range(n)])
            dx = [("multiply", f"(-{eta})", v) for v in x]
        else:  # IG: J⁻¹ (η · newton_dy(P(x)))
            if problem.m != n or kernels.newton_dy is None or kernels.jacobian_pattern.sparse:
                return None
            y = writer.program(kernels.P.program, "_y")
            _alias(writer.lines, y)
            # where every entry of newton_dy is (-1)*e: b = -(η e), solved for -x (exactly:
            # the solve's products, differences and quotients are odd in b), one pass less
            newton_dy, minus = _negated(kernels.newton_dy.program)
            if len(minus) < n:
                newton_dy, minus = kernels.newton_dy.program, set()
            d = writer.program(newton_dy, "_d")
            b = []
            for j in range(n):
                writer.lines.append(f"_b{j} = {eta} * {d[(j,)]}")
                b.append(f"_b{j}")
            a = writer.program(kernels.jacobian.program, "_j")
            x, trusted = _solve_lines(writer.lines, a, b)
            dx = [("negative" if minus else "positive", v) for v in x]
    except _NotFused:
        return None
    writes = [_into(f"dx[{i}, _rows]", *v) for i, v in enumerate(dx) if v is not None]
    if trusted != "None":
        writes.append(f"ok[_rows] = {trusted}")
    if with_norm and g is not None:
        writes.append(f"norm[_rows] = {_sum_of_squares([g[(i,)] for i in range(n)])}")
    params = [f"{ident}={float(problem.params[s])!r}" for s, ident in writer.keywords.items()]
    unpack = [f"_x{i} = x[{i}, _rows]" for i in range(n)]
    body = "\n".join(f"            {line}" for line in [*unpack, *writer.lines, *writes])
    source = (
        f"def fused(x, dx, ok, norm{''.join(', ' + p for p in ['*', *params] if params)}):\n"
        f'    """{rule.label} step on coordinate rows x (n, size): into dx, ok, norm."""\n'
        "    with numpy.errstate(all='ignore'):\n"
        f"        for _start in range(0, x.shape[1], {BLOCK}):\n"
        f"            _rows = slice(_start, _start + {BLOCK})\n{body}\n"
    )
    scope: dict[str, Any] = {"numpy": np, "_select": _select}
    # The source is printed from scaleinv's own expressions (never from user text).
    exec(compile(source, f"<scaleinv fused {rule.name} step>", "exec"), scope)  # noqa: S102
    return FusedStep(
        scope["fused"], source, n, trusted != "None", with_norm, fallback_stopped=rule.name != "pg"
    )


def _pg_lines(
    problem: Problem, rule: Rule, writer: _Writer, eta: str
) -> tuple[list[tuple[str, ...] | None], str]:
    """PG's step as its closed-form local inverse's first stage computes it (``nearest_first``
    of :mod:`scaleinv.numeric.inverse_source`): the target ``t = y + η·newton_dy(y)``, every
    branch at ``t``, the nearest finite candidate, and whether it solves ``P(c) = t`` to the
    tolerance (the trust test: elsewhere the rule's own step polishes or finds no inverse)."""
    if rule.uses_numeric_inverse or getattr(rule, "fallback", "stop") != "stop":
        raise _NotFused("the numeric local inverse, or the IG fallback")
    kernels = flavor_kernels(problem)
    if kernels.newton_dy is None:
        raise _NotFused("no Newton step in y")
    local = problem.local_inverse()
    if local.numeric or not local.branches:
        raise _NotFused("no closed form")
    first = local.branches[0]
    if any(t is not None for t in first.period) or first.joint_period:
        raise _NotFused("periodic branches (their shift is not written out here)")
    n, m, lines = problem.n, problem.m, writer.lines
    y = writer.program(kernels.P.program, "_y")
    _alias(lines, y)
    newton_dy, minus = _negated(kernels.newton_dy.program)
    d = writer.program(newton_dy, "_d")
    for j in range(m):  # pg_step: y + eta * newton_dy(y)
        lines.append(f"_t{j} = _y{j} {'-' if (j,) in minus else '+'} {eta} * {d[(j,)]}")
    reads: dict[sp.Basic, str] = {ys: f"_t{j}" for j, ys in enumerate(problem.output_symbols)}
    programs = []
    for branch in local.branches:
        temps, reduced = sp.cse(list(branch.solution), symbols=sp.numbered_symbols("_t"))
        outputs = [((i,), e) for i, e in enumerate(reduced) if e != 0]
        programs.append(StraightLine(temps, outputs, (n,), [], problem.params))
    for k, common in enumerate(_common_subtrees(programs, {*reads, *problem.params})):
        program = StraightLine([], [((0,), common)], (1,), [], problem.params)
        reads[common] = writer.program(program, f"_r{k}_", reads=reads)[(0,)]
    candidates: list[list[str]] = []
    known: dict[str, str] = {}  # what one branch computes, the others read
    for b, program in enumerate(programs):
        entries = writer.program(program, f"_c{b}_", reads=reads, known=known)
        candidates.append([entries[(i,)] for i in range(n)])
    # A coordinate every branch computes by the same text has one value: its gap is its step
    # (written into dx at once), squared once, and no branch choice is written for it. Where
    # a branch's candidate is the previous one's text, its square and choice are skipped too.
    shared = [all(c[i] == candidates[0][i] for c in candidates) for i in range(n)]
    squares: dict[int, str] = {}
    for i in range(n):
        if shared[i]:
            gap = _into(f"dx[{i}, _rows]", "subtract", candidates[0][i], f"_x{i}")
            lines += [f"_gs{i} = {gap}", f"_sq{i} = _gs{i} * _gs{i}"]
            squares[i] = f"_sq{i}"
    for b, c in enumerate(candidates):
        fresh = [i for i in range(n) if not shared[i] and (b == 0 or c[i] != candidates[b - 1][i])]
        for i in fresh:
            lines += [f"_gap{i} = {c[i]} - _x{i}", f"_sq{i} = _gap{i} * _gap{i}"]
            squares[i] = f"_sq{i}"
        dist = " + ".join(squares[i] for i in range(n))
        if b == 0:  # a NaN distance (c not finite) is too far: infinite
            lines.append(f"_best = numpy.fmin({dist}, numpy.inf)")
            lines += [f"_xs{i} = {c[i]}" for i in range(n) if not shared[i]]
            continue
        # ties: the first branch; a NaN distance is never nearer (as infinity)
        lines.append(f"_dist = {dist}")
        lines.append("_pick = (_dist < _best).view(numpy.int8).astype(numpy.int64)")
        same = [i for i in range(n) if all(e[i] == c[i] for e in candidates[:b])]
        lines += [f"_xs{i} = _select(_pick, {c[i]}, _xs{i})" for i in range(n)
                  if not shared[i] and i not in same]  # fmt: skip
        lines.append("_best = numpy.fmin(_best, _dist)")
    selected = [candidates[0][i] if shared[i] else f"_xs{i}" for i in range(n)]
    q = writer.program(kernels.P.program, "_q", reads=dict(zip(problem.inputs, selected)))
    tol = repr(inverse_source.TOL)
    checks = [
        # |t - t| <= tol (1 + |t|) holds exactly where t is finite
        f"numpy.isfinite(_t{j})" if q[(j,)] == f"_t{j}"
        else f"(numpy.abs(_t{j} - {q[(j,)]}) <= {tol} * (1 + numpy.abs(_t{j})))"
        for j in range(m)
    ]  # fmt: skip
    lines.append(f"_valid = {' & '.join(checks)} & (_best < numpy.inf)")
    steps: list[tuple[str, ...] | None] = [
        None if shared[i] else ("subtract", f"_xs{i}", f"_x{i}") for i in range(n)
    ]
    return steps, "_valid"


def _common_subtrees(programs: Sequence[StraightLine], outer: set[sp.Basic]) -> list[sp.Expr]:
    """The subexpressions of at least two of ``programs`` that read only ``outer`` symbols
    (not a program's own temporaries), smaller first: each is computed once, and the
    programs read it (``sqrt(y1)`` of the branches ``±sqrt(y1)``)."""
    seen: dict[sp.Expr, int] = {}
    for program in programs:
        mine = set()
        for expr in [e for _, e in program.temps] + [e for _, e in program.outputs]:
            for sub in sp.preorder_traversal(expr):
                if not sub.is_Atom and sub.free_symbols <= outer:
                    mine.add(sub)
        for sub in mine:
            seen[sub] = seen.get(sub, 0) + 1
    common = [sub for sub, count in seen.items() if count > 1]
    return sorted(common, key=lambda e: (sp.count_ops(e), sp.default_sort_key(e)))


def _negated(program: StraightLine | None) -> tuple[StraightLine | None, set[tuple[int, ...]]]:
    """``program`` with each output ``(-1)*e`` written as ``e``, and where it was: ``y +
    η·((-1)*e)`` is then printed ``y - η·e``, the same bits (negation is exact, rounding
    symmetric about 0) with one pass less."""
    if program is None:
        return None, set()
    outputs, minus = [], set()
    for index, expr in program.outputs:
        if expr.is_Mul and len(expr.args) == 2 and expr.args[0] == -1:
            expr = expr.args[1]
            minus.add(index)
        outputs.append((index, expr))
    return program._replace(outputs=outputs), minus


def _into(target: str, ufunc: str, *args: str) -> str:
    """``numpy.<ufunc>(*args)`` written into ``target`` (no temporary, no copy)."""
    return f"numpy.{ufunc}({', '.join(args)}, out={target})"


def _select(pick: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """``numpy.where(pick, a, b)`` bit for bit, ``pick`` 0 or 1 as int64: by the bits of
    ``a ^ b`` (a random mask makes ``numpy.where`` mispredict a branch per element: 4x the
    time at 16,384 samples)."""
    if np.shape(a) != pick.shape:  # a constant candidate
        a = np.full(pick.shape, a, dtype=np.float64)
    if np.shape(b) != pick.shape:
        b = np.full(pick.shape, b, dtype=np.float64)
    bits = np.bitwise_xor(a.view(np.int64), b.view(np.int64))
    bits *= pick
    bits ^= b.view(np.int64)
    return bits.view(np.float64)


def _alias(lines: list[str], y: dict[tuple[int, ...], str]) -> None:
    """Name P's outputs ``_y<j>``, the symbols the y-space programs read (a constant output
    has no name yet)."""
    for (j,), name in y.items():
        if name != f"_y{j}":
            lines.append(f"_y{j} = {name}")


def _sum_of_squares(parts: Sequence[str]) -> str:
    """``|g|²`` summed left to right, as :func:`runtime._squared_norms` does for n <= 2."""
    return " + ".join(f"({p})*({p})" for p in parts)


def _times(a: str, b: str) -> str:
    """``a * b`` with a factor 1 left out (exact: no pass over the samples)."""
    return b if a == "1" else a if b == "1" else f"{a} * {b}"


def _over(a: str, b: str) -> str:
    """``a / b`` with a divisor 1 left out (exact)."""
    return a if b == "1" else f"{a} / {b}"


def _solve_lines(
    lines: list[str], a: dict[tuple[int, ...], str], b: Sequence[str]
) -> tuple[list[str], str]:
    """Lines solving ``a x = b`` as :func:`runtime._cramer_into` does; the names of ``x`` and
    of the trust test (Cramer's rule trusted before the finiteness of ``x``). Entries that are
    structurally 0 or 1 are left out of the arithmetic (exactly: the same values)."""
    limit = repr(runtime._CRAMER_LIMIT)
    if len(b) == 1:
        lines.append(f"_s0 = {_over(b[0], a[0, 0])}")
        lines.append(f"_fine = numpy.abs({a[0, 0]}) > 0")
        return ["_s0"], "_fine"
    a00, a01, a10, a11 = a[0, 0], a[0, 1], a[1, 0], a[1, 1]
    if a01 == "0" and a10 == "0":  # runtime._diagonal_into
        lines.append(f"_s0 = {_over(b[0], a00)}")
        lines.append(f"_s1 = {_over(b[1], a11)}")
        lines.append(f"_det = {_times(a00, a11)}")
        lines.append(f"_sq = {_times(a00, a00)} + {_times(a11, a11)}")
    else:
        lines.append(f"_det = {_times(a00, a11)} - {_times(a01, a10)}")
        lines.append(f"_s0 = ({_times(a11, b[0])} - {_times(a01, b[1])}) / _det")
        lines.append(f"_s1 = ({_times(a00, b[1])} - {_times(a10, b[0])}) / _det")
        squares = " + ".join(_times(e, e) for e in (a00, a01, a10, a11))
        lines.append(f"_sq = {squares}")
    lines.append(f"_fine = _sq < numpy.abs(_det) * {limit}")
    return ["_s0", "_s1"], "_fine"
