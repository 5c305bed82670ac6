"""`exempt --remove --account ID`: the member role may tag a role exempt, never untag it.

IAM's refusal is played by a Stubber on the member-account IAM client; the audit trail is the central one.
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.store import ChangeKind, ChangeStatus
from deputy_guard.actions import Target, _remove_exemption
from deputy_guard.exits import EXIT_ERROR
from tests.world import ACCOUNT, VULNERABLE, World

ROLE = "orders-sfn"
CENTRAL = "999988887777"
MakeWorld = Callable[..., World]


def test_a_refused_untag_in_a_member_account_names_the_iam_call_to_run_there(
    make_world: MakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an exempt role in a member account, acted on from the central account through the member role
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE, VULNERABLE, tags={"deputy-guard:mode": "exempt", "deputy-guard:reason": "SEC-1"})
    member_iam = boto3.client("iam", region_name="us-east-1")
    stub = Stubber(member_iam)
    stub.add_client_error("untag_role", service_error_code="AccessDenied", http_status_code=403)
    where = Target(world.deps, f"arn:aws:sts::{CENTRAL}:assumed-role/Ops/alice", CENTRAL, ACCOUNT, member_iam)
    role = world.deps.iam.get_role(ROLE)
    assert role is not None
    # When the exemption is removed and IAM refuses the untag
    with stub:
        code = _remove_exemption(where, role)
    # Then it fails in one line giving the exact untag command for that account's own credentials
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and err.count("\n") == 1
    assert f"aws iam untag-role --role-name {ROLE} --tag-keys deputy-guard:mode deputy-guard:reason" in err
    assert "deputy-guard setup" not in err
    # And the role keeps its tags, the removal recorded as failed in the central table
    assert world.tags(ROLE) == {"deputy-guard:mode": "exempt", "deputy-guard:reason": "SEC-1"}
    (record,) = world.audit().history(arn)
    assert (record.kind, record.status) == (ChangeKind.UNEXEMPT, ChangeStatus.FAILED)
