"""The notifier: fans a notice out to its channels once per dedup window, and reports what happened."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.domain.models import Notice
from chalicelib.domain.render import DEFAULT_WINDOW_SECONDS, NotificationError, notice_fingerprint, one_line
from chalicelib.service.deps import Logger, Metrics

# --------------------------------------------------------------------------------------------------
# Dedup ledger
# --------------------------------------------------------------------------------------------------


class Channel(Protocol):
    """A place owners hear from deputy-guard. ``send*`` return a receipt (e.g. an SNS MessageId) or None."""

    name: str

    def send(self, notice: Notice) -> str | None: ...

    def send_digest(self, owner: str, notices: Sequence[Notice]) -> str | None: ...


class Ledger(Protocol):
    """Remembers what was announced, so the same news is not repeated within a window."""

    def claim(self, key: str, ttl_seconds: int) -> bool:
        """Record ``key`` for ``ttl_seconds``; False when it is already recorded and not yet expired."""
        ...

    def release(self, key: str) -> None:
        """Forget ``key`` (used when no channel carried the news, so the next attempt is not muted)."""
        ...


class Buttons(Protocol):
    """Gives notices their Slack approval buttons (chalicelib.service.approvals.ButtonMinter)."""

    def for_notice(self, notice: Notice) -> Notice: ...

    def for_digest(self, notices: Sequence[Notice]) -> list[Notice]: ...


class InMemoryLedger:
    """A process-local ``Ledger`` for tests, the CLI and the demo; ``clock`` returns epoch seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, ttl_seconds: int) -> bool:
        """Claim ``key`` unless an unexpired claim exists."""
        now = self._clock()
        with self._lock:
            expires = self._expiry.get(key)
            if expires is not None and expires > now:
                return False
            self._expiry[key] = now + ttl_seconds
            return True

    def release(self, key: str) -> None:
        """Drop any claim on ``key``."""
        with self._lock:
            self._expiry.pop(key, None)


# --------------------------------------------------------------------------------------------------
# Notifier
# --------------------------------------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    """The overall outcome of one ``notify``/``notify_digest`` call."""

    SENT = "sent"  # every channel took it
    PARTIAL = "partial"  # some channels took it, some failed
    FAILED = "failed"  # no channel took it
    SUPPRESSED = "suppressed"  # already announced within the window; nothing sent
    SKIPPED = "skipped"  # no channel configured, or nothing to send


@dataclass(frozen=True)
class ChannelResult:
    """One channel's outcome; ``error`` is sanitised text safe to log and return."""

    channel: str
    ok: bool
    message_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": "ok" if self.ok else "failed",
            "message_id": self.message_id,
            "error": self.error,
        }


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one message: per-channel results, the roles it carried, the roles held back."""

    results: tuple[ChannelResult, ...] = ()
    roles: tuple[str, ...] = ()
    suppressed: tuple[str, ...] = ()

    @property
    def delivered(self) -> bool:
        """True when at least one channel carried the message."""
        return any(r.ok for r in self.results)

    @property
    def status(self) -> DeliveryStatus:
        if not self.results:
            return DeliveryStatus.SUPPRESSED if self.suppressed and not self.roles else DeliveryStatus.SKIPPED
        if all(r.ok for r in self.results):
            return DeliveryStatus.SENT
        return DeliveryStatus.PARTIAL if self.delivered else DeliveryStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "channels": [r.to_dict() for r in self.results],
            "roles": list(self.roles),
            "suppressed": list(self.suppressed),
        }


def _error_text(exc: BaseException) -> str:
    """One line naming the failure; NotificationError text is already sanitised by its channel."""
    text = str(exc) if isinstance(exc, NotificationError) else f"{type(exc).__name__}: {exc}"
    return one_line(text)[:300] or type(exc).__name__


class Notifier:
    """Fans a notice out to every channel, once per dedup window, and never raises to its caller.

    A channel that fails is logged and counted (``NotificationFailed``) while the others still send;
    if none carries the news the ledger claim is released so the next event or sweep tries again.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        ledger: Ledger,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        logger: Logger,
        metrics: Metrics,
        buttons: Buttons | None = None,
    ) -> None:
        if window_seconds < 0:
            raise ValueError("window_seconds must not be negative")
        self._channels = tuple(channels)
        self._ledger = ledger
        self._window = window_seconds
        self._logger = logger
        self._metrics = metrics
        # Minted only for news that is sent: a suppressed notice leaves no tokens behind.
        self._buttons = buttons

    def notify(self, notice: Notice) -> DeliveryReport:
        """Send one role's notice on every channel unless it was announced within the window."""
        if not self._channels:
            self._logger.warning("no notification channel configured", extra=_notice_fields(notice))
            return DeliveryReport()
        key = notice_fingerprint(notice)
        claimed = self._claim(key, notice)
        if claimed is False:
            self._suppressed([notice])
            return DeliveryReport(suppressed=(notice.role_arn,))
        if self._buttons is not None:
            notice = self._buttons.for_notice(notice)
        results = tuple(
            self._deliver(channel, lambda c: c.send(notice), {"kind": "role", **_notice_fields(notice)})
            for channel in self._channels
        )
        report = DeliveryReport(results=results, roles=(notice.role_arn,))
        self._settle(report, [key] if claimed else [], _notice_fields(notice))
        return report

    def notify_digest(self, owner: str, notices: Sequence[Notice]) -> DeliveryReport:
        """Send one digest for ``owner`` with the notices not announced within the window; none left, none sent."""
        if not self._channels:
            self._logger.warning("no notification channel configured", extra={"owner": owner})
            return DeliveryReport()
        kept: list[Notice] = []
        held: list[Notice] = []
        claimed_keys: list[str] = []
        for notice in notices:
            key = notice_fingerprint(notice)
            claimed = self._claim(key, notice)
            if claimed is False:
                held.append(notice)
                continue
            kept.append(notice)
            if claimed:
                claimed_keys.append(key)
        if held:
            self._suppressed(held)
        suppressed = tuple(n.role_arn for n in held)
        if not kept:
            return DeliveryReport(suppressed=suppressed)
        if self._buttons is not None:
            kept = self._buttons.for_digest(kept)
        fields = {"kind": "digest", "owner": owner, "roles": len(kept)}
        results = tuple(
            self._deliver(channel, lambda c: c.send_digest(owner, kept), fields) for channel in self._channels
        )
        report = DeliveryReport(results=results, roles=tuple(n.role_arn for n in kept), suppressed=suppressed)
        self._settle(report, claimed_keys, {"owner": owner, "roles": len(kept)})
        return report

    def _claim(self, key: str, notice: Notice) -> bool | None:
        """True: claimed; False: announced within the window; None: ledger down, send anyway."""
        try:
            return self._ledger.claim(key, self._window)
        except Exception as exc:  # noqa: BLE001 - better a duplicate than silence, whatever the ledger raised
            self._metrics.add_metric(name="NotificationLedgerError", value=1)
            self._logger.warning(
                "notification ledger unavailable; sending without dedup",
                extra={"error": _error_text(exc), "dedup_key": key, **_notice_fields(notice)},
            )
            return None

    def _deliver(
        self, channel: Channel, send: Callable[[Channel], str | None], fields: Mapping[str, object]
    ) -> ChannelResult:
        try:
            receipt = send(channel)
        except Exception as exc:  # noqa: BLE001 - a failed notification must never block or undo a fix
            error = _error_text(exc)
            self._metrics.add_metric(name="NotificationFailed", value=1)
            self._logger.warning(
                "notification failed",
                extra={**fields, "channel": channel.name, "error": error, "error_type": type(exc).__name__},
            )
            return ChannelResult(channel=channel.name, ok=False, error=error)
        self._metrics.add_metric(name="NotificationSent", value=1)
        self._logger.info("notification sent", extra={**fields, "channel": channel.name, "message_id": receipt})
        return ChannelResult(channel=channel.name, ok=True, message_id=receipt)

    def _settle(self, report: DeliveryReport, claimed_keys: Sequence[str], fields: Mapping[str, object]) -> None:
        if report.delivered:
            return
        self._metrics.add_metric(name="NotificationUndelivered", value=1)
        self._logger.error(
            "notification reached no channel",
            extra={**fields, "channels": [r.to_dict() for r in report.results]},
        )
        # Nobody heard it, so it must not count as announced: the next event or sweep tries again.
        for key in claimed_keys:
            try:
                self._ledger.release(key)
            except Exception as exc:  # noqa: BLE001 - the worst case is one muted window, say so and go on
                self._metrics.add_metric(name="NotificationLedgerError", value=1)
                self._logger.warning(
                    "notification ledger release failed", extra={"error": _error_text(exc), "dedup_key": key}
                )

    def _suppressed(self, notices: Sequence[Notice]) -> None:
        self._metrics.add_metric(name="NotificationSuppressed", value=len(notices))
        for notice in notices:
            self._logger.info(
                "notification suppressed: announced within the dedup window",
                extra={**_notice_fields(notice), "window_seconds": self._window},
            )


def _notice_fields(notice: Notice) -> dict[str, object]:
    return {
        "role_arn": notice.role_arn,
        "verdict": notice.verdict.value,
        "action": notice.action.value,
        "owner": notice.owner,
        "event_id": notice.event_id,
    }
