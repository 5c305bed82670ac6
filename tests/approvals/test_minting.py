"""Tokens are minted by the notifier's button source: one stored, bound token per button, only when approvals are on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.adapters.errors import Unavailable
from chalicelib.domain.models import Action, Notice
from chalicelib.domain.render_slack import SLACK_DIGEST_BUTTON_ROWS_MAX
from chalicelib.domain.settings import load_settings
from chalicelib.domain.slack_actions import ApprovalToken, MessageKind, document_digest
from chalicelib.runtime.wiring import CountingMetrics, build_deps
from chalicelib.service.approvals import ButtonMinter
from chalicelib.service.notifier import InMemoryLedger, Notifier
from tests.approvals.conftest import APPROVAL_SETTINGS
from tests.world import World

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
MakeNotice = Callable[..., Notice]


@dataclass
class MemoryTokens:
    stored: dict[str, ApprovalToken] = field(default_factory=dict)
    fail: bool = False
    puts: int = 0

    def put(self, token: ApprovalToken) -> None:
        self.puts += 1
        if self.fail:
            raise Unavailable("PutItem", "ServiceUnavailable", "down")
        self.stored[token.token_id] = token

    def get(self, token_id: str) -> ApprovalToken | None:
        return self.stored.get(token_id)

    def consume(self, token_id: str, actor: str, now: int) -> bool:
        raise NotImplementedError

    def record_outcome(self, token_id: str, outcome: str) -> None:
        raise NotImplementedError


@dataclass
class Capture:
    name: str = "slack"
    sent: list[Any] = field(default_factory=list)

    def send(self, notice: Notice) -> str | None:
        self.sent.append(notice)
        return None

    def send_digest(self, owner: str, notices: Any) -> str | None:
        self.sent.append(list(notices))
        return None


class Quiet:
    def debug(self, *args: Any, **kwargs: Any) -> None: ...

    def info(self, *args: Any, **kwargs: Any) -> None: ...

    def warning(self, *args: Any, **kwargs: Any) -> None: ...

    def error(self, *args: Any, **kwargs: Any) -> None: ...


def minter(tokens: MemoryTokens, metrics: CountingMetrics | None = None) -> ButtonMinter:
    return ButtonMinter(
        tokens, ttl_seconds=7 * 86400, clock=lambda: NOW, logger=Quiet(), metrics=metrics or CountingMetrics()
    )


def notifier(tokens: MemoryTokens, channel: Capture, metrics: CountingMetrics | None = None) -> Notifier:
    return Notifier(
        [channel], ledger=InMemoryLedger(), logger=Quiet(), metrics=CountingMetrics(), buttons=minter(tokens, metrics)
    )


def fixable(make_notice: MakeNotice, name: str = "OrdersStateMachineRole") -> Notice:
    return make_notice(name, action=Action.NOTIFIED, change_id=None, revert_command=None)


def test_each_button_is_one_stored_token_bound_to_the_role_and_the_documents(make_notice: MakeNotice) -> None:
    tokens, channel = MemoryTokens(), Capture()
    notice = fixable(make_notice)
    notifier(tokens, channel).notify(notice)
    [sent] = channel.sent
    assert [b.action_id for b in sent.buttons] == ["apply_fix", "exempt_30d"]
    assert {b.value for b in sent.buttons} == set(tokens.stored)
    for button in sent.buttons:
        token = tokens.stored[button.value]
        assert len(token.token_id) == 32
        assert (token.action, token.account, token.role_name, token.role_arn) == (
            button.action_id,
            notice.account,
            notice.role_name,
            notice.role_arn,
        )
        assert token.document_digest == document_digest(notice.before)
        assert token.plan_digest == document_digest(notice.after)
        assert token.expires_at - token.created_at == 7 * 86400
        assert token.created_at == int(NOW.timestamp())
        assert token.message is MessageKind.ROLE and not token.used


def test_a_revert_token_binds_the_fix_shown_and_the_original_it_restores(make_notice: MakeNotice) -> None:
    tokens, channel = MemoryTokens(), Capture()
    notice = make_notice()  # a fix the bot applied
    notifier(tokens, channel).notify(notice)
    [token] = tokens.stored.values()
    assert (token.action, token.change_id) == ("revert", notice.change_id)
    assert token.document_digest == document_digest(notice.after)
    assert token.plan_digest == document_digest(notice.before)


def test_tokens_are_random_and_never_repeat(make_notice: MakeNotice) -> None:
    tokens = MemoryTokens()
    mint = minter(tokens)
    for _ in range(200):
        mint.for_notice(fixable(make_notice))
    assert len(tokens.stored) == 400


def test_a_suppressed_notice_mints_nothing(make_notice: MakeNotice) -> None:
    tokens, channel = MemoryTokens(), Capture()
    sender = notifier(tokens, channel)
    sender.notify(fixable(make_notice))
    sender.notify(fixable(make_notice))  # the same news within the window
    assert len(channel.sent) == 1 and len(tokens.stored) == 2


def test_when_the_token_store_fails_the_message_goes_out_without_buttons(make_notice: MakeNotice) -> None:
    tokens, channel, metrics = MemoryTokens(fail=True), Capture(), CountingMetrics()
    report = notifier(tokens, channel, metrics).notify(fixable(make_notice))
    assert report.delivered and channel.sent[0].buttons == ()
    assert metrics.counts["ApprovalTokensFailed"] == 1


def test_a_digest_mints_only_for_the_rows_slack_can_show(make_notice: MakeNotice) -> None:
    tokens, channel = MemoryTokens(), Capture()
    notices = [fixable(make_notice, f"role-{i:03d}") for i in range(40)]
    notifier(tokens, channel).notify_digest("team", notices)
    [sent] = channel.sent
    with_buttons = [n for n in sent if n.buttons]
    assert len(with_buttons) == SLACK_DIGEST_BUTTON_ROWS_MAX
    assert len(tokens.stored) == 2 * SLACK_DIGEST_BUTTON_ROWS_MAX
    assert all(t.message is MessageKind.DIGEST for t in tokens.stored.values())


def test_a_digest_stops_minting_once_the_store_fails(make_notice: MakeNotice) -> None:
    tokens, channel = MemoryTokens(fail=True), Capture()
    notifier(tokens, channel).notify_digest("team", [fixable(make_notice, f"r{i}") for i in range(10)])
    assert tokens.puts == 1 and not any(n.buttons for n in channel.sent[0])


@pytest.mark.parametrize(
    ("settings", "buttons"),
    [
        (APPROVAL_SETTINGS, True),
        ({**APPROVAL_SETTINGS, "slack_approvers": ""}, False),
        ({k: v for k, v in APPROVAL_SETTINGS.items() if k != "slack_webhook_url"}, False),
    ],
)
def test_buttons_are_wired_only_when_approvers_and_slack_are_configured(
    make_world: Callable[..., World], settings: dict[str, str], buttons: bool
) -> None:
    make_world()  # moto and the table
    deps = build_deps(load_settings({f"DEPUTY_GUARD_{k.upper()}": v for k, v in settings.items()}), idempotent=False)
    has_minter = deps.notifier is not None and getattr(deps.notifier, "_buttons", None) is not None
    assert has_minter is buttons
