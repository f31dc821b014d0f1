"""A heartbeat for long scripts: "<phase>: still working (N s since start)" on stderr whenever
nothing was written to stdout or stderr for `interval` seconds (a long compile, a long solve), so
that no step is silent for longer than that. Used by the experiments and benchmarks."""

from __future__ import annotations

import sys
import threading
import time


class Heartbeat:
    """Started on construction (it wraps sys.stdout and sys.stderr to see what is written);
    `phase` names what runs now; `close` stops it and restores the streams."""

    def __init__(self, interval: float = 5.0):
        self.interval, self.label = interval, "starting"
        self._last = self._started = time.monotonic()
        self._stop = threading.Event()
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Tracked(sys.stdout, self), _Tracked(sys.stderr, self)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def phase(self, label: str) -> None:
        self.label = label

    def _run(self):
        while not self._stop.wait(min(1.0, self.interval)):
            if time.monotonic() - self._last >= self.interval:
                sys.stderr.write(f"{self.label}: still working ({time.monotonic() - self._started:.0f} s since "
                                 f"start)\n")
                sys.stderr.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        sys.stdout, sys.stderr = self._streams


class _Tracked:
    """A stream that records when it was last written to."""

    def __init__(self, stream, beat: Heartbeat):
        self._stream, self._beat = stream, beat

    def write(self, text):
        self._beat._last = time.monotonic()
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)
