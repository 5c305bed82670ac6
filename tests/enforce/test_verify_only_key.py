"""Credentials that may verify the audit records but not sign them: a person's, under the stack's key policy.

The stack's key policy lets only the bot's function roles call kms:GenerateMac; operators may call
kms:VerifyMac. So `deputy-guard revert` (and its break-glass --force) run with an operator's credentials must
verify the bot's record and still restore, while a fix they start cannot be recorded, so it never happens.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chalicelib.adapters import aws
from chalicelib.adapters.errors import AccessDenied
from chalicelib.adapters.kms import KmsMacKey
from chalicelib.adapters.signing import RecordSigner
from chalicelib.adapters.store import AuditTrail, ChangeKind
from chalicelib.domain.models import Action
from chalicelib.service.enforce import evaluate_role, handle_event, remediate
from chalicelib.service.exempt import exempt_role
from chalicelib.service.revert import revert
from tests.world import ACCOUNT, VULNERABLE, World, load_event

ROLE = "order-pipeline-sfn"  # the role of CreateRole-states-vulnerable.json
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
OPERATOR = f"arn:aws:sts::{ACCOUNT}:assumed-role/SecurityLead/alice"
MakeWorld = Callable[..., World]


class VerifyOnlyKey(KmsMacKey):
    """The stack's key as an operator holds it: VerifyMac allowed, GenerateMac denied by the key policy."""

    def generate_mac(self, message: bytes) -> bytes:
        raise AccessDenied("GenerateMac", "AccessDeniedException", "not allowed by the key policy")


def as_operator(world: World) -> None:
    """The world's Deps, with the audit trail the CLI builds for an operator: the same key, verify only."""
    key = world.deps.settings.signing_key
    assert key is not None
    table = aws.DynamoTable(aws.make_client("dynamodb"), world.deps.settings.table)
    world.deps.audit = AuditTrail(table, signer=RecordSigner(VerifyOnlyKey(aws.make_client("kms"), key)))


@pytest.fixture
def fixed_by_the_bot(make_world: MakeWorld) -> World:
    """The bot's own signed fix of a vulnerable role, enforce mode."""
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE)
    assert handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)["action"] == "fixed"
    return world


@pytest.mark.parametrize("force", [False, True])
def test_an_operators_revert_verifies_the_bots_record_and_restores(fixed_by_the_bot: World, force: bool) -> None:
    # Given an operator whose credentials may verify the bot's records but not sign
    world = fixed_by_the_bot
    as_operator(world)
    # When they revert from the CLI, forced or not
    result = revert(ROLE, world.deps, force=force, actor=OPERATOR, caller_credentials=True)
    # Then the original is back and the role exempt; their own revert record is kept, unsigned, and says so
    assert result.status == "reverted", result.message
    assert world.trust(ROLE) == VULNERABLE and world.tags(ROLE)["deputy-guard:mode"] == "exempt"
    newest = world.audit().history(ROLE_ARN)[0]
    assert newest.kind is ChangeKind.REVERT and "signature" not in newest.item
    assert f"its record {newest.change_id} is unsigned" in result.message


def test_a_revert_whose_record_cannot_be_written_touches_nothing(fixed_by_the_bot: World) -> None:
    # Given a caller that is not the CLI (the bot's paths) and a key that refuses to sign
    world = fixed_by_the_bot
    fixed = world.trust(ROLE)
    as_operator(world)
    # When a revert is asked / Then it fails before any write: no exempt tag, the fix stays, no new record
    with pytest.raises(AccessDenied):
        revert(ROLE, world.deps, actor=OPERATOR)
    assert world.trust(ROLE) == fixed and "deputy-guard:mode" not in world.tags(ROLE)
    assert [r.kind for r in world.audit().history(ROLE_ARN)] == [ChangeKind.FIX]


def test_an_operators_fix_cannot_be_recorded_so_it_never_happens(make_world: MakeWorld) -> None:
    # Given a vulnerable role and an operator who may not sign
    world = make_world(mode="notify")
    arn = world.create_role(ROLE, VULNERABLE)
    as_operator(world)
    # When they remediate it from the CLI / Then it fails: no record, no change
    result = remediate(ROLE, world.deps, actor=OPERATOR)
    assert result is not None and result.action is Action.FAILED
    assert "could not be signed" in result.reason and "api remediate" in result.reason
    assert world.trust(ROLE) == VULNERABLE
    assert world.audit().history(arn) == []


def test_an_operators_exemption_is_applied_with_its_record_unsigned(make_world: MakeWorld) -> None:
    # Given a vulnerable role and an operator who may not sign
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE)
    as_operator(world)
    role = world.deps.iam.get_role(ROLE)
    assert role is not None
    # When they exempt it from the CLI
    result = exempt_role(
        role,
        world.deps,
        actor=OPERATOR,
        until=None,
        reason="SEC-1",
        trigger="cli",
        verdict=evaluate_role(role, world.deps).verdict,
    )
    # Then the role is exempt, recorded first, the record unsigned (no revert ever acts on an exemption's record)
    assert result.status == "exempt", result.message
    assert world.tags(ROLE)["deputy-guard:mode"] == "exempt"
    (record,) = world.audit().history(ROLE_ARN)
    assert record.kind is ChangeKind.EXEMPT and "signature" not in record.item
