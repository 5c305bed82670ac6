"""Slack's v0 request signature: the published test vector, and every way a signature can be wrong."""

from __future__ import annotations

import hmac

import pytest

from chalicelib.domain import slack_actions
from chalicelib.domain.slack_actions import SignatureProblem, sign, signature_problem

# The example in Slack's "Verifying requests from Slack" documentation (a slash-command body).
SLACK_DOCS_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_DOCS_TIMESTAMP = "1531420618"
SLACK_DOCS_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_DOCS_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = float(SLACK_DOCS_TIMESTAMP)


def check(
    signature: str | None = SLACK_DOCS_SIGNATURE,
    timestamp: str | None = SLACK_DOCS_TIMESTAMP,
    body: bytes = SLACK_DOCS_BODY,
    now: float = NOW,
    secret: str = SLACK_DOCS_SECRET,
) -> SignatureProblem | None:
    return signature_problem(secret, timestamp, signature, body, now=now)


def test_signing_reproduces_slacks_published_example() -> None:
    assert sign(SLACK_DOCS_SECRET, SLACK_DOCS_TIMESTAMP, SLACK_DOCS_BODY) == SLACK_DOCS_SIGNATURE


def test_slacks_published_example_verifies() -> None:
    assert check() is None


@pytest.mark.parametrize(
    ("signature", "timestamp", "expected"),
    [
        (None, SLACK_DOCS_TIMESTAMP, SignatureProblem.MISSING),
        ("", SLACK_DOCS_TIMESTAMP, SignatureProblem.MISSING),
        (SLACK_DOCS_SIGNATURE, None, SignatureProblem.MISSING),
        (SLACK_DOCS_SIGNATURE, "", SignatureProblem.MISSING),
        ("v1=" + SLACK_DOCS_SIGNATURE[3:], SLACK_DOCS_TIMESTAMP, SignatureProblem.MALFORMED),
        (SLACK_DOCS_SIGNATURE.upper(), SLACK_DOCS_TIMESTAMP, SignatureProblem.MALFORMED),
        (SLACK_DOCS_SIGNATURE[:-1], SLACK_DOCS_TIMESTAMP, SignatureProblem.MALFORMED),
        (SLACK_DOCS_SIGNATURE + " ", SLACK_DOCS_TIMESTAMP, SignatureProblem.MALFORMED),
        ("v0=" + "é" * 64, SLACK_DOCS_TIMESTAMP, SignatureProblem.MALFORMED),
        (SLACK_DOCS_SIGNATURE, "1531420618.5", SignatureProblem.MALFORMED),
        (SLACK_DOCS_SIGNATURE, "-1531420618", SignatureProblem.MALFORMED),
        (SLACK_DOCS_SIGNATURE, "9" * 400, SignatureProblem.MALFORMED),
        ("v0=" + "0" * 64, SLACK_DOCS_TIMESTAMP, SignatureProblem.MISMATCH),
    ],
)
def test_missing_malformed_and_wrong_signatures_are_refused(
    signature: str | None, timestamp: str | None, expected: SignatureProblem
) -> None:
    assert check(signature=signature, timestamp=timestamp) is expected


def test_a_changed_body_is_refused() -> None:
    assert check(body=SLACK_DOCS_BODY + b"&text=rm+-rf") is SignatureProblem.MISMATCH


def test_another_secret_is_refused() -> None:
    assert check(secret=SLACK_DOCS_SECRET[:-1] + "6") is SignatureProblem.MISMATCH


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_within_five_minutes_either_way_is_accepted(offset: int) -> None:
    assert check(now=NOW + offset) is None


@pytest.mark.parametrize("offset", [-301, 301, 86_400, -86_400 * 365])
def test_more_than_five_minutes_off_is_stale(offset: int) -> None:
    # Given a correctly signed request replayed (or from the future) / Then it is refused as stale
    assert check(now=NOW + offset) is SignatureProblem.STALE


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(slack_actions.hmac, "compare_digest", spy)
    assert check() is None
    assert compared == [(SLACK_DOCS_SIGNATURE.encode(), SLACK_DOCS_SIGNATURE.encode())]
