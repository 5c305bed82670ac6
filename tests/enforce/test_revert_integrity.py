"""Revert integrity: a record in the audit table steers nothing the bot did not compute itself.

The attacker here holds dynamodb:PutItem on the table and execute-api:Invoke on the API, and no IAM rights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalice.test import Client

from chalicelib.adapters.store import ChangeKind, ChangeStatus
from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import RoleContext
from chalicelib.runtime import container
from chalicelib.service.enforce import handle_event
from chalicelib.service.revert import revert
from tests.documents import BACKDOOR
from tests.world import ACCOUNT, COMPLIANT, VULNERABLE, World, load_event

ROLE = "order-pipeline-sfn"
ATTACKER = "999988887777"
MakeWorld = Callable[..., World]
JSON = {"Content-Type": "application/json"}


def forge(world: World, arn: str, *, before: dict[str, Any], after: dict[str, Any]) -> str:
    """Write an 'applied fix' record as anyone with PutItem on the table could."""
    record = world.audit().record_intent(
        role_arn=arn,
        role_name=ROLE,
        before=before,
        after=after,
        kind=ChangeKind.FIX,
        actor="arn:aws:iam::111122223333:user/mallory",
        event_id=None,
        mode="enforce",
        trigger="event",
        reason="forged",
    )
    world.audit().record_outcome(record, ChangeStatus.APPLIED)
    return record.change_id


def bots_fix(document: dict[str, Any]) -> dict[str, Any]:
    fixed = evaluate(document, RoleContext(account_id=ACCOUNT)).fixed_policy
    assert fixed is not None
    return fixed


def post_revert(client: Client, body: dict[str, Any] | None = None) -> Any:
    return client.http.post(f"/roles/{ROLE}/revert", headers=JSON, body=json.dumps(body or {}))


def test_a_forged_record_does_not_write_its_original_over_rest(make_world: MakeWorld, client: Client) -> None:
    # Given a role the bot never touched, and a forged record whose "after" is what the role holds now
    world = make_world(mode="notify")
    arn = world.create_role(ROLE, COMPLIANT)
    forge(world, arn, before=BACKDOOR, after=COMPLIANT)
    container.install(world.deps)
    # When the attacker calls revert
    response = post_revert(client)
    # Then it is refused, and the role is exactly as it was, untagged
    assert response.status_code == 409
    assert "does not hold a fix deputy-guard computed" in response.json_body["message"]
    assert world.trust(ROLE) == COMPLIANT
    assert "deputy-guard:mode" not in world.tags(ROLE)
    assert "iam.UpdateAssumeRolePolicy" not in world.aws_calls()
    assert world.deps.metrics.counts["RevertIntegrityFailed"] == 1  # type: ignore[attr-defined]


def test_a_self_consistent_forgery_is_refused(make_world: MakeWorld, client: Client) -> None:
    # Given a role the bot fixed for real, and a forged newer record: the bot's own fix of the attacker's document
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE, VULNERABLE)
    assert handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)["action"] == "fixed"
    genuine = world.trust(ROLE)
    forge(world, arn, before=BACKDOOR, after=bots_fix(BACKDOOR))
    container.install(world.deps)
    # When the attacker calls revert, with and without force
    plain, forced = post_revert(client), post_revert(client, {"force": True})
    # Then both are refused and the role keeps the bot's genuine fix
    assert plain.status_code == 409 and forced.status_code == 409
    assert "CLI" in forced.json_body["message"]
    assert world.trust(ROLE) == genuine
    assert "deputy-guard:mode" not in world.tags(ROLE)


def test_a_forgery_matching_the_current_document_is_refused_in_the_service(make_world: MakeWorld) -> None:
    # Given the bot's genuine fix, and a forged record claiming that fix came from the backdoor document
    world = make_world(mode="enforce")
    arn = world.create_role(ROLE, VULNERABLE)
    handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    genuine = world.trust(ROLE)
    forge(world, arn, before=BACKDOOR, after=genuine)
    # When the service is asked to revert, even forced from the CLI
    for force in (False, True):
        result = revert(ROLE, world.deps, force=force, caller_credentials=True)
        # Then it refuses: fixing BACKDOOR again does not give the recorded "after"
        assert result.status == "refused"
    assert world.trust(ROLE) == genuine


def test_force_needs_the_callers_own_credentials(make_world: MakeWorld) -> None:
    # Given a genuine fix that someone changed since
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE)
    handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    world.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(COMPLIANT))
    world.calls.clear()
    # When force is asked with the bot's credentials / Then it is refused before any AWS call
    refused = revert(ROLE, world.deps, force=True)
    assert refused.status == "refused" and "--force" in refused.message
    assert world.aws_calls() == {}
    assert world.trust(ROLE) == COMPLIANT
    # and with the caller's own credentials (the CLI) the recorded original comes back
    assert revert(ROLE, world.deps, force=True, caller_credentials=True).status == "reverted"
    assert world.trust(ROLE) == VULNERABLE


def test_a_genuine_revert_still_works_over_rest(make_world: MakeWorld, client: Client) -> None:
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE)
    handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    container.install(world.deps)
    response = post_revert(client)
    assert response.status_code == 200 and response.json_body["status"] == "reverted"
    assert world.trust(ROLE) == VULNERABLE
