"""Exempting a role by its tags: the one way Slack's `Exempt 30 days` button and `deputy-guard exempt` take.

Write-ahead as every change: the audit record (the document unchanged, before == after) comes first, then
the tags, then the record's outcome, then the owners are told. The bot never untags: removing an exemption
is the CLI's alone (deputy_guard.actions), with a person's own credentials, recorded the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from chalicelib.adapters.errors import AwsError
from chalicelib.adapters.store import ChangeKind, ChangeRecord, ChangeStatus
from chalicelib.domain.models import Action, Notice, PolicyDoc, Problem, RoleRecord, Verdict
from chalicelib.domain.plan import EXEMPT_UNTIL_TAG, MODE_TAG, NO_EXPIRY, REASON_TAG
from chalicelib.domain.policy import render_diff
from chalicelib.domain.render import resolve_owner
from chalicelib.service.deps import Deps
from chalicelib.service.enforce import current_document, save_outcome
from chalicelib.service.revert import _tag_text

EXEMPTION_TAGS = (MODE_TAG, REASON_TAG, EXEMPT_UNTIL_TAG)
# The metric each trigger counts (Slack's keeps the name its dashboards know).
_METRICS = {"slack": "RolesExemptedFromSlack"}


@dataclass(frozen=True)
class ExemptResult:
    """What an exemption request did: ``status`` exempt | failed."""

    status: str
    message: str
    role_name: str
    until: str | None = None
    change_id: str | None = None
    notice: Notice | None = None
    error_code: str | None = None


def exempt_role(
    role: RoleRecord,
    deps: Deps,
    *,
    actor: str,
    until: date | None,
    reason: str,
    trigger: str,
    verdict: Verdict,
    problems: Sequence[Problem] = (),
) -> ExemptResult:
    """Tag ``role`` exempt (until the end of ``until``, or for good), under a write-ahead audit record."""
    current = current_document(role) or {}
    expiry = until.isoformat() if until is not None else NO_EXPIRY
    record = record_tag_change(role, deps, current, ChangeKind.EXEMPT, actor=actor, trigger=trigger, reason=reason)
    try:
        deps.iam.tag_role(role.name, {MODE_TAG: "exempt", REASON_TAG: _tag_text(reason), EXEMPT_UNTIL_TAG: expiry})
    except AwsError as exc:
        save_outcome(deps, record, ChangeStatus.FAILED, str(exc))
        return ExemptResult(
            "failed", f"IAM refused to tag {role.name} ({exc.code}): {exc.message}", role.name, error_code=exc.code
        )
    save_outcome(deps, record, ChangeStatus.APPLIED, None)
    deps.metrics.add_metric(_METRICS.get(trigger, "RolesExempted"))
    notice = outcome_notice(role, deps, actor, Action.EXEMPT, verdict, reason, current, None, trigger=trigger)
    notice = replace(notice, problems=tuple(problems))
    if deps.notifier is not None:
        deps.notifier.notify(notice)
    deps.logger.info(
        "exempted", extra={"role": role.name, "until": expiry, "actor": actor, "change_id": record.change_id}
    )
    return ExemptResult(
        "exempt",
        f"{role.name} is exempt until {expiry} ({MODE_TAG}=exempt); change {record.change_id}",
        role.name,
        until=expiry,
        change_id=record.change_id,
        notice=notice,
    )


def record_tag_change(
    role: RoleRecord, deps: Deps, current: PolicyDoc, kind: ChangeKind, *, actor: str, trigger: str, reason: str
) -> ChangeRecord:
    """The write-ahead record of a tag change: the document stays as it is (before == after).

    No revert acts on it, so a person whose credentials may not sign (the CLI) keeps it unsigned.
    """
    return deps.audit.record_intent(
        role_arn=role.arn,
        role_name=role.name,
        before=current,
        after=current,
        kind=kind,
        actor=actor,
        event_id=None,
        mode=trigger,
        trigger=trigger,
        reason=reason,
        unsigned_if_refused=True,
    )


def outcome_notice(
    role: RoleRecord,
    deps: Deps,
    actor: str,
    action: Action,
    verdict: Verdict,
    reason: str,
    before: PolicyDoc | None,
    after: PolicyDoc | None,
    *,
    trigger: str,
) -> Notice:
    """The owners' notice of a change a person asked for (an exemption, a revert)."""
    settings = deps.settings
    return Notice(
        account=role.account_id,
        region=deps.region,
        role_name=role.name,
        role_arn=role.arn,
        verdict=verdict,
        problems=(),
        action=action,
        reason=reason,
        before=before,
        after=after,
        diff=render_diff(before, after) if before is not None and after is not None else "",
        owner=resolve_owner(role.tags, settings.owner_tags, actor, settings.default_owner),
        actor=actor,
        event_id=None,
        time=deps.clock().isoformat(timespec="seconds"),
        trigger=trigger,
    )
