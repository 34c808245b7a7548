"""The entry that compiles a problem's kernels: :func:`compile_problem`.

It takes the kernels printed by :func:`scaleinv.numeric.kernels.flavor_kernels` and, for the
NumPy flavour, has them evaluated by the chosen backend (:mod:`scaleinv.numeric.backends`).
Kept apart from both so that neither imports the other's user: ``backends`` builds on the
kernels' types, and this module on both (no import cycle).
"""

from __future__ import annotations

import weakref
from typing import overload

from scaleinv.errors import ScaleinvError
from scaleinv.numeric.backends import check_backend, with_backend
from scaleinv.numeric.indexed_kernels import IndexedKernels, compile_indexed
from scaleinv.numeric.kernels import ProblemKernels, flavor_kernels
from scaleinv.symbolic import IndexedProblem, Problem

__all__ = ["compile_problem"]

#: Kernels evaluated by a backend other than their source, per backend and problem.
_BY_BACKEND: dict[str, weakref.WeakKeyDictionary[Problem, ProblemKernels]] = {}


@overload
def compile_problem(
    problem: Problem, flavor: str = "numpy", backend: str = "auto"
) -> ProblemKernels: ...


@overload
def compile_problem(
    problem: IndexedProblem, flavor: str = "numpy", backend: str = "auto"
) -> IndexedKernels: ...


def compile_problem(
    problem: Problem | IndexedProblem, flavor: str = "numpy", backend: str = "auto"
) -> ProblemKernels | IndexedKernels:
    """Compile (once per problem, flavour and backend, cached) the kernels of
    :class:`~scaleinv.numeric.kernels.ProblemKernels`; also :func:`scaleinv.compile`.

    Every kernel is printed from the problem's sparse derivatives (one cse per kernel,
    through the derivation engine, converted to SymPy only as the eliminated program).
    ``flavor`` ``"jax"`` or ``"torch"`` gives the same kernels written for that framework
    (see :mod:`scaleinv.numeric.flavors`; matrices are then always held dense).
    ``backend`` (``"auto"``, ``"numpy"`` or ``"llvm"``; NumPy flavour only) says what evaluates
    the NumPy kernels: their source, or the same programs compiled by SymEngine's LLVM where
    that is installed and measured faster (:mod:`scaleinv.numeric.backends`). The sources, and
    so what :func:`scaleinv.export` writes, are the same for every backend.

    Examples
    --------
    >>> kernels = compile_problem(Problem.from_strings("x", "x**3"), backend="numpy")
    >>> kernels.jacobian([[2.0]])
    array([[[12.]]])

    An :class:`~scaleinv.symbolic.indexed.IndexedProblem` compiles to its vectorised NumPy
    kernels (:func:`~scaleinv.numeric.indexed_kernels.compile_indexed`, cached on the problem).
    """
    if isinstance(problem, IndexedProblem):
        if flavor != "numpy":
            raise ScaleinvError(
                f"an indexed problem compiles to NumPy kernels in process (flavor {flavor!r}: "
                "use scaleinv.export(problem, path, flavor=...))"
            )
        return compile_indexed(problem)
    if check_backend(backend, flavor) == "numpy":
        return flavor_kernels(problem, flavor)
    cache = _BY_BACKEND.setdefault(backend, weakref.WeakKeyDictionary())
    if problem not in cache:
        cache[problem] = with_backend(flavor_kernels(problem, flavor), backend)
    return cache[problem]
