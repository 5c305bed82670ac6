"""SNS or Slack fails: the fix stands, the failure is logged and counted, and the other channel carries it."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable, Iterator

import pytest

from chalicelib.service.enforce import handle_event
from deputy_guard.embedded import SlackStandIn
from tests.reliability.conftest import Account
from tests.world import VULNERABLE, load_event

ROLE = "order-pipeline-sfn"
CREATE = "CreateRole-states-vulnerable.json"
MakeAccount = Callable[..., Account]


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/services/T0/B0/unreachable"


@pytest.fixture
def sleeps() -> list[float]:
    return []


def enforce_with_channels(account: MakeAccount, slack_url: str, sleeps: list[float], mode: str = "enforce") -> Account:
    acct = account(mode=mode, idempotent=False)
    acct.create_role(ROLE, VULNERABLE, tags={"owner": "payments-team"})
    acct.use_real_notifier(sns=True, slack_url=slack_url, sleeps=sleeps)
    return acct


def failures(acct: Account, channel: str) -> list[dict[str, object]]:
    return [line.extra for line in acct.logs.with_message("notification failed") if line.extra["channel"] == channel]


def test_sns_down_the_fix_stands_and_slack_carries_the_news(
    account: MakeAccount, slack: SlackStandIn, sleeps: list[float]
) -> None:
    # Given SNS answers every Publish with a server error
    acct = enforce_with_channels(account, slack.url, sleeps)
    fault = acct.faults.inject("sns", "Publish", "InternalError", status=500)
    # When a vulnerable role's event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the fix is applied and recorded, Slack got the message, and the SNS failure is logged and counted
    assert out["action"] == "fixed"
    assert [r["status"] for r in acct.records(ROLE)] == ["applied"]
    assert fault.hits == 3  # botocore retried the 5xx before giving up
    assert len(slack.received) == 1
    (failure,) = failures(acct, "sns")
    assert "InternalError" in str(failure["error"])
    assert acct.metrics["NotificationFailed"] == 1 and acct.metrics["NotificationSent"] == 1


def test_slack_down_the_fix_stands_and_sns_carries_the_news(
    account: MakeAccount, refused_url: str, sleeps: list[float]
) -> None:
    # Given nobody listens at the Slack webhook
    acct = enforce_with_channels(account, refused_url, sleeps)
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the fix stands, SNS published the message, and Slack was retried within bounds, then reported
    assert out["action"] == "fixed"
    assert [m["role_name"] for m in acct.sns_messages()] == [ROLE]
    assert sleeps == [0.5, 1.0]
    (failure,) = failures(acct, "slack")
    assert "connection failed" in str(failure["error"])


def test_slack_rate_limit_is_honoured_then_the_message_delivered(
    account: MakeAccount, slack: SlackStandIn, sleeps: list[float]
) -> None:
    # Given Slack answers 429 with Retry-After: 2 once
    slack.script.append((429, {"Retry-After": "2"}))
    acct = enforce_with_channels(account, slack.url, sleeps)
    # When the event is handled
    handle_event(load_event(CREATE), acct.deps)
    # Then the sender waited exactly as asked and delivered the message on the second attempt
    assert sleeps == [2.0]
    assert slack.attempts == 2 and len(slack.received) == 1
    assert failures(acct, "slack") == []


def test_slack_asking_for_too_long_a_wait_is_given_up_at_once(
    account: MakeAccount, slack: SlackStandIn, sleeps: list[float]
) -> None:
    # Given Slack asks to wait two minutes, beyond the bounded wait
    slack.script.append((429, {"Retry-After": "120"}))
    acct = enforce_with_channels(account, slack.url, sleeps)
    # When the event is handled
    handle_event(load_event(CREATE), acct.deps)
    # Then the bot does not wait (a Lambda must not sleep for minutes), reports the failure, and SNS carries it
    assert sleeps == []
    assert "rate limit" in str(failures(acct, "slack")[0]["error"])
    assert [m["role_name"] for m in acct.sns_messages()] == [ROLE]


def test_no_channel_reached_is_an_error_and_the_news_is_not_muted(
    account: MakeAccount, refused_url: str, sleeps: list[float]
) -> None:
    # Given notify mode, and both SNS and Slack down
    acct = enforce_with_channels(account, refused_url, sleeps, mode="notify")
    sns_fault = acct.faults.inject("sns", "Publish", "InternalError", status=500)
    handle_event(load_event(CREATE), acct.deps)
    assert acct.logs.with_message("notification reached no channel")
    assert acct.metrics["NotificationUndelivered"] == 1
    # When SNS is back and the next event about the same role arrives
    acct.faults.clear()
    later = copy.deepcopy(load_event(CREATE))
    later["id"] = "a-later-event"
    handle_event(later, acct.deps)
    # Then the news is delivered: the failed attempt did not count as announced
    assert sns_fault.hits == 3
    assert [m["role_name"] for m in acct.sns_messages()] == [ROLE]
    assert "NotificationSuppressed" not in acct.metrics
