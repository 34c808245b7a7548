"""Sphinx directives that render reference pages from the code, so they cannot drift from it.

- ``spec-reference``: every table and key of :data:`scaleinv.symbolic.spec_schema.SCHEMA`,
  the schema the spec loader checks keys against.
- ``cli-reference``: every command of the argument parser (:func:`cli_parser`).
- ``shipped-spec NAME``: a shipped spec's title, description, text (included from
  ``reports/NAME.toml``) and its report's first page (``docs/_static/reports/NAME.png``, made
  by ``docs/make_report_pages.py``).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from scaleinv.symbolic.spec_schema import SCHEMA, Table

ROOT = Path(__file__).resolve().parents[2]
logger = logging.getLogger(__name__)


def cli_parser() -> argparse.ArgumentParser:
    """The ``scaleinv`` argument parser (the one place the docs import it from)."""
    from scaleinv.cli.main import build_parser

    return build_parser()


def _plain(text: str) -> str:
    """``text`` as reStructuredText that shows it literally (no inline markup)."""
    for char in "\\*`|_":
        text = text.replace(char, "\\" + char)
    return text


def _cell(text: str) -> str:
    return text.replace("\n", " ") or "—"


def spec_reference_rst(tables: tuple[Table, ...] = SCHEMA) -> list[str]:
    """reStructuredText of every table of ``tables``: description, keys, example."""
    lines: list[str] = []
    for table in tables:
        title = "Top level" if not table.name else f"[[{table.name}]]" if table.array else (
            f"[{table.name}]"
        )  # fmt: skip
        anchor = table.name or "top"
        if table.variant:
            title, anchor = f"{title} of an {table.variant} problem", f"{anchor}-{table.variant}"
        lines += [f".. _spec-{anchor}:", "", title, "-" * len(title), ""]
        lines += [table.description, ""]
        if table.required:
            lines += ["This table is required.", ""]
        if table.open:
            more = "Besides the keys below, its keys" if table.keys else "Its keys"
            lines += [f"{more} are names the spec itself defines.", ""]
        if table.keys:
            lines += [".. list-table::", "   :header-rows: 1", "   :widths: 14 18 14 54", ""]
            lines += ["   * - key", "     - type", "     - default", "     - meaning"]
            for key in table.keys:
                default = "required" if key.required else key.default
                meaning = key.description
                if key.allowed:
                    meaning += " One of: " + ", ".join(f'``"{v}"``' for v in key.allowed) + "."
                lines += [f"   * - ``{key.name}``", f"     - {_cell(key.type)}"]
                lines += [f"     - {_cell(default)}", f"     - {_cell(meaning)}"]
            lines.append("")
        lines += ["Example:", "", ".. code-block:: toml", ""]
        lines += [f"   {line}" if line else "" for line in table.example.splitlines()]
        lines.append("")
    return lines


def cli_reference_rst(parser: argparse.ArgumentParser) -> list[str]:
    """reStructuredText of ``parser``'s help and of every subcommand's full ``--help``."""
    lines = [parser.description or "", ""]
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        helps = {c.dest: c.help for c in action._choices_actions}
        for name, sub in action.choices.items():
            title = f"scaleinv {name}"
            lines += [f".. _cli-{name}:", "", title, "-" * len(title), ""]
            summary = helps.get(name) or ""
            lines += [summary[:1].upper() + summary[1:] + ".", "", ".. code-block:: text", ""]
            lines += [f"   {line}" if line else "" for line in sub.format_help().splitlines()]
            lines.append("")
    return lines


class _Rendered(SphinxDirective):
    def render(self, lines: list[str]) -> list[nodes.Node]:
        """The nodes of generated reStructuredText (its titles become sections)."""
        section = nodes.section()
        section.document = self.state.document
        source = StringList(lines, source=self.get_source_info()[0])
        self.state.nested_parse(source, 0, section, match_titles=True)
        return list(section.children)


class SpecReference(_Rendered):
    """``.. spec-reference::``: the spec format, from the schema."""

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(ROOT / "scaleinv" / "symbolic" / "spec_schema.py"))
        return self.render(spec_reference_rst())


class CliReference(_Rendered):
    """``.. cli-reference::``: every command's help, from the parser."""

    def run(self) -> list[nodes.Node]:
        return self.render(cli_reference_rst(cli_parser()))


class ShippedSpec(_Rendered):
    """``.. shipped-spec:: NAME``: one spec of ``reports/`` with its report's first page."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        path = ROOT / "reports" / f"{name}.toml"
        self.env.note_dependency(str(path))
        data = tomllib.loads(path.read_text())
        title = data.get("title", name)
        description = _plain(" ".join(data.get("description", "").split()))
        heading = _plain(title)
        lines = [heading, "=" * len(heading), "", description, ""]
        lines += [
            f"``scaleinv report reports/{name}.toml`` builds its report; the first page:",
            "",
            f".. image:: /_static/reports/{name}.png",
            f"   :alt: The first page of the report of {name}.toml",
            "   :width: 90%",
            "",
            f"The spec, ``reports/{name}.toml``:",
            "",
            f".. literalinclude:: /../reports/{name}.toml",
            "   :language: toml",
            "",
        ]
        return self.render(lines)


def _check_every_spec_has_a_page(app: Sphinx) -> None:
    """A spec shipped in ``reports/`` without its page in ``docs/specs/`` fails the build."""
    pages = {p.stem for p in (ROOT / "docs" / "specs").glob("*.md")}
    for spec in sorted((ROOT / "reports").glob("*.toml")):
        if spec.stem not in pages:
            logger.warning("reports/%s has no page docs/specs/%s.md", spec.name, spec.stem)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _check_every_spec_has_a_page)
    app.add_directive("spec-reference", SpecReference)
    app.add_directive("cli-reference", CliReference)
    app.add_directive("shipped-spec", ShippedSpec)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
