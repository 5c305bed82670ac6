"""Notifier: fan-out, the dedup window, digests, and failure isolation between channels."""

import json
import logging

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.slack import SlackChannel
from chalicelib.adapters.sns import SnsChannel
from chalicelib.domain.models import Action, Problem, ProblemCode, Verdict
from chalicelib.domain.render import DEFAULT_WINDOW_SECONDS, NotificationError, notice_fingerprint
from chalicelib.service.notifier import DeliveryStatus, InMemoryLedger, Notifier

DAY = 24 * 60 * 60
LOG = logging.getLogger("deputy-guard.tests.notifier")


class RecordingChannel:
    """An in-memory channel: records what it was asked to send, or fails when told to."""

    def __init__(self, name="recorder", fail_with=None):
        self.name = name
        self.fail_with = fail_with
        self.sent = []
        self.digests = []

    def send(self, notice):
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(notice)
        return f"{self.name}-{len(self.sent)}"

    def send_digest(self, owner, notices):
        if self.fail_with is not None:
            raise self.fail_with
        self.digests.append((owner, list(notices)))
        return f"{self.name}-digest-{len(self.digests)}"


class BrokenLedger:
    def claim(self, key, ttl_seconds):
        raise ConnectionError("DynamoDB endpoint unreachable")

    def release(self, key):
        raise ConnectionError("DynamoDB endpoint unreachable")


@pytest.fixture
def ledger(clock):
    return InMemoryLedger(clock)


def _notifier(channels, ledger, metrics, **kwargs):
    return Notifier(channels, ledger=ledger, logger=LOG, metrics=metrics, **kwargs)


# --- dedup window ------------------------------------------------------------------------------


def test_same_problem_is_not_announced_again_within_24_hours(ledger, clock, metrics, make_notice):
    # Given a notice already announced
    channel = RecordingChannel()
    notifier = _notifier([channel], ledger, metrics)
    assert notifier.notify(make_notice()).status is DeliveryStatus.SENT
    # When the same role comes back with the same problem 23 hours later (a stack reverted the fix)
    clock.advance(23 * 3600)
    report = notifier.notify(make_notice(event_id="another-event", time="2025-01-16T09:20:30Z"))
    # Then it is suppressed, not sent, and reported as such
    assert report.status is DeliveryStatus.SUPPRESSED
    assert report.suppressed == (make_notice().role_arn,)
    assert report.results == ()
    assert len(channel.sent) == 1
    assert metrics.counts["NotificationSuppressed"] == 1


def test_same_problem_is_announced_again_after_the_window(ledger, clock, metrics, make_notice):
    channel = RecordingChannel()
    notifier = _notifier([channel], ledger, metrics)
    notifier.notify(make_notice())
    clock.advance(DEFAULT_WINDOW_SECONDS + 1)
    assert notifier.notify(make_notice()).status is DeliveryStatus.SENT
    assert len(channel.sent) == 2


def test_a_different_problem_on_the_same_role_is_news(ledger, clock, metrics, make_notice):
    channel = RecordingChannel()
    notifier = _notifier([channel], ledger, metrics)
    notifier.notify(make_notice())
    clock.advance(60)
    foreign = (Problem(ProblemCode.FOREIGN_ACCOUNT, 0, "pins account 444455556666"),)
    report = notifier.notify(make_notice(verdict=Verdict.NEEDS_REVIEW, action=Action.REVIEW, problems=foreign))
    assert report.status is DeliveryStatus.SENT
    assert len(channel.sent) == 2


def test_a_different_action_on_the_same_problem_is_news(ledger, metrics, make_notice):
    # A role first only reported (notify mode) and later fixed (enforce) must be announced both times
    channel = RecordingChannel()
    notifier = _notifier([channel], ledger, metrics)
    notifier.notify(make_notice(action=Action.NOTIFIED))
    assert notifier.notify(make_notice(action=Action.FIXED)).status is DeliveryStatus.SENT


def test_window_is_configurable(ledger, clock, metrics, make_notice):
    channel = RecordingChannel()
    notifier = _notifier([channel], ledger, metrics, window_seconds=3600)
    notifier.notify(make_notice())
    clock.advance(3601)
    assert notifier.notify(make_notice()).status is DeliveryStatus.SENT


def test_fingerprint_ignores_event_time_order_and_statement_index(make_notice):
    a = make_notice()
    b = make_notice(
        event_id="other",
        time="2030-01-01T00:00:00Z",
        problems=tuple(reversed([Problem(p.code, 3, "reworded") for p in a.problems])),
    )
    assert notice_fingerprint(a) == notice_fingerprint(b)
    assert notice_fingerprint(a) != notice_fingerprint(make_notice("OtherRole"))


# --- digests -----------------------------------------------------------------------------------


def test_digest_drops_roles_announced_within_the_window(ledger, metrics, make_notice):
    # Given one of three roles was announced this morning by an event
    channel = RecordingChannel()
    notifier = _notifier([channel], ledger, metrics)
    notifier.notify(make_notice("b"))
    # When the nightly sweep sends the owner's digest
    report = notifier.notify_digest("team-payments", [make_notice("a"), make_notice("b"), make_notice("c")])
    # Then the digest carries only the two new roles
    [(owner, notices)] = channel.digests
    assert owner == "team-payments"
    assert [n.role_name for n in notices] == ["a", "c"]
    assert report.status is DeliveryStatus.SENT
    assert [arn.rsplit("/", 1)[1] for arn in report.roles] == ["a", "c"]
    assert [arn.rsplit("/", 1)[1] for arn in report.suppressed] == ["b"]


def test_digest_with_nothing_new_sends_nothing(ledger, metrics, make_notice):
    channel = RecordingChannel()
    notifier = _notifier([channel], ledger, metrics)
    notifier.notify_digest("team", [make_notice("a")])
    report = notifier.notify_digest("team", [make_notice("a")])
    assert report.status is DeliveryStatus.SUPPRESSED
    assert len(channel.digests) == 1


def test_digest_collapses_duplicates_in_one_batch(ledger, metrics, make_notice):
    channel = RecordingChannel()
    _notifier([channel], ledger, metrics).notify_digest("team", [make_notice("a"), make_notice("a")])
    assert [n.role_name for n in channel.digests[0][1]] == ["a"]


# --- failures ----------------------------------------------------------------------------------


def test_when_no_channel_delivers_the_claim_is_released_so_the_next_attempt_speaks(ledger, metrics, make_notice):
    # Given every channel failing
    broken = RecordingChannel("sns", fail_with=ConnectionError("endpoint unreachable"))
    notifier = _notifier([broken], ledger, metrics)
    first = notifier.notify(make_notice())
    # When the channel recovers and the same news comes again
    broken.fail_with = None
    second = notifier.notify(make_notice())
    # Then the first failure did not mute the second attempt
    assert first.status is DeliveryStatus.FAILED
    assert second.status is DeliveryStatus.SENT
    assert metrics.counts["NotificationUndelivered"] == 1


def test_failed_digest_releases_every_claim(ledger, metrics, make_notice):
    broken = RecordingChannel(fail_with=NotificationError("Slack webhook failed after 4 attempts: HTTP 500"))
    notifier = _notifier([broken], ledger, metrics)
    notifier.notify_digest("team", [make_notice("a"), make_notice("b")])
    broken.fail_with = None
    report = notifier.notify_digest("team", [make_notice("a"), make_notice("b")])
    assert report.status is DeliveryStatus.SENT
    assert len(report.roles) == 2


def test_ledger_down_means_send_anyway_and_say_so(metrics, make_notice, caplog):
    # Given the dedup store is unreachable
    channel = RecordingChannel()
    notifier = _notifier([channel], BrokenLedger(), metrics)
    # When a notice comes twice
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        first = notifier.notify(make_notice())
        second = notifier.notify(make_notice())
    # Then both are sent (better a duplicate than silence), logged and counted
    assert first.status is second.status is DeliveryStatus.SENT
    assert len(channel.sent) == 2
    assert metrics.counts["NotificationLedgerError"] == 2
    ledger_logs = [r for r in caplog.records if r.getMessage().startswith("notification ledger unavailable")]
    assert len(ledger_logs) == 2
    assert ledger_logs[0].error == "ConnectionError: DynamoDB endpoint unreachable"


def test_a_channel_failure_never_raises_and_the_other_channel_still_sends(ledger, metrics, make_notice, caplog):
    failing = RecordingChannel("sns", fail_with=RuntimeError("boom"))
    working = RecordingChannel("slack")
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        report = _notifier([failing, working], ledger, metrics).notify(make_notice())
    assert report.status is DeliveryStatus.PARTIAL
    assert [r.to_dict() for r in report.results] == [
        {"channel": "sns", "status": "failed", "message_id": None, "error": "RuntimeError: boom"},
        {"channel": "slack", "status": "ok", "message_id": "slack-1", "error": None},
    ]
    assert len(working.sent) == 1
    [failure] = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert failure.channel == "sns"
    assert failure.role_arn == make_notice().role_arn


def test_no_channels_is_a_logged_skip(ledger, metrics, make_notice, caplog):
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        report = _notifier([], ledger, metrics).notify(make_notice())
    assert report.status is DeliveryStatus.SKIPPED
    assert "no notification channel configured" in caplog.text


# --- real channels: Slack stand-in over HTTP, SNS in moto ---------------------------------------


class FailingPublisher:
    def publish_message(self, topic_arn, subject, message, attributes):
        raise ConnectionError("Could not connect to the endpoint URL")


@pytest.fixture
def sns_queue(aws_credentials, sns_publisher):
    """A moto topic with one SQS subscriber; yields (publisher, topic_arn, read_messages)."""
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic_arn = sns.create_topic(Name="deputy-guard")["TopicArn"]
        url = sqs.create_queue(QueueName="owners")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"}
        )

        def read():
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]

        yield sns_publisher(sns), topic_arn, read


@pytest.mark.e2e
def test_slack_down_sns_still_sent_metric_counted_no_exception(
    sns_queue, refused_url, sleep, ledger, metrics, make_notice, caplog
):
    # Given SNS works and the Slack webhook refuses connections
    publisher, topic_arn, read = sns_queue
    sns = SnsChannel(publisher, topic_arn)
    slack = SlackChannel(lambda: refused_url, sleep=sleep, max_attempts=2)
    notifier = Notifier([slack, sns], ledger=ledger, logger=LOG, metrics=metrics)
    # When a fix is announced
    with caplog.at_level(logging.INFO, logger=LOG.name):
        report = notifier.notify(make_notice())
    # Then the owners still hear it over SNS, the Slack failure is counted and logged, nothing is raised
    [body] = read()
    assert body["role_name"] == "OrdersStateMachineRole"
    assert report.status is DeliveryStatus.PARTIAL
    assert report.results[0].to_dict() == {
        "channel": "slack",
        "status": "failed",
        "message_id": None,
        "error": "Slack webhook failed after 2 attempts: connection failed (ConnectionRefusedError)",
    }
    assert report.results[1].ok and report.results[1].message_id
    assert metrics.counts == {"NotificationFailed": 1, "NotificationSent": 1}
    [failure] = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert failure.channel == "slack"


@pytest.mark.e2e
def test_sns_raising_slack_still_sent(slack, sleep, ledger, metrics, make_notice, block_kit):
    # Given SNS failing and Slack up
    sns = SnsChannel(FailingPublisher(), "arn:aws:sns:us-east-1:111122223333:deputy-guard")
    notifier = Notifier([sns, SlackChannel(lambda: slack.url, sleep=sleep)], ledger=ledger, logger=LOG, metrics=metrics)
    # When a fix is announced
    report = notifier.notify(make_notice())
    # Then Slack carries it and the SNS failure is in the report
    assert len(slack.requests) == 1
    block_kit(slack.requests[0].json())
    assert report.status is DeliveryStatus.PARTIAL
    assert report.results[0].error == "ConnectionError: Could not connect to the endpoint URL"
    assert metrics.counts["NotificationFailed"] == 1


@pytest.mark.e2e
def test_sns_gateway_error_is_isolated_and_slack_still_sent(
    sns_queue, sns_publisher, slack, sleep, ledger, metrics, make_notice
):
    # Given the real gateway pointed at a topic that does not exist (deleted, or a wrong setting)
    publisher, topic_arn, _ = sns_queue
    missing = topic_arn.replace(":deputy-guard", ":no-such-topic")
    notifier = Notifier(
        [SnsChannel(publisher, missing), SlackChannel(lambda: slack.url, sleep=sleep)],
        ledger=ledger,
        logger=LOG,
        metrics=metrics,
    )
    # When a fix is announced
    report = notifier.notify(make_notice())
    # Then the gateway's AwsError is reported for SNS, and Slack carries the news
    assert report.status is DeliveryStatus.PARTIAL
    assert not report.results[0].ok
    assert report.results[0].error == "NotFound: Publish: NotFound: Endpoint does not exist"
    assert len(slack.requests) == 1


@pytest.mark.e2e
def test_digest_over_both_real_channels(sns_queue, slack, sleep, ledger, metrics, make_notice, block_kit):
    publisher, topic_arn, read = sns_queue
    notifier = Notifier(
        [SnsChannel(publisher, topic_arn), SlackChannel(lambda: slack.url, sleep=sleep)],
        ledger=ledger,
        logger=LOG,
        metrics=metrics,
    )
    report = notifier.notify_digest("team-payments", [make_notice(f"role-{i}") for i in range(3)])
    assert report.status is DeliveryStatus.SENT
    [body] = read()
    assert body["kind"] == "deputy-guard.digest"
    assert body["count"] == 3
    [request] = slack.requests
    block_kit(request.json())
