"""The Slack webhook URL is a bearer secret: prove it never reaches a log line, report or error."""

import io
import json
import logging
import uuid

import pytest
from aws_lambda_powertools import Logger

from chalicelib.adapters.slack import SlackChannel
from chalicelib.service.notifier import DeliveryStatus, InMemoryLedger, Notifier

pytestmark = pytest.mark.e2e


def _everything_logged(records):
    """Each record's message, arguments, extras and formatted exception, as one string."""
    formatter = logging.Formatter()
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.extend(repr(value) for value in vars(record).values())
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture(params=["http-500", "connection-refused"])
def failing_webhook(request, slack, refused_url):
    """A webhook URL that fails: Slack answering 500 (echoing the path), or nobody listening."""
    if request.param == "http-500":
        slack.script(*[(500, {}, b"upstream failure on {path}")] * 10)
        return slack.url
    return refused_url


def test_caplog_never_sees_the_webhook_url(failing_webhook, secret, sleep, metrics, make_notice, caplog):
    # Given a standard logger and a Slack webhook that keeps failing
    logger = logging.getLogger("deputy-guard.tests.secrets")
    channel = SlackChannel(lambda: failing_webhook, sleep=sleep, max_attempts=3)
    notifier = Notifier([channel], ledger=InMemoryLedger(), logger=logger, metrics=metrics)
    # When a notice and a digest are sent, with every logger in the process captured at DEBUG
    with caplog.at_level(logging.DEBUG):
        report = notifier.notify(make_notice())
        digest = notifier.notify_digest("team", [make_notice("other")])
    # Then the failure is logged and counted, and the secret is nowhere: not in logs, reports or reprs
    assert report.status is DeliveryStatus.FAILED
    assert digest.status is DeliveryStatus.FAILED
    assert metrics.counts["NotificationFailed"] == 2
    logged = _everything_logged(caplog.records)
    assert "notification failed" in logged
    assert secret not in logged
    assert secret not in json.dumps([report.to_dict(), digest.to_dict()])
    assert secret not in repr(report) + repr(channel) + repr(notifier)


def test_powertools_json_logger_never_writes_the_webhook_url(failing_webhook, secret, sleep, metrics, make_notice):
    # Given a Powertools Logger writing JSON lines to a buffer, as in Lambda
    buffer = io.StringIO()
    logger = Logger(
        service=f"deputy-guard-{uuid.uuid4().hex}", level="DEBUG", logger_handler=logging.StreamHandler(buffer)
    )
    channel = SlackChannel(lambda: failing_webhook, sleep=sleep, max_attempts=2)
    notifier = Notifier([channel], ledger=InMemoryLedger(), logger=logger, metrics=metrics)
    # When Slack fails
    report = notifier.notify(make_notice())
    # Then the structured failure line is there, naming the channel and the error, without the URL
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    failures = [line for line in lines if line["message"] == "notification failed"]
    assert report.status is DeliveryStatus.FAILED
    assert len(failures) == 1
    assert failures[0]["channel"] == "slack"
    assert failures[0]["role_arn"] == make_notice().role_arn
    assert failures[0]["error"].startswith("Slack webhook failed after 2 attempts")
    assert secret not in buffer.getvalue()


def test_successful_sends_do_not_log_the_url_either(slack, secret, sleep, metrics, make_notice, caplog):
    channel = SlackChannel(lambda: slack.url, sleep=sleep)
    notifier = Notifier([channel], ledger=InMemoryLedger(), logger=logging.getLogger("dg.ok"), metrics=metrics)
    with caplog.at_level(logging.DEBUG):
        assert notifier.notify(make_notice()).status is DeliveryStatus.SENT
    assert "notification sent" in caplog.text
    assert secret not in _everything_logged(caplog.records)
