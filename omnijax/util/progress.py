"""A small progress line with rate and ETA, printed to stderr.

On a terminal it redraws one line; elsewhere (CI logs, files) it prints a line at most
every `min_interval` seconds and at the end, so logs stay readable.
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, label: str, total: int, unit: str, enabled: bool = True,
                 min_interval: float = 5.0, stream=None):
        self.label, self.total, self.unit, self.enabled = label, total, unit, enabled
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._start = time.perf_counter()
        self._start_done = None
        self._last_print = -float("inf")
        self._interactive = getattr(self.stream, "isatty", lambda: False)()

    def update(self, done: int, note: str = "") -> None:
        """Report `done` of `total` units (after resuming, the rate counts only this session's work)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._start_done is None:
            self._start_done, self._start = done, now
            return self._print(done, now, note, rate=None)
        if not self._interactive and done < self.total and now - self._last_print < self.min_interval:
            return
        elapsed = now - self._start
        rate = (done - self._start_done) / elapsed if elapsed > 0 else None
        self._print(done, now, note, rate)

    def _print(self, done, now, note, rate):
        self._last_print = now
        width = 20
        filled = int(width * done / max(self.total, 1))
        parts = [f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {self.unit}"]
        if rate:
            parts.append(f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2g} {self.unit}/s")
            parts.append(f"ETA {_clock((self.total - done) / rate)}")
        if note:
            parts.append(note)
        line = " | ".join(parts)
        end = "\n" if (not self._interactive or done >= self.total) else ""
        self.stream.write(("\r" if self._interactive else "") + line + end)
        self.stream.flush()
