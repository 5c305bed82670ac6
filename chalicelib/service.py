"""Orchestration: handle_event, scan, remediate, revert.

Plan, then apply: ``decide`` turns an evaluation into an action (pure data that can be logged, shown
in a dry run and tested without AWS); ``_apply`` carries out a fix under the write-ahead audit rule.
Every decision is one structured log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.adapters.aws import AccessDenied, AwsError, LimitExceeded, MalformedPolicy, NotFound, Unavailable
from chalicelib.adapters.store import AuditTrail, ChangeKind, ChangeRecord, ChangeStatus, Clock, SweepCursor, utc_now
from chalicelib.domain.engine import evaluate
from chalicelib.domain.events import RoleRef, Skip, to_role_ref
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
from chalicelib.domain.policy import PolicyError, parse_policy, render_diff
from chalicelib.domain.settings import Settings
from chalicelib.notify import resolve_owner
from chalicelib.runtime.logs import report_skip

MODE_TAG = "deputy-guard:mode"
REASON_TAG = "deputy-guard:reason"
CFN_STACK_TAG = "aws:cloudformation:stack-name"
# GetRole calls a dry-run scan keeps in flight: the reads of flagged roles are independent and each one
# costs a round trip to IAM, so overlapping a few of them divides a scan's wall time; kept small because
# IAM throttles bursts (botocore's standard retries absorb the odd throttle).
SCAN_READ_CONCURRENCY = 4
_NOTIFIED_ACTIONS = frozenset({Action.FIXED, Action.NOTIFIED, Action.CAPPED, Action.REVIEW, Action.FAILED})
# IAM has no conditional write. A write-ahead slower than this (throttled, retried) re-reads the role
# before writing, so the read-to-write window stays short (docs/reliability.md, "Races").
RECHECK_AFTER_SECONDS = 1.0


class Iam(Protocol):
    """The IAM gateway as the service sees it (chalicelib.adapters.aws.IamGateway)."""

    def get_role(self, name: str) -> RoleRecord | None: ...

    def list_roles_page(self, *, path_prefix: str = "/", marker: str | None = None, max_items: int = 1000) -> Any: ...

    def update_assume_role_policy(self, name: str, document: PolicyDoc) -> None: ...

    def tag_role(self, name: str, tags: Mapping[str, str]) -> None: ...

    def get_assume_role_policy_size_quota(self) -> int | None: ...


class Metrics(Protocol):
    def add_metric(self, name: str, value: float = 1) -> None: ...


class Notifier(Protocol):
    def notify(self, notice: Notice) -> Any: ...

    def notify_digest(self, owner: str, notices: Sequence[Notice]) -> Any: ...


class Logger(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...

    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


class OnceGuard(Protocol):
    """Runs ``work`` at most once per key (Powertools Idempotency on DynamoDB in production)."""

    def run(self, key: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]: ...


@dataclass
class Deps:
    """What the service needs; built lazily by app.py and the CLI, handed in fakes by tests."""

    settings: Settings
    iam: Iam
    audit: AuditTrail
    notifier: Notifier | None
    logger: Logger
    metrics: Metrics
    region: str
    self_roles: Callable[[], frozenset[tuple[str, str]]] = frozenset
    once: OnceGuard | None = None
    cursor: SweepCursor | None = None
    clock: Clock = utc_now
    _quota: int | None = field(default=None, repr=False)

    def account_quota(self) -> int:
        """The trust-policy size quota: the setting, else the account's (read once), else 2,048."""
        if self.settings.size_quota is not None:
            return self.settings.size_quota
        if self._quota is None:
            try:
                self._quota = self.iam.get_assume_role_policy_size_quota() or DEFAULT_SIZE_QUOTA
            except AwsError as exc:
                self.logger.warning("size quota unreadable; using the default", extra={"error": str(exc)})
                self._quota = DEFAULT_SIZE_QUOTA
        return self._quota


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
        return {
            "role_name": self.role_name,
            "role_arn": self.role_arn,
            "verdict": self.verdict.value,
            "problems": [p.to_dict() for p in self.evaluation.problems],
            "action": self.action.value,
            "reason": self.reason,
            "diff": self.diff,
        }


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
        return Action.EXEMPT, f"tag {MODE_TAG}=exempt"
    if evaluation.verdict is Verdict.NEEDS_REVIEW:
        codes = ", ".join(sorted({p.code.value for p in evaluation.problems}))
        return Action.REVIEW, f"needs a human decision ({codes}); deputy-guard never rewrites such a policy"
    mode, why = run.mode, f"{run.mode.value} mode"
    if run.forced and mode is not Mode.DRY_RUN:
        mode, why = Mode.ENFORCE, "explicit remediation request"
    elif tag in (Mode.NOTIFY.value, Mode.ENFORCE.value) and mode is not Mode.DRY_RUN:
        mode, why = Mode(tag), f"tag {MODE_TAG}={tag}"
    stack = tag_value(role.tags, CFN_STACK_TAG)
    cloudformation = bool(stack) and not settings.fix_cloudformation and not run.forced
    if mode is Mode.DRY_RUN:
        if cloudformation:
            return Action.WOULD_FIX, f"{why}; managed by CloudFormation stack {stack!r}: enforce mode sends the patch"
        return Action.WOULD_FIX, f"{why}: the fix is shown, not applied"
    if mode is Mode.NOTIFY:
        return Action.NOTIFIED, f"{why}: owners told, the ready patch attached"
    if cloudformation:
        return Action.NOTIFIED, f"managed by CloudFormation stack {stack!r}: fix the template (patch attached)"
    if run.fixes >= run.max_fixes:
        return Action.CAPPED, f"the cap of {run.max_fixes} fixes per run was reached; left for the next run"
    return Action.FIXED, why


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
    return evaluation


def needs_read(role: RoleRecord, evaluation: Evaluation, deps: Deps) -> bool:
    """Whether a role from the listing must be read (GetRole) before deciding."""
    # The listing omits tags (mode tag, owner, CloudFormation): read the role before any action, and
    # decide on that fresh read rather than on the listing. Centrally exempt roles need no read.
    if role.tags_loaded or evaluation.verdict not in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW):
        return False
    return deps.settings.exemption_for(role.name, role.path, deps.clock().date()) is None


def process_role(
    role: RoleRecord,
    deps: Deps,
    run: Run,
    ref: RoleRef | None = None,
    *,
    retried: bool = False,
    evaluation: Evaluation | None = None,
    read: Future[RoleRecord | None] | None = None,
) -> RoleResult:
    """Evaluate one role, decide, act (fix under the audit rule), and queue the owners' notice.

    A dry-run scan hands in the listing's ``evaluation`` and the ``read`` it already started for the role.
    """
    if evaluation is None:
        evaluation = evaluate_role(role, deps)
    if needs_read(role, evaluation, deps):
        try:
            fresh = read.result() if read is not None else deps.iam.get_role(role.name)
        except AccessDenied as exc:
            # One role the bot may not read (a boundary, an SCP) must not stop the sweep of all the others.
            deps.metrics.add_metric("RoleUnreadable")
            reason = f"deputy-guard may not read the role ({exc.code}); apply the patch by hand or grant iam:GetRole"
            return _finish(role, _result(role, evaluation, Action.FAILED, reason), deps, run, ref)
        if fresh is None:
            return _gone(role, evaluation, deps, run, ref)
        role, evaluation = fresh, evaluate_role(fresh, deps)
    action, reason = decide(evaluation, role, settings=deps.settings, run=run, today=deps.clock())
    result = _result(role, evaluation, action, reason)
    if action is Action.FIXED:
        try:
            result = _apply(role, result, deps, run, ref)
        except _Changed as changed:
            if changed.fresh is None:
                result = _replace(result, Action.SKIPPED, "the role was deleted meanwhile")
            elif not retried:
                # Decide again on what IAM holds now: never write a document computed from a stale read.
                return process_role(changed.fresh, deps, run, ref, retried=True)
            else:
                result = _replace(result, Action.SKIPPED, "the trust policy kept changing; left for the next run")
    return _finish(role, result, deps, run, ref)


def _finish(role: RoleRecord, result: RoleResult, deps: Deps, run: Run, ref: RoleRef | None) -> RoleResult:
    """Log the decision and queue the owners' notice."""
    _log_decision(deps, result, run, ref)
    if result.action in _NOTIFIED_ACTIONS and run.mode is not Mode.DRY_RUN:
        run.notices.append(_notice(role, result, deps, run, ref))
    return result


def _result(role: RoleRecord, evaluation: Evaluation, action: Action, reason: str) -> RoleResult:
    before = evaluation.original
    after = evaluation.fixed_policy
    diff = render_diff(before, after) if before is not None and after is not None else ""
    return RoleResult(
        role_name=role.name,
        role_arn=role.arn,
        verdict=evaluation.verdict,
        action=action,
        reason=reason,
        evaluation=evaluation,
        before=before,
        after=after,
        diff=diff,
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


def _document(role: RoleRecord) -> PolicyDoc | None:
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
    return current is not None and _document(current) == document


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
        return _replace(result, Action.FAILED, f"audit store unavailable ({exc.code}): role not changed")
    if time.monotonic() - started > RECHECK_AFTER_SECONDS:
        # A slow write-ahead stretched the window since the read: look again before writing.
        try:
            fresh = deps.iam.get_role(role.name)
        except AwsError as exc:
            _outcome(deps, record, ChangeStatus.FAILED, str(exc))
            return _replace(result, Action.FAILED, f"could not re-read the role before writing ({exc.code})", record)
        if fresh is None or _document(fresh) != result.before:
            _outcome(deps, record, ChangeStatus.SUPERSEDED, "the trust policy changed before the write")
            raise _Changed(fresh)
    try:
        deps.iam.update_assume_role_policy(role.name, result.after)
    except NotFound:
        _outcome(deps, record, ChangeStatus.SUPERSEDED, "role deleted before the write")
        return _replace(result, Action.SKIPPED, "the role was deleted meanwhile")
    except (LimitExceeded, MalformedPolicy) as exc:
        # IAM rejects the document itself; the bot has no other document to offer, so a human decides.
        _outcome(deps, record, ChangeStatus.FAILED, str(exc))
        deps.metrics.add_metric("FixFailed")
        reason = f"IAM rejected the fixed document ({exc.code}): {exc.message}; a human must decide"
        return replace(_replace(result, Action.REVIEW, reason, record), verdict=Verdict.NEEDS_REVIEW)
    except AwsError as exc:
        # A lost answer (5xx, timeout) is not a lost write: if the role holds the fix, it was applied.
        if not (isinstance(exc, Unavailable) and _holds(deps, role.name, result.after)):
            _outcome(deps, record, ChangeStatus.FAILED, str(exc))
            deps.metrics.add_metric("FixFailed")
            return _replace(result, Action.FAILED, f"IAM refused the fix ({exc.code}): {exc.message}", record)
        deps.logger.warning("IAM answered with an error, but the fix is in place", extra={"role": role.name})
    run.fixes += 1
    deps.metrics.add_metric("RolesFixed")
    _outcome(deps, record, ChangeStatus.APPLIED, None)
    return _replace(result, Action.FIXED, result.reason, record)


def _outcome(deps: Deps, record: ChangeRecord, status: ChangeStatus, error: str | None) -> None:
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
    deps.metrics.add_metric("RolesEvaluated")
    if result.verdict is Verdict.NEEDS_REVIEW:
        deps.metrics.add_metric("RolesNeedingReview")
    deps.logger.info(
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
        revert_command=f"deputy-guard revert {role.name}" if result.action is Action.FIXED else None,
        change_id=result.change_id,
        trigger=run.trigger,
    )


def _send(deps: Deps, run: Run, *, digest: bool) -> None:
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
    """One EventBridge event: skip it, or re-read the role and act; at most once per event id."""

    def is_self(issuer: tuple[str, str]) -> bool:
        return issuer in deps.self_roles()

    parsed = to_role_ref(event, is_self)
    if isinstance(parsed, Skip):
        return report_skip(parsed, deps.logger, deps.metrics)
    ref = parsed
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
    _send(deps, run, digest=False)
    return {"status": "processed", "event_id": ref.event_id, **result.to_report()}


def check_role(role_name: str, deps: Deps) -> RoleResult | None:
    """One role's evaluation and the action the current settings plan for it; no change, no notice."""
    role = deps.iam.get_role(role_name)
    if role is None:
        return None
    evaluation = evaluate_role(role, deps)
    run = Run(mode=deps.settings.mode, trigger="api", max_fixes=deps.settings.max_fixes_per_run)
    action, reason = decide(evaluation, role, settings=deps.settings, run=run, today=deps.clock())
    if action is Action.FIXED:
        # Nothing is written here: report the fix the next event or sweep would apply.
        action = Action.WOULD_FIX
    return _result(role, evaluation, action, f"planned: {reason}")


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
    _send(deps, run, digest=False)
    return result


# --- scans ------------------------------------------------------------------------------------------


class BadToken(ValueError):
    """A next_token that deputy-guard did not issue (or for another request)."""


@dataclass(frozen=True)
class ScanReport:
    account: str
    complete: bool
    next_token: str | None
    results: tuple[RoleResult, ...]
    missing: tuple[str, ...] = ()

    @property
    def summary(self) -> dict[str, int]:
        counts = {v.value: 0 for v in Verdict}
        for result in self.results:
            counts[result.verdict.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "complete": self.complete,
            "next_token": self.next_token,
            "summary": self.summary,
            "results": [r.to_report() for r in self.results],
            "missing": list(self.missing),
        }

    @property
    def needs_action(self) -> bool:
        """Anything left for a human: a finding neither fixed by this run nor deliberately exempted."""
        settled = (Action.FIXED, Action.EXEMPT)
        return any(
            r.verdict in (Verdict.NON_COMPLIANT, Verdict.NEEDS_REVIEW) and r.action not in settled for r in self.results
        )


def request_digest(role_names: Sequence[str] | None, path_prefix: str) -> str:
    """What a continuation token is bound to: a digest, so a token for 1,000 role names stays short."""
    request = json.dumps({"names": list(role_names or []), "prefix": path_prefix}, separators=(",", ":"))
    return hashlib.sha256(request.encode()).hexdigest()[:32]


def encode_token(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadToken("next_token is not one deputy-guard issued") from exc
    if not isinstance(state, dict):
        raise BadToken("next_token is not one deputy-guard issued")
    skip, marker = state.get("skip", 0), state.get("marker")
    if type(skip) is not int or skip < 0 or not (marker is None or isinstance(marker, str)):
        raise BadToken("next_token is not one deputy-guard issued")
    return state


def scan(
    deps: Deps,
    *,
    dry_run: bool,
    role_names: Sequence[str] | None = None,
    path_prefix: str = "/",
    next_token: str | None = None,
    budget_seconds: float | None = None,
    trigger: str = "scan",
    mode: Mode | None = None,
    account: str = "",
    progress: Callable[[int], None] | None = None,
) -> ScanReport:
    """Scan the account (or the named roles), evaluating from the listing; read and act only where needed.

    ``mode`` defaults to ``dry-run`` for a dry run and ``enforce`` otherwise (a scan with fixes is an
    explicit request); the sweep passes the configured mode. Results come back within the time budget,
    with a ``next_token`` to continue.
    """
    run_mode = Mode.DRY_RUN if dry_run else (mode or Mode.ENFORCE)
    run = Run(mode=run_mode, trigger=trigger, max_fixes=deps.settings.max_fixes_per_run)
    if budget_seconds is not None:
        run.deadline = time.monotonic() + budget_seconds
    state = decode_token(next_token) if next_token else {}
    request_key = request_digest(role_names, path_prefix)
    if state and state.get("request") != request_key:
        raise BadToken("next_token belongs to a different request")
    results: list[RoleResult] = []
    missing: list[str] = []
    token: str | None = None
    try:
        if role_names:
            start = int(state.get("skip", 0))
            for index in range(start, len(role_names)):
                if run.out_of_time() and results:
                    token = encode_token({"request": request_key, "skip": index})
                    break
                role = deps.iam.get_role(role_names[index])
                if role is None:
                    missing.append(role_names[index])
                    continue
                results.append(process_role(role, deps, run))
                if progress:
                    progress(len(results))
        else:
            marker: str | None = state.get("marker")
            skip = int(state.get("skip", 0))
            # A dry run writes nothing, so its reads may run ahead of the decisions; a run that may write
            # reads each role just before deciding on it, keeping the read-to-write window short.
            pool = (
                ThreadPoolExecutor(SCAN_READ_CONCURRENCY, thread_name_prefix="scan-read")
                if run.mode is Mode.DRY_RUN
                else None
            )
            try:
                while token is None:
                    page = deps.iam.list_roles_page(path_prefix=path_prefix, marker=marker)
                    listed = [(role, evaluate_role(role, deps)) for role in page.roles[skip:]]
                    reads = (
                        {}
                        if pool is None
                        else {
                            role.name: pool.submit(deps.iam.get_role, role.name)
                            for role, evaluation in listed
                            if needs_read(role, evaluation, deps)
                        }
                    )
                    for index, (role, evaluation) in enumerate(listed, start=skip):
                        if run.out_of_time() and results:
                            token = encode_token({"request": request_key, "marker": marker, "skip": index})
                            break
                        read = reads.get(role.name)
                        results.append(process_role(role, deps, run, evaluation=evaluation, read=read))
                        if progress and len(results) % 100 == 0:
                            progress(len(results))
                    for future in reads.values():
                        future.cancel()  # reads not started when the time budget ran out
                    if token is not None or page.marker is None:
                        break
                    marker, skip = page.marker, 0
                    if run.out_of_time():
                        token = encode_token({"request": request_key, "marker": marker, "skip": 0})
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        # Owners hear about what was done even when the scan stops on an error part-way.
        _send(deps, run, digest=True)
    account_id = account or (results[0].role_arn.split(":")[4] if results else "")
    return ScanReport(
        account=account_id, complete=token is None, next_token=token, results=tuple(results), missing=tuple(missing)
    )


def sweep(deps: Deps, *, budget_seconds: float | None = None) -> dict[str, Any]:
    """The scheduled sweep: the configured mode over every role, resuming where a cut-short run stopped."""
    cursor = deps.cursor
    token = None
    if cursor is not None:
        try:
            token = cursor.load()
        except AwsError as exc:
            deps.logger.warning("sweep cursor unreadable; starting from the top", extra={"error": str(exc)})
    mode = deps.settings.mode
    try:
        report = scan(
            deps,
            dry_run=mode is Mode.DRY_RUN,
            mode=mode,
            next_token=token,
            budget_seconds=budget_seconds,
            trigger="sweep",
        )
    except BadToken:
        deps.logger.warning("stale sweep cursor discarded")
        report = scan(deps, dry_run=mode is Mode.DRY_RUN, mode=mode, budget_seconds=budget_seconds, trigger="sweep")
    except AwsError as exc:
        if cursor is not None and token is not None:
            # The cursor itself may be what fails (a marker IAM no longer accepts): forget it, so the
            # next sweep starts from the top instead of failing the same way every day.
            deps.logger.warning("resumed sweep failed; its cursor is discarded", extra={"error": str(exc)})
            try:
                cursor.save(None)
            except AwsError as unsaved:
                deps.logger.warning("sweep cursor could not be cleared", extra={"error": str(unsaved)})
        raise
    if cursor is not None:
        try:
            cursor.save(report.next_token)
        except AwsError as exc:
            deps.logger.warning("sweep cursor not saved; the next sweep starts from the top", extra={"error": str(exc)})
    summary = {
        "status": "complete" if report.complete else "partial",
        "resumed": token is not None,
        "summary": report.summary,
        "actions": _count_actions(report.results),
    }
    deps.logger.info("sweep finished", extra=summary)
    return summary


def _count_actions(results: Sequence[RoleResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.action.value] = counts.get(result.action.value, 0) + 1
    return counts


# --- revert -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevertResult:
    status: str  # reverted | refused | not_found | nothing_to_revert | failed
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


def revert(role_name: str, deps: Deps, *, force: bool = False, actor: str | None = None) -> RevertResult:
    """Restore the original the bot recorded, if the role still holds what the bot wrote (or ``force``)."""
    result = _revert(role_name, deps, force=force, actor=actor)
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


def _revert(role_name: str, deps: Deps, *, force: bool, actor: str | None) -> RevertResult:
    role = deps.iam.get_role(role_name)
    if role is None:
        return RevertResult("not_found", f"role {role_name!r} does not exist", role_name)
    current = _document(role)
    change = deps.audit.last_applied_fix(role.arn, current=current)
    if change is None:
        return RevertResult(
            "nothing_to_revert", f"deputy-guard has no applied fix on record for {role_name!r}", role_name
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
    # Exempt first: if the restore then fails, the role is merely left alone, never fixed again in a loop.
    deps.iam.tag_role(role.name, {MODE_TAG: "exempt", REASON_TAG: _tag_text(f"reverted {today} by {who}")})
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
    )
    try:
        deps.iam.update_assume_role_policy(role.name, change.before)
    except AwsError as exc:
        _outcome(deps, record, ChangeStatus.FAILED, str(exc))
        return RevertResult("failed", f"IAM refused the revert ({exc.code}): {exc.message}", role_name)
    _outcome(deps, record, ChangeStatus.APPLIED, None)
    _outcome(deps, change, ChangeStatus.REVERTED, None)
    deps.metrics.add_metric("RolesReverted")
    deps.logger.info("reverted", extra={"role": role.name, "change_id": change.change_id, "forced": force})
    return RevertResult(
        "reverted",
        f"restored the original trust policy of {role_name!r} recorded by change {change.change_id}; "
        f"the role is now tagged {MODE_TAG}=exempt",
        role_name,
        restored=change.before,
        change_id=change.change_id,
    )


def _tag_text(text: str) -> str:
    """IAM tag values allow letters, digits, spaces and _.:/=+-@ only, up to 256 characters."""
    allowed = "".join(ch if ch.isalnum() or ch in " _.:/=+-@" else "-" for ch in text)
    return allowed[:256]
