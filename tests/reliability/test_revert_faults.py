"""Reverts under faults: recorded before the write, refused over someone else's change, always logged."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.runtime import container
from chalicelib.service.enforce import handle_event
from chalicelib.service.revert import revert
from tests.reliability.conftest import Account
from tests.world import COMPLIANT, VULNERABLE, load_event

ROLE = "order-pipeline-sfn"
MakeAccount = Callable[..., Account]


@pytest.fixture
def fixed(account: MakeAccount) -> Account:
    """A role the bot has fixed (enforce mode, CreateRole event)."""
    acct = account(mode="enforce", idempotent=False)
    acct.create_role(ROLE, VULNERABLE)
    assert handle_event(load_event("CreateRole-states-vulnerable.json"), acct.deps)["action"] == "fixed"
    return acct


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(app_module.app) as test_client:
        yield test_client


def revert_lines(acct: Account) -> list[dict[str, object]]:
    return [line.extra for line in acct.logs.with_message("revert decision")]


def test_a_revert_is_recorded_before_it_restores_the_wider_original(fixed: Account) -> None:
    # When the bot's fix is reverted
    result = revert(ROLE, fixed.deps, actor="arn:aws:iam::111122223333:user/alice")
    # Then the guard saw the restore (wider, so exempt from narrowing) with its revert record already there
    assert result.status == "reverted"
    (write,) = fixed.guard.reverts()
    assert write.sent == VULNERABLE and write.violations == []
    assert revert_lines(fixed) == [
        {
            "role": ROLE,
            "status": "reverted",
            "change_id": result.change_id,
            "forced": False,
            "actor": "arn:aws:iam::111122223333:user/alice",
        }
    ]


def test_a_revert_over_someone_elses_change_is_refused_and_logged(fixed: Account) -> None:
    # Given someone changed the role after the bot's fix
    fixed.world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(COMPLIANT))
    # When a revert is asked for without force
    result = revert(ROLE, fixed.deps)
    # Then it is refused, nothing is written, and the refusal is a log line
    assert result.status == "refused"
    assert fixed.trust(ROLE) == COMPLIANT
    assert len(fixed.guard.reverts()) == 0
    assert [line["status"] for line in revert_lines(fixed)] == ["refused"]


def test_iam_refusing_the_revert_leaves_the_fix_and_records_the_failure(fixed: Account) -> None:
    # Given IAM denies the restore
    fixed.faults.inject("iam", "UpdateAssumeRolePolicy", "AccessDenied", status=403)
    # When a revert is asked for
    result = revert(ROLE, fixed.deps)
    # Then the fix stays, the revert record says failed, the fix is still the one on record, and it is logged
    assert result.status == "failed" and "AccessDenied" in result.message
    assert fixed.trust(ROLE) != VULNERABLE
    fix, undo = fixed.records(ROLE)
    assert (fix["status"], undo["kind"], undo["status"]) == ("applied", "revert", "failed")
    assert [line["status"] for line in revert_lines(fixed)] == ["failed"]


def test_audit_store_down_means_no_revert_is_written(fixed: Account, client: Client) -> None:
    # Given the revert's own audit record cannot be stored
    fixed.faults.inject("dynamodb", "PutItem", "ServiceUnavailable")
    container.install(fixed.deps)
    # When a revert is asked for over REST
    response = client.http.post(f"/roles/{ROLE}/revert", headers={"Content-Type": "application/json"}, body="{}")
    # Then the caller gets a 502 naming the failed call, the role keeps the fix, and the failure is logged
    assert response.status_code == 502 and "PutItem" in json.loads(response.body)["Message"]
    assert fixed.trust(ROLE) != VULNERABLE
    assert fixed.guard.reverts() == []
    assert fixed.logs.with_message("request failed: AWS unavailable")
