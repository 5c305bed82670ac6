"""Buttons in Slack messages: which notices get them, how they render, and how a digest stays within limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.domain.models import Action, ActionButton, Notice, Verdict
from chalicelib.domain.render_slack import SLACK_DIGEST_BUTTON_ROWS_MAX, render_slack, render_slack_digest
from chalicelib.domain.slack_actions import (
    APPLY_FIX,
    EXEMPT_30D,
    REVERT,
    button,
    mark_digest_row,
    wanted_actions,
)

MakeNotice = Callable[..., Notice]


def fixable(make_notice: MakeNotice, name: str = "OrdersStateMachineRole") -> Notice:
    return make_notice(name, action=Action.NOTIFIED, change_id=None, revert_command=None)


def with_buttons(notice: Notice) -> Notice:
    actions = wanted_actions(notice)
    return replace(notice, buttons=tuple(button(a, f"{a[:4]}{'x' * 28}") for a in actions))


def check_blocks(payload: dict[str, Any]) -> None:
    """Slack's documented limits for messages with buttons."""
    assert 1 <= len(payload["blocks"]) <= 50
    block_ids = [b["block_id"] for b in payload["blocks"] if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), "block ids must be unique in a message"
    for block in payload["blocks"]:
        if block["type"] != "actions":
            continue
        assert 1 <= len(block["elements"]) <= 25
        action_ids = [e["action_id"] for e in block["elements"]]
        assert len(action_ids) == len(set(action_ids))
        for element in block["elements"]:
            assert element["type"] == "button"
            assert 1 <= len(element["text"]["text"]) <= 75
            assert 1 <= len(element["value"]) <= 2000
            assert element.get("style") in (None, "primary", "danger")
            confirm = element.get("confirm")
            if confirm:
                assert len(confirm["title"]["text"]) <= 100 and len(confirm["text"]["text"]) <= 300
                assert len(confirm["confirm"]["text"]) <= 30 and len(confirm["deny"]["text"]) <= 30


@pytest.mark.parametrize(
    ("action", "verdict", "change_id", "expected"),
    [
        (Action.NOTIFIED, Verdict.NON_COMPLIANT, None, (APPLY_FIX, EXEMPT_30D)),
        (Action.CAPPED, Verdict.NON_COMPLIANT, None, (APPLY_FIX, EXEMPT_30D)),
        (Action.FIXED, Verdict.NON_COMPLIANT, "chg-1", (REVERT,)),
        (Action.FIXED, Verdict.NON_COMPLIANT, None, ()),
        (Action.REVIEW, Verdict.NEEDS_REVIEW, None, ()),
        (Action.FAILED, Verdict.NON_COMPLIANT, None, ()),
        (Action.EXEMPT, Verdict.NON_COMPLIANT, None, ()),
        (Action.NOTIFIED, Verdict.NEEDS_REVIEW, None, ()),
    ],
)
def test_which_notices_get_which_buttons(
    make_notice: MakeNotice, action: Action, verdict: Verdict, change_id: str | None, expected: tuple[str, ...]
) -> None:
    assert wanted_actions(make_notice(action=action, verdict=verdict, change_id=change_id)) == expected


def test_a_notice_without_a_fix_gets_no_buttons(make_notice: MakeNotice) -> None:
    assert wanted_actions(make_notice(action=Action.NOTIFIED, after=None)) == ()


def test_a_fixable_role_message_carries_apply_and_exempt(make_notice: MakeNotice) -> None:
    payload = render_slack(with_buttons(fixable(make_notice)))
    check_blocks(payload)
    [actions] = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["apply_fix", "exempt_30d"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Apply fix", "Exempt 30 days"]
    assert actions["elements"][0]["style"] == "primary"
    assert "OrdersStateMachineRole" in actions["elements"][0]["confirm"]["text"]["text"]
    assert payload["blocks"][-1]["type"] == "context"  # the buttons come before the closing line


def test_a_fixed_role_message_carries_revert(make_notice: MakeNotice) -> None:
    payload = render_slack(with_buttons(make_notice()))
    [actions] = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e.get("style")) for e in actions["elements"]] == [("revert", "danger")]


def test_without_buttons_the_message_is_unchanged(make_notice: MakeNotice) -> None:
    notice = fixable(make_notice)
    assert not any(b["type"] == "actions" for b in render_slack(notice)["blocks"])
    assert render_slack(replace(notice, buttons=())) == render_slack(notice)


def test_each_button_carries_its_token_as_value(make_notice: MakeNotice) -> None:
    notice = replace(
        fixable(make_notice), buttons=(ActionButton(APPLY_FIX, "Apply fix", "T" * 32, "primary", "Sure {role}?"),)
    )
    [actions] = [b for b in render_slack(notice)["blocks"] if b["type"] == "actions"]
    assert actions["elements"][0]["value"] == "T" * 32
    assert actions["elements"][0]["confirm"]["text"]["text"] == "Sure OrdersStateMachineRole?"


def test_a_small_digest_gives_every_fixable_role_its_own_buttons(make_notice: MakeNotice) -> None:
    notices = [with_buttons(fixable(make_notice, f"role-{i:02d}")) for i in range(5)]
    notices.append(make_notice("partner-sfn", verdict=Verdict.NEEDS_REVIEW, action=Action.REVIEW))
    payload = render_slack_digest("team-payments", notices)
    check_blocks(payload)
    rows = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert len(rows) == 5
    for row in rows:
        section_id = row["block_id"].removesuffix("-actions")
        [section] = [b for b in payload["blocks"] if b.get("block_id") == section_id]
        role = section["text"]["text"]
        assert any(f"`role-{i:02d}`" in role and row["elements"][0]["confirm"] for i in range(5))
    assert "no buttons here" not in str(payload["blocks"][-1])


def test_a_large_digest_stays_within_50_blocks_and_says_which_roles_lack_buttons(make_notice: MakeNotice) -> None:
    notices = [with_buttons(fixable(make_notice, f"role-{i:03d}")) for i in range(60)]
    payload = render_slack_digest("team-payments", notices)
    check_blocks(payload)
    rows = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert len(rows) == SLACK_DIGEST_BUTTON_ROWS_MAX
    closing = payload["blocks"][-1]
    assert closing["type"] == "context"
    assert f"{60 - len(rows)} more roles have no buttons here" in closing["elements"][1]["text"]
    assert "/remediate" in closing["elements"][1]["text"]


def test_a_digest_without_approvals_is_exactly_as_before(make_notice: MakeNotice) -> None:
    notices = [fixable(make_notice, f"role-{i:03d}") for i in range(60)]
    payload = render_slack_digest("team-payments", notices)
    assert not any(b["type"] == "actions" for b in payload["blocks"])
    assert len(payload["blocks"][-1]["elements"]) == 1


def test_a_click_marks_only_its_row_of_a_digest(make_notice: MakeNotice) -> None:
    notices = [with_buttons(fixable(make_notice, f"role-{i}")) for i in range(3)]
    digest = render_slack_digest("team-payments", notices)
    rows = [b["block_id"] for b in digest["blocks"] if b["type"] == "actions"]
    revert = {"type": "button", "action_id": "revert", "text": {"type": "plain_text", "text": "Revert"}, "value": "v"}
    marked = mark_digest_row(digest, rows[1], "fixed by <@U1>", [revert])
    assert marked is not None
    changed = [(a, b) for a, b in zip(digest["blocks"], marked["blocks"], strict=True) if a != b]
    assert len(changed) == 2  # the row's line and its buttons, nothing else
    assert changed[0][1]["text"]["text"].endswith("fixed by <@U1>")
    assert changed[1][1]["elements"] == [revert]


def test_a_row_marked_without_new_buttons_loses_its_buttons(make_notice: MakeNotice) -> None:
    digest = render_slack_digest("o", [with_buttons(fixable(make_notice, f"r{i}")) for i in range(2)])
    rows = [b["block_id"] for b in digest["blocks"] if b["type"] == "actions"]
    marked = mark_digest_row(digest, rows[0], "exempt")
    assert marked is not None and len(marked["blocks"]) == len(digest["blocks"]) - 1


@pytest.mark.parametrize("block_id", ["deputy-guard-actions", "row-9-actions", "row-0"])
def test_marking_an_unknown_row_gives_nothing(make_notice: MakeNotice, block_id: str) -> None:
    digest = render_slack_digest("o", [with_buttons(fixable(make_notice))])
    assert mark_digest_row(digest, block_id, "x") is None
    assert mark_digest_row({}, "row-0-actions", "x") is None
