"""Progress lines for long work (indexing, descriptor passes), on stderr, rate-limited."""

from __future__ import annotations

import sys
import time


class Progress:
    """``Progress("indexing", total)``; call ``update(done)``; ``close()`` prints the final line.

    On a terminal the line rewrites itself; otherwise (logs, CI) a line every ``every`` seconds.
    """

    def __init__(self, label: str, total: int, unit: str = "", enabled: bool = True, every: float = 2.0) -> None:
        self.label, self.total, self.unit = label, int(total), unit
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every = 0.2 if self.tty else every
        self.start = self._last = time.perf_counter()
        self.done = 0
        self._printed = ""

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.label}: {self.done}/{self.total}{self.unit} ({pct:.0f}%, {elapsed:.1f} s)"

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = int(total)
        self.done = int(done)
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.every:
            self._last = now
            self._printed = f"{self.done}/{self.total}"
            sys.stderr.write(("\r" if self.tty else "") + self._line() + ("" if self.tty else "\n"))
            sys.stderr.flush()

    def close(self) -> None:
        """The final line (unless a log already got this very count)."""
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r" + self._line() + "\n")
        elif self._printed != f"{self.done}/{self.total}":
            sys.stderr.write(self._line() + "\n")
        sys.stderr.flush()
