"""Pure rendering of owner notices: owner resolution, fingerprints and the SNS payloads.

A ``Notice`` in, plain data out. The SNS schema is documented in ``docs/notifications.md``; change the two together.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import urllib.parse
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.domain.catalogue import Entry, Level, entries_of
from chalicelib.domain.models import NOTICE_SCHEMA_VERSION, Action, Notice, Problem, Verdict

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

ELLIPSIS: Final = "\u2026"

# Worst first: a human decision beats a missing pin, which beats anything already safe.
_SEVERITY: Final[Mapping[Verdict, int]] = {
    Verdict.NEEDS_REVIEW: 3,
    Verdict.NON_COMPLIANT: 2,
    Verdict.COMPLIANT: 1,
    Verdict.NOT_APPLICABLE: 0,
}

VERDICT_EMOJI: Final[Mapping[Verdict, str]] = {
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
    Action.WOULD_NOTIFY: "Would notify (dry run)",
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

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


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


def worst_first(notices: Sequence[Notice]) -> list[Notice]:
    return sorted(notices, key=lambda n: (-_SEVERITY[n.verdict], n.role_arn, n.action.value))


def action_headline(action: Action) -> str:
    return _HEADLINE.get(action, action.value)


def clip_text(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut, without splitting a Slack ``&amp;`` entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def one_line(text: str) -> str:
    return " ".join(text.split())


def evidence_line(entry: Entry) -> str:
    """Where AWS documents a service's pin; for an advise-level service, why the bot does not apply it."""
    line = f"evidence: {entry.label} ({entry.level.value}): {entry.evidence}"
    if entry.level is Level.ADVISE:
        line += f" (verify before applying: {entry.note})"
    return line


def evidence_lines(services: Sequence[str]) -> list[str]:
    return [evidence_line(entry) for entry in entries_of(services)]


def evidence_dicts(services: Sequence[str]) -> list[dict[str, str]]:
    return [
        {"service": e.principal, "level": e.level.value, "url": e.evidence, "note": e.note}
        for e in entries_of(services)
    ]


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
    subject = one_line(printable) or "deputy-guard notification"
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
        "services": list(notice.services),
        "evidence": evidence_dicts(notice.services),
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
    return "\n".join(kept) + (f"\n{ELLIPSIS} ({dropped} more lines)" if dropped else "")


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
        body = {**body, "diff": "", "reason": clip_text(str(body["reason"]), 1000)}
        body["problems"] = body["problems"][:20]
    return body


def render_sns(notice: Notice) -> SnsMessage:
    """Render one role's notice as an SNS message (schema v1, kind ``deputy-guard.role``)."""
    envelope = {"schema_version": NOTICE_SCHEMA_VERSION, "kind": ROLE_KIND}
    overhead = _encoded_size({**envelope, "x": None})
    body = _fit_role_body(_role_body(notice), SNS_MESSAGE_BUDGET - overhead)
    subject = _ascii_subject(f"[deputy-guard] {action_headline(notice.action)}: {notice.role_name} ({notice.account})")
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


def count_values(values: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def render_sns_digest(owner: str, notices: Sequence[Notice]) -> SnsMessage:
    """Render one owner's digest (schema v1, kind ``deputy-guard.digest``), worst roles first.

    When every item in full would pass SNS's 256 KiB limit, the documents are dropped from the items,
    then the diffs, then the least severe items, and the digest says so (``truncated``, ``omitted``).
    """
    if not notices:
        raise ValueError("a digest needs at least one notice")
    ordered = worst_first(notices)
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
            "verdict": count_values([n.verdict.value for n in ordered]),
            "action": count_values([n.action.value for n in ordered]),
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
