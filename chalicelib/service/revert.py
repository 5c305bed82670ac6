"""Revert: restore the original the bot recorded, only from a record it signed (docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.errors import AwsError
from chalicelib.adapters.store import ChangeKind, ChangeRecord, ChangeStatus
from chalicelib.domain.models import (
    PolicyDoc,
)
from chalicelib.domain.plan import EXEMPT_UNTIL_TAG, MODE_TAG, NO_EXPIRY, REASON_TAG, tag_value
from chalicelib.service.deps import Deps
from chalicelib.service.enforce import current_document, planned_fix, save_outcome

FORCE_REFUSED = (
    "a forced revert is refused here: it would write a recorded document over a change deputy-guard did not make, "
    "so it runs only from the CLI with your own IAM credentials (deputy-guard revert ROLE --force)"
)


@dataclass(frozen=True)
class RevertResult:
    status: str  # reverted | already_reverted | refused | not_found | nothing_to_revert | failed
    message: str
    role_name: str
    restored: PolicyDoc | None = None
    change_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "role_name": self.role_name,
            "restored": self.restored,
            "change_id": self.change_id,
        }


def revert(
    role_name: str,
    deps: Deps,
    *,
    force: bool = False,
    actor: str | None = None,
    caller_credentials: bool = False,
) -> RevertResult:
    """Restore the original the bot recorded, if the record is the bot's own and the role still holds its fix.

    The audit table is evidence, not authority: the recorded original is written back only when fixing
    it again gives exactly the recorded result. ``force`` (the role changed since the fix) is honoured only
    with ``caller_credentials``: the CLI, running with a person's own IAM credentials, never the bot's.
    """
    if force and not caller_credentials:
        deps.metrics.add_metric("RevertRefused")
        result = RevertResult("refused", FORCE_REFUSED, role_name)
    else:
        result = _revert(role_name, deps, force=force, actor=actor, caller_credentials=caller_credentials)
    # Every outcome is a decision worth a line: a refusal or a failure as much as a restore.
    deps.logger.info(
        "revert decision",
        extra={
            "role": role_name,
            "status": result.status,
            "change_id": result.change_id,
            "forced": force,
            "actor": actor,
        },
    )
    return result


def _revert(role_name: str, deps: Deps, *, force: bool, actor: str | None, caller_credentials: bool) -> RevertResult:
    role = deps.iam.get_role(role_name)
    if role is None:
        return RevertResult("not_found", f"role {role_name!r} does not exist", role_name)
    current = current_document(role)
    change = deps.audit.last_applied_fix(role.arn, current=current)
    if change is None:
        undone = _last_fix_reverted(deps, role.arn)
        if undone is not None:
            # A repeated revert (a retry, a second click) finds its work done: say so, write nothing.
            return RevertResult(
                "already_reverted",
                f"{role_name!r} is already reverted: deputy-guard's fix {undone.reverts or undone.change_id} "
                f"was undone on {undone.created_at[:10]}; nothing to do",
                role_name,
                change_id=undone.reverts or undone.change_id,
            )
        return RevertResult(
            "nothing_to_revert", f"deputy-guard has no applied fix on record for {role_name!r}", role_name
        )
    unverified = deps.audit.problem(change)
    if unverified is not None:
        # Before anything else, even a forced revert with a person's own credentials: a record the bot did not
        # sign could name any document as the "original".
        deps.metrics.add_metric("RevertIntegrityFailed")
        deps.logger.warning(
            "revert refused: the audit record does not verify",
            extra={"role": role.name, "change_id": change.change_id, "problem": unverified},
        )
        return RevertResult(
            "refused",
            f"the audit record {change.change_id} for {role_name!r} cannot be trusted: {unverified}; nothing was "
            "written. Check the record against the audit trail and restore by hand if it is genuine "
            "(docs/security.md).",
            role_name,
            change_id=change.change_id,
        )
    if planned_fix(change.before, role, deps) != change.after:
        # A record the bot did not write (or one for other settings): writing its "original" with the bot's
        # credentials would let anyone who can write the table choose a trust policy. Refuse, loudly.
        deps.metrics.add_metric("RevertIntegrityFailed")
        deps.logger.warning(
            "revert refused: the audit record is not a fix deputy-guard computed",
            extra={"role": role.name, "change_id": change.change_id},
        )
        return RevertResult(
            "refused",
            f"the audit record {change.change_id} for {role_name!r} does not hold a fix deputy-guard computed "
            "(fixing its recorded original again does not give its recorded result); nothing was written. "
            "If the settings changed since the fix, restore the original by hand from the audit trail.",
            role_name,
            change_id=change.change_id,
        )
    if current != change.after and not force:
        return RevertResult(
            "refused",
            f"the trust policy of {role_name!r} changed since deputy-guard wrote it (change {change.change_id}); "
            "reverting would discard that change. Use --force to restore the recorded original anyway.",
            role_name,
            change_id=change.change_id,
        )
    who = actor or "deputy-guard revert"
    today = deps.clock().date().isoformat()
    tags = {MODE_TAG: "exempt", REASON_TAG: _tag_text(f"reverted {today} by {who}")}
    if tag_value(role.tags, EXEMPT_UNTIL_TAG) is not None:
        # An earlier time-limited exemption must not make this one lapse (the bot may not untag).
        tags[EXEMPT_UNTIL_TAG] = NO_EXPIRY
    # Recorded before any write. A person's own credentials may not sign (only the bot's roles may), and no
    # revert ever acts on a revert's record, so theirs is kept unsigned rather than refused.
    record = deps.audit.record_intent(
        role_arn=role.arn,
        role_name=role.name,
        before=current if current is not None else {},
        after=change.before,
        kind=ChangeKind.REVERT,
        actor=actor,
        event_id=None,
        mode="revert",
        trigger="revert",
        reason=f"revert of change {change.change_id}" + (" (forced)" if force else ""),
        reverts=change.change_id,
        unsigned_if_refused=caller_credentials,
    )
    try:
        # Exempt first: if the restore then fails, the role is merely left alone, never fixed again in a loop.
        deps.iam.tag_role(role.name, tags)
    except AwsError as exc:
        save_outcome(deps, record, ChangeStatus.FAILED, str(exc))
        raise
    try:
        deps.iam.update_assume_role_policy(role.name, change.before)
    except AwsError as exc:
        save_outcome(deps, record, ChangeStatus.FAILED, str(exc))
        return RevertResult("failed", f"IAM refused the revert ({exc.code}): {exc.message}", role_name)
    save_outcome(deps, record, ChangeStatus.APPLIED, None)
    save_outcome(deps, change, ChangeStatus.REVERTED, None)
    deps.metrics.add_metric("RolesReverted")
    deps.logger.info("reverted", extra={"role": role.name, "change_id": change.change_id, "forced": force})
    return RevertResult(
        "reverted",
        f"restored the original trust policy of {role_name!r} recorded by change {change.change_id}; "
        f"the role is now tagged {MODE_TAG}=exempt" + _unsigned_note(record),
        role_name,
        restored=change.before,
        change_id=change.change_id,
    )


def _unsigned_note(record: ChangeRecord) -> str:
    if record.item.get("signature"):
        return ""
    return f"; its record {record.change_id} is unsigned (only deputy-guard's own roles may sign)"


def _last_fix_reverted(deps: Deps, role_arn: str) -> ChangeRecord | None:
    """The revert that undid the role's newest fix, when that fix was reverted (None otherwise)."""
    history = deps.audit.history(role_arn, limit=100)
    newest_fix = next((r for r in history if r.kind is ChangeKind.FIX), None)
    if newest_fix is None or newest_fix.status is not ChangeStatus.REVERTED:
        return None
    return next((r for r in history if r.kind is ChangeKind.REVERT and r.reverts == newest_fix.change_id), newest_fix)


def _tag_text(text: str) -> str:
    """IAM tag values allow letters, digits, spaces and _.:/=+-@ only, up to 256 characters."""
    allowed = "".join(ch if ch.isalnum() or ch in " _.:/=+-@" else "-" for ch in text)
    return allowed[:256]
