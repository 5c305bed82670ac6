"""docs/slack.md, the app manifest and docs/security.md stay true to the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import app as app_module
from chalicelib.domain.slack_actions import ACTION_IDS, BUTTONS

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((ROOT / "docs" / "slack-app-manifest.json").read_text())
GUIDE = (ROOT / "docs" / "slack.md").read_text()
SECURITY = (ROOT / "docs" / "security.md").read_text()


def test_the_manifest_points_interactivity_at_the_route() -> None:
    interactivity = MANIFEST["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    # Chalice serves the API under its stage name (api_gateway_stage), then the route.
    stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["api_gateway_stage"]
    assert interactivity["request_url"].endswith(f"/{stage}/slack/actions")
    assert interactivity["request_url"].startswith("https://")
    assert "POST" in app_module.app.routes["/slack/actions"]


def test_the_manifest_asks_for_an_incoming_webhook_and_nothing_more() -> None:
    assert MANIFEST["oauth_config"]["scopes"] == {"bot": ["incoming-webhook"]}
    assert "event_subscriptions" not in MANIFEST["settings"]
    assert MANIFEST["settings"]["socket_mode_enabled"] is False


def test_the_manifest_fits_slacks_display_limits() -> None:
    display = MANIFEST["display_information"]
    assert len(display["name"]) <= 35 and len(display["description"]) <= 140
    assert 175 <= len(display["long_description"]) <= 4000
    assert re.fullmatch(r"#[0-9a-f]{6}", display["background_color"])


def test_the_guide_names_every_slack_setting_the_code_reads() -> None:
    settings = (ROOT / "chalicelib" / "domain" / "settings.py").read_text()
    read = set(re.findall(r'"(DEPUTY_GUARD_SLACK_[A-Z_]+)"', settings))
    approvals = {name for name in read if "WEBHOOK" not in name}
    assert approvals >= {"DEPUTY_GUARD_SLACK_APPROVERS", "DEPUTY_GUARD_SLACK_SIGNING_SECRET_PARAMETER"}
    for name in approvals:
        assert f"`{name}`" in GUIDE, name


def test_the_guide_names_every_button_and_refusal() -> None:
    for action in ACTION_IDS:
        assert f"`{action}`" in GUIDE and f"**{BUTTONS[action].label}**" in GUIDE
    service = (ROOT / "chalicelib" / "service" / "approvals.py").read_text()
    reasons = set(re.findall(r'_Refused\(\s*"([a-z_]+)"', service))
    assert reasons >= {"not_approver", "unknown_token", "used", "expired", "changed", "needs_review", "exempt"}
    for reason in reasons:
        assert f"`{reason}`" in GUIDE, reason


def test_the_security_review_covers_a_leaked_secret_and_a_stranger() -> None:
    section = SECURITY[SECURITY.index("## 8. Slack approvals") :]
    assert "leaked signing secret" in section and "not an approver" in section
    assert "slack.md" in section
