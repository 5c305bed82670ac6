"""The pure decision: an evaluated role, the settings and the run in; an action and its reason out.

Plan, then apply: ``decide`` returns data that can be logged, shown in a dry run and tested without AWS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from chalicelib.domain.models import (
    Action,
    Evaluation,
    Mode,
    Notice,
    PolicyDoc,
    RoleRecord,
    Verdict,
)
from chalicelib.domain.settings import Settings

MODE_TAG = "deputy-guard:mode"
REASON_TAG = "deputy-guard:reason"
# A date (YYYY-MM-DD): an exempt tag set with it lapses after that day (a Slack "Exempt 30 days" sets both).
EXEMPT_UNTIL_TAG = "deputy-guard:exempt-until"
NO_EXPIRY = "never"
CFN_STACK_TAG = "aws:cloudformation:stack-name"


@dataclass(frozen=True)
class RoleResult:
    """One role's outcome: the row of a scan report and the seed of a notification."""

    role_name: str
    role_arn: str
    verdict: Verdict
    action: Action
    reason: str
    evaluation: Evaluation
    before: PolicyDoc | None = None
    after: PolicyDoc | None = None
    diff: str = ""
    owner: str | None = None
    change_id: str | None = None

    def to_report(self) -> dict[str, Any]:
        """One row of a scan report, lean: at 10,000 roles the rows are the report.

        A finding (``non_compliant``, ``needs_review``) carries what its owner acts on: the problems, the
        action and why, and the patch (``diff``, empty when the bot offers none). A compliant or
        not-applicable role carries who it is, its verdict, its problems (none) and the action (none).
        """
        row: dict[str, Any] = {
            "role_name": self.role_name,
            "role_arn": self.role_arn,
            "verdict": self.verdict.value,
            "problems": [p.to_dict() for p in self.evaluation.problems],
            "action": self.action.value,
        }
        if self.verdict in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW):
            row["reason"] = self.reason
            row["diff"] = self.diff
        return row


@dataclass
class Run:
    """State of one run (an event, a sweep, a scan request): the fix cap and the time budget."""

    mode: Mode
    trigger: str
    max_fixes: int
    forced: bool = False
    deadline: float | None = None
    fixes: int = 0
    notices: list[Notice] = field(default_factory=list)
    # Counts a scan or sweep adds up and emits as one metric each when it ends (None: each count at once).
    # One add per metric instead of one per role: the same CloudWatch sums, a fraction of the work.
    tally: dict[str, int] | None = None

    def count(self, name: str) -> bool:
        """Add one to ``name`` in the run's tally; False when the run keeps none (the caller counts at once)."""
        if self.tally is None:
            return False
        self.tally[name] = self.tally.get(name, 0) + 1
        return True

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


# --- pure decision ---------------------------------------------------------------------------------


def tag_value(tags: Mapping[str, str], key: str) -> str | None:
    """A tag's value by case-insensitive key (IAM tag keys are case-insensitive for uniqueness)."""
    wanted = key.lower()
    for k, v in tags.items():
        if k.lower() == wanted:
            return v
    return None


def exempt_until(tags: Mapping[str, str]) -> date | None:
    """The last day of a time-limited exempt tag; None when there is no limit (no tag, ``never``, not a date).

    A value that is not a date leaves the exemption in force: whoever may set the tags may exempt for good anyway.
    """
    value = (tag_value(tags, EXEMPT_UNTIL_TAG) or "").strip()
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def decide(
    evaluation: Evaluation,
    role: RoleRecord,
    *,
    settings: Settings,
    run: Run,
    today: datetime,
) -> tuple[Action, str]:
    """The action for one evaluated role, and why (pure)."""
    if evaluation.verdict is Verdict.COMPLIANT:
        return Action.NONE, "compliant"
    if evaluation.verdict is Verdict.NOT_APPLICABLE:
        if role.path.startswith("/aws-service-role/"):
            return Action.NONE, "service-linked role: IAM allows no changes"
        return Action.NONE, "no statement lets Step Functions assume the role"
    exemption = settings.exemption_for(role.name, role.path, today.date())
    if exemption is not None:
        return Action.EXEMPT, exemption.describe()
    tag = (tag_value(role.tags, MODE_TAG) or "").strip().lower()
    if tag == "exempt":
        until = exempt_until(role.tags)
        # Why the role is exempt, as whoever tagged it wrote it (a Slack click and revert write it too).
        why = (tag_value(role.tags, REASON_TAG) or "").strip()
        because = f": {why}" if why else ""
        if until is None:
            return Action.EXEMPT, f"tag {MODE_TAG}=exempt{because}"
        if today.date() <= until:
            return Action.EXEMPT, f"tag {MODE_TAG}=exempt until {until.isoformat()}{because}"
    if evaluation.verdict is Verdict.NEEDS_REVIEW:
        codes = ", ".join(sorted({p.code.value for p in evaluation.problems}))
        return Action.REVIEW, f"needs a human decision ({codes}); deputy-guard never rewrites such a policy"
    # A dry run (a scan without --fix, GET /roles/{name}, dry-run mode) previews a run with fixes: the same
    # tags, CloudFormation rule and cap, labelled would_fix / would_notify, so one role carries one label in
    # every preview (docs/scan-report.md, "Actions").
    preview = run.mode is Mode.DRY_RUN
    base = f"{run.mode.value} mode"
    mode, why = (Mode.ENFORCE if preview else run.mode), base
    if run.forced:
        mode, why = Mode.ENFORCE, "explicit remediation request"
    elif tag in (Mode.NOTIFY.value, Mode.ENFORCE.value):
        mode, why = Mode(tag), f"tag {MODE_TAG}={tag}"
    if preview and why != base:
        why = f"{base}, {why}"
    stack = tag_value(role.tags, CFN_STACK_TAG)
    cloudformation = bool(stack) and not settings.fix_cloudformation and not run.forced
    if mode is Mode.NOTIFY:
        if preview:
            return Action.WOULD_NOTIFY, f"{why}: owners would be told, the ready patch attached"
        return Action.NOTIFIED, f"{why}: owners told, the ready patch attached"
    if cloudformation:
        if preview:
            return (
                Action.WOULD_NOTIFY,
                f"{why}; managed by CloudFormation stack {stack!r}: owners would get the patch for the template",
            )
        return Action.NOTIFIED, f"managed by CloudFormation stack {stack!r}: fix the template (patch attached)"
    if run.fixes >= run.max_fixes:
        if preview:
            return Action.CAPPED, f"{why}; the cap of {run.max_fixes} fixes per run would be reached first"
        return Action.CAPPED, f"the cap of {run.max_fixes} fixes per run was reached; left for the next run"
    if preview:
        return Action.WOULD_FIX, f"{why}: the fix is shown, not applied"
    return Action.FIXED, why
