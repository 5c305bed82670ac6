"""Slack alerts link each guarded service's AWS evidence; an advise-level one says why its patch is not applied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain.models import Notice
from chalicelib.domain.render_slack import render_slack


def text_of(payload: dict[str, Any]) -> str:
    return "\n".join(str(block) for block in payload["blocks"])


def test_a_slack_alert_links_the_evidence_of_every_service_the_role_trusts(make_notice: Callable[..., Notice]) -> None:
    notice = make_notice(services=("states.amazonaws.com", "scheduler.amazonaws.com"))
    text = text_of(render_slack(notice))
    assert "<https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html|AWS evidence" in text
    assert "cross-service-confused-deputy-prevention.html|AWS evidence for EventBridge Scheduler>" in text
    assert "advise only" not in text


def test_an_advise_level_service_is_marked_verify_before_applying(make_notice: Callable[..., Notice]) -> None:
    text = text_of(render_slack(make_notice(services=("cloudtrail.amazonaws.com",))))
    assert "AWS evidence for CloudTrail>" in text and "advise only, verify before applying" in text
