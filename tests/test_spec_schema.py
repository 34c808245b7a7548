"""The spec schema is what the loader accepts, and its examples are specs that load."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from scaleinv.analysis import problem_dimensions
from scaleinv.errors import SpecError
from scaleinv.numeric.rules import REGISTRY
from scaleinv.reports.content import report_options
from scaleinv.reports.spec_verdicts import analysis_options, transforms_of
from scaleinv.reports.study import study_options
from scaleinv.symbolic import IndexedProblem
from scaleinv.symbolic.indexed_parsing import is_indexed
from scaleinv.symbolic.spec import parse_spec
from scaleinv.symbolic.spec_schema import RULE_NAMES, SCHEMA, Table, keys_of, table

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"problem": {"inputs": ["x0", "x1"], "outputs": ["x0", "x1**2"]}}


def _examples() -> str:
    return "\n\n".join(t.example for t in SCHEMA if not t.variant)


def test_the_examples_of_every_table_make_one_spec_every_layer_accepts() -> None:
    spec = parse_spec(tomllib.loads(_examples()), source="examples.toml")
    assert [r.name for r in spec.rules] == ["newton", "pg"]
    assert spec.steps == 10 and spec.starts == ((3.0, 3.0),)
    assert problem_dimensions(spec.problem, dict(spec.units)).outputs  # the units fit P
    assert report_options(spec).alphas == (1.0, 10.0, 100.0)
    assert analysis_options(spec)["budget"] == 1_000_000
    assert len(transforms_of(spec)) == 2  # one input scaling, one output scaling
    assert study_options(spec).starts == 400


@pytest.mark.parametrize(
    "entry", [t for t in SCHEMA if not t.open and not t.variant], ids=lambda t: t.name or "top"
)
def test_a_key_outside_the_schema_is_refused_with_the_nearest_known_one(entry: Table) -> None:
    first = entry.keys[0].name
    typo = first[:-1] + ("z" if first[-1] != "z" else "y")
    data = tomllib.loads(_examples())
    where = data if not entry.name else data[entry.name]
    if entry.array:
        where = where[0]
    where[typo] = 1
    name = f"{entry.name}[0].{typo}" if entry.array else ".".join(filter(None, [entry.name, typo]))
    with pytest.raises(
        SpecError, match=rf"\[{re.escape(name)}\] unknown key \(did you mean '{first}'\?\)"
    ):
        parse_spec(data, source="s.toml")


def test_the_indexed_problems_example_is_an_indexed_problem_and_its_keys_are_checked() -> None:
    data = tomllib.loads(table("problem", "indexed").example)
    assert isinstance(parse_spec(data, source="i.toml").problem, IndexedProblem)
    data["problem"]["boundry"] = "periodic"
    with pytest.raises(SpecError, match=r"did you mean 'boundary'"):
        parse_spec(data, source="i.toml")


def test_the_schemas_rule_names_are_the_registry() -> None:
    assert RULE_NAMES == tuple(REGISTRY)
    assert table("rules").keys[0].allowed == RULE_NAMES


def test_the_documented_defaults_are_the_loaders() -> None:
    spec = parse_spec(MINIMAL)
    assert str(spec.steps) == next(k.default for k in table("run").keys if k.name == "steps")
    assert spec.title == "problem" and spec.description == ""


def test_every_key_of_the_shipped_specs_is_in_the_schema() -> None:
    specs = sorted((ROOT / "reports").rglob("*.toml"))
    assert len(specs) > 30
    for path in specs:
        data = tomllib.loads(path.read_text())
        assert set(data) <= keys_of(""), path
        for entry in SCHEMA:
            if entry.name and not entry.open and not entry.variant and entry.name in data:
                variant = "indexed" if is_indexed(data["problem"]["inputs"]) else ""
                rows = data[entry.name] if entry.array else [data[entry.name]]
                keys = keys_of(entry.name, variant if entry.name in ("problem", "study") else "")
                assert all(set(row) <= keys for row in rows), (path, entry.name)
