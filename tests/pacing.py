"""botocore's adaptive rate limiter on a virtual clock: retries and pacing run for real, nothing sleeps."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.retries import bucket, standard


class _VirtualCondition:
    """The token bucket's condition variable, whose waits move the virtual clock instead of sleeping."""

    def __init__(self, inner: threading.Condition, pacing: VirtualPacing) -> None:
        self._inner = inner
        self._pacing = pacing

    def __enter__(self) -> bool:
        return self._inner.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        self._pacing.waited(timeout or 0.0)
        return True

    def notify(self, n: int = 1) -> None:
        self._inner.notify(n)


class VirtualPacing:
    """botocore's adaptive rate limiter, unchanged but on a virtual clock: its waits are recorded, not slept.

    Install before the clients are made: adaptive mode builds its clock and token bucket with the client.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.waits: list[float] = []
        self.acquired = 0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.offset

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self.offset += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> VirtualPacing:
        pacing = self

        class Clock(bucket.Clock):
            def current_time(self) -> float:
                return pacing.now()

            def sleep(self, amount: float) -> None:
                pacing.waited(amount)

        class TokenBucket(bucket.TokenBucket):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                inner: Any = getattr(self, "_new_fill_rate_condition")  # noqa: B009 (botocore's private, untyped)
                setattr(self, "_new_fill_rate_condition", _VirtualCondition(inner, pacing))  # noqa: B010

            def acquire(self, amount: int = 1, block: bool = True) -> bool:
                with pacing._lock:
                    pacing.acquired += 1
                return bool(super().acquire(amount, block))

        monkeypatch.setattr(bucket, "Clock", Clock)
        monkeypatch.setattr(bucket, "TokenBucket", TokenBucket)
        return self

    @property
    def paced_seconds(self) -> float:
        return sum(self.waits)


def record_backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retries run for real, but the backoff it computes is recorded instead of slept."""
    delays: list[float] = []
    original = standard.ExponentialBackoff.delay_amount

    def record(self: standard.ExponentialBackoff, context: Any) -> float:
        delays.append(original(self, context))
        return 0.0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", record)
    return delays
