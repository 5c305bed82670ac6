"""Temporary credentials per member role, cached until shortly before they expire (no boto3 here).

``CredentialCache.get(role_arn)`` returns cached credentials while they have more than ``refresh_margin``
left, and otherwise fetches new ones (sts:AssumeRole, through the function it is handed). One lock per
role: concurrent callers for the same account wait for a single AssumeRole, while other accounts go on
in parallel. Failures are not cached: the next caller asks again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Refresh this long before expiry: an IAM call started with the old credentials still finishes in time.
REFRESH_MARGIN = timedelta(minutes=5)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TemporaryCredentials:
    """What sts:AssumeRole returns; ``expiration`` is timezone-aware (UTC)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime

    def metadata(self) -> dict[str, Any]:
        """The form botocore's RefreshableCredentials reads."""
        return {
            "access_key": self.access_key_id,
            "secret_key": self.secret_access_key,
            "token": self.session_token,
            "expiry_time": self.expiration.isoformat(),
        }


class CredentialCache:
    """Thread-safe cache of temporary credentials keyed by role ARN."""

    def __init__(
        self,
        fetch: Callable[[str], TemporaryCredentials],
        *,
        refresh_margin: timedelta = REFRESH_MARGIN,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._cached: dict[str, TemporaryCredentials] = {}

    @property
    def refresh_margin(self) -> timedelta:
        return self._margin

    def get(self, role_arn: str) -> TemporaryCredentials:
        """Fresh credentials for ``role_arn``: cached ones with more than the margin left, else new ones."""
        with self._lock:
            lock = self._locks.setdefault(role_arn, threading.Lock())
        with lock:
            current = self._cached.get(role_arn)
            if current is not None and current.expiration - self._clock() > self._margin:
                return current
            fresh = self._fetch(role_arn)
            self._cached[role_arn] = fresh
            return fresh

    def forget(self, role_arn: str | None = None) -> None:
        """Drop one role's credentials (or all): the next get() fetches again."""
        with self._lock:
            if role_arn is None:
                self._cached.clear()
            else:
                self._cached.pop(role_arn, None)
