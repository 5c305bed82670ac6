"""Revert: restore exactly what the bot recorded, only over its own write, then exempt the role."""

from __future__ import annotations

import json
from collections.abc import Callable

from chalicelib.adapters.store import ChangeKind, ChangeStatus
from chalicelib.service.enforce import handle_event
from chalicelib.service.revert import revert
from tests.world import COMPLIANT, VULNERABLE, World, load_event

ROLE = "order-pipeline-sfn"
MakeWorld = Callable[..., World]

ORIGINAL = {
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
            "Principal": {"Service": ["states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        },
    ],
}


def fixed_world(make_world: MakeWorld, document: dict = ORIGINAL) -> tuple[World, str]:
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE, document)
    assert handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)["action"] == "fixed"
    return world, arn


def test_revert_restores_the_recorded_original_exactly(make_world: MakeWorld) -> None:
    world, _arn = fixed_world(make_world)
    result = revert(ROLE, world.deps, actor="arn:aws:iam::111122223333:user/bob")
    assert result.status == "reverted"
    assert world.trust(ROLE) == ORIGINAL
    assert result.restored == ORIGINAL


def test_revert_exempts_the_role_so_it_is_not_fixed_again(make_world: MakeWorld) -> None:
    world, _arn = fixed_world(make_world)
    revert(ROLE, world.deps)
    assert world.tags(ROLE)["deputy-guard:mode"] == "exempt"
    assert world.tags(ROLE)["deputy-guard:reason"].startswith("reverted ")
    again = handle_event(load_event("AttachRolePolicy-states-role.json"), world.deps)
    assert again["action"] == "exempt"
    assert world.trust(ROLE) == ORIGINAL


def test_revert_is_audited_and_marks_the_fix_reverted(make_world: MakeWorld) -> None:
    world, arn = fixed_world(make_world)
    revert(ROLE, world.deps)
    newest, fix = world.audit().history(arn)
    assert newest.kind is ChangeKind.REVERT and newest.status is ChangeStatus.APPLIED
    assert newest.reverts == fix.change_id and newest.after == ORIGINAL
    assert fix.kind is ChangeKind.FIX and fix.status is ChangeStatus.REVERTED


def test_revert_refuses_when_someone_changed_the_policy_since(make_world: MakeWorld) -> None:
    world, _arn = fixed_world(make_world)
    world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(COMPLIANT))
    result = revert(ROLE, world.deps)
    assert result.status == "refused" and "--force" in result.message
    assert world.trust(ROLE) == COMPLIANT
    assert "deputy-guard:mode" not in world.tags(ROLE)


def test_forced_revert_restores_anyway(make_world: MakeWorld) -> None:
    world, _arn = fixed_world(make_world)
    world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(COMPLIANT))
    assert revert(ROLE, world.deps, force=True, caller_credentials=True).status == "reverted"
    assert world.trust(ROLE) == ORIGINAL


def test_nothing_to_revert_without_a_recorded_fix(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE)
    assert revert(ROLE, world.deps).status == "nothing_to_revert"
    assert world.trust(ROLE) == VULNERABLE


def test_a_second_revert_says_already_reverted_and_writes_nothing(make_world: MakeWorld) -> None:
    world, _arn = fixed_world(make_world)
    first = revert(ROLE, world.deps)
    assert first.status == "reverted"
    writes = world.aws_calls("iam").get("iam.UpdateAssumeRolePolicy", 0)
    again = revert(ROLE, world.deps)
    assert again.status == "already_reverted" and "already reverted" in again.message
    assert again.change_id == first.change_id
    assert world.aws_calls("iam").get("iam.UpdateAssumeRolePolicy", 0) == writes


def test_revert_of_an_unknown_role(make_world: MakeWorld) -> None:
    world = make_world()
    assert revert("no-such-role", world.deps).status == "not_found"
