"""Scan reports for people (the CLI's table, the demo's story).

The summary counts what happened, not what was found: after ``scan --fix`` a fixed role counts as
``fixed``, and roles the per-run cap held back are counted with how to continue.
"""

from __future__ import annotations

from typing import Any, Final

# The order outcomes are listed in: what changed, what would, what waits for a human, then the rest.
OUTCOME_ORDER: Final = (
    "fixed",
    "would_fix",
    "notified",
    "would_notify",
    "capped",
    "review",
    "failed",
    "exempt",
    "skipped",
    "reverted",
    "compliant",
    "not_applicable",
    "non_compliant",
    "needs_review",
)
CAP_VARIABLE: Final = "DEPUTY_GUARD_MAX_FIXES_PER_RUN"


def plural(count: int, noun: str) -> str:
    """``1 role``, ``2 roles``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def outcome(row: dict[str, Any]) -> str:
    """A row's outcome: its action, or its verdict when nothing was (or would be) done."""
    return str(row["verdict"] if row["action"] == "none" else row["action"])


def count_outcomes(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[outcome(row)] = counts.get(outcome(row), 0) + 1
    rank = {name: index for index, name in enumerate(OUTCOME_ORDER)}
    return dict(sorted(counts.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def render_table(report: dict[str, Any], *, cap: int | None = None) -> str:
    """A scan report for people: one line per role (verdict, role, problems, action), what happened, what next.

    ``cap`` is the per-run fix cap, named in the hint when roles were held back by it.
    """
    rows = [("VERDICT", "ROLE", "PROBLEMS", "ACTION")]
    for result in report["results"]:
        codes = ",".join(sorted({p["code"] for p in result["problems"]})) or "-"
        action = result["action"]
        if action == "exempt" and result.get("reason"):
            # Suppressed, not hidden: an exempt finding says why it is left alone.
            action = f"exempt ({result['reason']})"
        rows.append((result["verdict"], result["role_name"], codes, action))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    counts = count_outcomes(report["results"])
    happened = ", ".join(f"{count} {name}" for name, count in counts.items()) or "nothing to report"
    lines.append("")
    lines.append(f"account {report['account'] or '?'}: {plural(len(report['results']), 'role')}: {happened}")
    lines.extend(_hints(report, counts, cap))
    for name in report.get("missing", []):
        lines.append(f"not found: {name}")
    return "\n".join(lines)


def _hints(report: dict[str, Any], counts: dict[str, int], cap: int | None) -> list[str]:
    hints: list[str] = []
    capped = counts.get("capped", 0)
    limit = f"the cap of {cap} fixes per run" if cap is not None else "the per-run fix cap"
    previewed = counts.get("would_fix", 0) + counts.get("would_notify", 0)
    if capped and previewed:
        hints.append(
            f"{plural(capped, 'role')} past {limit} would wait for another `deputy-guard scan --fix` ({CAP_VARIABLE})"
        )
    elif capped:
        hints.append(
            f"{plural(capped, 'role')} held back by {limit}: run `deputy-guard scan --fix` again to continue, "
            f"or raise {CAP_VARIABLE}"
        )
    if previewed:
        hints.append("dry run: nothing was changed or sent; `deputy-guard scan --fix` applies what it shows")
    if not report.get("complete", True):
        hints.append("partial: the time budget ran out; continue with the report's next_token")
    return hints


def no_channel_note(fixed: int) -> str:
    """Said after a fix when no notification channel is configured: the owners were told nothing."""
    return (
        f"deputy-guard: note: {plural(fixed, 'role')} fixed and no notification channel is configured "
        "(DEPUTY_GUARD_SLACK_WEBHOOK_URL, DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER or DEPUTY_GUARD_SNS_TOPIC_ARN): "
        "no owner was told"
    )
