"""Owner notifications: pure renderers for SNS and Slack, the two channels, and a dedup-aware notifier.

Rendering is pure: a ``Notice`` in, plain data out. The channels do their I/O through what they are
handed (an SNS publisher such as ``chalicelib.adapters.aws.SnsGateway``, a webhook URL provider), so this module
imports neither boto3 nor ``os``. The schema the SNS renderers produce is documented in
``docs/notifications.md``; change the two together.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

from chalicelib.domain.models import NOTICE_SCHEMA_VERSION, Action, Notice, Problem, Verdict

__all__ = [
    "DEFAULT_OWNER_TAGS",
    "DEFAULT_WINDOW_SECONDS",
    "DIGEST_KIND",
    "ROLE_KIND",
    "Channel",
    "ChannelResult",
    "DeliveryReport",
    "DeliveryStatus",
    "InMemoryLedger",
    "Ledger",
    "LoggerLike",
    "MetricsLike",
    "NotificationError",
    "Notifier",
    "SlackChannel",
    "SnsChannel",
    "SnsMessage",
    "SnsPublisher",
    "console_url",
    "make_webhook_url_provider",
    "notice_fingerprint",
    "render_slack",
    "render_slack_digest",
    "render_sns",
    "render_sns_digest",
    "resolve_owner",
    "worst_verdict",
]

DEFAULT_OWNER_TAGS: Final = ("owner", "team", "contact")
DEFAULT_WINDOW_SECONDS: Final = 24 * 60 * 60

ROLE_KIND: Final = "deputy-guard.role"
DIGEST_KIND: Final = "deputy-guard.digest"

# SNS: the subject must be ASCII without control characters and "less than 100 characters".
SNS_SUBJECT_MAX: Final = 99
# SNS caps a message at 256 KiB including its attributes; keep room for the subject and attributes.
SNS_MESSAGE_BUDGET: Final = 256 * 1024 - 4 * 1024

# Block Kit limits (Slack reference): header 150, section text 3,000, 10 fields of 2,000, 50 blocks.
SLACK_HEADER_MAX: Final = 150
SLACK_TEXT_MAX: Final = 3000
SLACK_FIELD_MAX: Final = 2000
SLACK_FIELDS_MAX: Final = 10
SLACK_BLOCKS_MAX: Final = 50
SLACK_CONTEXT_ELEMENTS_MAX: Final = 10
# The fallback text is what phones and screen readers show; Slack would accept far more, people would not.
SLACK_FALLBACK_MAX: Final = 1000
# A digest longer than this is not read in a channel; the SNS digest carries every role.
SLACK_DIGEST_TEXT_BUDGET: Final = 12_000

_ELLIPSIS: Final = "\u2026"

# Worst first: a human decision beats a missing pin, which beats anything already safe.
_SEVERITY: Final[Mapping[Verdict, int]] = {
    Verdict.NEEDS_REVIEW: 3,
    Verdict.NON_COMPLIANT: 2,
    Verdict.COMPLIANT: 1,
    Verdict.NOT_APPLICABLE: 0,
}

_VERDICT_EMOJI: Final[Mapping[Verdict, str]] = {
    Verdict.NEEDS_REVIEW: ":rotating_light:",
    Verdict.NON_COMPLIANT: ":warning:",
    Verdict.COMPLIANT: ":white_check_mark:",
    Verdict.NOT_APPLICABLE: ":information_source:",
}

_HEADLINE: Final[Mapping[Action, str]] = {
    Action.NONE: "No action needed",
    Action.FIXED: "Trust policy fixed",
    Action.WOULD_FIX: "Would fix (dry run)",
    Action.NOTIFIED: "Fix needed",
    Action.CAPPED: "Fix deferred (per-run cap reached)",
    Action.REVIEW: "Needs human review",
    Action.EXEMPT: "Exempt role",
    Action.FAILED: "Fix failed",
    Action.SKIPPED: "Skipped",
    Action.REVERTED: "Fix reverted",
}

_CONSOLE_HOSTS: Final[Mapping[str, str]] = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}

_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class NotificationError(Exception):
    """A channel could not deliver a message; the text names only statuses and reasons, never secrets."""


# --------------------------------------------------------------------------------------------------
# Owner resolution and helpers (pure)
# --------------------------------------------------------------------------------------------------


def resolve_owner(tags: Mapping[str, str], owner_tags: Sequence[str], actor: str | None, default: str) -> str:
    """Who owns a role: the first non-empty tag in ``owner_tags`` order, else the actor, else ``default``.

    Tag keys match case-insensitively; if a role carries the same key in two cases, the exact spelling
    wins, then the alphabetically first, so the answer never depends on dict order.
    """
    folded: dict[str, list[tuple[str, str]]] = {}
    for key, value in tags.items():
        folded.setdefault(key.casefold(), []).append((key, value))
    for wanted in owner_tags:
        wanted = wanted.strip()
        if not wanted:
            continue
        candidates = sorted(folded.get(wanted.casefold(), ()), key=lambda kv: (kv[0] != wanted, kv[0]))
        for _, value in candidates:
            if value.strip():
                return value.strip()
    if actor is not None and actor.strip():
        return actor
    return default


def worst_verdict(notices: Sequence[Notice]) -> Verdict:
    """The most severe verdict among ``notices`` (needs_review > non_compliant > compliant > n/a)."""
    if not notices:
        raise ValueError("worst_verdict needs at least one notice")
    return max((n.verdict for n in notices), key=lambda v: _SEVERITY[v])


def console_url(role_arn: str, role_name: str) -> str | None:
    """The IAM console page of a role in its partition, or None where there is no public console."""
    parts = role_arn.split(":")
    partition = parts[1] if len(parts) > 1 and parts[0] == "arn" else "aws"
    host = _CONSOLE_HOSTS.get(partition)
    if host is None or not role_name:
        return None
    return f"https://{host}/iam/home#/roles/details/{urllib.parse.quote(role_name, safe='+=,@')}"


def notice_fingerprint(notice: Notice) -> str:
    """A stable key for "this role, this verdict, these problems, this action" used by the dedup window.

    Statement indexes, times and event ids are left out on purpose: a stack that reverts the fix every
    hour produces a new event each time, and that must still count as the same news.
    """
    codes = sorted({p.code.value for p in notice.problems})
    material = json.dumps([notice.role_arn, notice.verdict.value, codes, notice.action.value], separators=(",", ":"))
    return "deputy-guard:notice:v1:" + hashlib.sha256(material.encode("utf-8")).hexdigest()


def _worst_first(notices: Sequence[Notice]) -> list[Notice]:
    return sorted(notices, key=lambda n: (-_SEVERITY[n.verdict], n.role_arn, n.action.value))


def _headline(action: Action) -> str:
    return _HEADLINE.get(action, action.value)


def _clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut, without splitting a Slack ``&amp;`` entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + _ELLIPSIS


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------
# SNS rendering (pure)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnsMessage:
    """What one SNS Publish carries: an ASCII subject, the JSON body and the filterable attributes."""

    subject: str
    message: str
    attributes: dict[str, str]


def _ascii_subject(text: str) -> str:
    """Fold ``text`` into what SNS accepts as a subject: printable ASCII, one line, under 100 characters."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    printable = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in folded)
    subject = _one_line(printable) or "deputy-guard notification"
    if len(subject) > SNS_SUBJECT_MAX:
        subject = subject[: SNS_SUBJECT_MAX - 3].rstrip() + "..."
    return subject


def _problem_dicts(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in problems]


def _role_body(notice: Notice) -> dict[str, Any]:
    """The per-role part of schema v1, shared by the role message and each digest item."""
    return {
        "account": notice.account,
        "region": notice.region,
        "role_name": notice.role_name,
        "role_arn": notice.role_arn,
        "console_url": console_url(notice.role_arn, notice.role_name),
        "verdict": notice.verdict.value,
        "problems": _problem_dicts(notice.problems),
        "action": notice.action.value,
        "reason": notice.reason,
        "owner": notice.owner,
        "actor": notice.actor,
        "event_id": notice.event_id,
        "time": notice.time,
        "trigger": notice.trigger,
        "change_id": notice.change_id,
        "revert_command": notice.revert_command,
        "before": notice.before,
        "after": notice.after,
        "diff": notice.diff,
        "truncated": False,
    }


def _encoded_size(doc: Mapping[str, Any]) -> int:
    return len(_to_json(doc).encode("utf-8"))


def _to_json(doc: Mapping[str, Any]) -> str:
    # Compact and UTF-8: the size budget is in bytes, and subscribers are programs first.
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _cut_diff_to(diff: str, max_bytes: int) -> str:
    """Keep whole leading lines of ``diff`` within ``max_bytes``, noting how many lines were dropped."""
    lines = diff.splitlines()
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = len(line.encode("utf-8")) + 1
        if used + cost > max_bytes:
            break
        kept.append(line)
        used += cost
    dropped = len(lines) - len(kept)
    return "\n".join(kept) + (f"\n{_ELLIPSIS} ({dropped} more lines)" if dropped else "")


def _fit_role_body(body: dict[str, Any], budget: int) -> dict[str, Any]:
    """Shrink one role body until it fits: drop the documents first, then cut the diff."""
    if _encoded_size(body) <= budget:
        return body
    body = {**body, "before": None, "after": None, "truncated": True}
    overshoot = _encoded_size(body) - budget
    if overshoot > 0:
        diff_bytes = len(str(body["diff"]).encode("utf-8"))
        # JSON escaping can double a byte; aim low so one pass is enough.
        body["diff"] = _cut_diff_to(str(body["diff"]), max((diff_bytes - overshoot) // 2, 0))
    if _encoded_size(body) > budget:
        # Only free text is left to blame (a pathological reason or problem list): keep the facts.
        body = {**body, "diff": "", "reason": _clip(str(body["reason"]), 1000)}
        body["problems"] = body["problems"][:20]
    return body


def render_sns(notice: Notice) -> SnsMessage:
    """Render one role's notice as an SNS message (schema v1, kind ``deputy-guard.role``)."""
    envelope = {"schema_version": NOTICE_SCHEMA_VERSION, "kind": ROLE_KIND}
    overhead = _encoded_size({**envelope, "x": None})
    body = _fit_role_body(_role_body(notice), SNS_MESSAGE_BUDGET - overhead)
    subject = _ascii_subject(f"[deputy-guard] {_headline(notice.action)}: {notice.role_name} ({notice.account})")
    return SnsMessage(
        subject=subject,
        message=_to_json({**envelope, **body}),
        attributes={
            "verdict": notice.verdict.value,
            "action": notice.action.value,
            "account": notice.account,
        },
    )


def _digest_account(notices: Sequence[Notice]) -> str:
    accounts = {n.account for n in notices}
    return accounts.pop() if len(accounts) == 1 else "multiple"


def _counts(values: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def render_sns_digest(owner: str, notices: Sequence[Notice]) -> SnsMessage:
    """Render one owner's digest (schema v1, kind ``deputy-guard.digest``), worst roles first.

    When every item in full would pass SNS's 256 KiB limit, the documents are dropped from the items,
    then the diffs, then the least severe items, and the digest says so (``truncated``, ``omitted``).
    """
    if not notices:
        raise ValueError("a digest needs at least one notice")
    ordered = _worst_first(notices)
    worst = worst_verdict(ordered)
    account = _digest_account(ordered)
    items = [_role_body(n) for n in ordered]
    head: dict[str, Any] = {
        "schema_version": NOTICE_SCHEMA_VERSION,
        "kind": DIGEST_KIND,
        "owner": owner,
        "account": account,
        "accounts": sorted({n.account for n in ordered}),
        "time": max(n.time for n in ordered),
        "count": len(ordered),
        "worst_verdict": worst.value,
        "summary": {
            "verdict": _counts([n.verdict.value for n in ordered]),
            "action": _counts([n.action.value for n in ordered]),
        },
        "truncated": False,
        "omitted": 0,
        "items": items,
    }
    if _encoded_size(head) > SNS_MESSAGE_BUDGET:
        head = _fit_digest(head, items)
    subject = _ascii_subject(
        f"[deputy-guard] {len(ordered)} role{'s' if len(ordered) != 1 else ''} for {owner} (worst: {worst.value})"
    )
    return SnsMessage(
        subject=subject,
        message=_to_json(head),
        attributes={"verdict": worst.value, "action": "digest", "account": account},
    )


def _fit_digest(head: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    slim = [{**item, "before": None, "after": None, "truncated": True} for item in items]
    head = {**head, "truncated": True, "items": slim}
    if _encoded_size(head) <= SNS_MESSAGE_BUDGET:
        return head
    slim = [{**item, "diff": ""} for item in slim]
    # Digits of "omitted" can grow by a few bytes once items are dropped; reserve them up front.
    base = _encoded_size({**head, "items": [], "omitted": len(slim)})
    kept: list[dict[str, Any]] = []
    used = base
    for item in slim:
        cost = _encoded_size(item) + 1
        if used + cost > SNS_MESSAGE_BUDGET:
            break
        kept.append(item)
        used += cost
    return {**head, "items": kept, "omitted": len(slim) - len(kept)}


# --------------------------------------------------------------------------------------------------
# Slack rendering (pure)
# --------------------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_span(text: str) -> str:
    # A backtick inside a span would end it early; policy names never need one.
    return "`" + _esc(text.replace("`", "'")) + "`"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(_clip(text, SLACK_TEXT_MAX))}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, SLACK_HEADER_MAX), "emoji": True}}


def _diff_text(diff: str, limit: int = SLACK_TEXT_MAX) -> str:
    """The diff as a mrkdwn code block within ``limit``, whole lines kept, with a "(N more lines)" note."""
    # Three backticks in the content would close the block; a zero-width space keeps them inert.
    lines = _esc(diff.replace("```", "`\u200b``")).splitlines()
    opener, closer = "```\n", "\n```"
    full = opener + "\n".join(lines) + closer
    if len(full) <= limit:
        return full

    def note(n: int, cut: bool = False) -> str:
        return f"\n_{_ELLIPSIS} ({'line cut, ' if cut else ''}{n} more lines)_"

    budget = limit - len(opener) - len(closer) - len(note(len(lines), cut=True))
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = len(line) + (1 if kept else 0)
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    if not kept:
        # One line longer than the whole block: show its start rather than nothing.
        return opener + _clip(lines[0], budget) + closer + note(len(lines) - 1, cut=True)
    return opener + "\n".join(kept) + closer + note(len(lines) - len(kept))


def _problems_text(problems: Sequence[Problem]) -> str:
    if not problems:
        return "*Problems:* none"
    lines = []
    for p in problems:
        where = "whole document" if p.statement is None else f"statement {p.statement}"
        lines.append(f"\u2022 {_code_span(p.code.value)} ({where}): {_esc(_one_line(p.message))}")
    title = "*Problems*"
    text = "\n".join([title, *lines])
    if len(text) <= SLACK_TEXT_MAX:
        return text
    shown: list[str] = [title]
    for i, line in enumerate(lines):
        more = f"\n_{_ELLIPSIS} and {len(lines) - i} more_"
        if len("\n".join([*shown, line])) + len(more) > SLACK_TEXT_MAX:
            return "\n".join(shown) + more
        shown.append(line)
    return "\n".join(shown)


def _field(label: str, value: str) -> dict[str, str]:
    return _mrkdwn(_clip(f"*{label}*\n{value}", SLACK_FIELD_MAX))


def _fallback(text: str) -> str:
    return _clip(_esc(_one_line(text)), SLACK_FALLBACK_MAX)


def render_slack(notice: Notice) -> dict[str, Any]:
    """Render one role's notice as a Slack incoming-webhook payload: Block Kit plus a plain-text fallback."""
    headline = _headline(notice.action)
    emoji = _VERDICT_EMOJI.get(notice.verdict, "")
    actor = notice.actor or "unknown"
    blocks: list[dict[str, Any]] = [_header(f"{emoji} {headline}: {notice.role_name}")]
    if notice.reason.strip():
        blocks.append(_section(f"*Why:* {_esc(_one_line(notice.reason))}"))
    blocks.append(
        {
            "type": "section",
            "fields": [
                _field("Role", _code_span(notice.role_name)),
                _field("Account", _esc(notice.account)),
                _field("Region", _esc(notice.region)),
                _field("Verdict", f"{emoji} {_esc(notice.verdict.value)}"),
                _field("Action", _esc(notice.action.value)),
                _field("Owner", _esc(notice.owner)),
                _field("Actor", _code_span(actor) if notice.actor else "_unknown_"),
                _field("Event", _code_span(notice.event_id) if notice.event_id else "_none_"),
            ][:SLACK_FIELDS_MAX],
        }
    )
    blocks.append(_section(_problems_text(notice.problems)))
    if notice.diff.strip():
        blocks.append({"type": "section", "text": _mrkdwn(_diff_text(notice.diff))})
    links: list[str] = []
    url = console_url(notice.role_arn, notice.role_name)
    if url is not None:
        links.append(f"<{url}|Open {_esc(notice.role_name)} in the IAM console>")
    if notice.revert_command:
        links.append(f"*Revert:* {_code_span(notice.revert_command)}")
    if links:
        blocks.append(_section("\n".join(links)))
    context = [f"deputy-guard \u00b7 {_esc(notice.time)}", f"trigger: {_esc(notice.trigger)}"]
    if notice.change_id:
        context.append(f"change {_code_span(notice.change_id)}")
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(_clip(c, SLACK_TEXT_MAX)) for c in context][:SLACK_CONTEXT_ELEMENTS_MAX],
        }
    )
    text = _fallback(
        f"deputy-guard: {headline}: role {notice.role_name} in {notice.account} ({notice.verdict.value})."
        f" Owner: {notice.owner}. Actor: {actor}."
    )
    return {"text": text, "blocks": blocks[:SLACK_BLOCKS_MAX], "unfurl_links": False, "unfurl_media": False}


def _digest_line(notice: Notice) -> str:
    codes = sorted({p.code.value for p in notice.problems})
    shown = ", ".join(codes[:4]) + (f" +{len(codes) - 4}" if len(codes) > 4 else "")
    parts = [
        f"{_VERDICT_EMOJI.get(notice.verdict, '')} *{_esc(notice.action.value)}* {_code_span(notice.role_name)}",
        _esc(notice.account),
        _esc(notice.verdict.value),
    ]
    if shown:
        parts.append(_esc(shown))
    url = console_url(notice.role_arn, notice.role_name)
    if url is not None:
        parts.append(f"<{url}|console>")
    return " \u00b7 ".join(parts)


def _summary(values: Sequence[str]) -> str:
    return " \u00b7 ".join(f"{count} {_esc(value)}" for value, count in _counts(values).items())


def render_slack_digest(owner: str, notices: Sequence[Notice]) -> dict[str, Any]:
    """Render one owner's digest as a single Slack message: a line per role, worst first, bounded.

    Lines are packed into sections of at most 3,000 characters; past 50 blocks or about 12,000
    characters the message ends with an "and N more" line.
    """
    if not notices:
        raise ValueError("a digest needs at least one notice")
    ordered = _worst_first(notices)
    count = len(ordered)
    noun = "role" if count == 1 else "roles"
    accounts = sorted({n.account for n in ordered})
    blocks: list[dict[str, Any]] = [
        _header(f"deputy-guard digest: {count} {noun} for {owner}"),
        _section(
            "\n".join(
                [
                    f"*Owner:* {_esc(owner)}",
                    f"*Verdicts:* {_summary([n.verdict.value for n in ordered])}",
                    f"*Actions:* {_summary([n.action.value for n in ordered])}",
                    f"*Accounts:* {_esc(', '.join(accounts))}",
                ]
            )
        ),
        {"type": "divider"},
    ]
    # Reserve the "and N more" section and the closing context block.
    line_blocks_max = SLACK_BLOCKS_MAX - len(blocks) - 2
    sections: list[list[str]] = []
    used = 0
    shown = 0
    for notice in ordered:
        line = _clip(_digest_line(notice), SLACK_TEXT_MAX)
        if used + len(line) > SLACK_DIGEST_TEXT_BUDGET:
            break
        if sections and len("\n".join([*sections[-1], line])) <= SLACK_TEXT_MAX:
            sections[-1].append(line)
        elif len(sections) < line_blocks_max:
            sections.append([line])
        else:
            break
        used += len(line)
        shown += 1
    blocks.extend({"type": "section", "text": _mrkdwn("\n".join(lines))} for lines in sections)
    if shown < count:
        more = count - shown
        blocks.append(_section(f"_{_ELLIPSIS} and {more} more {'role' if more == 1 else 'roles'}_"))
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(f"deputy-guard \u00b7 {_esc(max(n.time for n in ordered))}")],
        }
    )
    text = _fallback(
        f"deputy-guard digest for {owner}: {count} {noun}"
        f" ({', '.join(f'{c} {v}' for v, c in _counts([n.verdict.value for n in ordered]).items())})."
    )
    return {"text": text, "blocks": blocks[:SLACK_BLOCKS_MAX], "unfurl_links": False, "unfurl_media": False}


# --------------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------------


class Channel(Protocol):
    """A place owners hear from deputy-guard. ``send*`` return a receipt (e.g. an SNS MessageId) or None."""

    name: str

    def send(self, notice: Notice) -> str | None: ...

    def send_digest(self, owner: str, notices: Sequence[Notice]) -> str | None: ...


class SnsPublisher(Protocol):
    """What ``SnsChannel`` needs from the SNS gateway (``chalicelib.adapters.aws.SnsGateway``)."""

    def publish_message(self, topic_arn: str, subject: str, message: str, attributes: Mapping[str, str]) -> str: ...


class SnsChannel:
    """Publishes rendered notices to one SNS topic through a publisher gateway."""

    def __init__(self, publisher: SnsPublisher, topic_arn: str, *, name: str = "sns") -> None:
        self.name = name
        self._publisher = publisher
        self._topic_arn = topic_arn

    def __repr__(self) -> str:
        return f"SnsChannel(name={self.name!r}, topic_arn={self._topic_arn!r})"

    def send(self, notice: Notice) -> str | None:
        """Publish one role's message; returns the SNS MessageId."""
        return self._publish(render_sns(notice))

    def send_digest(self, owner: str, notices: Sequence[Notice]) -> str | None:
        """Publish one owner's digest; returns the SNS MessageId."""
        return self._publish(render_sns_digest(owner, notices))

    def _publish(self, rendered: SnsMessage) -> str:
        return self._publisher.publish_message(self._topic_arn, rendered.subject, rendered.message, rendered.attributes)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a Slack webhook never redirects, and a message should not wander elsewhere."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class _Transient(Exception):
    """One attempt failed in a way worth retrying; ``retry_after`` is Slack's wait, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or not a number (HTTP dates included)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _safe_detail(raw: bytes, url: str) -> str:
    """A short, printable, secret-free excerpt of an error body (Slack answers e.g. ``invalid_payload``)."""
    # Redact before cutting, so a URL straddling the cut cannot leave half a token behind.
    text = _redact(raw.decode("utf-8", "replace"), url)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return _clip(_one_line(text), 120)


def _redact(text: str, url: str) -> str:
    """Replace the URL, its path, query and every long path segment (the webhook's ids and token)."""
    parts = urllib.parse.urlsplit(url)
    secrets = {url, parts.path, parts.query, *parts.path.split("/")}
    for secret in sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


class SlackChannel:
    """Posts Block Kit messages to a Slack incoming webhook, retrying within strict bounds.

    The webhook URL is a secret (anyone holding it can post to the channel), so it is asked of
    ``url_provider`` on every send, kept only in local variables, and never placed in an exception,
    a log line or a repr. Errors raised are ``NotificationError`` with statuses and reasons only.
    """

    def __init__(
        self,
        url_provider: Callable[[], str],
        *,
        timeout: float = 5.0,
        max_attempts: int = 4,
        max_retry_after: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        opener: urllib.request.OpenerDirector | None = None,
        name: str = "slack",
        max_total_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if timeout <= 0 or max_retry_after < 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout must be positive and waits must not be negative")
        self.name = name
        self._url_provider = url_provider
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        # Retries never outlast this budget (plus one request timeout): a handler with a fix already
        # written must not time out waiting on Slack (the API answers within 29 s, events within 60 s).
        self._max_total = max_total_seconds
        self._clock = clock
        self._opener = opener if opener is not None else urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return (
            f"SlackChannel(name={self.name!r}, timeout={self._timeout}, max_attempts={self._max_attempts},"
            f" max_retry_after={self._max_retry_after})"
        )

    def send(self, notice: Notice) -> str | None:
        """Post one role's message; raises ``NotificationError`` when Slack does not take it."""
        self._post(render_slack(notice))
        return None

    def send_digest(self, owner: str, notices: Sequence[Notice]) -> str | None:
        """Post one owner's digest; raises ``NotificationError`` when Slack does not take it."""
        self._post(render_slack_digest(owner, notices))
        return None

    def _webhook_url(self) -> str:
        try:
            url = self._url_provider()
        except Exception as exc:  # noqa: BLE001 - any provider fault; its text may hold the secret
            raise NotificationError(f"Slack webhook URL unavailable ({type(exc).__name__})") from None
        if not isinstance(url, str) or not url.strip():
            raise NotificationError("Slack webhook URL is empty")
        url = url.strip()
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            raise NotificationError("Slack webhook URL is not a valid URL") from None
        # The URL is a bearer secret: send it in clear text only to this machine (tests, the demo).
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
            return url
        raise NotificationError("Slack webhook URL must use https")

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1)))

    def _post(self, payload: Mapping[str, Any]) -> None:
        url = self._webhook_url()
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        last_reason = "not attempted"
        started = self._clock()
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._post_once(url, data)
            except _Transient as failure:
                last_reason, wait = failure.reason, failure.retry_after
            else:
                return
            if wait is not None and wait > self._max_retry_after:
                # Retrying before Slack's time risks the webhook being disabled; give up instead.
                raise NotificationError(
                    f"Slack rate limit: asked to wait {wait:g}s, more than the {self._max_retry_after:g}s allowed"
                )
            if attempt < self._max_attempts:
                pause = wait if wait is not None else self._backoff(attempt)
                if self._clock() - started + pause > self._max_total:
                    raise NotificationError(
                        f"Slack webhook failed after {attempt} attempts: {last_reason}; "
                        f"another wait would pass the {self._max_total:g}s budget"
                    )
                self._sleep(pause)
        raise NotificationError(f"Slack webhook failed after {self._max_attempts} attempts: {last_reason}")

    def _post_once(self, url: str, data: bytes) -> None:
        """One POST. Returns on 2xx; raises ``_Transient`` to retry, ``NotificationError`` to stop."""
        try:
            request = urllib.request.Request(  # noqa: S310 - scheme checked in _webhook_url
                url,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "deputy-guard"},
            )
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read(4096)  # Slack answers "ok"; never buffer an unbounded body
            return
        except urllib.error.HTTPError as err:
            # HTTPError keeps the socket open and its repr/str may carry the URL: read what we need, close.
            try:
                status = err.code
                retry_after = err.headers.get("Retry-After") if err.headers is not None else None
                detail = _safe_detail(err.read(4096), url)
            finally:
                err.close()
        except (OSError, http.client.HTTPException) as err:
            # Refused, reset, timed out, DNS, TLS, bad status line: the kind is enough, the text may hold the URL.
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            kind = type(reason).__name__ if isinstance(reason, BaseException) else type(err).__name__
            raise _Transient(f"connection failed ({kind})") from None
        except ValueError:
            # urllib/http.client put the URL into the text of these (unknown url type, InvalidURL).
            raise NotificationError("Slack webhook URL was rejected by the HTTP client") from None

        described = f"HTTP {status}" + (f" {detail}" if detail else "")
        if status == 429:
            raise _Transient(described, _parse_retry_after(retry_after))
        if 500 <= status <= 599:
            raise _Transient(described)
        raise NotificationError(f"Slack rejected the message: {described}")


ParameterGetter = Callable[..., object]


def _webhook_from_value(value: object) -> str:
    """Read a webhook URL from a parameter or secret value: a plain URL or JSON ``{"url": ...}``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("webhook secret looks like JSON but does not parse") from None
    if isinstance(value, Mapping):
        value = value.get("url") or value.get("webhook_url")
    if not isinstance(value, str) or not value.strip():
        raise ValueError("webhook parameter holds no URL")
    return value.strip()


def make_webhook_url_provider(
    *,
    parameter: str | None,
    url: str | None,
    get_parameter: ParameterGetter,
    get_secret: ParameterGetter,
    max_age: int = 300,
) -> Callable[[], str] | None:
    """Build the ``url_provider`` for ``SlackChannel`` from the two settings; None when Slack is off.

    ``parameter`` (DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER) wins over ``url`` (DEPUTY_GUARD_SLACK_WEBHOOK_URL).
    A Secrets Manager ARN is read with ``get_secret``; anything else is an SSM parameter read with
    ``get_parameter(..., decrypt=True)`` (which also serves ``/aws/reference/secretsmanager/NAME``).
    Pass Powertools' ``parameters.get_parameter``/``get_secret`` (or a provider's ``get``); their
    ``max_age`` cache means a warm Lambda does not call AWS per message.
    """
    if parameter:
        name = parameter
        if name.startswith("arn:") and ":secretsmanager:" in name:

            def from_secret() -> str:
                return _webhook_from_value(get_secret(name, max_age=max_age))

            return from_secret

        def from_parameter() -> str:
            return _webhook_from_value(get_parameter(name, max_age=max_age, decrypt=True))

        return from_parameter
    if url:
        fixed = url

        def from_setting() -> str:
            return fixed

        return from_setting
    return None


# --------------------------------------------------------------------------------------------------
# Dedup ledger
# --------------------------------------------------------------------------------------------------


class Ledger(Protocol):
    """Remembers what was announced, so the same news is not repeated within a window."""

    def claim(self, key: str, ttl_seconds: int) -> bool:
        """Record ``key`` for ``ttl_seconds``; False when it is already recorded and not yet expired."""
        ...

    def release(self, key: str) -> None:
        """Forget ``key`` (used when no channel carried the news, so the next attempt is not muted)."""
        ...


class InMemoryLedger:
    """A process-local ``Ledger`` for tests, the CLI and the demo; ``clock`` returns epoch seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, ttl_seconds: int) -> bool:
        """Claim ``key`` unless an unexpired claim exists."""
        now = self._clock()
        with self._lock:
            expires = self._expiry.get(key)
            if expires is not None and expires > now:
                return False
            self._expiry[key] = now + ttl_seconds
            return True

    def release(self, key: str) -> None:
        """Drop any claim on ``key``."""
        with self._lock:
            self._expiry.pop(key, None)


# --------------------------------------------------------------------------------------------------
# Notifier
# --------------------------------------------------------------------------------------------------


class LoggerLike(Protocol):
    """The slice of ``logging.Logger`` (and Powertools ``Logger``) the notifier uses."""

    def info(self, msg: str, *, extra: Mapping[str, object] | None = ...) -> None: ...

    def warning(self, msg: str, *, extra: Mapping[str, object] | None = ...) -> None: ...

    def error(self, msg: str, *, extra: Mapping[str, object] | None = ...) -> None: ...


class MetricsLike(Protocol):
    """Counts outcomes; adapt Powertools ``Metrics`` with ``unit=MetricUnit.Count``."""

    def add_metric(self, name: str, value: float = 1) -> None: ...


class DeliveryStatus(StrEnum):
    """The overall outcome of one ``notify``/``notify_digest`` call."""

    SENT = "sent"  # every channel took it
    PARTIAL = "partial"  # some channels took it, some failed
    FAILED = "failed"  # no channel took it
    SUPPRESSED = "suppressed"  # already announced within the window; nothing sent
    SKIPPED = "skipped"  # no channel configured, or nothing to send


@dataclass(frozen=True)
class ChannelResult:
    """One channel's outcome; ``error`` is sanitised text safe to log and return."""

    channel: str
    ok: bool
    message_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": "ok" if self.ok else "failed",
            "message_id": self.message_id,
            "error": self.error,
        }


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one message: per-channel results, the roles it carried, the roles held back."""

    results: tuple[ChannelResult, ...] = ()
    roles: tuple[str, ...] = ()
    suppressed: tuple[str, ...] = ()

    @property
    def delivered(self) -> bool:
        """True when at least one channel carried the message."""
        return any(r.ok for r in self.results)

    @property
    def status(self) -> DeliveryStatus:
        if not self.results:
            return DeliveryStatus.SUPPRESSED if self.suppressed and not self.roles else DeliveryStatus.SKIPPED
        if all(r.ok for r in self.results):
            return DeliveryStatus.SENT
        return DeliveryStatus.PARTIAL if self.delivered else DeliveryStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "channels": [r.to_dict() for r in self.results],
            "roles": list(self.roles),
            "suppressed": list(self.suppressed),
        }


def _error_text(exc: BaseException) -> str:
    """One line naming the failure; NotificationError text is already sanitised by its channel."""
    text = str(exc) if isinstance(exc, NotificationError) else f"{type(exc).__name__}: {exc}"
    return _one_line(text)[:300] or type(exc).__name__


class Notifier:
    """Fans a notice out to every channel, once per dedup window, and never raises to its caller.

    A channel that fails is logged and counted (``NotificationFailed``) while the others still send;
    if none carries the news the ledger claim is released so the next event or sweep tries again.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        ledger: Ledger,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        logger: LoggerLike,
        metrics: MetricsLike,
    ) -> None:
        if window_seconds < 0:
            raise ValueError("window_seconds must not be negative")
        self._channels = tuple(channels)
        self._ledger = ledger
        self._window = window_seconds
        self._logger = logger
        self._metrics = metrics

    def notify(self, notice: Notice) -> DeliveryReport:
        """Send one role's notice on every channel unless it was announced within the window."""
        if not self._channels:
            self._logger.warning("no notification channel configured", extra=_notice_fields(notice))
            return DeliveryReport()
        key = notice_fingerprint(notice)
        claimed = self._claim(key, notice)
        if claimed is False:
            self._suppressed([notice])
            return DeliveryReport(suppressed=(notice.role_arn,))
        results = tuple(
            self._deliver(channel, lambda c: c.send(notice), {"kind": "role", **_notice_fields(notice)})
            for channel in self._channels
        )
        report = DeliveryReport(results=results, roles=(notice.role_arn,))
        self._settle(report, [key] if claimed else [], _notice_fields(notice))
        return report

    def notify_digest(self, owner: str, notices: Sequence[Notice]) -> DeliveryReport:
        """Send one digest for ``owner`` with the notices not announced within the window; none left, none sent."""
        if not self._channels:
            self._logger.warning("no notification channel configured", extra={"owner": owner})
            return DeliveryReport()
        kept: list[Notice] = []
        held: list[Notice] = []
        claimed_keys: list[str] = []
        for notice in notices:
            key = notice_fingerprint(notice)
            claimed = self._claim(key, notice)
            if claimed is False:
                held.append(notice)
                continue
            kept.append(notice)
            if claimed:
                claimed_keys.append(key)
        if held:
            self._suppressed(held)
        suppressed = tuple(n.role_arn for n in held)
        if not kept:
            return DeliveryReport(suppressed=suppressed)
        fields = {"kind": "digest", "owner": owner, "roles": len(kept)}
        results = tuple(
            self._deliver(channel, lambda c: c.send_digest(owner, kept), fields) for channel in self._channels
        )
        report = DeliveryReport(results=results, roles=tuple(n.role_arn for n in kept), suppressed=suppressed)
        self._settle(report, claimed_keys, {"owner": owner, "roles": len(kept)})
        return report

    def _claim(self, key: str, notice: Notice) -> bool | None:
        """True: claimed; False: announced within the window; None: ledger down, send anyway."""
        try:
            return self._ledger.claim(key, self._window)
        except Exception as exc:  # noqa: BLE001 - better a duplicate than silence, whatever the ledger raised
            self._metrics.add_metric(name="NotificationLedgerError", value=1)
            self._logger.warning(
                "notification ledger unavailable; sending without dedup",
                extra={"error": _error_text(exc), "dedup_key": key, **_notice_fields(notice)},
            )
            return None

    def _deliver(
        self, channel: Channel, send: Callable[[Channel], str | None], fields: Mapping[str, object]
    ) -> ChannelResult:
        try:
            receipt = send(channel)
        except Exception as exc:  # noqa: BLE001 - a failed notification must never block or undo a fix
            error = _error_text(exc)
            self._metrics.add_metric(name="NotificationFailed", value=1)
            self._logger.warning(
                "notification failed",
                extra={**fields, "channel": channel.name, "error": error, "error_type": type(exc).__name__},
            )
            return ChannelResult(channel=channel.name, ok=False, error=error)
        self._metrics.add_metric(name="NotificationSent", value=1)
        self._logger.info("notification sent", extra={**fields, "channel": channel.name, "message_id": receipt})
        return ChannelResult(channel=channel.name, ok=True, message_id=receipt)

    def _settle(self, report: DeliveryReport, claimed_keys: Sequence[str], fields: Mapping[str, object]) -> None:
        if report.delivered:
            return
        self._metrics.add_metric(name="NotificationUndelivered", value=1)
        self._logger.error(
            "notification reached no channel",
            extra={**fields, "channels": [r.to_dict() for r in report.results]},
        )
        # Nobody heard it, so it must not count as announced: the next event or sweep tries again.
        for key in claimed_keys:
            try:
                self._ledger.release(key)
            except Exception as exc:  # noqa: BLE001 - the worst case is one muted window, say so and go on
                self._metrics.add_metric(name="NotificationLedgerError", value=1)
                self._logger.warning(
                    "notification ledger release failed", extra={"error": _error_text(exc), "dedup_key": key}
                )

    def _suppressed(self, notices: Sequence[Notice]) -> None:
        self._metrics.add_metric(name="NotificationSuppressed", value=len(notices))
        for notice in notices:
            self._logger.info(
                "notification suppressed: announced within the dedup window",
                extra={**_notice_fields(notice), "window_seconds": self._window},
            )


def _notice_fields(notice: Notice) -> dict[str, object]:
    return {
        "role_arn": notice.role_arn,
        "verdict": notice.verdict.value,
        "action": notice.action.value,
        "owner": notice.owner,
        "event_id": notice.event_id,
    }
