"""One fixed colour and marker per update rule, shared by every figure of a report.

A rule's base colour comes from its *name* (``gd``, ``newton``, ``ig``, ``pg``, ``hig``,
``bfgs``) through :data:`RULE_COLORS` (the Okabe–Ito palette, readable with the common colour
vision deficiencies), so GD is green in every report, as the update arrows of Fig. 20 of the
chapter are. When a spec runs the same rule twice (say GD with two step sizes), the later runs
get darker shades of the same hue and their own line style, so each *run* still keeps one
colour across all figures of the report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from matplotlib import rc_context
from matplotlib.colors import to_hex, to_rgb

__all__ = ["RULE_COLORS", "RULE_MARKERS", "RuleStyle", "rule_style", "rule_styles"]
__all__ += ["FIGURE_RC", "styled"]

P = ParamSpec("P")
R = TypeVar("R")

#: Font sizes for figures about as wide as the page (7.5 in, shown at 6.5 in).
FIGURE_RC: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "pdf.fonttype": 42,
}


def styled(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a figure function under :data:`FIGURE_RC` (no global matplotlib state changes)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with rc_context(cast(Any, FIGURE_RC)):
            return fn(*args, **kwargs)

    return wrapper


#: Base colour of each rule by name.
RULE_COLORS: dict[str, str] = {
    "gd": "#009E73",  # bluish green (the chapter's GD arrows are green)
    "newton": "#0072B2",  # blue
    "ig": "#E69F00",  # orange
    "pg": "#D55E00",  # vermillion
    "hig": "#CC79A7",  # reddish purple
    "bfgs": "#56B4E9",  # sky blue
}
#: Marker of each rule by name (a second cue besides colour).
RULE_MARKERS: dict[str, str] = {
    "gd": "o",
    "newton": "s",
    "ig": "^",
    "pg": "D",
    "hig": "v",
    "bfgs": "P",
}
_OTHER_COLOR = "#444444"
_OTHER_MARKER = "X"
_LINESTYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class RuleStyle:
    """How one rule run is drawn: ``color`` (hex), ``marker`` and ``linestyle``."""

    color: str
    marker: str
    linestyle: str = "-"

    def line_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`matplotlib.axes.Axes.plot`."""
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


def rule_style(name: str, repeat: int = 0) -> RuleStyle:
    """The style of the ``repeat``-th run (from 0) of the rule called ``name``.

    Examples
    --------
    >>> rule_style("gd")
    RuleStyle(color='#009e73', marker='o', linestyle='-')
    >>> rule_style("gd", 1).color != rule_style("gd").color
    True
    """
    r, g, b = to_rgb(RULE_COLORS.get(name, _OTHER_COLOR))
    shade = 1.0 - min(0.25 * repeat, 0.6)  # later runs: darker shades of the same hue
    color = to_hex((r * shade, g * shade, b * shade))
    marker = RULE_MARKERS.get(name, _OTHER_MARKER)
    return RuleStyle(color, marker, _LINESTYLES[repeat % len(_LINESTYLES)])


def rule_styles(names: Sequence[str]) -> list[RuleStyle]:
    """The styles of a spec's rule runs, in order (repeats of a name get distinct shades).

    Examples
    --------
    >>> [s.linestyle for s in rule_styles(["gd", "newton", "gd"])]
    ['-', '-', '--']
    """
    seen: dict[str, int] = {}
    styles = []
    for name in names:
        styles.append(rule_style(name, seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
    return styles
