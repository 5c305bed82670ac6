"""Signed audit records: a revert acts only on a record the bot signed with its own key, by every path.

The attacker holds dynamodb:PutItem/UpdateItem on the audit table (and execute-api:Invoke on the API), no IAM
rights, and cannot use the bot's signing key (its key policy grants kms:GenerateMac to the function roles only).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from chalice.test import Client

from chalicelib.adapters import aws
from chalicelib.adapters.kms import KmsMacKey
from chalicelib.adapters.signing import RecordSigner, record_message
from chalicelib.adapters.store import AuditTrail, ChangeKind, ChangeStatus, role_pk
from chalicelib.domain.policy import to_compact_json
from chalicelib.runtime import container
from chalicelib.service.enforce import handle_event
from chalicelib.service.revert import revert
from tests.documents import BACKDOOR
from tests.enforce.test_revert_integrity import bots_fix, post_revert
from tests.world import ACCOUNT, VULNERABLE, World, load_event, make_signing_key

ROLE = "order-pipeline-sfn"
MakeWorld = Callable[..., World]


def put_record(world: World, arn: str, *, before: dict[str, Any], after: dict[str, Any], **extra: Any) -> str:
    """An 'applied fix' item written straight into the table, as anyone with dynamodb:PutItem could."""
    change_id = uuid.uuid4().hex
    now = "2026-12-01T10:00:00.000000+00:00"
    item = {
        "pk": role_pk(arn),
        "sk": f"change#{now}#{change_id}",
        "change_id": change_id,
        "role_arn": arn,
        "role_name": ROLE,
        "account": ACCOUNT,
        "kind": ChangeKind.FIX.value,
        "status": ChangeStatus.APPLIED.value,
        "before": to_compact_json(before),
        "after": to_compact_json(after),
        "actor": "deputy-guard",
        "mode": "enforce",
        "trigger": "event",
        "reason": "enforce mode",
        "created_at": now,
        "updated_at": now,
        **extra,
    }
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(world.deps.settings.table)
    table.put_item(Item={k: v for k, v in item.items() if v is not None})
    return change_id


def hand_patched_role(world: World) -> tuple[str, dict[str, Any]]:
    """A role in notify mode whose owner applied the ready patch by hand: the bot never wrote to it."""
    arn = world.create_role(ROLE, VULNERABLE)
    patched = bots_fix(VULNERABLE)
    world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(patched))
    return arn, patched


def test_an_unsigned_self_consistent_record_does_not_unpin_a_role_over_rest(
    make_world: MakeWorld, client: Client
) -> None:
    # Given a role its owner pinned by hand, and a forged record: before = the unpinned document, after = today's
    world = make_world(mode="notify")
    arn, patched = hand_patched_role(world)
    change_id = put_record(world, arn, before=VULNERABLE, after=patched)
    container.install(world.deps)
    # When the attacker asks for a revert over REST
    response = post_revert(client)
    # Then it is refused, naming the record; the pins stay and the role is not exempted
    assert response.status_code == 409
    assert change_id in response.json_body["message"] and "unsigned" in response.json_body["message"]
    assert world.trust(ROLE) == patched
    assert "deputy-guard:mode" not in world.tags(ROLE)
    assert "iam.UpdateAssumeRolePolicy" not in world.aws_calls() and "iam.TagRole" not in world.aws_calls()


def test_a_forced_revert_with_the_callers_credentials_refuses_an_unsigned_record(make_world: MakeWorld) -> None:
    # Given a self-consistent forged record whose "original" lets the attacker's account assume the role
    world = make_world(mode="notify")
    arn, patched = hand_patched_role(world)
    change_id = put_record(world, arn, before=BACKDOOR, after=bots_fix(BACKDOOR))
    # When an operator runs the documented break-glass revert (the CLI's --force, the operator's credentials)
    result = revert(
        ROLE, world.deps, force=True, actor="arn:aws:iam::111122223333:user/operator", caller_credentials=True
    )
    # Then nothing is written: the record is refused before the role is touched
    assert result.status == "refused" and change_id in result.message
    assert world.trust(ROLE) == patched
    assert "deputy-guard:mode" not in world.tags(ROLE)


def test_a_record_signed_with_another_key_is_refused(make_world: MakeWorld) -> None:
    # Given a forged record signed with a key the attacker controls, stored as the bot stores its signatures
    world = make_world(mode="notify")
    arn, patched = hand_patched_role(world)
    attacker_key = RecordSigner(KmsMacKey(aws.make_client("kms"), make_signing_key()))
    fields = {"change_id": "feedface", "role_arn": arn, "role_name": ROLE, "account": ACCOUNT, "kind": "fix"}
    fields.update(before=to_compact_json(VULNERABLE), after=to_compact_json(patched))
    fields.update(created_at="2026-12-01T10:00:00.000000+00:00", reverts=None)
    signature = attacker_key.sign(fields)
    put_record(world, arn, before=VULNERABLE, after=patched, **signature)
    # When a revert is asked / Then it is refused: the signature does not verify with the bot's key
    result = revert(ROLE, world.deps)
    assert result.status == "refused" and "does not verify" in result.message
    assert world.trust(ROLE) == patched


def test_an_altered_signed_record_is_refused(make_world: MakeWorld) -> None:
    # Given the bot's own signed fix, whose original and result someone later rewrote in the table, consistently
    # (fixing the new "original" gives the new "result"), so that only the signature tells the change
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE, VULNERABLE)
    handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    genuine = world.trust(ROLE)
    record = world.audit().history(arn)[0]
    assert world.audit().problem(record) is None
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(world.deps.settings.table)
    table.update_item(
        Key={"pk": record.pk, "sk": record.sk},
        UpdateExpression="SET #b = :b, #a = :a",
        ExpressionAttributeNames={"#b": "before", "#a": "after"},
        ExpressionAttributeValues={":b": to_compact_json(BACKDOOR), ":a": to_compact_json(bots_fix(BACKDOOR))},
    )
    # When a revert is asked, even forced with the caller's credentials
    result = revert(ROLE, world.deps, force=True, caller_credentials=True)
    # Then it is refused and the bot's fix stays
    assert result.status == "refused" and record.change_id in result.message
    assert world.trust(ROLE) == genuine


def test_a_signed_record_copied_under_another_role_is_refused(make_world: MakeWorld) -> None:
    # Given the bot's signed fix of one role, copied by an attacker under another role's key
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE, VULNERABLE)
    handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    source = world.audit().history(arn)[0]
    other_arn = world.create_role("other-sfn", bots_fix(VULNERABLE))
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(world.deps.settings.table)
    table.put_item(Item={k: v for k, v in {**source.item, "pk": role_pk(other_arn)}.items() if v is not None})
    # When the other role is reverted / Then the copy is refused
    result = revert("other-sfn", world.deps)
    assert result.status == "refused" and "another role" in result.message


def test_without_a_signing_key_no_revert_acts(make_world: MakeWorld) -> None:
    # Given a bot that signs, a genuine fix, and then a configuration without the key
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE)
    handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    world.deps.audit = AuditTrail(aws.DynamoTable(aws.make_client("dynamodb"), world.deps.settings.table))
    # When a revert is asked / Then it is refused: nothing can be verified
    result = revert(ROLE, world.deps)
    assert result.status == "refused" and "DEPUTY_GUARD_SIGNING_KEY" in result.message


def test_the_signature_covers_every_field_it_names() -> None:
    # Given a record's signed fields / When any one of them changes / Then the signed message changes
    item = {
        "change_id": "c1",
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
        "role_name": ROLE,
        "account": ACCOUNT,
        "kind": "fix",
        "before": "{}",
        "after": '{"a":1}',
        "created_at": "2026-12-01T10:00:00+00:00",
        "reverts": None,
    }
    base = record_message(item)
    for name in item:
        assert record_message({**item, name: "changed"}) != base, name
    assert record_message({**item, "status": "reverted", "actor": "someone"}) == base
