"""The role pipeline: evaluate, decide, fix under the write-ahead audit rule, queue the owners' notice.

Every decision is one structured log line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from chalicelib.adapters.errors import AccessDenied, AwsError, LimitExceeded, MalformedPolicy, NotFound, Unavailable
from chalicelib.adapters.store import ChangeKind, ChangeRecord, ChangeStatus
from chalicelib.domain.engine import evaluate
from chalicelib.domain.events import RoleRef, Skip, own_event, to_role_ref
from chalicelib.domain.models import (
    DEFAULT_SIZE_QUOTA,
    Action,
    Evaluation,
    Mode,
    Notice,
    PolicyDoc,
    ProblemCode,
    RoleRecord,
    Verdict,
)
from chalicelib.domain.plan import RoleResult, Run, decide, tag_key_problems
from chalicelib.domain.policy import PolicyError, parse_policy, render_diff
from chalicelib.domain.render import resolve_owner
from chalicelib.domain.settings import Settings
from chalicelib.service.deps import Deps
from chalicelib.service.findings import record_findings
from chalicelib.service.skips import report_skip

_NOTIFIED_ACTIONS = frozenset({Action.FIXED, Action.NOTIFIED, Action.CAPPED, Action.REVIEW, Action.FAILED})
# IAM has no conditional write. A write-ahead slower than this (throttled, retried) re-reads the role
# before writing, so the read-to-write window stays short (docs/reliability.md, "Races").
RECHECK_AFTER_SECONDS = 1.0


# --- the role pipeline ------------------------------------------------------------------------------


def evaluate_role(role: RoleRecord, deps: Deps) -> Evaluation:
    """Evaluate with the default quota first; read the account's quota only when a fix would exceed it."""
    context = role.context()
    configured = deps.settings.size_quota
    evaluation = evaluate(role.document, context, deps.settings.engine_options(configured or DEFAULT_SIZE_QUOTA))
    too_large = any(p.code is ProblemCode.TOO_LARGE for p in evaluation.problems)
    # IAM's quota is never below 2,048: ask the account only when a fix needs more than that.
    if too_large and configured is None:
        quota = deps.account_quota()
        if quota != DEFAULT_SIZE_QUOTA:
            evaluation = evaluate(role.document, context, deps.settings.engine_options(quota))
    if evaluation.verdict in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW):
        # A finding's owner hears that a control tag in another case was ignored (it decided nothing).
        ignored = tag_key_problems(role.tags)
        if ignored:
            evaluation = replace(evaluation, problems=evaluation.problems + ignored)
    return evaluation


# Trust documents repeat across an account: every Lambda function's role trusts lambda.amazonaws.com the
# same way, and CDK or SAM write the same document for every state machine. The engine's answer depends
# on the document and the role's context only (account, partition, path and tags), so a
# scan evaluates each document once per context, and renders each shared fix's diff once. The shared
# evaluations are never changed (the engine returns new documents). At most this many are kept, so a
# scan of documents that are all different holds no more than that.
EVALUATIONS_KEPT = 1024


class Evaluations:
    """One scan's evaluations, shared by the roles of the same trust document and context, and their diffs."""

    def __init__(self) -> None:
        self._by_role: dict[tuple[Any, ...], Evaluation] = {}
        # By the id of each evaluation held in _by_role (so the id cannot be reused): its fix's diff, once rendered.
        self._diffs: dict[int, str | None] = {}

    def of(self, role: RoleRecord, deps: Deps) -> Evaluation:
        """The role's evaluation, shared with earlier roles of the same document and context."""
        if not isinstance(role.document, str):
            return evaluate_role(role, deps)
        key = (role.document, role.partition, role.account_id, role.path, tuple(sorted(role.tags.items())))
        evaluation = self._by_role.get(key)
        if evaluation is None:
            evaluation = evaluate_role(role, deps)
            if len(self._by_role) < EVALUATIONS_KEPT:
                self._by_role[key] = evaluation
                self._diffs[id(evaluation)] = None
        return evaluation

    def diff(self, evaluation: Evaluation) -> str:
        """The diff of the evaluation's fix, rendered once per shared evaluation."""
        if id(evaluation) not in self._diffs:
            return fix_diff(evaluation)
        text = self._diffs[id(evaluation)]
        if text is None:
            text = self._diffs[id(evaluation)] = fix_diff(evaluation)
        return text


def fix_diff(evaluation: Evaluation) -> str:
    """The unified diff from the evaluated document to its fix; empty when there is no fix."""
    before, after = evaluation.original, evaluation.fixed_policy
    return render_diff(before, after) if before is not None and after is not None else ""


def planned_fix(document: PolicyDoc, role: RoleRecord, deps: Deps) -> PolicyDoc | None:
    """The fix deputy-guard computes for ``document`` on ``role`` with the current settings (None: no fix)."""
    return evaluate_role(replace(role, document=document), deps).fixed_policy


def needs_read(role: RoleRecord, evaluation: Evaluation, deps: Deps) -> bool:
    """Whether a role from the listing must be read before deciding (GetRole; a dry run reads its tags only)."""
    # The listing omits tags (mode tag, owner, CloudFormation): read the role before any action, and
    # decide on that fresh read rather than on the listing. Centrally exempt roles need no read.
    if role.tags_loaded or evaluation.verdict not in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW):
        return False
    return deps.settings.exemption_for(role.name, role.path, deps.clock().date(), role.account_id) is None


def process_role(
    role: RoleRecord,
    deps: Deps,
    run: Run,
    ref: RoleRef | None = None,
    *,
    retried: bool = False,
    evaluation: Evaluation | None = None,
    read: Future[RoleRecord | None] | None = None,
    evaluations: Evaluations | None = None,
    listed: bool = False,
) -> RoleResult:
    """Evaluate one role, decide, act (fix under the audit rule), and queue the owners' notice.

    A dry-run scan hands in the listing's ``evaluation``, the ``read`` it already started for the role and
    its shared ``evaluations``. A ``listed`` role comes from a listing: one that carries tags is good for
    every decision but a write, which is decided again on a fresh read (GetRole) just before writing.
    """
    memo = evaluations or Evaluations()
    if evaluation is None:
        evaluation = memo.of(role, deps)
    decided: tuple[Action, str] | None = None
    reread = needs_read(role, evaluation, deps)
    if not reread and listed:
        decided = decide(evaluation, role, settings=deps.settings, run=run, today=deps.clock())
        reread = decided[0] is Action.FIXED  # a write is decided again on a fresh read, just before writing
    if reread:
        try:
            fresh = read.result() if read is not None else deps.iam.get_role(role.name)
        except AccessDenied as exc:
            # One role the bot may not read (a boundary, an SCP) must not stop the sweep of all the others.
            deps.metrics.add_metric("RoleUnreadable")
            reason = (
                f"deputy-guard may not read the role ({exc.operation}: {exc.code});"
                f" apply the patch by hand or grant iam:{exc.operation}"
            )
            return _finish(role, _result(role, evaluation, Action.FAILED, reason, memo), deps, run, ref)
        if fresh is None:
            return _gone(role, evaluation, deps, run, ref)
        role, evaluation, decided = fresh, memo.of(fresh, deps), None
    if decided is None:
        decided = decide(evaluation, role, settings=deps.settings, run=run, today=deps.clock())
    action, reason = decided
    result = _result(role, evaluation, action, reason, memo)
    if action is Action.WOULD_FIX:
        run.fixes += 1  # a preview reaches the per-run cap where the run with fixes would
    if action is Action.FIXED:
        try:
            result = _apply(role, result, deps, run, ref)
        except _Changed as changed:
            if changed.fresh is None:
                result = _replace(result, Action.SKIPPED, "the role was deleted meanwhile")
            elif not retried:
                # Decide again on what IAM holds now: never write a document computed from a stale read.
                return process_role(changed.fresh, deps, run, ref, retried=True, evaluations=evaluations)
            else:
                result = _replace(result, Action.SKIPPED, "the trust policy kept changing; left for the next run")
    return _finish(role, result, deps, run, ref)


def _finish(role: RoleRecord, result: RoleResult, deps: Deps, run: Run, ref: RoleRef | None) -> RoleResult:
    """Log the decision and queue the owners' notice."""
    _log_decision(deps, result, run, ref)
    if result.action in _NOTIFIED_ACTIONS and run.mode is not Mode.DRY_RUN:
        run.notices.append(_notice(role, result, deps, run, ref))
    return result


def _result(
    role: RoleRecord, evaluation: Evaluation, action: Action, reason: str, evaluations: Evaluations | None = None
) -> RoleResult:
    return RoleResult(
        role_name=role.name,
        role_arn=role.arn,
        verdict=evaluation.verdict,
        action=action,
        reason=reason,
        evaluation=evaluation,
        before=evaluation.original,
        after=evaluation.fixed_policy,
        diff=evaluations.diff(evaluation) if evaluations is not None else fix_diff(evaluation),
    )


def _gone(role: RoleRecord, evaluation: Evaluation, deps: Deps, run: Run, ref: RoleRef | None) -> RoleResult:
    result = _result(role, evaluation, Action.SKIPPED, "the role was deleted meanwhile")
    _log_decision(deps, result, run, ref)
    return result


class _Changed(Exception):
    """The trust policy changed between the read and the write; ``fresh`` is IAM's role now (None: deleted)."""

    def __init__(self, fresh: RoleRecord | None) -> None:
        super().__init__("the trust policy changed before the write")
        self.fresh = fresh


def current_document(role: RoleRecord) -> PolicyDoc | None:
    try:
        return parse_policy(role.document)
    except PolicyError:
        return None


def _holds(deps: Deps, name: str, document: PolicyDoc) -> bool:
    """Whether the role holds ``document`` right now (False when that cannot be read)."""
    try:
        current = deps.iam.get_role(name)
    except AwsError:
        return False
    return current is not None and current_document(current) == document


def _apply(role: RoleRecord, result: RoleResult, deps: Deps, run: Run, ref: RoleRef | None) -> RoleResult:
    """Write-ahead audit, then UpdateAssumeRolePolicy, then the outcome; never a write without a record."""
    assert result.before is not None and result.after is not None
    started = time.monotonic()
    try:
        record = deps.audit.record_intent(
            role_arn=role.arn,
            role_name=role.name,
            before=result.before,
            after=result.after,
            kind=ChangeKind.FIX,
            actor=ref.actor if ref else None,
            event_id=ref.event_id if ref else None,
            mode=run.mode.value,
            trigger=run.trigger,
            reason=result.reason,
        )
    except AwsError as exc:
        deps.metrics.add_metric("AuditWriteFailed")
        deps.logger.error("audit store unavailable: role not changed", extra={"role": role.name, "error": str(exc)})
        if exc.operation == "GenerateMac":
            # A person's credentials under the stack's key policy: only the bot's own roles may sign a fix.
            return _replace(
                result,
                Action.FAILED,
                f"the audit record could not be signed ({exc.code}): role not changed; only deputy-guard's own "
                "roles may sign a fix, so ask the bot (POST /roles/NAME/remediate, deputy-guard api remediate)",
            )
        return _replace(result, Action.FAILED, f"audit store unavailable ({exc.code}): role not changed")
    if time.monotonic() - started > RECHECK_AFTER_SECONDS:
        # A slow write-ahead stretched the window since the read: look again before writing.
        try:
            fresh = deps.iam.get_role(role.name)
        except AwsError as exc:
            save_outcome(deps, record, ChangeStatus.FAILED, str(exc))
            return _replace(result, Action.FAILED, f"could not re-read the role before writing ({exc.code})", record)
        if fresh is None or current_document(fresh) != result.before:
            save_outcome(deps, record, ChangeStatus.SUPERSEDED, "the trust policy changed before the write")
            raise _Changed(fresh)
    try:
        deps.iam.update_assume_role_policy(role.name, result.after)
    except NotFound:
        save_outcome(deps, record, ChangeStatus.SUPERSEDED, "role deleted before the write")
        return _replace(result, Action.SKIPPED, "the role was deleted meanwhile")
    except (LimitExceeded, MalformedPolicy) as exc:
        # IAM rejects the document itself; the bot has no other document to offer, so a human decides.
        save_outcome(deps, record, ChangeStatus.FAILED, str(exc))
        deps.metrics.add_metric("FixFailed")
        reason = f"IAM rejected the fixed document ({exc.code}): {exc.message}; a human must decide"
        return replace(_replace(result, Action.REVIEW, reason, record), verdict=Verdict.NEEDS_REVIEW)
    except AwsError as exc:
        # A lost answer (5xx, timeout) is not a lost write: if the role holds the fix, it was applied.
        if not (isinstance(exc, Unavailable) and _holds(deps, role.name, result.after)):
            save_outcome(deps, record, ChangeStatus.FAILED, str(exc))
            deps.metrics.add_metric("FixFailed")
            return _replace(result, Action.FAILED, f"IAM refused the fix ({exc.code}): {exc.message}", record)
        deps.logger.warning("IAM answered with an error, but the fix is in place", extra={"role": role.name})
    run.fixes += 1
    deps.metrics.add_metric("RolesFixed")
    save_outcome(deps, record, ChangeStatus.APPLIED, None)
    return _replace(result, Action.FIXED, result.reason, record)


def save_outcome(deps: Deps, record: ChangeRecord, status: ChangeStatus, error: str | None) -> None:
    try:
        deps.audit.record_outcome(record, status, error)
    except AwsError as exc:
        # The pending record already holds the original and the new document: a revert still works.
        deps.metrics.add_metric("AuditWriteFailed")
        deps.logger.error(
            "could not record the outcome of a change",
            extra={"role": record.role_name, "change_id": record.change_id, "status": status.value, "error": str(exc)},
        )


def _replace(result: RoleResult, action: Action, reason: str, record: ChangeRecord | None = None) -> RoleResult:
    return RoleResult(
        role_name=result.role_name,
        role_arn=result.role_arn,
        verdict=result.verdict,
        action=action,
        reason=reason,
        evaluation=result.evaluation,
        before=result.before,
        after=result.after,
        diff=result.diff,
        owner=result.owner,
        change_id=record.change_id if record else result.change_id,
    )


def _log_decision(deps: Deps, result: RoleResult, run: Run, ref: RoleRef | None) -> None:
    _count(deps, run, "RolesEvaluated")
    if result.verdict is Verdict.NEEDS_REVIEW:
        _count(deps, run, "RolesNeedingReview")
    # A scan or sweep logs its roles without a finding at DEBUG: at INFO a sweep of 10,000 roles would
    # write 10,000 lines that nobody acts on (the report and the sweep's summary line count them). Every
    # finding, every action and every event's decision stays at INFO.
    quiet = ref is None and result.action is Action.NONE and result.verdict in _NO_FINDING
    (deps.logger.debug if quiet else deps.logger.info)(
        "decision",
        extra={
            "role": result.role_name,
            "verdict": result.verdict.value,
            "action": result.action.value,
            "reason": result.reason,
            "event_id": ref.event_id if ref else None,
            "trigger": run.trigger,
            "problems": [p.code.value for p in result.evaluation.problems],
            "change_id": result.change_id,
        },
    )


_NO_FINDING = (Verdict.COMPLIANT, Verdict.NOT_APPLICABLE)


def _count(deps: Deps, run: Run, name: str) -> None:
    """Count a metric in the run's tally when it keeps one (a scan emits it once at its end), else now."""
    if not run.count(name):
        deps.metrics.add_metric(name)


def _notice(role: RoleRecord, result: RoleResult, deps: Deps, run: Run, ref: RoleRef | None) -> Notice:
    settings = deps.settings
    actor = ref.actor if ref else None
    return Notice(
        account=role.account_id,
        region=ref.region if ref and ref.region else deps.region,
        role_name=role.name,
        role_arn=role.arn,
        verdict=result.verdict,
        problems=result.evaluation.problems,
        action=result.action,
        reason=result.reason,
        before=result.before,
        after=result.after,
        diff=result.diff,
        owner=resolve_owner(role.tags, settings.owner_tags, actor, settings.default_owner),
        actor=actor,
        event_id=ref.event_id if ref else None,
        time=deps.clock().isoformat(timespec="seconds"),
        revert_command=_revert_command(role, settings) if result.action is Action.FIXED else None,
        change_id=result.change_id,
        trigger=run.trigger,
        services=result.evaluation.services,
    )


def _revert_command(role: RoleRecord, settings: Settings) -> str:
    """How to undo a fix: in an organization, from the central account, naming the role's account."""
    account = f" --account {role.account_id}" if settings.accounts.multi_account else ""
    return f"deputy-guard revert {role.name}{account}"


def send_notices(deps: Deps, run: Run, *, digest: bool) -> None:
    """Hand the run's notices to the notifier: one message per role for events, a digest per owner otherwise."""
    if deps.notifier is None or not run.notices:
        return
    if not digest:
        for notice in run.notices:
            deps.notifier.notify(notice)
        return
    by_owner: dict[str, list[Notice]] = {}
    for notice in run.notices:
        by_owner.setdefault(notice.owner, []).append(notice)
    for owner in sorted(by_owner):
        deps.notifier.notify_digest(owner, by_owner[owner])


# --- entry points -----------------------------------------------------------------------------------


def handle_event(event: Mapping[str, Any], deps: Deps) -> dict[str, Any]:
    """One EventBridge event: parsed once into its role reference, then ``handle_ref``."""
    parsed = to_role_ref(event, services=deps.settings.services)
    if isinstance(parsed, Skip):
        return report_skip(parsed, deps.logger, deps.metrics)
    return handle_ref(parsed, deps)


def handle_ref(ref: RoleRef, deps: Deps) -> dict[str, Any]:
    """An event's role reference: skip the bot's own echo, or re-read the role and act; at most once per event id."""
    # The bot's own function roles, in its own account (their ARNs name it); never a member role here.
    own = own_event(ref, lambda session: session.issuer in deps.self_roles())
    if own is not None:
        return report_skip(own, deps.logger, deps.metrics)
    return run_ref(ref, deps)


def run_ref(ref: RoleRef, deps: Deps) -> dict[str, Any]:
    """A role reference the echo test has passed: re-read the role and act; at most once per event id."""
    if deps.once is None:
        return _handle_ref(ref, deps)
    return deps.once.run(ref.event_id, lambda: _handle_ref(ref, deps))


def _handle_ref(ref: RoleRef, deps: Deps) -> dict[str, Any]:
    run = Run(mode=deps.settings.mode, trigger="event", max_fixes=deps.settings.max_fixes_per_run)
    role = deps.iam.get_role(ref.role_name)
    if role is None:
        deps.logger.info(
            "role gone before the event was handled", extra={"role": ref.role_name, "event_id": ref.event_id}
        )
        return {"status": "skipped", "reason": "role_not_found", "event_id": ref.event_id, "role_name": ref.role_name}
    result = process_role(role, deps, run, ref)
    send_notices(deps, run, digest=False)
    record_findings(deps, [result])
    return {"status": "processed", "event_id": ref.event_id, **result.to_report()}


def check_role(role_name: str, deps: Deps) -> RoleResult | None:
    """One role's evaluation and what a run with fixes would do about it (a preview); no change, no notice."""
    role = deps.iam.get_role(role_name)
    if role is None:
        return None
    evaluation = evaluate_role(role, deps)
    # The same preview as a dry-run scan, so the role carries the same label in both.
    run = Run(mode=Mode.DRY_RUN, trigger="api", max_fixes=deps.settings.max_fixes_per_run)
    action, reason = decide(evaluation, role, settings=deps.settings, run=run, today=deps.clock())
    return _result(role, evaluation, action, reason)


def remediate(role_name: str, deps: Deps, *, dry_run: bool = False, actor: str | None = None) -> RoleResult | None:
    """Fix one role now, whatever the global mode (an explicit human request); None if it does not exist."""
    role = deps.iam.get_role(role_name)
    if role is None:
        return None
    run = Run(
        mode=Mode.DRY_RUN if dry_run else Mode.ENFORCE,
        trigger="api",
        max_fixes=1,
        forced=True,
    )
    ref = (
        RoleRef(
            role_name=role.name,
            event_id="",
            event_name="Remediate",
            account=role.account_id,
            region=deps.region,
            time=deps.clock().isoformat(),
            actor=actor,
        )
        if actor
        else None
    )
    result = process_role(role, deps, run, ref)
    send_notices(deps, run, digest=False)
    if not dry_run:
        record_findings(deps, [result])
    return result
