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

Tables the upper layers read (``units``, ``analysis``, ``report``, ``study``) are kept as
plain data; those layers validate them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from scaleinv.errors import ScaleinvError, SpecError
from scaleinv.symbolic.parsing import parse_expr
from scaleinv.symbolic.problem import Problem

__all__ = ["Spec", "RuleSpec", "load_spec", "parse_spec"]

_TOP_LEVEL = {
    "title",
    "description",
    "problem",
    "params",
    "run",
    "rules",
    "units",
    "analysis",
    "report",
    "study",
}
_RULE_SETTINGS = {"eta", "beta", "rcond", "fallback", "label"}


@dataclass(frozen=True)
class RuleSpec:
    """A rule named in a spec with its settings (numbers already parsed)."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """A parsed spec file."""

    title: str
    description: str
    problem: Problem
    starts: tuple[tuple[float, ...], ...]
    steps: int
    tol: float | None
    rules: tuple[RuleSpec, ...]
    units: Mapping[str, Any]
    analysis: Mapping[str, Any]
    report: Mapping[str, Any]
    source: str = ""
    study: Mapping[str, Any] = field(default_factory=dict)


def load_spec(path: str | Path) -> Spec:
    """Read and parse a spec file; every problem is a :class:`SpecError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(str(path), "file", f"cannot be read ({err.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(str(path), "toml", f"is not valid TOML ({err})") from None
    return parse_spec(data, source=str(path))


def parse_spec(data: Mapping[str, Any], *, source: str = "") -> Spec:
    """Build a :class:`Spec` from already-decoded TOML data."""
    unknown = set(data) - _TOP_LEVEL
    if unknown:
        raise SpecError(
            source, ", ".join(sorted(unknown)), f"unknown table(s); known: {sorted(_TOP_LEVEL)}"
        )
    prob = _table(data, "problem", source, required=True)
    for key in ("inputs", "outputs"):
        if key not in prob:
            raise SpecError(source, f"problem.{key}", "is missing")
    params = _table(data, "params", source)
    try:
        problem = Problem.from_strings(
            prob["inputs"], prob["outputs"], prob.get("loss"), prob.get("target"), params
        )
    except ScaleinvError as err:
        raise SpecError(source, "problem", str(err)) from None
    run = _table(data, "run", source)
    starts = _starts(run.get("starts", [[1.0] * problem.n]), problem.n, source)
    steps = run.get("steps", 10)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise SpecError(source, "run.steps", f"must be a non-negative integer, got {steps!r}")
    tol = run.get("tol")
    if tol is not None:
        tol = _number(tol, source, "run.tol")
    rules = tuple(_rule(r, i, source) for i, r in enumerate(data.get("rules", [])))
    if not isinstance(data.get("rules", []), list):
        raise SpecError(source, "rules", "must be an array of tables ([[rules]])")
    return Spec(
        title=str(data.get("title", Path(source).stem if source else "problem")),
        description=str(data.get("description", "")),
        problem=problem,
        starts=starts,
        steps=steps,
        tol=tol,
        rules=rules,
        units=MappingProxyType(_table(data, "units", source)),
        analysis=MappingProxyType(_table(data, "analysis", source)),
        report=MappingProxyType(_table(data, "report", source)),
        source=source,
        study=MappingProxyType(_table(data, "study", source)),
    )


def _table(data: Mapping[str, Any], key: str, source: str, required: bool = False) -> dict:
    value = data.get(key)
    if value is None:
        if required:
            raise SpecError(source, key, "is missing")
        return {}
    if not isinstance(value, dict):
        raise SpecError(source, key, "must be a table")
    return dict(value)


def _number(value: Any, source: str, key: str) -> float:
    if isinstance(value, bool):
        raise SpecError(source, key, f"must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            expr = parse_expr(value, {})
        except ScaleinvError as err:
            raise SpecError(source, key, str(err)) from None
        if expr.is_number and expr.is_real:
            return float(expr)
    raise SpecError(source, key, f"must be a number or a number expression, got {value!r}")


def _starts(value: Any, n: int, source: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(source, "run.starts", "must be a non-empty list of points")
    if not isinstance(value[0], list):
        value = [value]
    points = []
    for i, point in enumerate(value):
        if not isinstance(point, list) or len(point) != n:
            raise SpecError(source, f"run.starts[{i}]", f"must be a list of {n} numbers")
        points.append(tuple(_number(v, source, f"run.starts[{i}]") for v in point))
    return tuple(points)


def _rule(value: Any, index: int, source: str) -> RuleSpec:
    key = f"rules[{index}]"
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise SpecError(source, key, 'needs a name, e.g. name = "gd"')
    unknown = set(value) - _RULE_SETTINGS - {"name"}
    if unknown:
        raise SpecError(
            source, key, f"unknown settings {sorted(unknown)}; known: {sorted(_RULE_SETTINGS)}"
        )
    settings: dict[str, Any] = {}
    for name, setting in value.items():
        if name in ("name", "fallback", "label"):
            if name != "name":
                settings[name] = str(setting)
        else:
            settings[name] = _number(setting, source, f"{key}.{name}")
    return RuleSpec(value["name"], MappingProxyType(settings))
