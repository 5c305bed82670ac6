"""Ctrl-C: one line saying what was done and what is left, exit 130, never a traceback.

A command that writes (``scan --fix``, and ``scan --accounts``, whose accounts run on threads) stops at a
safe point: the first SIGINT asks the scan to stop before its next write's audit record, so no write is
ever cut between its record and its outcome; a second SIGINT stops at once (the write-ahead record is still
there). Commands that only read (a dry-run ``scan``, ``check``, the demo) stop where they are.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Final

from deputy_guard.report import plural

EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended
DECISION: Final = "decision"  # the message of the one log record the bot writes per role decided


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
        text = f"interrupted: {plural(self.fixed, 'role')} fixed, {self.scanned} scanned"
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


class Counter:
    """A scan call's progress callback: shows progress and marks a safe point to stop (roles are counted
    by their decision records)."""

    def __init__(self, tally: Tally, progress: Callable[[int], None] | None = None) -> None:
        self._tally = tally
        self._progress = progress

    def __call__(self, count: int) -> None:
        if self._progress is not None:
            self._progress(count)
        self._tally.checkpoint()


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


class _StoppingAudit:
    """The audit trail, with a safe point before each write's record: nothing of that role is written yet."""

    def __init__(self, audit: Any, tally: Tally) -> None:
        self._audit = audit
        self._tally = tally
        self._thread = threading.get_ident()  # the scan's own thread: never stop a helper thread

    def record_intent(self, **fields: Any) -> Any:
        if threading.get_ident() == self._thread:
            self._tally.checkpoint()
        return self._audit.record_intent(**fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._audit, name)


class _CountingLogger:
    """The logger, counting the decision records: one per role decided, logged or not (the scan's count)."""

    def __init__(self, logger: Any, tally: Tally) -> None:
        self._logger = logger
        self._tally = tally

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> Any:
        self._count(msg)
        return self._logger.debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any:
        self._count(msg)
        return self._logger.info(msg, *args, **kwargs)

    def _count(self, msg: str) -> None:
        if msg == DECISION:
            self._tally.add(scanned=1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def watched(deps: Any, tally: Tally) -> Any:
    """``deps`` that count roles decided and fixed into ``tally``, and stop before a write when it asks to."""
    return replace(
        deps,
        iam=_CountingIam(deps.iam, tally),
        audit=_StoppingAudit(deps.audit, tally),
        logger=_CountingLogger(deps.logger, tally),
    )
