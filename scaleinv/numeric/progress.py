"""A progress bar for long runs: drawn on a terminal, silent everywhere else.

:func:`scaleinv.minimize` draws one when asked (``progress=True``; the CLI asks). The bar
appears only on a TTY, and only once a run has lasted :data:`DELAY` seconds, so short runs and
logs, pipes and CI output stay clean. Updating costs one clock read per step.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["ProgressBar", "DELAY"]

#: Seconds a run must last before its bar is drawn.
DELAY = 0.5
#: Seconds between redraws.
INTERVAL = 0.1


class ProgressBar:
    """``done / total`` steps as a bar on ``stream`` (default: standard error), TTY only.

    Use as a context manager and call :meth:`update` with the number of steps done; on exit a
    bar that was drawn is completed and ended with a newline.

    Examples
    --------
    >>> import io
    >>> with ProgressBar(100, "newton", io.StringIO()) as bar:  # not a terminal: silent
    ...     bar.update(50)
    >>> bar.enabled
    False
    """

    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, *, width: int = 30
    ) -> None:
        self.total, self.label, self.width = total, label, width
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = total > 0 and callable(isatty) and bool(isatty())
        self.drawn = False
        self._start = time.monotonic()
        self._next = self._start + DELAY

    def update(self, done: int, running: int | None = None) -> None:
        """Record that ``done`` steps are finished (and ``running`` samples still move);
        redraw at most every :data:`INTERVAL`."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now >= self._next:
            self._next = now + INTERVAL
            self._draw(done, now, running)

    def _draw(self, done: int, now: float, running: int | None = None) -> None:
        filled = self.width * done // self.total
        elapsed = now - self._start
        left = elapsed * (self.total - done) / done if done else float("nan")
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {done}/{self.total} steps, {elapsed:.1f} s"
            + ("" if running is None else f", {running} samples running")
            + (f", ~{left:.0f} s left" if done < self.total and done else "")
        )
        self.stream.flush()
        self.drawn = True

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.drawn:
            if kind is None:
                self._draw(self.total, time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
