"""Compiled backends of the batched kernels: the NumPy program, or the same program in LLVM.

Every kernel of :func:`~scaleinv.numeric.compiler.compile_problem` is a straight-line program
(cse temporaries, then the output entries) printed as NumPy source: that source is the
reference and what :func:`scaleinv.export` writes. Where SymEngine is installed
(``pip install 'scaleinv[fast]'``) the same program can also be compiled to machine code by
SymEngine's LLVM ``Lambdify``: one pass over the points, no NumPy temporary per cse node
(on the 12-link chain at 10**5 points, J 2.5x and H 4x faster; ``benchmarks/kernels.py``).

``backend`` of :func:`~scaleinv.numeric.compiler.compile_problem` (and
:meth:`Problem.compile <scaleinv.symbolic.Problem.compile>`) chooses per kernel:

``"numpy"``
    The generated NumPy source, always.
``"llvm"``
    LLVM for every kernel, compiled at once; a :class:`~scaleinv.errors.ProblemError` where
    SymEngine is missing or a kernel uses a function LLVM is not given here.
``"auto"`` (default)
    NumPy until the kernel has evaluated :data:`HOT_POINTS` points (over one call or many:
    a few small calls never pay a compile). Then, if SymEngine is installed and the program
    is at most :data:`MAX_SIZE` (so compiling takes about half a second at most), it compiles
    the LLVM form and times both on up to :data:`SAMPLE_POINTS` points of that call (best of
    :data:`TIMING_RUNS`, alternating), keeping LLVM only if it is faster by :data:`MARGIN`
    and agrees with NumPy to :data:`RTOL`. The choice is made once and kept with the kernel
    (kernels are cached per problem).

``kernel.backend`` says which one evaluates a kernel now and ``kernel.backend_reason`` why.
Kernels built around others (the dense form scattered from a sparse one, the loss as
``L(P(x))``) call the chosen forms of those. Argument checks (:class:`Kernel` call) and
keywords are the same for every backend; SymEngine is imported only when LLVM is used.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.errors import ProblemError
from scaleinv.numeric.kernels import Kernel, ProblemKernels, StraightLine, param_keywords
from scaleinv.symbolic.engine import symengine_available

__all__ = ["BACKENDS", "LLVMKernel", "check_backend", "with_backend", "agree", "program_size"]

BACKENDS = ("auto", "numpy", "llvm")
#: Points a kernel evaluates (summed over calls) before ``"auto"`` compiles and measures LLVM.
HOT_POINTS = 50_000
#: ``"auto"`` compiles a program with LLVM only where ``nodes + ENTRY_NODES * entries`` (SymPy
#: nodes of its temporaries and outputs; its nonzero output entries) is at most ``MAX_SIZE``.
#: LLVM's compile time grows with both: on this machine about 0.02 ms per node and 0.6 ms per
#: entry (0.15 s for the 12-link chain's Hessian, 0.6 s for the 768-entry Jacobian of a
#: 256-point diffusion step, 2.4 s for the 1024-point one), so a compile stays near half a
#: second at most (``python benchmarks/kernels.py --compile-times``).
ENTRY_NODES = 30
MAX_SIZE = 25_000
#: Points of the triggering call on which ``"auto"`` times both backends.
SAMPLE_POINTS = 4096
TIMING_RUNS = 3
#: LLVM is kept only where it takes at most this fraction of NumPy's time on the sample.
MARGIN = 0.8
#: Largest difference between the backends ``"auto"`` accepts, relative to each point's
#: largest output entry.
RTOL = 1e-12

#: SymPy function classes the LLVM form is given, by SymEngine name (the elementary functions
#: the NumPy printer prints directly, and ``Abs``); a program using any other stays NumPy.
_FUNCTIONS: dict[type, str] = {
    f: f.__name__
    for f in (sp.sin, sp.cos, sp.tan, sp.exp, sp.log, sp.sinh, sp.cosh, sp.tanh)
    + (sp.asin, sp.acos, sp.atan, sp.Abs)
}


class _Unsupported(Exception):
    """The program uses a node the LLVM form is not given (message: which)."""


def program_size(program: StraightLine) -> int:
    """``nodes + ENTRY_NODES * entries``: what LLVM's compile time grows with (see
    :data:`MAX_SIZE`)."""
    exprs = [e for _, e in program.temps] + [e for _, e in program.outputs]
    nodes = sum(sum(1 for _ in sp.preorder_traversal(e)) for e in exprs)
    return nodes + ENTRY_NODES * len(program.outputs)


class LLVMKernel:
    """A kernel's program compiled by SymEngine's LLVM ``Lambdify``, called like the NumPy one.

    ``kernel(*arrays, **params)``: arrays ``(..., size)`` and params broadcast against the
    batch exactly as in the generated NumPy source; the result is float64 of shape
    ``batch + shape``.
    """

    backend = "llvm"
    reason = "llvm: asked for (backend='llvm')"

    def __init__(self, name: str, program: StraightLine) -> None:
        import symengine as se

        self.name, self.shape = name, program.shape
        self.sizes = tuple(len(symbols) for _, symbols in program.args)
        keywords = param_keywords(program.params)
        self.defaults = [(keywords[s], float(program.params[s])) for s in keywords]
        symbols = [s for _, group in program.args for s in group] + list(keywords)
        arguments = [se.Symbol(f"_a{i}") for i in range(len(symbols))]
        memo: dict[sp.Basic, Any] = dict(zip(symbols, arguments))
        for temp, expr in program.temps:
            memo[temp] = _convert(expr, memo, se)
        flat = [se.Integer(0)] * int(np.prod(self.shape, dtype=int))
        for index, expr in program.outputs:
            position = int(np.ravel_multi_index(index, self.shape)) if self.shape else 0
            flat[position] = _convert(expr, memo, se)
        try:
            self._func = se.Lambdify(arguments, flat, backend="llvm", cse=True)
        except (RuntimeError, NotImplementedError, TypeError) as err:  # a node LLVM lacks
            raise _Unsupported(f"SymEngine's LLVM cannot compile it ({err})") from None
        self.width = len(arguments)

    def __call__(self, *arrays: Any, **params: Any) -> np.ndarray:
        if not params and not self.defaults and len(arrays) == 1:  # the common case, quickly
            x = arrays[0]
            # Lambdify takes a writable buffer only (it never writes to it)
            if type(x) is np.ndarray and x.dtype == np.float64 and x.size and x.flags.writeable:
                if x.ndim and x.shape[-1] == self.width:
                    return self._func(x).reshape(x.shape[:-1] + self.shape)
        if len(arrays) != len(self.sizes):
            raise TypeError(f"{self.name}() takes {len(self.sizes)} positional arrays")
        columns = [np.asarray(a, dtype=np.float64) for a in arrays]
        for c, size in zip(columns, self.sizes):
            if c.ndim == 0 or c.shape[-1] != size:
                raise ValueError(f"{self.name}: an argument must have shape (..., {size})")
        if not self.defaults and len(columns) == 1 and columns[0].size:
            if not columns[0].flags.writeable:
                columns[0] = columns[0].copy()
            return np.asarray(self._func(columns[0])).reshape(columns[0].shape[:-1] + self.shape)
        unknown = sorted(params.keys() - {k for k, _ in self.defaults})
        if unknown:
            raise TypeError(f"{self.name}() got an unexpected keyword argument {unknown[0]!r}")
        values = [np.asarray(params.get(k, d), dtype=np.float64) for k, d in self.defaults]
        batch = np.broadcast_shapes(*(c.shape[:-1] for c in columns), *(v.shape for v in values))
        inputs = np.empty(batch + (self.width,))  # the arrays' columns, then the params
        start = 0
        for c in columns:
            inputs[..., start : start + c.shape[-1]] = c
            start += c.shape[-1]
        for j, v in enumerate(values):
            inputs[..., start + j] = v
        if inputs.size == 0:  # Lambdify does not broadcast an empty batch
            return np.zeros(batch + self.shape)
        return np.asarray(self._func(inputs)).reshape(batch + self.shape)


def _convert(expr: sp.Basic, memo: dict[sp.Basic, Any], se: Any) -> Any:
    """``expr`` as a SymEngine expression; ``memo`` maps symbols and temporaries (already
    converted, so shared temporaries are shared nodes) and caches every converted node."""
    hit = memo.get(expr)
    if hit is not None:
        return hit
    if expr.is_Integer:
        out = se.Integer(int(expr))
    elif expr.is_Rational:
        out = se.Rational(int(expr.p), int(expr.q))
    elif expr.is_Float or expr.is_NumberSymbol:  # pi, E: the float NumPy would print
        out = se.RealDouble(float(expr))
    elif expr.is_Add:
        out = se.Add(*(_convert(a, memo, se) for a in expr.args))
    elif expr.is_Mul:
        out = se.Mul(*(_convert(a, memo, se) for a in expr.args))
    elif expr.is_Pow:
        out = se.Pow(_convert(expr.base, memo, se), _convert(expr.exp, memo, se))
    elif type(expr) in _FUNCTIONS:
        out = getattr(se, _FUNCTIONS[type(expr)])(_convert(expr.args[0], memo, se))
    else:
        raise _Unsupported(f"it uses {type(expr).__name__}, which the LLVM form is not given")
    memo[expr] = out
    return out


def agree(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...], rtol: float = RTOL) -> bool:
    """Do two results of a kernel with per-point ``shape`` agree to ``rtol`` of each point's
    largest entry (with NaNs and infinities in the same places)?

    Examples
    --------
    >>> agree(np.array([[1.0, 1e-20], [1e-9, 0.0]]), np.array([[1.0, 2e-20], [1e-9, 0.0]]), (2,))
    True
    >>> agree(np.array([1.0, 1e-9]), np.array([1.0, 2e-9]), ())  # scalars: each its own scale
    False
    >>> agree(np.array([[1.0, np.nan]]), np.array([[1.0, 0.0]]), (2,))
    False
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    finite = np.isfinite(a)
    if not np.array_equal(finite, np.isfinite(b)) or not np.array_equal(
        a[~finite], b[~finite], equal_nan=True
    ):
        return False
    width = int(np.prod(shape, dtype=int))
    a, b = np.where(finite, a, 0.0).reshape(-1, width), np.where(finite, b, 0.0).reshape(-1, width)
    scale = np.abs(a).max(axis=1, keepdims=True)
    return bool(np.all(np.abs(a - b) <= rtol * scale))


class _Auto:
    """The ``"auto"`` choice of one kernel: NumPy until hot, then measured (see module doc)."""

    def __init__(self, kernel: Kernel) -> None:
        self.name, self.program, self.func = kernel.name, kernel.program, kernel.func
        self.backend = "numpy"
        self._points: int | None = 0
        self._lock = threading.Lock()
        if symengine_available():
            self.reason = f"auto: NumPy until {HOT_POINTS:,} points are evaluated, then measured"
        else:
            self.reason = "auto: NumPy (SymEngine is not installed: pip install 'scaleinv[fast]')"
            self._points = None

    def __call__(self, *arrays: Any, **params: Any) -> np.ndarray:
        if self._points is not None:
            self._count(arrays, params)
        return self.func(*arrays, **params)

    def _count(self, arrays: tuple, params: dict[str, Any]) -> None:
        """Count the points evaluated; measure once they reach :data:`HOT_POINTS`. Under the
        lock, never waiting for it: while one thread counts or measures, the others evaluate
        with what evaluates now (their points are not counted)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._points is None:
                return
            self._points += int(np.prod(np.shape(arrays[0])[:-1])) if arrays else 1
            if self._points >= HOT_POINTS:
                self._choose(arrays, params)
                self._points = None
        finally:
            self._lock.release()

    def _choose(self, arrays: tuple, params: dict[str, Any]) -> None:
        assert self.program is not None
        size = program_size(self.program)
        if size > MAX_SIZE:
            self.reason = f"auto: NumPy (program size {size:,} > {MAX_SIZE:,}: long to compile)"
            return
        try:
            llvm = LLVMKernel(self.name, self.program)
        except _Unsupported as err:
            self.reason = f"auto: NumPy ({err})"
            return
        sample_arrays, sample_params = _sample(arrays, params, SAMPLE_POINTS)
        numpy_s, llvm_s = [], []
        for _ in range(TIMING_RUNS):
            expected, seconds = _timed(self.func, sample_arrays, sample_params)
            numpy_s.append(seconds)
            got, seconds = _timed(llvm, sample_arrays, sample_params)
            llvm_s.append(seconds)
        ratio = min(llvm_s) / min(numpy_s)
        if not agree(got, expected, self.program.shape):
            self.reason = f"auto: NumPy (LLVM disagreed with NumPy beyond {RTOL:g} on a sample)"
        elif ratio > MARGIN:
            self.reason = f"auto: NumPy (LLVM took {ratio:.2f}x NumPy's time on a sample)"
        else:
            self.func, self.backend = llvm, "llvm"
            self.reason = f"auto: LLVM (took {ratio:.2f}x NumPy's time on a sample)"


def _timed(
    func: Callable[..., np.ndarray], arrays: tuple, params: dict
) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    value = func(*arrays, **params)
    return value, time.perf_counter() - start


def _sample(arrays: tuple, params: Mapping[str, Any], size: int) -> tuple[tuple, dict]:
    """The first ``size`` points of a call's (broadcast, flattened) batch."""
    arrays = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    values = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    batch = np.broadcast_shapes(
        *(a.shape[:-1] for a in arrays), *(v.shape for v in values.values())
    )
    index = np.unravel_index(np.arange(min(size, int(np.prod(batch)))), batch)
    return (
        tuple(np.broadcast_to(a, batch + a.shape[-1:])[index] for a in arrays),
        {k: np.broadcast_to(v, batch)[index] for k, v in values.items()},
    )


def check_backend(backend: str, flavor: str = "numpy") -> str:
    """``backend`` if it is known and fits ``flavor``, ``"numpy"`` for the JAX and PyTorch
    flavours under ``"auto"`` (their frameworks compile them), else a :class:`ProblemError`.

    Examples
    --------
    >>> check_backend("auto", "jax")
    'numpy'
    >>> check_backend("gpu")
    Traceback (most recent call last):
    ...
    scaleinv.errors.ProblemError: unknown kernel backend 'gpu'; known: auto, numpy, llvm
    """
    if backend not in BACKENDS:
        raise ProblemError(f"unknown kernel backend {backend!r}; known: {', '.join(BACKENDS)}")
    if flavor == "numpy":
        return backend
    if backend == "llvm":
        raise ProblemError(f"backend 'llvm' compiles NumPy kernels, not the {flavor} flavour")
    return "numpy"


def with_backend(kernels: ProblemKernels, backend: str) -> ProblemKernels:
    """``kernels`` (the NumPy ones) evaluated by ``backend`` (see the module docstring).

    Kernels with a program get the chosen evaluator; kernels built around others (no
    program of their own) are rebound to call the chosen forms. Sources are unchanged.

    Examples
    --------
    >>> from scaleinv import Problem
    >>> kernels = Problem.from_strings(["x"], ["x**3"]).compile()  # backend="auto"
    >>> kernels.jacobian.backend  # until the kernel is hot
    'numpy'
    >>> kernels.jacobian([[2.0], [3.0]])
    array([[[12.]],
    <BLANKLINE>
           [[27.]]])
    """
    if check_backend(backend) == "numpy":
        return kernels
    if backend == "llvm" and not symengine_available():
        raise ProblemError(
            "backend 'llvm' needs the symengine package: pip install 'scaleinv[fast]'"
        )
    chosen: dict[str, Callable[..., np.ndarray]] = {}
    for kernel in kernels.all():
        if kernel.program is None:
            continue
        if backend == "auto":
            chosen[kernel.name] = _Auto(kernel)
            continue
        try:
            chosen[kernel.name] = LLVMKernel(kernel.name, kernel.program)
        except _Unsupported as err:
            raise ProblemError(f"backend 'llvm': kernel {kernel.name}: {err}") from None
    replaced: dict[str, Any] = {}
    for field in dataclasses.fields(kernels):
        kernel = getattr(kernels, field.name)
        if not isinstance(kernel, Kernel):
            continue
        func = chosen.get(kernel.name) or _Calls(kernel.func, chosen)
        replaced[field.name] = dataclasses.replace(kernel, func=func)
    return dataclasses.replace(kernels, **replaced)


class _Calls:
    """A kernel built around others (generated code calling them by name), rebound to call
    their chosen evaluators; its backend is theirs."""

    def __init__(self, func: Any, chosen: Mapping[str, Callable[..., np.ndarray]]) -> None:
        self.callees = {k: v for k, v in chosen.items() if k in func.__code__.co_names}
        scope = {**func.__globals__, **self.callees}
        self._func = types.FunctionType(func.__code__, scope, func.__name__, func.__defaults__)
        self._func.__kwdefaults__ = func.__kwdefaults__

    def __call__(self, *arrays: Any, **params: Any) -> np.ndarray:
        return self._func(*arrays, **params)

    @property
    def backend(self) -> str:
        kinds = {getattr(f, "backend", "numpy") for f in self.callees.values()} or {"numpy"}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def reason(self) -> str:
        parts = [f"{k}: {getattr(f, 'backend', 'numpy')}" for k, f in self.callees.items()]
        return "calls " + ", ".join(parts)
