"""The fault matrix (docs/reliability.md): each AWS fault injected at the HTTP layer, each outcome pinned.

Every test runs in a watched account: any UpdateAssumeRolePolicy that was not recorded first, or that
would widen access, fails the test at teardown (see conftest.account).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chalicelib.domain.models import Action, Verdict
from chalicelib.service.enforce import handle_event
from chalicelib.service.revert import revert
from chalicelib.service.scan import scan
from tests.reliability.conftest import Account
from tests.reliability.support import dynamo_item_pk_startswith, on_role, query_params
from tests.world import VULNERABLE, load_event

ROLE = "order-pipeline-sfn"  # the role the CreateRole fixture event is about
CREATE = "CreateRole-states-vulnerable.json"
MakeAccount = Callable[..., Account]


@pytest.fixture
def acct(account: MakeAccount) -> Account:
    """Enforce mode, one vulnerable Step Functions role owned by a tagged team."""
    made = account(mode="enforce", idempotent=False)
    made.create_role(ROLE, VULNERABLE, tags={"owner": "payments-team"})
    return made


# --- IAM throttling -----------------------------------------------------------------------------------


def test_throttled_write_is_retried_with_backoff_then_applied(acct: Account, backoff_delays: list[float]) -> None:
    # Given IAM throttles the first two UpdateAssumeRolePolicy attempts
    fault = acct.faults.inject("iam", "UpdateAssumeRolePolicy", "Throttling", times=2)
    # When the role's CreateRole event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then botocore retried twice with backoff and the fix landed, recorded once as applied
    assert fault.hits == 2 and len(backoff_delays) == 2
    assert out["action"] == "fixed"
    assert acct.trust(ROLE) != VULNERABLE
    assert [r["status"] for r in acct.records(ROLE)] == ["applied"]
    (write,) = acct.guard.fixes()
    assert write.violations == []


def test_throttled_read_is_retried_then_the_role_is_fixed(acct: Account, backoff_delays: list[float]) -> None:
    # Given IAM throttles the first two GetRole attempts (a call makes three in all: aws.make_client)
    fault = acct.faults.inject("iam", "GetRole", "Throttling", times=2)
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the read was retried, backing off before each retry, and the fix applied
    assert fault.hits == 2 and len(backoff_delays) == 2
    assert out["action"] == "fixed"


def test_throttling_beyond_the_retries_fails_the_fix_audibly(acct: Account) -> None:
    # Given IAM throttles every UpdateAssumeRolePolicy attempt
    fault = acct.faults.inject("iam", "UpdateAssumeRolePolicy", "Throttling")
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then botocore gave up after its three attempts (the first and two retries), the role is unchanged,
    # and the failure is recorded, counted and told to the owner
    assert fault.hits == 3
    assert out["action"] == "failed" and "Throttling" in out["reason"]
    assert acct.trust(ROLE) == VULNERABLE
    (record,) = acct.records(ROLE)
    assert record["status"] == "failed" and "Throttling" in record["error"]
    assert acct.metrics["FixFailed"] == 1
    (notice,) = acct.world.notifier.single
    assert notice.action is Action.FAILED and notice.owner == "payments-team"


# --- IAM refuses the write ----------------------------------------------------------------------------


def test_access_denied_on_the_write_tells_the_owner_the_fix_failed(acct: Account) -> None:
    # Given the bot may not update this role (a permissions boundary or SCP, say)
    fault = acct.faults.inject("iam", "UpdateAssumeRolePolicy", "AccessDenied", status=403)
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then nothing is retried, the role is unchanged, the audit trail records the failure,
    # and the owner hears that the fix failed, with IAM's reason
    assert fault.hits == 1
    assert out["verdict"] == "non_compliant" and out["action"] == "failed"
    assert acct.trust(ROLE) == VULNERABLE
    (record,) = acct.records(ROLE)
    assert record["status"] == "failed" and "AccessDenied" in record["error"]
    (notice,) = acct.world.notifier.single
    assert notice.action is Action.FAILED and "AccessDenied" in notice.reason
    assert notice.owner == "payments-team"


@pytest.mark.parametrize("code", ["LimitExceeded", "MalformedPolicyDocument"])
def test_iam_rejecting_the_document_turns_into_a_review_notification(acct: Account, code: str) -> None:
    # Given IAM rejects the fixed document itself (over a quota, or not acceptable to it)
    fault = acct.faults.inject("iam", "UpdateAssumeRolePolicy", code)
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the role is unchanged, the audit trail records the failure, and owners are asked to review,
    # with IAM's reason: the bot will not try another document of its own
    assert fault.hits == 1
    assert out["verdict"] == "needs_review" and out["action"] == "review"
    assert code in out["reason"]
    assert acct.trust(ROLE) == VULNERABLE
    (record,) = acct.records(ROLE)
    assert record["status"] == "failed" and code in record["error"]
    (notice,) = acct.world.notifier.single
    assert notice.verdict is Verdict.NEEDS_REVIEW and notice.action is Action.REVIEW
    assert acct.metrics["RolesNeedingReview"] == 1


# --- the role disappears ------------------------------------------------------------------------------


def test_role_deleted_before_the_write_is_a_logged_skip(acct: Account) -> None:
    # Given the role is deleted by someone else just as the bot writes
    acct.faults.inject(
        "iam",
        "UpdateAssumeRolePolicy",
        "NoSuchEntity",
        status=404,
        side_effect=lambda _request: acct.world.iam.delete_role(RoleName=ROLE),
    )
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then it is a skip: logged as a decision, the pending record marked superseded, nobody notified
    assert out["action"] == "skipped"
    (decision,) = acct.logs.decisions(ROLE)
    assert decision["action"] == "skipped" and "deleted" in decision["reason"]
    assert [r["status"] for r in acct.records(ROLE)] == ["superseded"]
    assert acct.world.notifier.all == []


def test_role_deleted_before_the_event_is_handled_is_a_logged_skip(account: MakeAccount) -> None:
    # Given an event about a role that no longer exists
    acct = account(mode="enforce", idempotent=False)
    # When it is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then it is skipped with a log line, and nothing is written or announced
    assert out["status"] == "skipped" and out["reason"] == "role_not_found"
    assert acct.logs.with_message("role gone before the event was handled")
    assert acct.guard.writes == [] and acct.world.notifier.all == []


def test_role_deleted_between_listing_and_reread_is_a_logged_skip(acct: Account) -> None:
    # Given the role is deleted after the sweep listed it, before the bot re-reads it
    acct.faults.meanwhile("iam", "GetRole", lambda: acct.world.iam.delete_role(RoleName=ROLE))
    # When the account is scanned with fixes
    report = scan(acct.deps, dry_run=False, trigger="sweep")
    # Then the role is reported and logged as skipped, and nothing is written
    (result,) = report.results
    assert result.action is Action.SKIPPED
    assert acct.logs.decisions(ROLE)[0]["action"] == "skipped"
    assert acct.guard.writes == []


# --- the audit store ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "attempts"),
    [("ServiceUnavailable", 3), ("ProvisionedThroughputExceededException", 3), ("ResourceNotFoundException", 1)],
)
def test_audit_store_unavailable_means_the_role_is_not_changed(acct: Account, code: str, attempts: int) -> None:
    # Given the write-ahead record cannot be stored (DynamoDB down, throttled beyond retries, table gone)
    fault = acct.faults.inject("dynamodb", "PutItem", code, when=dynamo_item_pk_startswith("role#"))
    acct.world.calls.clear()
    # When the event is handled in enforce mode
    out = handle_event(load_event(CREATE), acct.deps)
    # Then IAM was never asked to change the role, and the owner hears that the fix failed, and why
    assert fault.hits == attempts
    assert "iam.UpdateAssumeRolePolicy" not in acct.world.aws_calls()
    assert acct.trust(ROLE) == VULNERABLE
    assert out["action"] == "failed" and "audit store unavailable" in out["reason"]
    assert acct.metrics["AuditWriteFailed"] == 1
    (notice,) = acct.world.notifier.single
    assert notice.action is Action.FAILED
    assert acct.logs.with_message("audit store unavailable: role not changed")


def test_outcome_not_recorded_still_leaves_a_revertible_record(acct: Account) -> None:
    # Given DynamoDB fails after the pending record is written (the outcome update is lost)
    acct.faults.inject("dynamodb", "UpdateItem", "ServiceUnavailable", when=dynamo_item_pk_startswith("role#"))
    out = handle_event(load_event(CREATE), acct.deps)
    assert out["action"] == "fixed"
    assert [r["status"] for r in acct.records(ROLE)] == ["pending"]
    assert acct.logs.with_message("could not record the outcome of a change")
    # When DynamoDB is back and someone reverts the role
    acct.faults.clear()
    result = revert(ROLE, acct.deps)
    # Then the pending record, whose document the role demonstrably holds, is what gets reverted
    assert result.status == "reverted"
    assert acct.trust(ROLE) == VULNERABLE
    (revert_write,) = acct.guard.reverts()
    assert revert_write.violations == []


def test_ambiguous_write_failure_is_confirmed_by_reading_the_role(acct: Account) -> None:
    # Given IAM applies the write but every answer is lost (a 5xx after the change, on every attempt)
    def apply_then_fail(request: object) -> None:
        params = query_params(request)
        acct.world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=params["PolicyDocument"])

    acct.faults.inject("iam", "UpdateAssumeRolePolicy", "ServiceFailure", status=500, side_effect=apply_then_fail)
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the bot reads the role back, sees its fix in place, and records the change as applied
    assert out["action"] == "fixed"
    assert [r["status"] for r in acct.records(ROLE)] == ["applied"]
    assert acct.trust(ROLE) == acct.records(ROLE)[0]["after"]


def test_audit_store_failing_for_one_role_leaves_it_and_fixes_the_next(account: MakeAccount) -> None:
    # Given two vulnerable roles, and the audit store failing for the first one only
    acct = account(mode="enforce", idempotent=False)
    first = acct.create_role("sfn-first", VULNERABLE)
    acct.create_role("sfn-second", VULNERABLE)
    acct.faults.inject("dynamodb", "PutItem", "ServiceUnavailable", when=dynamo_item_pk_startswith(f"role#{first}"))
    # When the account is swept with fixes
    report = scan(acct.deps, dry_run=False, trigger="sweep")
    # Then the first role is left alone (failed) and the second is fixed
    actions = {r.role_name: r.action for r in report.results}
    assert actions == {"sfn-first": Action.FAILED, "sfn-second": Action.FIXED}
    assert acct.trust("sfn-first") == VULNERABLE
    assert [w.role for w in acct.guard.fixes()] == ["sfn-second"]


def test_access_denied_on_one_roles_read_does_not_stop_the_sweep(account: MakeAccount) -> None:
    # Given two vulnerable roles, the first of which the bot may not read
    acct = account(mode="enforce", idempotent=False)
    acct.create_role("sfn-first", VULNERABLE)
    acct.create_role("sfn-second", VULNERABLE)
    acct.faults.inject("iam", "GetRole", "AccessDenied", status=403, when=on_role("sfn-first"))
    # When the account is swept with fixes
    report = scan(acct.deps, dry_run=False, trigger="sweep")
    # Then the first is reported as failed (and its owner told), and the sweep goes on to fix the second
    actions = {r.role_name: r.action for r in report.results}
    assert actions == {"sfn-first": Action.FAILED, "sfn-second": Action.FIXED}
    assert "AccessDenied" in acct.logs.decisions("sfn-first")[0]["reason"]
    assert report.complete
