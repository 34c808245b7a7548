"""Run a symbolic step (solve, simplify) under a work limit that is the same on every machine.

A budget counts *steps*: the Python function calls the step makes. SymPy is pure Python, so its
calls measure its work, and a count does not depend on the machine or its load: one spec gets the
same verdict (closed form or not, proved or undecided) on a busy laptop and an idle server. The
counter is a global :func:`sys.settrace` function that asks for no line events; past the limit it
raises ``_OutOfSteps``, a ``BaseException`` that SymPy's broad ``except Exception`` clauses do not
swallow, and the budget turns it into :class:`~scaleinv.errors.BudgetExceeded`. Counting makes
SymPy code 2-3x slower (measured on the 2-core CI machine: a solve and a simplify from a cleared
cache take 0.17 s of CPU plain, 0.41 s with a bare counter, 0.50 s with this one, which leaves
imports out); whole commands spend a small part of their time in budgeted steps (``scaleinv
derive`` of ``reports/comparison.toml`` and ``spring.toml``: 18-21 % more CPU). The counted rate
is about 100 000 steps a second there, so 1 000 000 steps are some 10 s of counted work.

:func:`with_budget` runs the step in a worker process. Workers are not forks of the calling
process: ``os.fork`` of a process whose threads (JAX's, torch's, a BLAS pool's) hold locks can
deadlock the child, and JAX warns about it. Each thread that runs budgets starts, on its first
budget, a *fork server* (:class:`_ForkServer`): a clean interpreter, started with
``posix_spawn`` (safe from any thread), that runs no threads and holds the SymPy, mpmath and
scaleinv modules its parent has imported; it forks one worker per budget. The step goes to it
pickled with ``cloudpickle`` (closures by value): a worker sees the step and its arguments, not
the parent's other in-memory state (patches of modules included). Starting the server costs
about 2 s once per thread (its imports). Measured on the 2-core machine under a load of 12,
interleaved: a no-op budget took 74 ms (32 ms as a fork of the parent, the former design), a
``simplify`` 386 ms (330 ms; 223 ms counted in-process). A step that does not
pickle is counted in-process. The worker

- starts from a fixed state: SymPy's cache cleared, ``Dummy`` numbering (above its parent's)
  and the random seeds fixed, imports not counted, so its count hardly depends on what its
  parent computed before. What remains: which modules the parent had imported, and facts SymPy
  caches on the input's own objects, shift a count by about 0.5 %, and under Python's random
  hash seeds the order of sets of symbols varies it by about 0.2 %. The same command on the same
  spec under a fixed ``PYTHONHASHSEED`` repeats every count exactly, whatever the load.
- is killed at a wall-clock *safety net* of ``steps / WALL_STEPS_PER_SECOND + WALL_GRACE``
  seconds, ten times slower than the counted rate: it only catches a step stuck in C code (huge
  integers) that makes no calls, and its error says so (the one load-dependent verdict).
- dies with its server, and the server with the thread that started it (``PR_SET_PDEATHSIG``
  on Linux; the server also ends when its parent closes its pipe), so killing a command kills
  its workers.

Budgets nest: steps of an inner budget count against every enclosing one (a worker reports its
count back), and an inner budget never outlives the one around it. Within a worker, and where
``isolate=False``, ``os.fork`` or ``os.posix_spawn`` is missing, or the step does not pickle,
steps are counted in-process; then SymPy's cache of the process is warm, so counts depend on
what the process computed before.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import inspect
import math
import os
import pickle
import random
import re
import select
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from scaleinv.errors import BudgetExceeded

__all__ = ["with_budget", "cheap_simplify", "steps_spent", "WALL_STEPS_PER_SECOND", "WALL_GRACE"]
__all__ += ["MAX_EXPANDED_POWER", "huge_power", "tree_size", "worker_cpu_seconds", "start_server"]

T = TypeVar("T")

#: The safety net: a worker is killed after ``steps / WALL_STEPS_PER_SECOND + WALL_GRACE`` wall
#: seconds, ten times the time counting takes on the idle 2-core CI machine (about 100 000 counted
#: steps a second) and still several times it on that machine busy with ten other processes.
WALL_STEPS_PER_SECOND = 10_000
WALL_GRACE = 10.0
#: True inside a budget's worker process (budgets there count in-process).
_IN_WORKER = False
#: ``Dummy`` numbers of a worker start at ``depth * _DUMMY_BASE`` (far above its parent's).
_DUMMY_BASE = 1 << 40
_PR_SET_PDEATHSIG = 1
_GENERATOR = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


class _OutOfSteps(BaseException):
    """Raised by the counter inside a step; a ``BaseException`` so SymPy does not swallow it."""


class _Meter:
    """The step counter of one thread: ``spent`` so far, ``limit`` of the innermost budget.

    Imports are not counted (module bodies and the import machinery): SymPy imports some modules
    on first use, which would make the first step of a process dearer than the same step later.
    """

    __slots__ = ("spent", "limit", "importing", "tick")

    def __init__(self) -> None:
        self.spent = 0
        self.limit = math.inf
        self.importing = 0
        meter = self

        def imported(frame: Any, event: str, arg: Any) -> Any:  # traces a module body
            if event == "return":
                meter.importing -= 1
            return imported

        def tick(frame: Any, event: str, arg: Any) -> Any:  # the global trace function
            if meter.importing:
                return None
            code = frame.f_code
            if code.co_name == "<module>":
                meter.importing += 1
                return imported
            if code.co_filename.startswith("<frozen importlib"):
                return None
            meter.spent += 1
            if meter.spent > meter.limit and not code.co_flags & _GENERATOR:
                raise _OutOfSteps  # (not into a generator: closing one would only print it)
            return None

        self.tick = tick


_meters = threading.local()


def _meter() -> _Meter:
    meter = getattr(_meters, "meter", None)
    if meter is None:
        meter = _meters.meter = _Meter()
    return meter


#: CPU seconds of every finished worker (list.append is atomic across threads).
_cpu: list[float] = []


def worker_cpu_seconds() -> float:
    """CPU seconds of the budgets' finished workers so far (of every thread of this process).

    Workers are children of a fork server, not of this process, so ``RUSAGE_CHILDREN`` does not
    see them: add this to it for the CPU a command spent.

    Examples
    --------
    >>> before = worker_cpu_seconds(); _ = with_budget(lambda: sum(range(10**6)), 100, "sum")
    >>> worker_cpu_seconds() > before
    True
    """
    return sum(_cpu)


def steps_spent() -> int:
    """Steps counted so far by the budgets of this thread (including their workers').

    Outside budgets nothing is counted, so ``steps_spent() + n`` is a deadline for a sequence of
    budgeted steps that share ``n`` steps.

    Examples
    --------
    >>> before = steps_spent(); _ = with_budget(lambda: sorted([3, 1, 2]), 1000, "sorting")
    >>> steps_spent() > before
    True
    """
    return _meter().spent


def with_budget(fn: Callable[[], T], steps: float, what: str, *, isolate: bool = True) -> T:
    """Return ``fn()``, or raise :class:`BudgetExceeded` once it has made ``steps`` calls.

    Parameters
    ----------
    fn : callable
        The step; it is pickled by value (``cloudpickle``) and its result and any exception it
        raises must pickle (SymPy objects do). It runs in another process: changes it makes
        to objects are not seen by the caller, nor are patches of the caller's modules by it.
    steps : int
        The work limit: Python function calls, counted (about 100 000 a second on the CI
        machine, see the module docstring). Loops without calls and C code are not counted;
        a worker's wall-clock safety net stops them. A float is rounded down.
    what : str
        Named in the error ("{what} exceeded its work limit of N steps").
    isolate : bool
        False: count in this process instead of a worker (for small steps where a worker's
        tens of milliseconds would dominate); no wall-clock safety net then.

    Budgets nest: an inner budget never outlives the one around it.

    Examples
    --------
    >>> with_budget(lambda: 1 + 1, 1000, "adding")
    2
    >>> from fractions import Fraction
    >>> with_budget(lambda: [Fraction(k, 3) for k in range(10**6)], 10_000, "fractions")
    Traceback (most recent call last):
    ...
    scaleinv.errors.BudgetExceeded: fractions exceeded its work limit of 10,000 steps
    """
    steps = int(steps)
    if _IN_WORKER or not isolate or not hasattr(os, "fork") or not hasattr(os, "posix_spawn"):
        return _counted(fn, steps, what)
    return _in_worker(fn, steps, what)


def start_server() -> None:
    """Start this thread's fork server now if its budgets will use one (see :func:`with_budget`).

    Its start (a fresh interpreter's imports, about 1-2 s) then runs in its own process beside
    whatever the caller does until its first budget (``scaleinv study`` runs the other rules
    meanwhile) instead of being waited for then. Budgets count the same either way.
    """
    if not _IN_WORKER and hasattr(os, "fork") and hasattr(os, "posix_spawn"):
        _server()


def _counted(fn: Callable[[], T], steps: int, what: str) -> T:
    """``fn()`` with its calls counted in this thread."""
    meter = _meter()
    own, outer = meter.spent + steps, meter.limit
    previous = sys.gettrace()
    failure: BaseException | None = None
    meter.limit = min(own, outer)
    sys.settrace(meter.tick)
    try:
        try:
            result = fn()
        except BaseException as err:  # decided below: a used-up budget comes first
            failure = err
        finally:
            sys.settrace(None)  # nothing below is counted (the counter would raise again)
            meter.limit = outer
        if meter.spent > outer:  # an enclosing budget ran out (also when fn swallowed it)
            previous = None  # its counter would raise again in each generator closed on the way
            raise _OutOfSteps
        if meter.spent > own:
            raise BudgetExceeded(what, steps) from None
        if failure is not None:
            raise failure
        return result
    finally:
        sys.settrace(previous)


def _in_worker(fn: Callable[[], T], steps: int, what: str) -> T:
    """Run ``fn`` in a worker forked by this thread's fork server; kill it at the safety net."""
    meter = _meter()
    room = min(steps, meter.limit - meter.spent)
    if room < 0:
        raise _OutOfSteps
    wall = steps / WALL_STEPS_PER_SECOND + WALL_GRACE
    counting = sys.gettrace()
    sys.settrace(None)  # pickling and waiting are not the step's work
    try:
        request = _request(fn, int(room), what)
        reply = None if request is None else _server().run(request, wall)
    finally:
        sys.settrace(counting)
    if request is None:  # fn cannot cross processes: count it here
        return _counted(fn, steps, what)
    if reply is None:  # the worker ran past the wall-clock safety net: its count is lost
        meter.spent += int(room)  # with it, so the whole budget is charged
        raise BudgetExceeded(what, steps, wall=wall)
    kind, value, spent = pickle.loads(reply) if reply else ("crash", "no result", 0)
    meter.spent += spent
    if meter.spent > meter.limit:  # an enclosing (counted) budget ran out
        sys.settrace(None)  # the enclosing budget restores what it found
        raise _OutOfSteps
    if kind == "ok":
        return cast(T, value)
    if kind == "error":
        raise cast(BaseException, value)
    if kind == "unpicklable":  # fn or its result cannot cross processes: compute it here
        return _counted(fn, steps, what)
    raise RuntimeError(f"{what}: the worker process died ({value})")


def _request(fn: Callable[[], Any], steps: int, what: str) -> bytes | None:
    """The pickled task of a worker (closures by value), or None when ``fn`` cannot pickle."""
    sympy = sys.modules.get("sympy")
    dummies = sympy.Dummy._count if sympy is not None else 0
    try:
        import cloudpickle

        return cast(bytes, cloudpickle.dumps((sys.path, dummies, fn, steps, what)))
    except Exception:  # noqa: BLE001 - anything that cannot pickle is counted in-process
        return None


class _ForkServer:
    """A clean interpreter that forks one worker per budget (the "zygote").

    ``os.fork`` of a process whose threads hold locks (JAX's, torch's, a BLAS pool's) can
    deadlock the child. The server is started with ``posix_spawn`` (safe from any thread), runs
    no threads of its own (one BLAS thread; of the parent's modules only SymPy's, mpmath's and
    scaleinv's, without those of JAX, torch, Dask or numba), and forks workers from that
    single-threaded state. It dies with the
    thread that started it (``PR_SET_PDEATHSIG``), and its workers with it.

    Protocol, frames of an 8-byte length and a payload: a request in (the server's stdin); the
    worker's pid out (a pipe whose number is in ``argv``), then its CPU seconds (a line) and its
    pickled ``(kind, value, steps)`` (empty if it died). Server and workers print to the
    parent's stdout and stderr.
    The server imports the modules of SymPy, mpmath and scaleinv that the parent had imported
    when it started the server (their names in ``argv``: imported while the parent goes on), and
    a request starts with the names of those it has imported since (a newline-separated line):
    the server imports them before it forks, so a worker starts with the modules a fork of the
    parent would have (SymPy imports some on first use, ``sympy.physics.units`` at the first
    ``simplify``: a worker without them spends seconds importing them, uncounted).
    """

    def __init__(self) -> None:
        self.owner = os.getpid()  # a fork of the owner (a process pool) must start its own
        names = " ".join(sorted(_mirrored()))  # imported at its start, before any request
        if len(names) > _ARGUMENT_LIMIT:  # too long for one argument: the first request's
            names = ""
        self._sent = set(names.split())
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        env.update(dict.fromkeys(_BLAS_THREADS, "1"))
        to_server, self._in = os.pipe()
        self._out, from_server = os.pipe()
        os.set_inheritable(from_server, True)  # its number is passed; stdout stays the parent's
        script = "from scaleinv.symbolic.budget import _serve_forks; _serve_forks()"
        argv = [sys.executable, "-c", script, str(os.getpid()), str(from_server), _SOURCE]
        argv.append(names)
        try:
            self.pid = os.posix_spawn(
                sys.executable, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, to_server, 0)]
            )
        finally:
            os.close(to_server)
            os.close(from_server)
        self._finalizer = weakref.finalize(self, _stop_server, self.pid, self._in, self._out)

    def run(self, request: bytes, wall: float) -> bytes | None:
        """The worker's reply, or None once it ran ``wall`` seconds (it is killed then).

        The clock starts at the fork: the server's start and imports are not the step's."""
        loaded = _mirrored()
        modules, self._sent = " ".join(sorted(loaded - self._sent)), self._sent | loaded
        try:
            _write_frame(self._in, modules.encode() + b"\n" + request)
            worker = int(_read_frame(self._out))
            ready, _, _ = select.select([self._out], [], [], wall)
            if not ready:
                os.kill(worker, signal.SIGKILL)
            cpu, reply = _read_frame(self._out).split(b"\n", 1)
            _cpu.append(float(cpu))
            return reply if ready else None
        except BaseException:  # out of step with the server (it died, or we were interrupted)
            self.stop()
            raise

    def stop(self) -> None:
        """End the server (closing its pipe) and wait for it."""
        self._finalizer()
        if getattr(_servers, "server", None) is self:
            del _servers.server


#: This file's hash: a server started from a changed file (an upgrade under a running process)
#: would speak another protocol, so it refuses to serve.
_SOURCE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
#: The packages whose modules a fork server imports when the parent has (see _ForkServer).
_MIRRORED = ("sympy", "mpmath", "scaleinv")
#: Modules a fork server must not import: they start threads.
_THREADED = re.compile(r"jax|torch|dask|distributed|numba")
#: Bytes of module names a fork server takes in its ``argv`` (Linux allows 128 KiB an argument;
#: all of SymPy's, mpmath's and scaleinv's modules make some 60 KB).
_ARGUMENT_LIMIT = 100_000
_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_servers = threading.local()


def _server() -> _ForkServer:
    """This thread's fork server, started on first use (restarted if it died)."""
    server = getattr(_servers, "server", None)
    if server is None or server.owner != os.getpid():
        server = _servers.server = _ForkServer()
    return cast(_ForkServer, server)


def _mirrored() -> set[str]:
    """The modules of this process that a fork server imports (see :class:`_ForkServer`)."""
    return {m for m in sys.modules if m.startswith(_MIRRORED) and not _THREADED.search(m)}


def _stop_server(pid: int, to_server: int, from_server: int) -> None:
    os.close(to_server)  # the server exits at the end of its input
    os.close(from_server)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _write_frame(fd: int, payload: bytes) -> None:
    data = len(payload).to_bytes(8, "little") + payload
    while data:
        data = data[os.write(fd, data) :]


def _read_frame(fd: int) -> bytes:
    size = int.from_bytes(_read_exactly(fd, 8), "little")
    return _read_exactly(fd, size)


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise RuntimeError("the budget's fork server died")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _import_all(names: str) -> None:  # pragma: no cover - in the fork server
    """Import the modules ``names`` (space-separated) that import."""
    import importlib

    for name in names.split():
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _serve_forks() -> None:  # pragma: no cover - the fork server (a separate interpreter)
    """The fork server's loop: ``argv`` holds the parent's pid, the reply pipe's number, the
    hash of this file and the modules the parent had imported when it started the server."""
    parent, replies, source, loaded = sys.argv[1:]
    if source != _SOURCE:  # this file changed on disk (an upgrade) since the parent loaded it
        sys.exit("scaleinv's budget module changed since this process started: restart it")
    _die_with(int(parent))
    out = int(replies)
    import cloudpickle  # noqa: F401 - every request needs it to unpickle

    _import_all(loaded)  # the parent's modules at the server's start, before any request
    server = os.getpid()
    while True:
        try:
            modules, _, request = _read_frame(0).partition(b"\n")
        except RuntimeError:  # the parent closed the pipe: done
            os._exit(0)
        _import_all(modules.decode())
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            os.close(out)
            _serve(request, write_end, server)
        os.close(write_end)
        _write_frame(out, str(pid).encode())
        with os.fdopen(read_end, "rb") as results:
            reply = results.read()
        usage = os.wait4(pid, 0)[2]
        _write_frame(out, f"{usage.ru_utime + usage.ru_stime!r}\n".encode() + reply)


def _serve(request: bytes, fd: int, parent: int) -> None:  # pragma: no cover - the worker
    """The worker: run the request's ``fn``, write ``(kind, value, steps)``, exit."""
    global _IN_WORKER
    _die_with(parent)
    _IN_WORKER = True
    meter = _meters.meter = _Meter()
    try:
        path, dummies, fn, steps, what = pickle.loads(request)
    except Exception:  # noqa: BLE001 - e.g. a module of the parent's not importable here
        result: tuple[str, Any] = ("unpicklable", None)
    else:
        sys.path[:] = path
        _fix_state(dummies)
        try:
            result = ("ok", _counted(fn, steps, what))
        except BaseException as err:  # every failure goes back to the caller
            result = ("error", err)
    try:
        payload = pickle.dumps((*result, meter.spent))
        pickle.loads(payload)
    except Exception:  # cannot cross processes
        if result[0] == "ok":
            payload = pickle.dumps(("unpicklable", None, meter.spent))
        else:
            why = f"{type(result[1]).__name__}: {result[1]}"
            payload = pickle.dumps(("error", RuntimeError(why), meter.spent))
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    os._exit(0)  # no atexit handlers, no flushing of the server's buffers


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """Linux's ``prctl``, or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return cast(Callable[..., int], ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):
        return None


def _die_with(parent: int) -> None:  # pragma: no cover - runs in the worker
    """Have the kernel kill this worker when its parent dies (Linux); exit if it already has."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _fix_state(dummies: int) -> None:  # pragma: no cover - runs in the worker
    """Make a worker's count independent of its parent's history (cache, Dummy numbers, seeds).

    ``dummies`` is the parent's ``Dummy`` counter: the worker numbers its own above it.
    """
    import sympy as sp
    from sympy.core import random as sympy_random
    from sympy.core.cache import clear_cache

    clear_cache()
    depth = max(dummies // _DUMMY_BASE, 0) + 1
    sp.Dummy._count = depth * _DUMMY_BASE
    random.seed(0)
    sympy_random.seed(0)


#: ``simplify`` may expand a power of a sum: past this exponent it is not attempted (the
#: expansion of ``(x0 + x1 + 1)**1999`` is 2 million terms of 600-digit integers, and dense
#: polynomial arithmetic loops over integers without calls the counter could see).
MAX_EXPANDED_POWER = 24


def cheap_simplify(
    expr: Any, *, max_ops: int = 40, steps: int = 200_000, max_entries: int = 36
) -> Any:
    """``sympy.simplify`` where it is cheap; otherwise ``expr`` as it is.

    Cheap means: an expression (or every entry of a matrix with at most ``max_entries``
    entries) of at most ``max_ops`` operations and no power of a sum beyond
    :data:`MAX_EXPANDED_POWER`, each simplified within ``steps`` counted steps (see
    :func:`with_budget`). Larger inputs are returned unchanged, so the cost stays bounded. The
    count runs in this process (a fork per entry would cost more than most simplifications).

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> cheap_simplify(sp.sin(x)**2 + sp.cos(x)**2)
    1
    >>> cheap_simplify(2000 * (x + 1)**1999 - 2000 * (x + 1)**1999 * sp.cos(x)**2)
    -2000*(x + 1)**1999*cos(x)**2 + 2000*(x + 1)**1999
    """
    import sympy as sp

    if isinstance(expr, sp.MatrixBase):
        if expr.rows * expr.cols > max_entries:
            return expr
        return expr.applyfunc(lambda e: cheap_simplify(e, max_ops=max_ops, steps=steps))
    if not isinstance(expr, sp.Basic) or tree_size(expr, 8 * max_ops) > 8 * max_ops:
        return expr  # (count_ops walks the whole tree: a huge one takes minutes)
    if sp.count_ops(expr) > max_ops or huge_power(expr) is not None:
        return expr
    try:
        return with_budget(lambda: sp.simplify(expr), steps, "simplify", isolate=False)
    except BudgetExceeded:
        return expr


def huge_power(expr: Any) -> Any:
    """A power of a sum in ``expr`` beyond :data:`MAX_EXPANDED_POWER`, or None.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> huge_power(sp.sin((x + 1)**1000)), huge_power(x**1000 + (x + 1)**3)
    ((x + 1)**1000, None)
    """
    import sympy as sp

    exprs = expr if isinstance(expr, (list, tuple, sp.MatrixBase)) else [expr]
    for e in exprs:
        for p in sp.sympify(e).atoms(sp.Pow):
            if p.base.is_Add and p.exp.is_Integer and abs(p.exp) > MAX_EXPANDED_POWER:
                return p
    return None


def tree_size(expr: Any, cap: int) -> int:
    """Nodes of ``expr``'s tree (every entry of a matrix), counted up to ``cap + 1`` at most.

    The work is bounded by ``cap`` whatever the size: a derivative of 98 nested ``sin`` is a
    tree of millions of nodes (SymPy shares them, so it fits in memory), and anything that
    walks it (``count_ops``, printing, ``cse``) takes minutes.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> tree_size(sp.sin(x) + 1, 100), tree_size(sum(x**k for k in range(100)), 50)
    (4, 51)
    """
    import itertools

    import sympy as sp

    entries = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    nodes = (n for e in entries for n in sp.preorder_traversal(sp.sympify(e)))
    return sum(1 for _ in itertools.islice(nodes, cap + 1))
