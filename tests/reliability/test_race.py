"""The trust policy changes between the bot's read and its write: no lost update, no stale document.

IAM has no conditional write, so the bot cannot make "read, then write" atomic. What it can do, and
these tests pin, is: decide on the latest read, re-read when the window grew (a slow write-ahead),
and record in the audit trail exactly what IAM held. The one round trip that remains is documented
in docs/reliability.md and pinned by the last test.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.domain.engine import plan_fix
from chalicelib.domain.models import Action, RoleContext
from chalicelib.service import enforce
from chalicelib.service.enforce import handle_event
from chalicelib.service.scan import scan
from tests.reliability.conftest import Account
from tests.world import ACCOUNT, COMPLIANT, VULNERABLE, load_event

ROLE = "order-pipeline-sfn"
CREATE = "CreateRole-states-vulnerable.json"
MakeAccount = Callable[..., Account]
CONTEXT = RoleContext(account_id=ACCOUNT)

# What a colleague writes meanwhile: still vulnerable, but with a Lambda statement the fix must keep.
WITH_LAMBDA: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Lambda",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        },
        {
            "Sid": "States",
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
        },
    ],
}
# A colleague's own partial fix: SourceAccount pinned by hand, SourceArn still missing.
HALF_FIXED: dict[str, Any] = copy.deepcopy(VULNERABLE)
HALF_FIXED["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def fixed(document: dict[str, Any]) -> dict[str, Any]:
    result = plan_fix(document, CONTEXT)
    assert result is not None
    return result


@pytest.fixture
def acct(account: MakeAccount) -> Account:
    made = account(mode="enforce", idempotent=False)
    made.create_role(ROLE, VULNERABLE)
    return made


def someone_writes(acct: Account, document: dict[str, Any]) -> Callable[[], None]:
    return lambda: acct.world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(document))


def test_change_between_listing_and_reread_is_fixed_from_the_reread(acct: Account) -> None:
    # Given a sweep lists the role as VULNERABLE, and a colleague rewrites it before the bot re-reads it
    acct.faults.meanwhile("iam", "GetRole", someone_writes(acct, WITH_LAMBDA))
    # When the sweep acts on it
    report = scan(acct.deps, dry_run=False, trigger="sweep")
    # Then the fix is computed from the colleague's document (the Lambda statement survives), and the
    # audit trail's "before" is exactly what IAM held when the bot wrote
    assert [r.action for r in report.results] == [Action.FIXED]
    assert acct.trust(ROLE) == fixed(WITH_LAMBDA)
    (record,) = acct.records(ROLE)
    assert record["before"] == WITH_LAMBDA and record["after"] == fixed(WITH_LAMBDA)
    (write,) = acct.guard.fixes()
    assert write.held == WITH_LAMBDA


def test_event_carrying_an_old_document_is_fixed_from_iams_current_one(acct: Account) -> None:
    # Given the CreateRole event carries VULNERABLE, but IAM already holds a colleague's newer document
    someone_writes(acct, WITH_LAMBDA)()
    # When the (late) event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the bot fixed what IAM holds, not what the event said
    assert out["action"] == "fixed"
    assert acct.trust(ROLE) == fixed(WITH_LAMBDA)
    assert acct.records(ROLE)[0]["before"] == WITH_LAMBDA


def test_change_during_a_slow_write_ahead_is_reread_and_re_evaluated(
    acct: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given every write-ahead counts as slow, and a colleague half-fixes the role while it is recorded
    monkeypatch.setattr(enforce, "RECHECK_AFTER_SECONDS", 0.0)
    acct.faults.meanwhile("dynamodb", "PutItem", someone_writes(acct, HALF_FIXED))
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the first plan is abandoned (superseded, never written) and the fix is re-planned from the
    # colleague's document: their SourceAccount pin is kept, only the SourceArn is added
    assert out["action"] == "fixed"
    assert acct.trust(ROLE) == fixed(HALF_FIXED)
    first, second = acct.records(ROLE)
    assert first["status"] == "superseded" and first["before"] == VULNERABLE
    assert second["status"] == "applied" and second["before"] == HALF_FIXED
    (write,) = acct.guard.fixes()
    assert write.held == HALF_FIXED


def test_role_fixed_by_hand_during_a_slow_write_ahead_is_left_alone(
    acct: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a colleague protects the role properly while the bot records its own plan
    monkeypatch.setattr(enforce, "RECHECK_AFTER_SECONDS", 0.0)
    acct.faults.meanwhile("dynamodb", "PutItem", someone_writes(acct, COMPLIANT))
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the bot sees a compliant role on the re-read and writes nothing
    assert out["verdict"] == "compliant" and out["action"] == "none"
    assert acct.trust(ROLE) == COMPLIANT
    assert [r["status"] for r in acct.records(ROLE)] == ["superseded"]
    assert acct.guard.writes == []


def test_a_role_that_keeps_changing_is_left_for_the_next_run(acct: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the role changes during both the first write-ahead and the retry's
    monkeypatch.setattr(enforce, "RECHECK_AFTER_SECONDS", 0.0)
    documents = iter([WITH_LAMBDA, VULNERABLE])
    acct.faults.meanwhile("dynamodb", "PutItem", lambda: someone_writes(acct, next(documents))(), times=2)
    # When the event is handled
    out = handle_event(load_event(CREATE), acct.deps)
    # Then the bot gives up for now (logged, both plans superseded) rather than write a stale document
    assert out["action"] == "skipped" and "kept changing" in out["reason"]
    assert [r["status"] for r in acct.records(ROLE)] == ["superseded", "superseded"]
    assert acct.guard.writes == []
    assert acct.logs.decisions(ROLE)[0]["action"] == "skipped"


def test_role_deleted_during_a_slow_write_ahead_is_a_skip(acct: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enforce, "RECHECK_AFTER_SECONDS", 0.0)
    acct.faults.meanwhile("dynamodb", "PutItem", lambda: acct.world.iam.delete_role(RoleName=ROLE))
    out = handle_event(load_event(CREATE), acct.deps)
    assert out["action"] == "skipped" and "deleted" in out["reason"]
    assert [r["status"] for r in acct.records(ROLE)] == ["superseded"]


def test_fast_write_ahead_costs_no_extra_read(acct: Account) -> None:
    # Given the default threshold and a healthy audit store
    acct.world.calls.clear()
    # When the event is handled
    handle_event(load_event(CREATE), acct.deps)
    # Then the role was read once and written once: the re-read is only for a slow write-ahead
    assert acct.world.aws_calls("iam") == {"iam.GetRole": 1, "iam.UpdateAssumeRolePolicy": 1}


def test_known_limit_a_write_inside_the_last_round_trip_is_overwritten(
    acct: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a colleague writes in the last moment, after even a re-read, as the bot's request leaves
    monkeypatch.setattr(enforce, "RECHECK_AFTER_SECONDS", 0.0)
    acct.faults.meanwhile("iam", "UpdateAssumeRolePolicy", someone_writes(acct, HALF_FIXED), last_moment=True)
    # When the event is handled
    handle_event(load_event(CREATE), acct.deps)
    # Then last writer wins, as with any IAM client: the bot's fix of VULNERABLE replaces the colleague's
    # document. The guard sees it (IAM held something other than the record's "before"), the audit trail
    # holds what the bot read, and CloudTrail holds the colleague's document.
    assert acct.trust(ROLE) == fixed(VULNERABLE)
    (write,) = acct.guard.writes
    assert write.held == HALF_FIXED
    assert write.violations == ["the audit record's 'before' is not what IAM holds"]
    acct.guard.writes.clear()  # the documented limit is the point of this test
    # And the colleague's own event, handled afterwards, finds a protected role: nothing to do
    echo = load_event("UpdateAssumeRolePolicy-states-conditions-removed.json")
    assert handle_event(echo, acct.deps)["action"] == "none"
