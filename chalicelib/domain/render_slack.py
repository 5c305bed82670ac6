"""Pure rendering of Slack Block Kit messages for one role and for an owner's digest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.domain.catalogue import Level, entries_of
from chalicelib.domain.models import Notice, Problem
from chalicelib.domain.render import (
    ELLIPSIS,
    SLACK_BLOCKS_MAX,
    SLACK_CONTEXT_ELEMENTS_MAX,
    SLACK_DIGEST_TEXT_BUDGET,
    SLACK_FALLBACK_MAX,
    SLACK_FIELD_MAX,
    SLACK_FIELDS_MAX,
    SLACK_HEADER_MAX,
    SLACK_TEXT_MAX,
    VERDICT_EMOJI,
    action_headline,
    clip_text,
    console_url,
    count_values,
    one_line,
    worst_first,
)
from chalicelib.domain.slack_actions import actions_block, digest_row_ids, wanted_actions

# A digest row with buttons takes two blocks (its line and its buttons); the head and the tail take five.
SLACK_DIGEST_BUTTON_ROWS_MAX = (SLACK_BLOCKS_MAX - 5) // 2

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
    return {"type": "section", "text": _mrkdwn(clip_text(text, SLACK_TEXT_MAX))}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": clip_text(text, SLACK_HEADER_MAX), "emoji": True}}


def _diff_text(diff: str, limit: int = SLACK_TEXT_MAX) -> str:
    """The diff as a mrkdwn code block within ``limit``, whole lines kept, with a "(N more lines)" note."""
    # Three backticks in the content would close the block; a zero-width space keeps them inert.
    lines = _esc(diff.replace("```", "`\u200b``")).splitlines()
    opener, closer = "```\n", "\n```"
    full = opener + "\n".join(lines) + closer
    if len(full) <= limit:
        return full

    def note(n: int, cut: bool = False) -> str:
        return f"\n_{ELLIPSIS} ({'line cut, ' if cut else ''}{n} more lines)_"

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
        return opener + clip_text(lines[0], budget) + closer + note(len(lines) - 1, cut=True)
    return opener + "\n".join(kept) + closer + note(len(lines) - len(kept))


def _problems_text(problems: Sequence[Problem]) -> str:
    if not problems:
        return "*Problems:* none"
    lines = []
    for p in problems:
        where = "whole document" if p.statement is None else f"statement {p.statement}"
        lines.append(f"\u2022 {_code_span(p.code.value)} ({where}): {_esc(one_line(p.message))}")
    title = "*Problems*"
    text = "\n".join([title, *lines])
    if len(text) <= SLACK_TEXT_MAX:
        return text
    shown: list[str] = [title]
    for i, line in enumerate(lines):
        more = f"\n_{ELLIPSIS} and {len(lines) - i} more_"
        if len("\n".join([*shown, line])) + len(more) > SLACK_TEXT_MAX:
            return "\n".join(shown) + more
        shown.append(line)
    return "\n".join(shown)


def _field(label: str, value: str) -> dict[str, str]:
    return _mrkdwn(clip_text(f"*{label}*\n{value}", SLACK_FIELD_MAX))


def _fallback(text: str) -> str:
    return clip_text(_esc(one_line(text)), SLACK_FALLBACK_MAX)


def render_slack(notice: Notice) -> dict[str, Any]:
    """Render one role's notice as a Slack incoming-webhook payload: Block Kit plus a plain-text fallback."""
    headline = action_headline(notice.action)
    emoji = VERDICT_EMOJI.get(notice.verdict, "")
    actor = notice.actor or "unknown"
    blocks: list[dict[str, Any]] = [_header(f"{emoji} {headline}: {notice.role_name}")]
    if notice.reason.strip():
        blocks.append(_section(f"*Why:* {_esc(one_line(notice.reason))}"))
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
    for entry in entries_of(notice.services):
        advice = (
            f" \u2014 advise only, verify before applying: {_esc(entry.note)}" if entry.level is Level.ADVISE else ""
        )
        links.append(f"<{entry.evidence}|AWS evidence for {_esc(entry.label)}>{advice}")
    if links:
        blocks.append(_section("\n".join(links)))
    if notice.buttons:
        blocks.append(actions_block(notice.buttons, notice.role_name))
    context = [f"deputy-guard \u00b7 {_esc(notice.time)}", f"trigger: {_esc(notice.trigger)}"]
    if notice.change_id:
        context.append(f"change {_code_span(notice.change_id)}")
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(clip_text(c, SLACK_TEXT_MAX)) for c in context][:SLACK_CONTEXT_ELEMENTS_MAX],
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
        f"{VERDICT_EMOJI.get(notice.verdict, '')} *{_esc(notice.action.value)}* {_code_span(notice.role_name)}",
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
    return " \u00b7 ".join(f"{count} {_esc(value)}" for value, count in count_values(values).items())


def render_slack_digest(owner: str, notices: Sequence[Notice]) -> dict[str, Any]:
    """Render one owner's digest as a single Slack message: a line per role, worst first, bounded.

    Lines are packed into sections of at most 3,000 characters; past 50 blocks or about 12,000
    characters the message ends with an "and N more" line.
    """
    if not notices:
        raise ValueError("a digest needs at least one notice")
    ordered = worst_first(notices)
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
    blocks_left = SLACK_BLOCKS_MAX - len(blocks) - 2
    # Each row is one section's lines and, for a role with buttons, that role (its buttons follow the line).
    rows: list[tuple[list[str], Notice | None]] = []
    used = 0
    shown = 0
    for notice in ordered:
        line = clip_text(_digest_line(notice), SLACK_TEXT_MAX)
        if used + len(line) > SLACK_DIGEST_TEXT_BUDGET:
            break
        if notice.buttons and blocks_left >= 2:
            rows.append(([line], notice))
            blocks_left -= 2
        elif rows and rows[-1][1] is None and len("\n".join([*rows[-1][0], line])) <= SLACK_TEXT_MAX:
            rows[-1][0].append(line)
        elif blocks_left >= 1:
            rows.append(([line], None))
            blocks_left -= 1
        else:
            break
        used += len(line)
        shown += 1
    for index, (lines, buttoned) in enumerate(rows):
        if buttoned is None:
            blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines))})
            continue
        section_id, actions_id = digest_row_ids(index)
        blocks.append({"type": "section", "block_id": section_id, "text": _mrkdwn("\n".join(lines))})
        blocks.append(actions_block(buttoned.buttons, buttoned.role_name, actions_id))
    if shown < count:
        more = count - shown
        blocks.append(_section(f"_{ELLIPSIS} and {more} more {'role' if more == 1 else 'roles'}_"))
    closing = [_mrkdwn(f"deputy-guard \u00b7 {_esc(max(n.time for n in ordered))}")]
    unbuttoned = sum(1 for n in ordered if wanted_actions(n)) - sum(1 for _lines, b in rows if b is not None)
    if unbuttoned > 0 and any(n.buttons for n in ordered):
        # Slack allows 50 blocks a message: the other fixable roles are acted on one by one.
        closing.append(
            _mrkdwn(
                f"{unbuttoned} more {'role has' if unbuttoned == 1 else 'roles have'} no buttons here"
                " (Slack's block limit): act per role with `POST /roles/NAME/remediate` or"
                " `deputy-guard scan --fix --role NAME`"
            )
        )
    blocks.append({"type": "context", "elements": closing})
    text = _fallback(
        f"deputy-guard digest for {owner}: {count} {noun}"
        f" ({', '.join(f'{c} {v}' for v, c in count_values([n.verdict.value for n in ordered]).items())})."
    )
    return {"text": text, "blocks": blocks[:SLACK_BLOCKS_MAX], "unfurl_links": False, "unfurl_media": False}
