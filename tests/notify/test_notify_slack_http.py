"""SlackChannel over real HTTP: a local ThreadingHTTPServer stands in for the Slack webhook."""

import traceback

import pytest

from chalicelib.adapters.slack import SlackChannel
from chalicelib.domain.render import NotificationError

pytestmark = pytest.mark.e2e


def _channel(url, sleep, **kwargs):
    return SlackChannel(lambda: url, sleep=sleep, timeout=2.0, **kwargs)


def test_200_delivers_one_valid_block_kit_message(slack, sleep, make_notice, block_kit, webhook_path):
    # Given Slack answering 200 ok
    channel = _channel(slack.url, sleep)
    # When a notice is sent
    receipt = channel.send(make_notice())
    # Then exactly one POST of JSON Block Kit reached the webhook path, with no waiting
    assert receipt is None
    assert len(slack.requests) == 1
    request = slack.requests[0]
    assert request.path == webhook_path
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    payload = request.json()
    block_kit(payload)
    assert payload["blocks"][0]["text"]["text"] == ":warning: Trust policy fixed: OrdersStateMachineRole"
    assert sleep.waits == []


def test_429_with_retry_after_waits_that_long_then_retries(slack, sleep, make_notice):
    # Given Slack rate-limits once, asking for one second
    slack.script((429, {"Retry-After": "1"}, b"rate_limited"), (200, {}, b"ok"))
    # When a notice is sent
    _channel(slack.url, sleep).send(make_notice())
    # Then the channel waited exactly what Slack asked and sent the same message again
    assert sleep.waits == [1.0]
    assert len(slack.requests) == 2
    assert slack.requests[0].body == slack.requests[1].body


def test_429_without_retry_after_falls_back_to_backoff(slack, sleep, make_notice):
    slack.script((429, {}, b""), (429, {"Retry-After": "soon"}, b""), (200, {}, b"ok"))
    _channel(slack.url, sleep, backoff_base=0.25).send(make_notice())
    assert sleep.waits == [0.25, 0.5]
    assert len(slack.requests) == 3


def test_429_asking_for_longer_than_the_cap_gives_up_without_hammering(slack, sleep, make_notice):
    # Given Slack asks for two minutes while we wait at most 30 s
    slack.script((429, {"Retry-After": "120"}, b"rate_limited"))
    # When a notice is sent
    with pytest.raises(NotificationError, match="asked to wait 120s"):
        _channel(slack.url, sleep, max_retry_after=30.0).send(make_notice())
    # Then it did not retry early (Slack may disable a webhook that ignores its limits)
    assert len(slack.requests) == 1
    assert sleep.waits == []


def test_500_is_retried_with_bounded_backoff_then_raises(slack, sleep, make_notice):
    # Given Slack failing every time
    slack.script(*[(500, {}, b"internal_error")] * 10)
    # When a notice is sent with four attempts
    with pytest.raises(NotificationError) as raised:
        _channel(slack.url, sleep, max_attempts=4, backoff_base=0.5, backoff_max=1.0).send(make_notice())
    # Then it tried four times, backing off (capped) between attempts, and says why it stopped
    assert len(slack.requests) == 4
    assert sleep.waits == [0.5, 1.0, 1.0]
    assert str(raised.value) == "Slack webhook failed after 4 attempts: HTTP 500 internal_error"


def test_503_then_200_recovers(slack, sleep, make_notice):
    slack.script((503, {}, b""), (200, {}, b"ok"))
    _channel(slack.url, sleep).send(make_notice())
    assert len(slack.requests) == 2
    assert sleep.waits == [0.5]


def test_400_fails_at_once_without_retry(slack, sleep, make_notice):
    slack.script((400, {}, b"invalid_payload"))
    with pytest.raises(NotificationError, match=r"^Slack rejected the message: HTTP 400 invalid_payload$"):
        _channel(slack.url, sleep).send(make_notice())
    assert len(slack.requests) == 1
    assert sleep.waits == []


def test_redirects_are_not_followed(slack, sleep, make_notice):
    slack.script((302, {"Location": "http://127.0.0.1:9/elsewhere"}, b""))
    with pytest.raises(NotificationError, match="HTTP 302"):
        _channel(slack.url, sleep).send(make_notice())
    assert len(slack.requests) == 1


def test_connection_refused_is_retried_then_raises_naming_only_the_kind(refused_url, sleep, make_notice):
    with pytest.raises(NotificationError) as raised:
        _channel(refused_url, sleep, max_attempts=3).send(make_notice())
    assert str(raised.value) == "Slack webhook failed after 3 attempts: connection failed (ConnectionRefusedError)"
    assert len(sleep.waits) == 2


def test_error_body_echoing_the_url_is_redacted(slack, sleep, make_notice, secret):
    # Given a server whose error text repeats the request path (the secret)
    slack.script((404, {}, b"no_service for {path}"))
    # When the send fails
    with pytest.raises(NotificationError) as raised:
        _channel(slack.url, sleep).send(make_notice())
    # Then neither the message nor the traceback carries the secret
    error = raised.value
    assert str(error) == "Slack rejected the message: HTTP 404 no_service for [redacted]"
    assert secret not in "".join(traceback.format_exception(error))
    assert error.__cause__ is None


def test_digest_posts_one_message(slack, sleep, make_notice, block_kit):
    _channel(slack.url, sleep).send_digest("team", [make_notice("a"), make_notice("b")])
    assert len(slack.requests) == 1
    payload = slack.requests[0].json()
    block_kit(payload)
    assert payload["blocks"][0]["text"]["text"] == "deputy-guard digest: 2 roles for team"


def test_url_is_read_from_the_provider_on_every_send(slack, sleep, make_notice):
    calls = []

    def provider():
        calls.append(1)
        return slack.url

    channel = SlackChannel(provider, sleep=sleep)
    channel.send(make_notice())
    channel.send(make_notice())
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("http://hooks.example.com{path}", "must use https"),
        ("ftp://127.0.0.1{path}", "must use https"),
        ("", "is empty"),
        ("https://[::1{path}", "not a valid URL"),
    ],
)
def test_webhook_url_is_refused_unless_https_or_loopback(template, message, sleep, make_notice, webhook_path, secret):
    url = template.format(path=webhook_path)
    with pytest.raises(NotificationError, match=message) as raised:
        SlackChannel(lambda: url, sleep=sleep).send(make_notice())
    assert secret not in "".join(traceback.format_exception(raised.value))


def test_provider_failure_is_reported_without_its_text(sleep, make_notice, webhook_path, secret):
    def provider():
        raise RuntimeError(f"could not read https://hooks.example.com{webhook_path}")

    with pytest.raises(NotificationError) as raised:
        SlackChannel(provider, sleep=sleep).send(make_notice())
    assert str(raised.value) == "Slack webhook URL unavailable (RuntimeError)"
    assert secret not in "".join(traceback.format_exception(raised.value))


def test_repr_never_shows_the_url(slack, sleep, secret):
    channel = _channel(slack.url, sleep)
    assert secret not in repr(channel)
    assert "127.0.0.1" not in repr(channel)


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="max_attempts"):
        SlackChannel(lambda: "", max_attempts=0)


def test_an_error_body_echoing_only_the_token_is_redacted(slack, sleep, make_notice, secret):
    # Given an error body whose padding collapses, bringing a bare token echoed past byte 200 forward
    slack.script((410, {}, b"channel_is_archived" + b" " * 185 + secret.encode()))
    # When the send fails
    with pytest.raises(NotificationError) as raised:
        _channel(slack.url, sleep).send(make_notice())
    # Then not even a fragment of the token survives in the excerpt
    assert str(raised.value) == "Slack rejected the message: HTTP 410 channel_is_archived [redacted]"
    assert secret[:5] not in str(raised.value)


def test_retries_stop_at_the_time_budget_so_a_handler_never_times_out(slack, make_notice):
    # Given Slack rate-limits every attempt with a 10 s Retry-After, and a channel with a 15 s budget
    slack.script(*[(429, {"Retry-After": "10"}, b"rate_limited")] * 4)
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    channel = SlackChannel(lambda: slack.url, sleep=sleep, timeout=2.0, max_total_seconds=15.0, clock=lambda: now[0])
    # When a notice is sent
    with pytest.raises(NotificationError, match="budget"):
        channel.send(make_notice())
    # Then it waited once (10 s), not a second time (20 s would pass the budget)
    assert waits == [10.0]
    assert len(slack.requests) == 2
