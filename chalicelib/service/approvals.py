"""Slack approvals: buttons on the owners' messages, and what a click may do.

Minting: the notifier asks ``ButtonMinter`` for a notice's buttons; each button is one random token stored in
the table, bound to the account, role, action and digests of the document shown and of the planned change.

A click: the approver list first, then the token (known, unexpired, unused, for this action), then the role
as IAM holds it now (the same document as the message showed), then one conditional write uses the token up,
then the same pipeline as the REST routes: remediate, revert (never forced) or an exemption until a date. Every
refusal changes nothing and is answered with a message only the clicking user sees.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from chalicelib.adapters.errors import AwsError
from chalicelib.domain.events import RoleRef
from chalicelib.domain.models import Action, Mode, Notice, PolicyDoc, RoleRecord, Verdict
from chalicelib.domain.plan import Run, decide
from chalicelib.domain.render import worst_first
from chalicelib.domain.render_slack import SLACK_DIGEST_BUTTON_ROWS_MAX, render_slack
from chalicelib.domain.slack_actions import (
    APPLY_FIX,
    EXEMPT_30D,
    EXEMPT_DAYS,
    REVERT,
    TOKEN_BYTES,
    ApprovalToken,
    Click,
    MessageKind,
    actor_for,
    button,
    button_element,
    document_digest,
    ephemeral,
    mark_digest_row,
    replacement,
    token_for,
    wanted_actions,
)
from chalicelib.service.deps import Deps, Logger, Metrics
from chalicelib.service.enforce import current_document, evaluate_role, process_role, send_notices
from chalicelib.service.exempt import exempt_role, outcome_notice
from chalicelib.service.revert import revert as run_revert

TRIGGER = "slack"


class TokenStore(Protocol):
    """Where approval tokens live (chalicelib.adapters.tokens.DynamoTokenStore)."""

    def put(self, token: ApprovalToken) -> None: ...

    def get(self, token_id: str) -> ApprovalToken | None: ...

    def consume(self, token_id: str, actor: str, now: int) -> bool: ...

    def record_outcome(self, token_id: str, outcome: str) -> None: ...


# --------------------------------------------------------------------------------------------------
# Minting


class ButtonMinter:
    """Gives a notice its buttons: one stored token per button. A store failure sends the message without them."""

    def __init__(
        self,
        tokens: TokenStore,
        *,
        ttl_seconds: int,
        clock: Callable[[], datetime],
        logger: Logger,
        metrics: Metrics,
        new_id: Callable[[int], str] = secrets.token_urlsafe,
    ) -> None:
        self._tokens = tokens
        self._ttl = ttl_seconds
        self._clock = clock
        self._logger = logger
        self._metrics = metrics
        self._new_id = new_id

    def for_notice(self, notice: Notice) -> Notice:
        """One role's alert, with its buttons when it deserves some."""
        return self.mint(notice, MessageKind.ROLE)

    def for_digest(self, notices: Sequence[Notice]) -> list[Notice]:
        """A digest's notices; only as many get buttons as Slack's block limit lets the digest show."""
        budget = SLACK_DIGEST_BUTTON_ROWS_MAX
        chosen: set[int] = set()
        for notice in worst_first(notices):
            if budget and wanted_actions(notice):
                chosen.add(id(notice))
                budget -= 1
        out: list[Notice] = []
        failed = False
        for notice in notices:
            if id(notice) in chosen and not failed:
                minted = self.mint(notice, MessageKind.DIGEST)
                # The table is down: do not pay its timeouts once per role; the digest goes out plain.
                failed = minted is notice
                notice = minted
            out.append(notice)
        return out

    def mint(self, notice: Notice, kind: MessageKind) -> Notice:
        actions = wanted_actions(notice)
        if not actions:
            return notice
        now = int(self._clock().timestamp())
        buttons = []
        try:
            for action in actions:
                token = token_for(
                    notice, action, token_id=self._new_id(TOKEN_BYTES), now=now, ttl_seconds=self._ttl, message=kind
                )
                self._tokens.put(token)
                buttons.append(button(action, token.token_id))
        except AwsError as exc:
            self._metrics.add_metric("ApprovalTokensFailed")
            self._logger.warning(
                "approval buttons left out: the token store is unavailable",
                extra={"role_arn": notice.role_arn, "error": str(exc)},
            )
            return notice
        self._metrics.add_metric("ApprovalButtonsSent", len(buttons))
        return replace(notice, buttons=tuple(buttons))


# --------------------------------------------------------------------------------------------------
# Clicks


@dataclass
class Approvals:
    """What a click needs: the pipeline's Deps (its notifier announces on SNS only), tokens, the approvers."""

    deps: Deps
    tokens: TokenStore
    minter: ButtonMinter
    approvers: frozenset[str]
    # Organizations: the Deps that act in a token's account (None: out of scope); unset: this account only.
    deps_for_account: Callable[[str], Deps | None] | None = None


@dataclass(frozen=True)
class ClickOutcome:
    """What a click did: ``status`` fixed | exempt | reverted | refused | failed, a reason code, the answer."""

    status: str
    reason: str
    answer: dict[str, Any]
    role_name: str | None = None


class _Refused(Exception):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.text = text


def handle_click(click: Click, approvals: Approvals) -> ClickOutcome:
    """Check the click, then act once; every refusal is an ephemeral answer and changes nothing."""
    deps = approvals.deps
    token: ApprovalToken | None = None
    try:
        if click.user_id not in approvals.approvers:
            # Decided on the signed user id alone: a stranger's click reads nothing from the table.
            raise _Refused(
                "not_approver",
                f"Only deputy-guard's approvers may use these buttons, and <@{click.user_id}> is not one of them."
                " Nothing was changed.",
            )
        token = _usable_token(click, approvals, now=int(deps.clock().timestamp()))
        if approvals.deps_for_account is not None:
            member = approvals.deps_for_account(token.account)
            if member is None:
                raise _Refused(
                    "account", f"deputy-guard cannot act in account {token.account} now. Nothing was changed."
                )
            deps = member
        outcome = _act(click, token, approvals, deps)
    except _Refused as refused:
        outcome = ClickOutcome("refused", refused.reason, ephemeral(refused.text), token.role_name if token else None)
    except AwsError as exc:
        deps.logger.error("slack action failed: AWS unavailable", extra={"error": str(exc)})
        outcome = ClickOutcome(
            "failed", "aws_error", ephemeral(f"deputy-guard could not complete this ({exc.code}). Try again later.")
        )
    deps.metrics.add_metric("SlackActionsRefused" if outcome.status == "refused" else "SlackActions")
    deps.logger.info(
        "slack action",
        extra={
            "user": actor_for(click.user_id),
            "action": click.action_id,
            "role": outcome.role_name,
            "status": outcome.status,
            "reason": outcome.reason,
            "token": click.token_id[:6],
            "team": click.team_id,
            "channel": click.channel_id,
        },
    )
    return outcome


def _usable_token(click: Click, approvals: Approvals, *, now: int) -> ApprovalToken:
    token = approvals.tokens.get(click.token_id) if click.token_id else None
    if token is None or token.action != click.action_id:
        raise _Refused(
            "unknown_token",
            "deputy-guard does not know this button (it was never issued, or it expired and was cleared)."
            " Nothing was changed.",
        )
    if token.used:
        by = (token.used_by or "").removeprefix("slack:")
        raise _Refused(
            "used",
            f"This button was already used{f' by <@{by}>' if by else ''}{_at(token.used_at)}; each works once."
            " Nothing was changed.",
        )
    if now >= token.expires_at:
        raise _Refused(
            "expired",
            f"This button expired{_at(token.expires_at)}. Nothing was changed; the next alert or digest about"
            f" {token.role_name} carries fresh buttons.",
        )
    return token


def _at(epoch: int | None) -> str:
    if epoch is None:
        return ""
    return " at " + datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _act(click: Click, token: ApprovalToken, approvals: Approvals, deps: Deps) -> ClickOutcome:
    role = deps.iam.get_role(token.role_name)
    if role is None or role.arn != token.role_arn:
        raise _Refused("role_gone", f"{token.role_name} no longer exists. Nothing was changed.")
    current = current_document(role)
    if document_digest(current) != token.document_digest:
        raise _Refused(
            "changed",
            f"The trust policy of {role.name} changed since this message was sent, so this button no longer"
            " applies. Nothing was changed; deputy-guard reports the role's current state in its next message.",
        )
    if token.action == APPLY_FIX:
        return _apply_fix(click, token, role, approvals, deps)
    if token.action == EXEMPT_30D:
        return _exempt(click, token, role, current or {}, approvals, deps)
    if token.action == REVERT:
        return _revert(click, token, role, current or {}, approvals, deps)
    raise _Refused("unknown_token", "deputy-guard does not know this button. Nothing was changed.")


def _consume(token: ApprovalToken, deps: Deps, actor: str, tokens: TokenStore) -> None:
    if not tokens.consume(token.token_id, actor, int(deps.clock().timestamp())):
        # Lost the race to a concurrent click, or expired in the meantime: the other click is the one that acts.
        raise _Refused("used", "This button was just used (or expired). Nothing was changed by this click.")


def _checked_decision(role: RoleRecord, deps: Deps, run: Run) -> tuple[Any, Action, str]:
    """Evaluate and decide; refuse what no button may change (needs review, exempt, nothing to do)."""
    evaluation = evaluate_role(role, deps)
    if evaluation.verdict is Verdict.NEEDS_REVIEW:
        codes = ", ".join(sorted({p.code.value for p in evaluation.problems}))
        raise _Refused(
            "needs_review",
            f"{role.name} needs a human review ({codes}); deputy-guard never rewrites such a policy."
            " Nothing was changed.",
        )
    if evaluation.verdict is not Verdict.NON_COMPLIANT:
        raise _Refused("nothing_to_do", f"{role.name} is already {evaluation.verdict.value}. Nothing was changed.")
    action, reason = decide(evaluation, role, settings=deps.settings, run=run, today=deps.clock())
    if action is Action.EXEMPT:
        raise _Refused(
            "exempt", f"{role.name} is exempt ({reason}), so deputy-guard leaves it alone. Nothing was changed."
        )
    return evaluation, action, reason


def _apply_fix(click: Click, token: ApprovalToken, role: RoleRecord, approvals: Approvals, deps: Deps) -> ClickOutcome:
    actor = actor_for(click.user_id)
    run = Run(mode=Mode.ENFORCE, trigger=TRIGGER, max_fixes=1, forced=True)
    evaluation, _action, _reason = _checked_decision(role, deps, run)
    if document_digest(evaluation.fixed_policy) != token.plan_digest:
        raise _Refused(
            "plan_changed",
            f"deputy-guard would now write a different fix to {role.name} than this message showed (its settings"
            " changed). Nothing was changed; the next alert shows the new fix.",
        )
    _consume(token, deps, actor, approvals.tokens)
    ref = RoleRef(
        role_name=role.name,
        event_id="",
        event_name="SlackApproval",
        account=role.account_id,
        region=deps.region,
        time=deps.clock().isoformat(timespec="seconds"),
        actor=actor,
    )
    # The remediate pipeline on the role just checked: write-ahead audit, re-read if slow, announce (SNS).
    result = process_role(role, deps, run, ref, evaluation=evaluation)
    send_notices(deps, run, digest=False)
    _record(approvals.tokens, token, result.action.value, deps)
    if result.action is not Action.FIXED:
        return ClickOutcome(
            "failed",
            result.action.value,
            ephemeral(f"The fix was not applied to {role.name}: {result.reason}. This button is used up."),
            role.name,
        )
    fixed = next((n for n in run.notices if n.role_arn == role.arn), None)
    note = f":white_check_mark: Fix applied by <@{click.user_id}>{_now(deps)} (change `{result.change_id}`)"
    kind = token.message
    shown = replace(fixed, reason=f"approved in Slack by {actor}: {fixed.reason}") if fixed is not None else None
    revert_notice = approvals.minter.mint(shown, kind) if shown is not None else None
    if kind is MessageKind.ROLE and revert_notice is not None:
        return ClickOutcome("fixed", "applied", replacement(render_slack(revert_notice)), role.name)
    elements = [button_element(b, role.name) for b in (revert_notice.buttons if revert_notice else ())]
    return ClickOutcome("fixed", "applied", _row_answer(click, note, elements), role.name)


def _exempt(
    click: Click, token: ApprovalToken, role: RoleRecord, current: PolicyDoc, approvals: Approvals, deps: Deps
) -> ClickOutcome:
    actor = actor_for(click.user_id)
    run = Run(mode=deps.settings.mode, trigger=TRIGGER, max_fixes=deps.settings.max_fixes_per_run)
    evaluation, _action, _reason = _checked_decision(role, deps, run)
    today = deps.clock().date()
    until = today + timedelta(days=EXEMPT_DAYS)
    reason = f"exempt until {until.isoformat()} by {actor} from Slack on {today.isoformat()}"
    _consume(token, deps, actor, approvals.tokens)
    # The same service as `deputy-guard exempt`: audit record, tags, outcome, the owners told.
    result = exempt_role(
        role,
        deps,
        actor=actor,
        until=until,
        reason=reason,
        trigger=TRIGGER,
        verdict=evaluation.verdict,
        problems=evaluation.problems,
    )
    if result.notice is None:
        return ClickOutcome(
            "failed",
            "tag_failed",
            ephemeral(f"IAM refused to tag {role.name} ({result.error_code}). This button is used up."),
        )
    note = f":no_entry_sign: Exempt until {until.isoformat()} by <@{click.user_id}>"
    if token.message is MessageKind.ROLE:
        return ClickOutcome("exempt", "exempted", replacement(render_slack(result.notice)), role.name)
    return ClickOutcome("exempt", "exempted", _row_answer(click, note), role.name)


def _revert(
    click: Click, token: ApprovalToken, role: RoleRecord, current: PolicyDoc, approvals: Approvals, deps: Deps
) -> ClickOutcome:
    actor = actor_for(click.user_id)
    change = deps.audit.last_applied_fix(role.arn, current=current)
    if change is None or change.change_id != token.change_id or document_digest(change.before) != token.plan_digest:
        raise _Refused(
            "changed",
            f"deputy-guard's last fix on {role.name} is no longer the one this message showed. Nothing was changed.",
        )
    _consume(token, deps, actor, approvals.tokens)
    # The REST route's revert, never forced: it re-checks that the record is a fix the bot computed.
    result = run_revert(role.name, deps, force=False, actor=actor, caller_credentials=False)
    _record(approvals.tokens, token, result.status, deps)
    if result.status != "reverted":
        return ClickOutcome(
            "failed", result.status, ephemeral(f"{role.name} was not reverted: {result.message}"), role.name
        )
    reason = f"reverted by {actor} from Slack: the original trust policy is restored and the role exempt"
    notice = outcome_notice(
        role, deps, actor, Action.REVERTED, Verdict.NON_COMPLIANT, reason, current, change.before, trigger=TRIGGER
    )
    notice = replace(notice, change_id=change.change_id)
    note = f":leftwards_arrow_with_hook: Reverted by <@{click.user_id}>{_now(deps)}; the role is now exempt"
    if token.message is MessageKind.ROLE:
        return ClickOutcome("reverted", "reverted", replacement(render_slack(notice)), role.name)
    return ClickOutcome("reverted", "reverted", _row_answer(click, note), role.name)


def _record(tokens: TokenStore, token: ApprovalToken, outcome: str, deps: Deps) -> None:
    try:
        tokens.record_outcome(token.token_id, outcome)
    except AwsError as exc:
        # The audit trail holds the change and its actor; the token's note is only a convenience.
        deps.logger.warning("could not note a click's outcome on its token", extra={"error": str(exc)})


def _now(deps: Deps) -> str:
    return " at " + deps.clock().strftime("%Y-%m-%d %H:%M UTC")


def _row_answer(click: Click, note: str, elements: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A digest keeps its other rows: only the clicked row shows the outcome (or, failing that, a new line)."""
    marked = mark_digest_row(click.message or {}, click.block_id, note, elements)
    if marked is not None:
        return replacement(marked)
    return {"response_type": "in_channel", "replace_original": False, "text": note}
