"""Ctrl-C: one line saying what was done and what is left, exit 130, never a traceback.

A command that writes (``scan --fix``, ``scan --accounts``) stops at a safe point: the first SIGINT asks
the scan to stop after the role in hand, so no write is ever cut between its audit record and its
outcome; a second SIGINT stops at once (the write-ahead record is still there). Commands that only
read (``check``, the demo) stop where they are.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Final

EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended


class Interrupted(KeyboardInterrupt):
    """The run stopped at a safe point after a SIGINT."""


@dataclass
class Tally:
    """What the interrupted command had done, and what is left to do (said on the closing line)."""

    scanned: int = 0
    fixed: int = 0
    left: str = ""
    counted: bool = True  # False: the command counts no roles of the caller's (the demo)
    stop_requested: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, scanned: int = 0, fixed: int = 0) -> None:
        with self._lock:
            self.scanned += scanned
            self.fixed += fixed

    def checkpoint(self) -> None:
        """A safe point between roles: stop here if a SIGINT asked to."""
        if self.stop_requested:
            raise Interrupted

    def line(self) -> str:
        """``interrupted: N roles fixed, M scanned; <what is left>``."""
        if not self.counted:
            return f"interrupted: {self.left}"
        fixed = "1 role fixed" if self.fixed == 1 else f"{self.fixed} roles fixed"
        text = f"interrupted: {fixed}, {self.scanned} scanned"
        return f"{text}; {self.left}" if self.left else text


@contextmanager
def stop_between_roles(tally: Tally) -> Iterator[None]:
    """While inside, the first SIGINT asks to stop at the next safe point; the second stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask(_signum: int, _frame: FrameType | None) -> None:
        if tally.stop_requested:
            raise KeyboardInterrupt
        tally.stop_requested = True

    previous = signal.signal(signal.SIGINT, ask)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def counting(tally: Tally, progress: Callable[[int], None] | None = None) -> Callable[[int], None]:
    """A scan's progress callback that counts roles into ``tally`` and stops at the safe point it marks."""
    seen = [0]

    def step(count: int) -> None:
        # ``count`` is the roles of this scan call so far; the next page's call counts from 1 again.
        tally.add(scanned=count - seen[0] if count > seen[0] else count)
        seen[0] = count
        if progress is not None:
            progress(count)
        tally.checkpoint()

    return step


class _CountingIam:
    """The IAM gateway, counting the trust policies it wrote (each one audited before it was written)."""

    def __init__(self, iam: Any, tally: Tally) -> None:
        self._iam = iam
        self._tally = tally

    def update_assume_role_policy(self, name: str, document: Any) -> None:
        self._iam.update_assume_role_policy(name, document)
        self._tally.add(fixed=1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iam, name)


def counting_fixes(deps: Any, tally: Tally) -> Any:
    """``deps`` whose IAM gateway counts the roles fixed into ``tally``."""
    return replace(deps, iam=_CountingIam(deps.iam, tally))
