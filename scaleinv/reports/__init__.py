"""The reports layer: LaTeX/PDF reports and figures (the command line is :mod:`scaleinv.cli`).

:func:`build` (from :mod:`scaleinv.reports.builder`) turns a spec into a report folder; it is
imported on first use, so that the command line does not load matplotlib for ``run``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build", "BuildResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from scaleinv.reports import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'scaleinv.reports' has no attribute {name!r}")
