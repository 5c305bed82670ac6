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
    Problem,
    ProblemCode,
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
# The tag keys that steer the bot. Read by their exact key, as IAM's conditions (aws:TagKeys,
# aws:RequestTag/...) compare them: a guard on "deputy-guard:*" must cover every key the bot obeys.
CONTROL_TAGS = (MODE_TAG, EXEMPT_UNTIL_TAG, REASON_TAG)


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
            "problems": [p.to_dict(with_service=self.evaluation.wide) for p in self.evaluation.problems],
            "action": self.action.value,
        }
        if self.evaluation.wide:
            row |= {"services": list(self.evaluation.services), "auto_fix": self.evaluation.auto_fix}
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
    """A tag's value by its exact key.

    IAM keeps tag keys unique regardless of case, but its conditions compare them case-sensitively: a key read
    case-insensitively would obey ``Deputy-Guard:Mode``, which a ``deputy-guard:*`` guard never stops.
    """
    return tags.get(key)


def tag_key_problems(tags: Mapping[str, str]) -> tuple[Problem, ...]:
    """A warning for each tag whose key is a control key in another case (the bot ignores such a tag)."""
    problems = []
    for key in tags:
        control = next((c for c in CONTROL_TAGS if key != c and key.lower() == c), None)
        if control is not None:
            problems.append(
                Problem(
                    ProblemCode.TAG_KEY_CASE,
                    None,
                    f"tag {key!r} is ignored: deputy-guard reads only {control!r}, spelled exactly (IAM conditions "
                    "on tag keys are case-sensitive); the role is treated as if it did not carry it",
                )
            )
    return tuple(problems)


def exempt_until(tags: Mapping[str, str]) -> date | None:
    """The last day of a time-limited exempt tag; None when there is no limit (no tag, ``never``, not a date).

    A value that is not a date leaves the exemption in force: whoever may set the tags may exempt for good anyway.
    """
    value = (tag_value(tags, EXEMPT_UNTIL_TAG) or "").strip()
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def advise_reason(evaluation: Evaluation) -> str:
    """Why a ready patch is offered and not applied: each advise-level service's caveat, from its evidence."""
    notes = "; ".join(f"{entry.label}: {entry.note}" for entry in evaluation.advised)
    return f"advise level, the patch is attached and never applied by deputy-guard: verify before applying ({notes})"


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
        guarded = settings.services[0].label if len(settings.services) == 1 else "a guarded service"
        return Action.NONE, f"no statement lets {guarded} assume the role"
    exemption = settings.exemption_for(role.name, role.path, today.date(), role.account_id)
    if exemption is not None:
        return Action.EXEMPT, exemption.describe()
    action, reason = _decide_unexempted(evaluation, role, settings=settings, run=run, today=today)
    lapsed = settings.lapsed_exemption_for(role.name, role.path, today.date(), role.account_id)
    if lapsed is not None:
        # A stale entry is worth a word wherever the reason goes (reports, messages): it no longer protects.
        reason = f"{reason}; {lapsed.describe_lapsed()}"
    return action, reason


def _decide_unexempted(
    evaluation: Evaluation, role: RoleRecord, *, settings: Settings, run: Run, today: datetime
) -> tuple[Action, str]:
    """The action for a finding no central exemption covers: the role's tags, the mode, CloudFormation, the cap."""
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
    if not evaluation.auto_fix:
        # Advise level: in every mode, on every path (a sweep, REST, a Slack click), a patch and never a write.
        return (Action.WOULD_NOTIFY if run.mode is Mode.DRY_RUN else Action.NOTIFIED), advise_reason(evaluation)
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
