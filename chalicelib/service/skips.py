"""The answer to an event that needs no work: one log line, one metric (service and cold path alike)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.events import Skip
from chalicelib.service.deps import Logger, Metrics


def report_skip(skip: Skip, logger: Logger, metrics: Metrics) -> dict[str, Any]:
    """Log and count a skipped event, and say why it was skipped."""
    metrics.add_metric("EventsSkipped")
    logger.info(
        "event skipped", extra={"reason": skip.reason, "event_id": skip.event_id, "event_name": skip.event_name}
    )
    return {"status": "skipped", "reason": skip.reason, "event_id": skip.event_id}
