"""Progress of a long scan on stderr, only when stderr is a terminal (never in a pipe, a file or CI logs)."""

from __future__ import annotations

import time
from typing import Final, TextIO

# At most this many updates a second: a terminal redraw per role would slow a 10,000-role scan.
MIN_INTERVAL_SECONDS: Final = 0.1
_CLEAR: Final = "\r\x1b[K"


class Progress:
    """``scanned 1,200 roles…`` rewritten in place; a no-op unless ``stream`` is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self._last = 0.0
        self._shown = False

    def start(self, text: str) -> None:
        """Say what is starting (before the first role is in)."""
        self._write(f"{text}…")

    def __call__(self, count: int) -> None:
        """The number of roles evaluated so far (called by the scan as it goes)."""
        now = time.monotonic()
        if now - self._last >= MIN_INTERVAL_SECONDS:
            self._last = now
            self._write(f"scanned {count:,} roles…")

    def done(self) -> None:
        """Clear the progress line, so the report starts on a clean line."""
        if self.enabled and self._shown:
            self._stream.write(_CLEAR)
            self._stream.flush()
            self._shown = False

    def _write(self, text: str) -> None:
        if not self.enabled:
            return
        self._stream.write(_CLEAR + text)
        self._stream.flush()
        self._shown = True
