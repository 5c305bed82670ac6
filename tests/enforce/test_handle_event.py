"""The passive loop against moto: event -> re-read -> evaluate -> decide -> act, per mode and exemption."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chalicelib.adapters.store import ChangeKind, ChangeStatus
from chalicelib.domain.models import Action, Verdict
from chalicelib.service.enforce import handle_event
from tests.world import ACCOUNT, COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE, World, load_event

ROLE = "order-pipeline-sfn"
CREATE = "CreateRole-states-vulnerable.json"

MakeWorld = Callable[..., World]


def pinned(document: dict) -> bool:
    condition = document["Statement"][0].get("Condition", {})
    return (
        condition.get("StringEquals", {}).get("aws:SourceAccount") == ACCOUNT
        and condition.get("ArnLike", {}).get("aws:SourceArn") == f"arn:aws:states:*:{ACCOUNT}:*"
    )


def test_enforce_fixes_a_vulnerable_role_and_tells_its_owner(make_world: MakeWorld) -> None:
    # Given a new Step Functions role without conditions, owned by a tagged team
    world = make_world(mode="enforce")
    world.create_role(ROLE, tags={"owner": "payments-team"})
    # When its CreateRole event arrives
    out = handle_event(load_event(CREATE), world.deps)
    # Then the trust policy is pinned to the account, and the owner is told with the diff and the revert command
    assert out["action"] == "fixed"
    assert pinned(world.trust(ROLE))
    (notice,) = world.notifier.single
    assert notice.action is Action.FIXED and notice.owner == "payments-team"
    assert notice.actor == load_event(CREATE)["detail"]["userIdentity"]["arn"]
    assert '+          "aws:SourceAccount": "111122223333"' in notice.diff
    assert notice.revert_command == f"deputy-guard revert {ROLE}"


def test_relevant_event_costs_one_read_and_one_write_on_iam(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", idempotent=False)
    world.create_role(ROLE)
    world.calls.clear()
    handle_event(load_event(CREATE), world.deps)
    assert world.aws_calls("iam") == {"iam.GetRole": 1, "iam.UpdateAssumeRolePolicy": 1}


@pytest.mark.parametrize("fixture", ["CreateRole-lambda-irrelevant.json", "UpdateAssumeRolePolicy-ec2-irrelevant.json"])
def test_irrelevant_document_needs_no_aws_call(make_world: MakeWorld, fixture: str) -> None:
    world = make_world(mode="enforce")
    world.calls.clear()
    out = handle_event(load_event(fixture), world.deps)
    assert out == {"status": "skipped", "reason": "no_step_functions_principal", "event_id": load_event(fixture)["id"]}
    assert world.aws_calls() == {}


def test_failed_call_is_skipped_without_aws_calls(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.calls.clear()
    out = handle_event(load_event("AttachRolePolicy-failed-NoSuchEntity.json"), world.deps)
    assert out["reason"] == "failed_call"
    assert world.aws_calls() == {}


@pytest.mark.parametrize(
    "fixture",
    [
        "CreateRole-minimal-role-name-only.json",
        "UpdateAssumeRolePolicy-states-conditions-removed.json",
        "PutRolePolicy-states-role.json",
        "AttachRolePolicy-states-role.json",
    ],
)
def test_every_event_kind_leads_to_a_reread_and_fix(make_world: MakeWorld, fixture: str) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE)
    out = handle_event(load_event(fixture), world.deps)
    assert out["action"] == "fixed"
    assert pinned(world.trust(ROLE))


def test_the_role_is_reread_not_taken_from_the_event(make_world: MakeWorld) -> None:
    # Given an event whose document differs from what IAM now holds (someone fixed it meanwhile)
    world = make_world(mode="enforce")
    world.create_role(ROLE, COMPLIANT)
    # When the stale event arrives
    out = handle_event(load_event(CREATE), world.deps)
    # Then the bot acts on IAM's current state: nothing to do, nothing written
    assert out["verdict"] == "compliant" and out["action"] == "none"
    assert world.trust(ROLE) == COMPLIANT
    assert world.notifier.all == []


def test_echo_of_own_fix_is_skipped(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE)
    world.calls.clear()
    out = handle_event(load_event("UpdateAssumeRolePolicy-echo-of-deputy-guard.json"), world.deps)
    assert out["reason"] == "own_event"
    assert world.aws_calls("iam") == {}


def test_echo_is_a_no_op_even_when_the_bots_identity_is_unknown(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE)
    handle_event(load_event(CREATE), world.deps)
    world.deps.self_roles = frozenset
    world.notifier.single.clear()
    out = handle_event(load_event("UpdateAssumeRolePolicy-echo-of-deputy-guard.json"), world.deps)
    assert out["verdict"] == "compliant" and out["action"] == "none"
    assert world.notifier.all == []


def test_dry_run_changes_nothing_and_tells_nobody(make_world: MakeWorld) -> None:
    world = make_world(mode="dry-run")
    world.create_role(ROLE)
    out = handle_event(load_event(CREATE), world.deps)
    assert out["action"] == "would_fix"
    assert "+" in out["diff"]
    assert world.trust(ROLE) == VULNERABLE
    assert world.notifier.all == []
    assert world.aws_calls("iam").get("iam.UpdateAssumeRolePolicy") is None


def test_notify_mode_is_the_default_and_sends_the_ready_patch(make_world: MakeWorld) -> None:
    world = make_world()
    world.create_role(ROLE)
    out = handle_event(load_event(CREATE), world.deps)
    assert out["action"] == "notified"
    assert world.trust(ROLE) == VULNERABLE
    (notice,) = world.notifier.single
    assert notice.after is not None and pinned(notice.after)
    assert notice.revert_command is None


@pytest.mark.parametrize(
    ("global_mode", "tag", "action"),
    [
        ("enforce", "exempt", Action.EXEMPT),
        ("enforce", "notify", Action.NOTIFIED),
        ("notify", "enforce", Action.FIXED),
        ("notify", "EXEMPT", Action.EXEMPT),
        ("dry-run", "enforce", Action.WOULD_FIX),
        ("enforce", "bogus", Action.FIXED),
    ],
)
def test_role_tag_overrides_the_global_mode(make_world: MakeWorld, global_mode: str, tag: str, action: Action) -> None:
    world = make_world(mode=global_mode)
    world.create_role(ROLE, tags={"deputy-guard:mode": tag})
    out = handle_event(load_event(CREATE), world.deps)
    assert out["action"] == action.value
    assert pinned(world.trust(ROLE)) is (action is Action.FIXED)


@pytest.mark.parametrize(
    ("exemptions", "path", "exempt"),
    [
        ("order-*", "/", True),
        ("/pipelines/", "/pipelines/orders/", True),
        ('[{"name": "order-pipeline-*", "expires": "2099-12-31", "reason": "OPS-7"}]', "/", True),
        ('[{"name": "order-pipeline-*", "expires": "2020-01-01"}]', "/", False),
        ("billing-*,/sandbox/", "/", False),
    ],
)
def test_central_exemptions(make_world: MakeWorld, exemptions: str, path: str, exempt: bool) -> None:
    world = make_world(mode="enforce", exemptions=exemptions)
    world.create_role(ROLE, path=path)
    out = handle_event(load_event(CREATE), world.deps)
    assert (out["action"] == "exempt") is exempt
    assert pinned(world.trust(ROLE)) is not exempt


def test_central_exemption_beats_an_enforce_tag(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", exemptions="order-*")
    world.create_role(ROLE, tags={"deputy-guard:mode": "enforce"})
    assert handle_event(load_event(CREATE), world.deps)["action"] == "exempt"


def test_cloudformation_managed_role_gets_the_patch_not_a_rewrite(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE, tags={"aws:cloudformation:stack-name": "orders-prod"})
    out = handle_event(load_event(CREATE), world.deps)
    assert out["action"] == "notified" and "orders-prod" in out["reason"]
    assert world.trust(ROLE) == VULNERABLE
    assert world.notifier.single[0].after is not None


def test_cloudformation_roles_are_fixed_when_configured(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", fix_cloudformation="true")
    world.create_role(ROLE, tags={"aws:cloudformation:stack-name": "orders-prod"})
    assert handle_event(load_event(CREATE), world.deps)["action"] == "fixed"


def test_service_linked_role_is_never_touched(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE, path="/aws-service-role/states.amazonaws.com/")
    out = handle_event(load_event(CREATE), world.deps)
    assert out["verdict"] == "not_applicable" and out["action"] == "none"
    assert world.trust(ROLE) == VULNERABLE


def test_foreign_account_needs_review_and_is_never_rewritten(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE, FOREIGN, tags={"team": "data-platform"})
    out = handle_event(load_event(CREATE), world.deps)
    assert out["verdict"] == "needs_review" and out["action"] == "review"
    assert world.trust(ROLE) == FOREIGN
    (notice,) = world.notifier.single
    assert notice.verdict is Verdict.NEEDS_REVIEW and notice.owner == "data-platform"


def test_role_without_step_functions_trust_is_left_alone(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE, LAMBDA_ONLY)
    out = handle_event(load_event("AttachRolePolicy-states-role.json"), world.deps)
    assert out["verdict"] == "not_applicable"
    assert world.notifier.all == []


def test_role_deleted_before_the_handler_runs_is_a_logged_skip(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    out = handle_event(load_event(CREATE), world.deps)
    assert out["status"] == "skipped" and out["reason"] == "role_not_found"
    assert world.notifier.all == []


def test_redelivered_event_neither_changes_nor_announces_twice(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE)
    first = handle_event(load_event(CREATE), world.deps)
    # Someone reverts the fix by hand; the same event is delivered again
    world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=__import__("json").dumps(VULNERABLE))
    world.calls.clear()
    second = handle_event(load_event(CREATE), world.deps)
    assert second == {**first, "replayed": True}
    assert len(world.notifier.single) == 1
    assert world.trust(ROLE) == VULNERABLE  # the redelivery did nothing; a new event would
    assert "iam.GetRole" not in world.aws_calls()


def test_write_ahead_audit_holds_original_and_fix(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE)
    out = handle_event(load_event(CREATE), world.deps)
    (record,) = world.audit().history(arn)
    assert record.kind is ChangeKind.FIX and record.status is ChangeStatus.APPLIED
    assert record.before == VULNERABLE
    assert record.after == world.trust(ROLE)
    assert record.event_id == load_event(CREATE)["id"]
    assert record.actor == load_event(CREATE)["detail"]["userIdentity"]["arn"]
    assert record.mode == "enforce" and record.change_id == world.notifier.single[0].change_id
    assert out["action"] == "fixed"


def test_audit_record_exists_before_the_role_is_written(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE)
    seen: list[list] = []
    real_update = world.deps.iam.update_assume_role_policy

    def spy(name: str, document: dict) -> None:
        seen.append([(r.status, r.before, r.after) for r in world.audit().history(arn)])
        real_update(name, document)

    world.deps.iam.update_assume_role_policy = spy  # type: ignore[method-assign]
    handle_event(load_event(CREATE), world.deps)
    assert len(seen) == 1
    ((status, before, after),) = seen[0]
    assert status is ChangeStatus.PENDING and before == VULNERABLE and pinned(after)


def test_no_change_when_the_audit_store_is_unavailable(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", table="deputy-guard-missing", idempotent=False)
    world.create_role(ROLE)
    world.deps.audit._table.name = "no-such-table"  # type: ignore[attr-defined]
    out = handle_event(load_event(CREATE), world.deps)
    assert out["action"] == "failed" and "audit store unavailable" in out["reason"]
    assert world.trust(ROLE) == VULNERABLE
    assert world.notifier.single[0].action is Action.FAILED
    assert world.deps.metrics.counts["AuditWriteFailed"] == 1  # type: ignore[attr-defined]


def test_every_decision_is_logged_with_role_verdict_action_and_event(
    make_world: MakeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE)
    with caplog.at_level("INFO"):
        handle_event(load_event(CREATE), world.deps)
    (decision,) = [r for r in caplog.records if r.getMessage() == "decision"]
    assert (decision.role, decision.verdict, decision.action) == (ROLE, "non_compliant", "fixed")  # type: ignore[attr-defined]
    assert decision.event_id == load_event(CREATE)["id"]  # type: ignore[attr-defined]


def test_metrics_count_evaluations_fixes_and_reviews(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", idempotent=False)
    world.create_role(ROLE)
    handle_event(load_event(CREATE), world.deps)
    world.create_role("foreign-sfn", FOREIGN)
    event = load_event(CREATE)
    event["detail"]["requestParameters"]["roleName"] = "foreign-sfn"
    handle_event(event, world.deps)
    counts = world.deps.metrics.counts  # type: ignore[attr-defined]
    assert counts["RolesEvaluated"] == 2 and counts["RolesFixed"] == 1 and counts["RolesNeedingReview"] == 1


def _large_trust(extra_statements: int) -> dict:
    filler = [
        {
            "Sid": f"CrossAccountReadOnly{i:02d}",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/analytics/reader-{i:03d}"},
            "Action": "sts:AssumeRole",
        }
        for i in range(extra_statements)
    ]
    return {"Version": "2012-10-17", "Statement": [*filler, *VULNERABLE["Statement"]]}


def test_fix_over_the_size_quota_needs_review_and_reads_the_account_quota_once(make_world: MakeWorld) -> None:
    # Given a trust policy that fits IAM's 2,048 characters now but not once the conditions are added
    world = make_world(mode="enforce", idempotent=False)
    document = _large_trust(12)
    assert 1900 < len(__import__("json").dumps(document, separators=(",", ":"))) < 2048
    world.create_role(ROLE, document)
    # When its event arrives
    out = handle_event(load_event(CREATE), world.deps)
    # Then deputy-guard asks a human instead of writing an over-quota document, after checking the account's quota
    assert out["verdict"] == "needs_review" and [p["code"] for p in out["problems"]][-1] == "too_large"
    assert world.trust(ROLE) == document
    assert world.aws_calls("iam").get("iam.GetAccountSummary") == 1


def test_a_raised_size_quota_setting_lets_the_fix_through(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce", size_quota="4096")
    world.create_role(ROLE, _large_trust(12))
    out = handle_event(load_event(CREATE), world.deps)
    assert out["action"] == "fixed"
    assert "iam.GetAccountSummary" not in world.aws_calls()


def test_setting_the_enforce_tag_fixes_at_once(make_world: MakeWorld) -> None:
    # Given notify mode and a vulnerable role whose owner has just tagged it deputy-guard:mode=enforce
    world = make_world(mode="notify")
    world.create_role(ROLE, tags={"deputy-guard:mode": "enforce"})
    # When the TagRole event arrives
    out = handle_event(load_event("TagRole-mode-enforce.json"), world.deps)
    # Then the role is fixed now, not at the next sweep
    assert out["action"] == "fixed"
    assert pinned(world.trust(ROLE))


def test_removing_the_exempt_tag_acts_at_once(make_world: MakeWorld) -> None:
    # Given enforce mode and a vulnerable role that was exempt until its exempt tag was just removed
    world = make_world(mode="enforce")
    world.create_role(ROLE, tags={"deputy-guard:mode": "exempt"})
    assert handle_event(load_event("AttachRolePolicy-states-role.json"), world.deps)["action"] == "exempt"
    world.iam.untag_role(RoleName=ROLE, TagKeys=["deputy-guard:mode"])
    # When the UntagRole event arrives
    out = handle_event(load_event("UntagRole-exempt-removed.json"), world.deps)
    # Then the role is fixed now
    assert out["action"] == "fixed"
    assert pinned(world.trust(ROLE))
