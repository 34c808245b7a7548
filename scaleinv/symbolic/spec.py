"""Problem spec files: TOML, read with :mod:`tomllib`, parsed by the same allow-list as strings.

A spec names a problem, where to start, which rules to run and for how long::

    title = "Optimizer comparison"
    [problem]
    inputs = ["x0", "x1"]
    outputs = ["x0", "x1**2"]
    loss = "y0**2 + y1**2"          # optional, default ½|y − y*|²
    target = [0, 0]                 # optional
    [params]                        # optional
    alpha = 10
    [run]
    starts = [[3, 3]]
    steps = 10
    tol = 1e-12                     # optional
    [[rules]]
    name = "newton"
    eta = "1/3"

Every table's keys are checked here against :mod:`scaleinv.symbolic.spec_schema` (an unknown
key is an error with a did-you-mean suggestion), the schema the documentation's spec
reference is rendered from; the values of the tables the upper layers read (``units``,
``analysis``, ``report``, ``study``) are kept as plain data and those layers validate them.

Limits: ``steps`` at most :data:`MAX_STEPS`, at most :data:`MAX_STARTS` start points, and a
recorded run (``(steps + 1) × starts × (n + m + 1)`` float64) of at most
:data:`MAX_RECORD_BYTES`.
"""

from __future__ import annotations

import difflib
import errno
import math
import os
import stat
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from scaleinv.errors import ScaleinvError, SpecError
from scaleinv.symbolic.indexed import IndexedProblem
from scaleinv.symbolic.indexed_parsing import indexed_starts, is_indexed
from scaleinv.symbolic.parsing import parse_expr
from scaleinv.symbolic.problem import Problem
from scaleinv.symbolic.spec_schema import (
    DEFAULT_BUDGET,
    MAX_BUDGET,
    MAX_STARTS,
    MAX_STEPS,
    MIN_BUDGET,
    keys_of,
)

__all__ = ["Spec", "RuleSpec", "load_spec", "parse_spec", "check_keys", "check_run_size"]
__all__ += ["check_run_limits", "spec_number"]
__all__ += [
    "ANALYSIS_KEYS",
    "REPORT_KEYS",
    "STUDY_KEYS",
    "INDEXED_STUDY_KEYS",
    "DEFAULT_BUDGET",
    "MIN_BUDGET",
    "MAX_BUDGET",
    "MAX_STEPS",
    "MAX_STARTS",
    "MAX_RECORD_BYTES",
    "MAX_SPEC_BYTES",
]

#: Largest record of a run (``MAX_STEPS`` and ``MAX_STARTS`` live with the schema).
MAX_RECORD_BYTES = 2 * 1024**3
#: Largest spec file read (bytes): a 4,096-point diffusion spec has 0.5 MB.
MAX_SPEC_BYTES = 64 * 1024**2
#: Keys of the ``[analysis]`` and ``[report]`` tables (their values are read by the reports).
ANALYSIS_KEYS = keys_of("analysis")
REPORT_KEYS = keys_of("report")
#: Keys of the ``[study]`` table (many starts in a region; read by ``scaleinv study``).
STUDY_KEYS = keys_of("study")
#: An indexed problem's ``[study]`` spreads its starts around the ``[run]`` start instead (read
#: by :mod:`scaleinv.reports.study_indexed`).
INDEXED_STUDY_KEYS = keys_of("study", "indexed")


@dataclass(frozen=True)
class RuleSpec:
    """A rule named in a spec with its settings (numbers already parsed)."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: The spec file and key it was read from (``"rules[0]"``), for errors; empty otherwise.
    source: str = field(default="", compare=False)
    key: str = field(default="", compare=False)


@dataclass(frozen=True)
class Spec:
    """A parsed spec file."""

    title: str
    description: str
    problem: Problem | IndexedProblem
    #: Start points; an indexed problem's are read-only flat float64 arrays (length n).
    starts: tuple[tuple[float, ...], ...] | tuple[np.ndarray, ...]
    steps: int
    tol: float | None
    rules: tuple[RuleSpec, ...]
    units: Mapping[str, Any]
    analysis: Mapping[str, Any]
    report: Mapping[str, Any]
    source: str = ""
    study: Mapping[str, Any] = field(default_factory=dict)

    def expression_problem(self, what: str) -> Problem:
        """:attr:`problem` for ``what``, which takes only a problem written expression by
        expression; a :class:`~scaleinv.errors.SpecError` naming ``what`` for an indexed one."""
        if isinstance(self.problem, IndexedProblem):
            reason = f"is indexed; {what} takes a problem written expression by expression"
            raise SpecError(self.source, "problem", reason)
        return self.problem


def load_spec(path: str | Path) -> Spec:
    """Read and parse a spec file; every problem is a :class:`SpecError` naming the file."""
    path = Path(path)
    try:
        text = _read_regular_file(path).decode("utf-8")
    except SpecError:
        raise
    except OSError as err:
        raise SpecError(str(path), "file", f"cannot be read ({err.strerror})") from None
    except ValueError as err:  # a NUL in the path, or bytes that are not UTF-8
        raise SpecError(repr(str(path)), "file", f"cannot be read ({err})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(str(path), "toml", f"is not valid TOML ({err})") from None
    return parse_spec(data, source=str(path))


def _read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``; a :class:`SpecError` for what is not a regular file (a FIFO or a
    device would block the read or never end) or is larger than :data:`MAX_SPEC_BYTES`.
    Opened without blocking and checked on the open file, so it cannot be swapped meanwhile."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            raise SpecError(str(path), "file", "is not a regular file (a pipe, device or socket)")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(str(path), "file", f"is larger than the limit of {MAX_SPEC_BYTES} bytes")
    return data


def parse_spec(data: Mapping[str, Any], *, source: str = "") -> Spec:
    """Build a :class:`Spec` from already-decoded TOML data."""
    check_keys(data, keys_of(""), source, "")
    prob = _table(data, "problem", source, required=True)
    indexed = is_indexed(prob.get("inputs"))
    check_keys(prob, keys_of("problem", "indexed" if indexed else ""), source, "problem")
    for key in ("inputs", "outputs"):
        if key not in prob:
            raise SpecError(source, f"problem.{key}", "is missing")
    _strings(prob["inputs"], source, "problem.inputs")
    _strings(prob["outputs"], source, "problem.outputs", numbers=True)
    if "loss" in prob:
        _strings(prob["loss"], source, "problem.loss", numbers=True, single=True)
    for key in ("target", "target_from"):
        if key in prob:
            _strings(prob[key], source, f"problem.{key}", numbers=True)
    params = _table(data, "params", source)
    problem: Problem | IndexedProblem
    try:
        if indexed:
            problem = IndexedProblem.from_strings(
                prob["inputs"],
                prob["outputs"],
                boundary=prob.get("boundary", "periodic"),
                params=params,
                target=prob.get("target"),
                target_from=prob.get("target_from"),
            )
        else:
            problem = Problem.from_strings(
                prob["inputs"], prob["outputs"], prob.get("loss"), prob.get("target"), params
            )
    except ScaleinvError as err:
        raise SpecError(source, _problem_key(prob, err), str(err)) from None
    run = _table(data, "run", source)
    check_keys(run, keys_of("run"), source, "run")
    starts: tuple[tuple[float, ...], ...] | tuple[np.ndarray, ...]
    if isinstance(problem, IndexedProblem):
        starts = indexed_starts(problem, run.get("starts", [1.0]), source)
    else:
        starts = _starts(run.get("starts", [[1.0] * problem.n]), problem.n, source)
    steps = run.get("steps", 10)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise SpecError(source, "run.steps", f"must be a non-negative integer, got {steps!r}")
    check_run_size(steps, len(starts), problem.n + problem.m, source, "run.steps")
    tol = run.get("tol")
    if tol is not None:
        tol = spec_number(tol, source, "run.tol")
        if tol < 0:
            raise SpecError(source, "run.tol", f"must not be negative, got {tol!r}")
    if not isinstance(data.get("rules", []), list):
        raise SpecError(source, "rules", "must be an array of tables ([[rules]])")
    rules = tuple(_rule(r, i, source) for i, r in enumerate(data.get("rules", [])))
    tables = {key: _table(data, key, source) for key in ("units", "analysis", "report", "study")}
    check_keys(tables["analysis"], ANALYSIS_KEYS, source, "analysis")
    check_keys(tables["report"], REPORT_KEYS, source, "report")
    _check_study_keys(tables["study"], indexed, source)
    for key in ("title", "description"):
        if not isinstance(data.get(key, ""), str):
            raise SpecError(source, key, f"must be a string, got {data[key]!r}")
    return Spec(
        title=str(data.get("title", Path(source).stem if source else "problem")),
        description=str(data.get("description", "")),
        problem=problem,
        starts=starts,
        steps=steps,
        tol=tol,
        rules=rules,
        units=MappingProxyType(tables["units"]),
        analysis=MappingProxyType(tables["analysis"]),
        report=MappingProxyType(tables["report"]),
        source=source,
        study=MappingProxyType(tables["study"]),
    )


def _check_study_keys(table: Mapping[str, Any], indexed: bool, source: str) -> None:
    """Check ``[study]``, whose keys depend on how the problem was written: say which
    layout of starts the other route's keys belong to."""
    if indexed and "region" in table:
        raise SpecError(
            source, "study.region", "an indexed problem's starts spread around its [run] start "
            "(spread = 0.1, seed = 0); a region per input is for problems written expression by "
            "expression",
        )  # fmt: skip
    if not indexed and "region" not in table and {"spread", "seed"} & set(table):
        raise SpecError(
            source, "study", "a problem written expression by expression starts from a region = "
            "[[low, high], ...] per input; spread and seed are for indexed problems (u[0:n])",
        )  # fmt: skip
    check_keys(table, INDEXED_STUDY_KEYS if indexed else STUDY_KEYS, source, "study")


def check_keys(table: Mapping[str, Any], known: Collection[str], source: str, where: str) -> None:
    """Raise :class:`SpecError` for a key of ``table`` outside ``known``, with a suggestion.

    Examples
    --------
    >>> check_keys({"stepz": 20}, {"starts", "steps", "tol"}, "s.toml", "run")
    Traceback (most recent call last):
    ...
    scaleinv.errors.SpecError: s.toml: [run.stepz] unknown key (did you mean 'steps'?); ...
    """
    for key in sorted(table, key=str):
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        name = f"{where}.{key}" if where else str(key)
        raise SpecError(source, name, f"unknown key{hint}; known: {', '.join(sorted(known))}")


def check_run_size(steps: int, starts: int, width: int, source: str, key: str) -> None:
    """Refuse a run that cannot finish or fit: over :data:`MAX_STEPS` steps, over
    :data:`MAX_STARTS` starts, or a record over :data:`MAX_RECORD_BYTES` (per start and step,
    ``width + 1`` floats: x and y, ``width = n + m``, and the loss).

    Examples
    --------
    >>> check_run_size(10**6, 1000, 4, "", "run.steps")
    Traceback (most recent call last):
    ...
    scaleinv.errors.SpecError: [run.steps] 1000000 steps from 1000 starts would record 37.3 GiB, ...
    """
    check_run_limits(steps, starts, source, key)
    need = (steps + 1) * starts * (width + 1) * 8
    if need > MAX_RECORD_BYTES:
        raise SpecError(
            source,
            key,
            f"{steps} steps from {starts} starts would record {need / 1024**3:.1f} GiB, more "
            f"than the limit of {MAX_RECORD_BYTES / 1024**3:g} GiB; use fewer steps or starts",
        )


def check_run_limits(steps: int, starts: int, source: str, key: str) -> None:
    """Refuse over :data:`MAX_STEPS` steps or over :data:`MAX_STARTS` starts (a run that
    records only its ends, like a study, needs no record limit).

    Examples
    --------
    >>> check_run_limits(10**12, 10, "s.toml", "study")
    Traceback (most recent call last):
    ...
    scaleinv.errors.SpecError: s.toml: [study] 1000000000000 steps is more than the limit ...
    """
    if steps > MAX_STEPS:
        raise SpecError(source, key, f"{steps} steps is more than the limit of {MAX_STEPS}")
    if starts > MAX_STARTS:
        raise SpecError(source, key, f"{starts} starts is more than the limit of {MAX_STARTS}")


def _strings(
    value: Any, source: str, key: str, *, numbers: bool = False, single: bool = False
) -> None:
    """Check the TOML type of a problem entry: a string, or a list of strings (or numbers)."""
    kinds: tuple[type, ...] = (str, int, float) if numbers else (str,)
    ok_one = isinstance(value, str)
    ok_list = not single and isinstance(value, list) and bool(value)
    if ok_list:
        ok_list = all(isinstance(v, kinds) and not isinstance(v, bool) for v in value)
    if not (ok_one or ok_list):
        what = "a string" if single else "a string or a non-empty list of strings"
        raise SpecError(source, key, f"must be {what}, got {value!r}")


def _table(data: Mapping[str, Any], key: str, source: str, required: bool = False) -> dict:
    value = data.get(key)
    if value is None:
        if required:
            raise SpecError(source, key, "is missing")
        return {}
    if not isinstance(value, dict):
        raise SpecError(source, key, "must be a table")
    return dict(value)


def spec_number(value: Any, source: str, key: str) -> float:
    """A finite number written as a number or a constant expression (``"2*pi"``); a
    :class:`SpecError` naming ``key`` otherwise."""
    if isinstance(value, bool):
        raise SpecError(source, key, f"must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(float(value)):
            raise SpecError(source, key, f"must be a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            expr = parse_expr(value, {})
        except ScaleinvError as err:
            raise SpecError(source, key, str(err)) from None
        if expr.is_number and expr.is_real and math.isfinite(float(expr)):
            return float(expr)
    raise SpecError(source, key, f"must be a number or a number expression, got {value!r}")


def _starts(value: Any, n: int, source: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(source, "run.starts", "must be a non-empty list of points")
    if len(value) > MAX_STARTS:
        raise SpecError(source, "run.starts", f"more than the limit of {MAX_STARTS} points")
    if not isinstance(value[0], list):
        value = [value]
    points = []
    for i, point in enumerate(value):
        if not isinstance(point, list) or len(point) != n:
            raise SpecError(source, f"run.starts[{i}]", f"must be a list of {n} numbers")
        points.append(tuple(spec_number(v, source, f"run.starts[{i}]") for v in point))
    return tuple(points)


def _problem_key(prob: Mapping[str, Any], err: ScaleinvError) -> str:
    """The key of ``[problem]`` holding the expression ``err`` cannot parse
    (``problem.outputs[1]``), or ``problem`` when the error is about the whole problem."""
    text = getattr(err, "text", None)
    for name in ("outputs", "loss", "target"):
        value = prob.get(name)
        for i, entry in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(entry, str) and text is not None and entry.strip() == text.strip():
                return f"problem.{name}[{i}]" if isinstance(value, list) else f"problem.{name}"
    return "problem"


def _rule(value: Any, index: int, source: str) -> RuleSpec:
    key = f"rules[{index}]"
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise SpecError(source, key, 'needs a name, e.g. name = "gd"')
    check_keys(value, keys_of("rules"), source, key)
    settings: dict[str, Any] = {}
    for name, setting in value.items():
        if name in ("name", "fallback", "label"):
            if not isinstance(setting, str):
                raise SpecError(source, f"{key}.{name}", f"must be a string, got {setting!r}")
            if name != "name":
                settings[name] = setting
        else:
            settings[name] = spec_number(setting, source, f"{key}.{name}")
    return RuleSpec(value["name"], MappingProxyType(settings), source, key)
