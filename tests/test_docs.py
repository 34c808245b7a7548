"""The documentation: CI checks it, every shipped spec has its page, and the generated reference
pages cover every key of the spec schema and every command of the parser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

import pytest

from scaleinv.symbolic.spec_schema import SCHEMA

ROOT = Path(__file__).resolve().parents[1]


def _ext() -> ModuleType:
    """The docs' Sphinx extension (it needs scaleinv[docs], which CI installs)."""
    pytest.importorskip("sphinx")
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import scaleinv_docs
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    return scaleinv_docs


def test_ci_lints_type_checks_and_builds_the_docs_before_the_tests() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(command))
        for command in ("ruff check", "mypy", "python -m sphinx -W", "pip install -e '.[test]'")
    ]
    assert order == sorted(order)


def test_every_shipped_spec_has_a_page_and_a_picture_of_its_report() -> None:
    specs = sorted(p.stem for p in (ROOT / "reports").glob("*.toml"))
    assert specs
    for name in specs:
        page = (ROOT / "docs" / "specs" / f"{name}.md").read_text()
        assert f".. shipped-spec:: {name}" in page
        assert (ROOT / "docs" / "_static" / "reports" / f"{name}.png").stat().st_size > 10_000
        assert name in (ROOT / "docs" / "specs" / "index.md").read_text()


def test_the_spec_reference_shows_every_table_and_key_of_the_schema() -> None:
    text = "\n".join(_ext().spec_reference_rst())
    for table in SCHEMA:
        title = f"[[{table.name}]]" if table.array else f"[{table.name}]"
        assert not table.name or f"\n{title}\n" in text
        for key in table.keys:
            assert f"``{key.name}``" in text
            assert all(f'``"{value}"``' in text for value in key.allowed)


def test_the_cli_reference_shows_every_commands_help() -> None:
    ext = _ext()
    parser = ext.cli_parser()
    text = "\n".join(ext.cli_reference_rst(parser))
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "derive", "export", "verify", "report", "study"} <= set(commands)
    for name, sub in commands.items():
        assert f"\nscaleinv {name}\n" in text
        options = [o for action in sub._actions for o in action.option_strings]
        assert options and all(o in text for o in options)
