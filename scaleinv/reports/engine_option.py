"""The ``--engine`` option of ``run`` and ``study`` and the line that says which engine ran."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from scaleinv.numeric.engines import ENGINES

__all__ = ["add_engine_option", "engine_line"]


def add_engine_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--engine {auto,numpy,jax}`` (default ``auto``) to ``parser``."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="what runs the loop: numpy, jax (one compiled program per rule; rules it cannot "
        "run fall back to numpy), or auto (jax where installed and the run is large; default)",
    )


def engine_line(ran: Iterable[tuple[str, str]]) -> str:
    """One short line: the engine of each rule, e.g. ``engine: jax (GD, PG); numpy (BFGS)``.

    Examples
    --------
    >>> engine_line([("GD", "jax"), ("BFGS", "numpy"), ("PG", "jax")])
    'engine: jax (GD, PG); numpy (BFGS)'
    """
    by_engine: dict[str, list[str]] = {}
    for label, engine in ran:
        by_engine.setdefault(engine, []).append(label)
    return "engine: " + "; ".join(f"{e} ({', '.join(labels)})" for e, labels in by_engine.items())
