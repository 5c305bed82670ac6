"""Slack approvals, the pure part: request signatures, clicks, tokens and the answers.

No I/O: the service mints tokens and runs the pipelines; this module only checks and shapes data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from chalicelib.domain.models import Action, ActionButton, Notice, PolicyDoc, Verdict
from chalicelib.domain.policy import to_compact_json
from chalicelib.domain.render import LOOPBACK_HOSTS, clip_text, one_line

# Action ids (contract): what each button asks for.
APPLY_FIX: Final = "apply_fix"
EXEMPT_30D: Final = "exempt_30d"
REVERT: Final = "revert"
ACTION_IDS: Final = (APPLY_FIX, EXEMPT_30D, REVERT)
EXEMPT_DAYS: Final = 30
DEFAULT_TOKEN_TTL_DAYS: Final = 7

# Slack's own rule: a request whose timestamp is more than five minutes off is a replay.
SIGNATURE_WINDOW_SECONDS: Final = 5 * 60
SIGNATURE_VERSION: Final = "v0"
TIMESTAMP_HEADER: Final = "x-slack-request-timestamp"
SIGNATURE_HEADER: Final = "x-slack-signature"
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

# Where Slack's response_url points: hooks.slack.com (and GovSlack's hooks host). Nothing else is posted to.
SLACK_RESPONSE_URL_BASE: Final = "https://hooks.slack.com/"
SLACK_HOOK_HOSTS: Final = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})

# Interaction payloads carry the whole message (a digest is tens of kilobytes); anything far larger is not Slack.
MAX_BODY_BYTES: Final = 1024 * 1024
TOKEN_BYTES: Final = 24  # secrets.token_urlsafe(24): 32 characters, 192 random bits
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{32}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{1,31}")

# Block ids of a digest's rows, so a click on one row updates that row only.
ROLE_ACTIONS_BLOCK: Final = "deputy-guard-actions"
_ROW_PREFIX: Final = "row-"
_ROW_ACTIONS_SUFFIX: Final = "-actions"

# Block Kit limits for buttons and their confirmation dialogs.
_BUTTON_TEXT_MAX = 75
_CONFIRM_TITLE_MAX = 100
_CONFIRM_TEXT_MAX = 300


@dataclass(frozen=True)
class ButtonSpec:
    label: str
    style: str | None
    confirm: str  # {role} is filled in


BUTTONS: Final[Mapping[str, ButtonSpec]] = {
    APPLY_FIX: ButtonSpec("Apply fix", "primary", "Apply the fix shown in this message to {role} now?"),
    EXEMPT_30D: ButtonSpec(
        "Exempt 30 days", None, f"Exempt {{role}} from deputy-guard for {EXEMPT_DAYS} days? It will not be fixed."
    ),
    REVERT: ButtonSpec(
        "Revert", "danger", "Restore the original trust policy of {role}? This widens access back and exempts it."
    ),
}


class MessageKind(StrEnum):
    ROLE = "role"  # one role's alert: re-rendered after a click
    DIGEST = "digest"  # an owner's digest: only the clicked row changes


def actor_for(user_id: str) -> str:
    """How the audit trail names a Slack user."""
    return f"slack:{user_id}"


# --------------------------------------------------------------------------------------------------
# Request signatures


class SignatureProblem(StrEnum):
    MISSING = "missing"  # no timestamp or no signature header
    MALFORMED = "malformed"  # not a v0 signature, or not a timestamp
    STALE = "stale"  # more than five minutes off: a replay, or a clock gone wrong
    MISMATCH = "mismatch"  # signed with another secret, or the body was changed


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, *, now: float
) -> SignatureProblem | None:
    """None when Slack signed ``body`` at ``timestamp`` within the window; else what is wrong with it."""
    if not timestamp or not signature:
        return SignatureProblem.MISSING
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return SignatureProblem.MALFORMED
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return SignatureProblem.STALE
    expected = sign(secret, timestamp, body)
    # Constant time: how much of a guess matched must not show in how long the answer takes.
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return SignatureProblem.MISMATCH
    return None


# --------------------------------------------------------------------------------------------------
# Clicks


class ClickError(ValueError):
    """The signed body is not a button click deputy-guard understands (answered 400, nothing done)."""


@dataclass(frozen=True)
class Click:
    """One button click (a ``block_actions`` payload), reduced to what the bot uses."""

    user_id: str
    action_id: str
    token_id: str
    block_id: str
    response_url: str
    team_id: str = ""
    channel_id: str = ""
    message: Mapping[str, Any] | None = None  # the message the button was on, as Slack sent it


def parse_click(body: bytes, *, response_url_base: str) -> Click:
    """Read Slack's ``payload=<url-encoded JSON>`` form body; raises ``ClickError`` on anything else."""
    if len(body) > MAX_BODY_BYTES:
        raise ClickError("the request body is larger than any Slack interaction")
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
        payload = json.loads(form["payload"][0]) if len(form.get("payload", ())) == 1 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ClickError("the body is not a Slack interaction payload") from None
    if not isinstance(payload, dict):
        raise ClickError("the body has no single 'payload' field holding a JSON object")
    if payload.get("type") != "block_actions":
        raise ClickError(f"unsupported interaction type {str(payload.get('type'))[:40]!r}: only buttons are handled")
    user = _object(payload, "user")
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise ClickError("a button click carries exactly one action")
    action = actions[0]
    user_id, action_id, token_id = _text(user, "id"), _text(action, "action_id"), _text(action, "value")
    response_url = _text(payload, "response_url")
    if not _USER_ID.fullmatch(user_id):
        raise ClickError("the click names no Slack user")
    if action_id not in ACTION_IDS:
        raise ClickError(f"unknown action {action_id[:40]!r}")
    if not response_url_allowed(response_url, response_url_base):
        raise ClickError("response_url is not a Slack hooks URL")
    message = payload.get("message")
    return Click(
        user_id=user_id,
        action_id=action_id,
        # A value that cannot be a token is answered like an unknown token, without a table read.
        token_id=token_id if _TOKEN_ID.fullmatch(token_id) else "",
        block_id=_text(action, "block_id")[:255],
        response_url=response_url,
        team_id=_text(_object(payload, "team"), "id")[:40],
        channel_id=_text(_object(payload, "channel"), "id")[:40],
        message=message if isinstance(message, dict) else None,
    )


def _object(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def response_url_allowed(url: str, base: str) -> bool:
    """Whether the bot may POST to ``url``: under ``base`` (Slack's hooks host; loopback for the stand-in).

    Compared part by part, not as text: ``https://hooks.slack.com.evil.example/`` and
    ``https://hooks.slack.com@evil.example/`` are refused, so the bot is never an SSRF deputy.
    """
    if not url or len(url) > 2048 or any(ch.isspace() or not ch.isprintable() or ch == "\\" for ch in url):
        return False
    try:
        got, want = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
        ports = got.port, want.port
    except ValueError:
        return False
    return (
        got.scheme == want.scheme
        and got.username is None
        and got.password is None
        and (got.hostname or "") == (want.hostname or "")
        and ports[0] == ports[1]
        and got.path.startswith(want.path or "/")
        and ".." not in got.path
        and not got.fragment
    )


def response_url_base_problem(base: str) -> str | None:
    """Why ``base`` may not be where response_url points (None: fine): Slack's hooks over https, or loopback."""
    try:
        parts = urllib.parse.urlsplit(base)
        _port = parts.port
    except ValueError:
        return "not a URL"
    if parts.username or parts.password or parts.query or parts.fragment or not parts.path.endswith("/"):
        return "must be a scheme, host and path ending in '/', nothing else"
    if parts.hostname in LOOPBACK_HOSTS and parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "https" and parts.hostname in SLACK_HOOK_HOSTS:
        return None
    return f"must be https://{'/ or https://'.join(sorted(SLACK_HOOK_HOSTS))}/ (or a loopback URL for a local stand-in)"


# --------------------------------------------------------------------------------------------------
# Tokens


def document_digest(document: PolicyDoc | None) -> str:
    """SHA-256 of the document as IAM counts it (its own key order, number literals as written)."""
    if document is None:
        return ""
    return hashlib.sha256(to_compact_json(document).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ApprovalToken:
    """What one button may do: this action, on this role, while it holds the document the message showed."""

    token_id: str
    action: str
    account: str
    role_name: str
    role_arn: str
    document_digest: str  # the trust policy the message showed (for a revert: the fix deputy-guard wrote)
    plan_digest: str  # what the click would write: the planned fix (for a revert: the recorded original)
    expires_at: int  # epoch seconds
    created_at: int
    message: MessageKind = MessageKind.ROLE
    change_id: str | None = None  # a revert: the fix it undoes
    used: bool = False
    used_by: str | None = None
    used_at: int | None = None


def wanted_actions(notice: Notice) -> tuple[str, ...]:
    """The buttons a notice deserves: a fixable role is asked; a fix the bot applied can be undone."""
    if notice.before is None or notice.after is None:
        return ()
    if notice.action is Action.FIXED and notice.change_id:
        return (REVERT,)
    if notice.verdict is Verdict.NON_COMPLIANT and notice.action in (Action.NOTIFIED, Action.CAPPED):
        # An advise-level service's patch is never applied by the bot, so no button offers to.
        return (APPLY_FIX, EXEMPT_30D) if notice.auto_fix else (EXEMPT_30D,)
    return ()


def token_for(
    notice: Notice, action: str, *, token_id: str, now: int, ttl_seconds: int, message: MessageKind
) -> ApprovalToken:
    """The token binding one button of ``notice`` (pure: the caller supplies the random id and the time)."""
    reverting = action == REVERT
    return ApprovalToken(
        token_id=token_id,
        action=action,
        account=notice.account,
        role_name=notice.role_name,
        role_arn=notice.role_arn,
        document_digest=document_digest(notice.after if reverting else notice.before),
        plan_digest=document_digest(notice.before if reverting else notice.after),
        expires_at=now + ttl_seconds,
        created_at=now,
        message=message,
        change_id=notice.change_id if reverting else None,
    )


def button(action: str, token_id: str) -> ActionButton:
    spec = BUTTONS[action]
    return ActionButton(action_id=action, label=spec.label, value=token_id, style=spec.style, confirm=spec.confirm)


# --------------------------------------------------------------------------------------------------
# Block Kit (buttons) and the answers to a click


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip_text(text, limit), "emoji": True}


def button_element(button: ActionButton, role_name: str) -> dict[str, Any]:
    """One Block Kit button; its confirmation dialog names the role."""
    element: dict[str, Any] = {
        "type": "button",
        "text": _plain(button.label, _BUTTON_TEXT_MAX),
        "action_id": button.action_id,
        "value": button.value,
    }
    if button.style:
        element["style"] = button.style
    if button.confirm:
        element["confirm"] = {
            "title": _plain(f"{button.label}?", _CONFIRM_TITLE_MAX),
            "text": _plain(button.confirm.format(role=role_name), _CONFIRM_TEXT_MAX),
            "confirm": _plain(button.label, 30),
            "deny": _plain("Cancel", 30),
        }
    return element


def actions_block(
    buttons: Sequence[ActionButton], role_name: str, block_id: str = ROLE_ACTIONS_BLOCK
) -> dict[str, Any]:
    return {"type": "actions", "block_id": block_id, "elements": [button_element(b, role_name) for b in buttons]}


def digest_row_ids(index: int) -> tuple[str, str]:
    """Block ids of a digest row: its text section and its actions block."""
    section = f"{_ROW_PREFIX}{index}"
    return section, section + _ROW_ACTIONS_SUFFIX


def ephemeral(text: str) -> dict[str, Any]:
    """A reply only the clicking user sees; the message itself is left as it was."""
    return {"response_type": "ephemeral", "replace_original": False, "text": clip_text(one_line(text), 3000)}


def replacement(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The message that replaces the one the button was on."""
    return {"replace_original": True, **payload}


def mark_digest_row(
    message: Mapping[str, Any], actions_block_id: str, note: str, elements: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any] | None:
    """The digest with the clicked row noted and its buttons replaced by ``elements``; None if not found.

    Every other row, and every other row's buttons, stay as Slack sent them.
    """
    blocks = message.get("blocks")
    if not isinstance(blocks, list) or not actions_block_id.endswith(_ROW_ACTIONS_SUFFIX):
        return None
    section_id = actions_block_id[: -len(_ROW_ACTIONS_SUFFIX)]
    found = False
    out: list[Any] = []
    for block in blocks:
        if not isinstance(block, dict):
            out.append(block)
            continue
        if block.get("block_id") == section_id and isinstance(block.get("text"), dict):
            text = str(block["text"].get("text", ""))
            out.append({**block, "text": {"type": "mrkdwn", "text": clip_text(f"{text}\n{note}", 3000)}})
        elif block.get("block_id") == actions_block_id:
            found = True
            if elements:
                out.append({**block, "elements": list(elements)})
        else:
            out.append(block)
    if not found:
        return None
    fallback = message.get("text")
    return {"text": fallback if isinstance(fallback, str) and fallback else note, "blocks": out}
