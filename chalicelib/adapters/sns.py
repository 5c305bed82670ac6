"""The SNS channel: publishes rendered notices through the SNS gateway it is handed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from chalicelib.domain.models import Notice
from chalicelib.domain.render import SnsMessage, render_sns, render_sns_digest

# --------------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------------


class SnsPublisher(Protocol):
    """What ``SnsChannel`` needs from the SNS gateway (``chalicelib.adapters.aws.SnsGateway``)."""

    def publish_message(self, topic_arn: str, subject: str, message: str, attributes: Mapping[str, str]) -> str: ...


class SnsChannel:
    """Publishes rendered notices to one SNS topic through a publisher gateway."""

    def __init__(self, publisher: SnsPublisher, topic_arn: str, *, name: str = "sns") -> None:
        self.name = name
        self._publisher = publisher
        self._topic_arn = topic_arn

    def __repr__(self) -> str:
        return f"SnsChannel(name={self.name!r}, topic_arn={self._topic_arn!r})"

    def send(self, notice: Notice) -> str | None:
        """Publish one role's message; returns the SNS MessageId."""
        return self._publish(render_sns(notice))

    def send_digest(self, owner: str, notices: Sequence[Notice]) -> str | None:
        """Publish one owner's digest; returns the SNS MessageId."""
        return self._publish(render_sns_digest(owner, notices))

    def _publish(self, rendered: SnsMessage) -> str:
        return self._publisher.publish_message(self._topic_arn, rendered.subject, rendered.message, rendered.attributes)
