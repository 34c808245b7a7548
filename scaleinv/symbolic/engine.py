"""How expressions are differentiated: SymPy, or SymEngine where it is installed.

An engine is the narrow seam the sparse derivation (:mod:`scaleinv.symbolic.sparse`) works
through: convert in, differentiate, substitute, sum, convert back. Results always come back as
SymPy objects, so reports and proofs never see the engine. SymEngine is imported only when it
is asked for (``engine="symengine"``, or ``"auto"`` where it is installed); importing scaleinv
never imports it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from scaleinv.errors import ProblemError

__all__ = ["Engine", "ENGINES", "get_engine", "symengine_available"]

ENGINES = ("auto", "sympy", "symengine")
#: Expressions per SymEngine cse call (see :meth:`Engine.cse`).
CSE_CHUNK = 256


def symengine_available() -> bool:
    """Is SymEngine installed (without importing it)?"""
    return importlib.util.find_spec("symengine") is not None


@dataclass(frozen=True)
class Engine:
    """Differentiation and arithmetic of one symbolic library, SymPy at the boundary.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> e = get_engine("sympy")
    >>> e.to_sympy(e.diff(e.convert(x**3), e.convert(x)), {"x": x})
    3*x**2
    """

    name: str
    module: Any

    def convert(self, expr: Any) -> Any:
        """A SymPy expression in this engine's terms."""
        return expr if self.name == "sympy" else self.module.sympify(expr)

    def to_sympy(self, expr: Any, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
        """Back to SymPy; ``symbols`` (by name) restores the symbols' SymPy assumptions."""
        if self.name == "sympy":
            return expr
        return _from_symengine(expr, symbols, {}, evaluate=True)

    def cse(
        self, exprs: Sequence[Any], symbols: Mapping[str, sp.Symbol]
    ) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
        """Common-subexpression elimination: ``(temporaries, reduced)`` as SymPy.

        Temporaries are named ``_t0, _t1, ...``; only the (small) eliminated program is
        converted back from the engine, never the expanded expressions.
        """
        return self.chunks_to_sympy(self.cse_native(exprs), symbols)

    def chunks_to_sympy(
        self,
        chunks: Sequence[tuple[Sequence[Any], Sequence[Any]]],
        symbols: Mapping[str, sp.Symbol],
    ) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
        """The chunks of :meth:`cse_native` as one SymPy program (see :meth:`cse`)."""
        temps: list[tuple[sp.Symbol, sp.Expr]] = []
        reduced: list[sp.Expr] = []
        for chunk_temps, chunk_reduced in chunks:
            program = self.to_sympy_program(chunk_temps, chunk_reduced, symbols, len(temps))
            temps += program[0]
            reduced += program[1]
        return temps, reduced

    def cse_native(self, exprs: Sequence[Any]) -> list[tuple[list[tuple[Any, Any]], list[Any]]]:
        """Common-subexpression elimination in this engine's terms, in self-contained chunks.

        Each chunk is ``(temporaries, reduced)`` for a run of consecutive ``exprs``; a chunk's
        temporary symbols are its own (another chunk may reuse their names).
        """
        native = [self.convert(e) for e in exprs]
        if self.name == "sympy":
            # cse's "basic" optimizations cost 70x more time on a 12-link chain's Hessian for
            # no measurable gain in the kernel, so the default (none) is used. Dummies: the
            # temporaries never meet a symbol of the problem.
            sympy_temps, sympy_reduced = sp.cse(native, symbols=sp.numbered_symbols("_c", sp.Dummy))
            return [(list(sympy_temps), list(sympy_reduced))]
        # SymEngine's cse grows faster than linearly (1.2 s for 5120 Hessian entries of a
        # 1024-point stencil, 0.24 s in chunks of 256), so long lists go in chunks. Its
        # temporaries are named like the inputs (x2, x3, ... skipping names in use).
        starts = range(0, len(native), CSE_CHUNK)
        chunks = (self.module.cse(native[i : i + CSE_CHUNK]) for i in starts)
        return [(list(temps), list(reduced)) for temps, reduced in chunks]

    def to_sympy_program(
        self,
        temps: Sequence[tuple[Any, Any]],
        outputs: Sequence[Any],
        symbols: Mapping[str, sp.Symbol],
        start: int = 0,
    ) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
        """A straight-line program of this engine's expressions as SymPy.

        Temporaries are renamed ``_t{start}, _t{start + 1}, ...`` in order; ``symbols`` (by
        name) restores the problem's symbols. The program is only printed, so SymEngine nodes
        are rebuilt without SymPy's evaluation (they are canonical already).
        """
        names = {t: sp.Symbol(f"_t{start + i}") for i, (t, _) in enumerate(temps)}
        if self.name == "sympy":
            program = [(names[t], e.xreplace(names)) for t, e in temps]
            return program, [sp.sympify(e).xreplace(names) for e in outputs]
        by_name = {**symbols, **{t.name: s for t, s in names.items()}}
        memo: dict[Any, sp.Expr] = {}
        program = [(names[t], _from_symengine(e, by_name, memo, evaluate=False)) for t, e in temps]
        return program, [_from_symengine(e, by_name, memo, evaluate=False) for e in outputs]

    def diff(self, expr: Any, symbol: Any) -> Any:
        """``∂expr/∂symbol``.

        SymEngine leaves the derivatives of ``Abs``, ``sign``, ``Max``, ``LambertW``, ...
        unevaluated; those expressions are differentiated by SymPy (every symbol real, as
        inputs and params are), so both engines give the same derivative.
        """
        out = expr.diff(symbol)
        if self.name == "symengine" and out.atoms(self.module.Derivative):
            real = {s.name: sp.Symbol(s.name, real=True) for s in expr.free_symbols}
            known = _from_symengine(expr, real, {}, evaluate=True)
            out = self.convert(known.diff(real[symbol.name]))
        return out

    def free_symbols(self, expr: Any) -> set[Any]:
        """The symbols ``expr`` depends on."""
        return set(expr.free_symbols)

    def add(self, terms: Sequence[Any]) -> Any:
        """``Σ terms`` (one n-ary sum, not a chain of binary ones)."""
        if not terms:
            return self.module.Integer(0)
        return terms[0] if len(terms) == 1 else self.module.Add(*terms)

    def terms(self, expr: Any) -> Iterable[Any]:
        """The summands of ``expr`` (itself when it is not a sum)."""
        return expr.args if isinstance(expr, self.module.Add) else (expr,)

    def substitute(self, expr: Any, mapping: Mapping[Any, Any]) -> Any:
        """Replace symbols by expressions (only those ``expr`` contains: SymEngine copies the
        whole mapping on every call)."""
        used = {s: mapping[s] for s in self.free_symbols(expr) if s in mapping}
        return expr.xreplace(used) if used else expr

    def is_zero(self, expr: Any) -> bool:
        """Is ``expr`` the exact number 0?"""
        return expr == 0


def get_engine(name: str = "auto") -> Engine:
    """The engine called ``name``: ``"sympy"``, ``"symengine"``, or ``"auto"``.

    ``"auto"`` is SymEngine where it is installed, SymPy otherwise.
    """
    if name not in ENGINES:
        raise ProblemError(f"unknown derivation engine {name!r}; known: {', '.join(ENGINES)}")
    if name == "auto":
        name = "symengine" if symengine_available() else "sympy"
    if name == "symengine":
        if not symengine_available():
            raise ProblemError(
                "engine 'symengine' needs the symengine package: pip install 'scaleinv[fast]'"
            )
        import symengine

        return Engine("symengine", symengine)
    return Engine("sympy", sp)


def _from_symengine(
    expr: Any, symbols: Mapping[str, sp.Symbol], memo: dict[Any, sp.Expr], *, evaluate: bool
) -> Any:
    """Convert a SymEngine expression node by node (each shared node once)."""
    hit = memo.get(expr)
    if hit is not None:
        return hit
    kind = type(expr).__name__
    if kind in ("Symbol", "Dummy"):
        out = symbols.get(expr.name) or sp.Symbol(expr.name)
    elif not expr.args:
        out = sp.sympify(expr)  # numbers and constants
    else:
        args = [_from_symengine(a, symbols, memo, evaluate=evaluate) for a in expr.args]
        func = {"Add": sp.Add, "Mul": sp.Mul, "Pow": sp.Pow}.get(kind) or getattr(sp, kind, None)
        if func is None:
            func = sp.sympify(expr).func
        if not evaluate and func in (sp.Add, sp.Mul):
            out = func._from_args(args)  # as SymEngine ordered them; no flattening checks
        else:
            out = func(*args, evaluate=evaluate)
    memo[expr] = out
    return out
