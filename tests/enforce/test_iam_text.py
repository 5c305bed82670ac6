"""What IAM holds is read as IAM's own text: duplicate keys are seen, number literals are written back as they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from chalicelib.domain.models import Verdict
from chalicelib.service.enforce import handle_event
from tests.world import World, load_event

ROLE = "order-pipeline-sfn"
MakeWorld = Callable[..., World]

# A Lambda statement with a numeric condition (written 1.10), and the Step Functions statement to fix.
WITH_LITERALS = (
    '{"Version":"2012-10-17","Statement":['
    '{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole",'
    '"Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":1.10}}},'
    '{"Effect":"Allow","Principal":{"Service":"states.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)
# "Effect" twice: IAM's handling is undocumented, so a human decides.
WITH_DUPLICATES = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Effect":"Allow",'
    '"Principal":{"Service":"states.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)


def raw_trust(world: World, name: str) -> str:
    """The trust policy as text, the way IAM sends it (not decoded by botocore)."""
    from urllib.parse import unquote

    captured: dict[str, str] = {}

    def keep(http_response, **_kwargs):
        body = http_response.text
        start = body.index("<AssumeRolePolicyDocument>") + len("<AssumeRolePolicyDocument>")
        captured["text"] = unquote(body[start : body.index("</AssumeRolePolicyDocument>")])

    world.iam.meta.events.register("after-call.iam.GetRole", keep)
    try:
        world.iam.get_role(RoleName=name)
    finally:
        world.iam.meta.events.unregister("after-call.iam.GetRole", keep)
    return captured["text"]


def test_the_gateway_reads_iams_text_and_writes_number_literals_back_as_they_were() -> None:
    # moto refuses numeric condition values on UpdateAssumeRolePolicy (IAM accepts them), so the IAM
    # gateway is checked against botocore's Stubber with the exact requests.
    import boto3
    from botocore.stub import Stubber

    from chalicelib.adapters.iam import IamGateway
    from chalicelib.domain.engine import evaluate

    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    gateway = IamGateway(client)
    encoded = quote(WITH_LITERALS)
    with Stubber(client) as stub:
        role = {
            "Path": "/",
            "RoleName": ROLE,
            "RoleId": "AROAEXAMPLEID0000001",
            "Arn": f"arn:aws:iam::111122223333:role/{ROLE}",
            "CreateDate": "2026-11-20T09:14:03Z",
            "AssumeRolePolicyDocument": encoded,
        }
        stub.add_response("get_role", {"Role": role}, {"RoleName": ROLE})
        # Given IAM's text with the literal 1.10 / When read / Then the gateway hands over IAM's text, undecoded
        record = gateway.get_role(ROLE)
        assert record is not None and record.document == encoded
        # When the fix is written / Then the request carries 1.10 exactly, and the fix is otherwise compact
        fixed = evaluate(record.document, record.context()).fixed_policy
        assert fixed is not None
        sent = json.dumps(fixed, separators=(",", ":"))  # what a plain encoder would send instead
        assert '"aws:MultiFactorAuthAge":1.1}' in sent
        stub.add_response(
            "update_assume_role_policy",
            {},
            {
                "RoleName": ROLE,
                "PolicyDocument": sent.replace('"aws:MultiFactorAuthAge":1.1}', '"aws:MultiFactorAuthAge":1.10}'),
            },
        )
        gateway.update_assume_role_policy(ROLE, fixed)
        stub.assert_no_pending_responses()


def test_a_revert_restores_the_recorded_literals(make_world: MakeWorld) -> None:
    # Given an audit record whose original holds 1.10 / When it is read back / Then the literal is intact
    world = make_world(mode="enforce")
    from chalicelib.adapters.store import ChangeKind
    from chalicelib.domain.policy import decode_document, to_compact_json

    original = decode_document(WITH_LITERALS)
    record = world.audit().record_intent(
        role_arn=f"arn:aws:iam::111122223333:role/{ROLE}",
        role_name=ROLE,
        before=original,
        after=original,
        kind=ChangeKind.FIX,
        actor=None,
        event_id=None,
        mode="enforce",
        trigger="event",
        reason="test",
    )
    (read,) = world.audit().history(record.role_arn)
    assert to_compact_json(read.before) == WITH_LITERALS


def test_a_document_with_duplicate_keys_in_iam_is_never_rewritten(make_world: MakeWorld) -> None:
    # Given IAM holds a trust policy with a repeated key
    world = make_world(mode="enforce")
    world.iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=WITH_DUPLICATES)
    # When its event arrives
    out = handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    # Then a human is asked, and IAM's text is untouched
    assert out["verdict"] == Verdict.NEEDS_REVIEW.value and out["action"] == "review"
    assert {p["code"] for p in out["problems"]} >= {"duplicate_keys"}
    assert "iam.UpdateAssumeRolePolicy" not in world.aws_calls()
    assert raw_trust(world, ROLE).count('"Effect"') == 2
