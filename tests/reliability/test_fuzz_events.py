"""Hostile and malformed EventBridge events: no crash, and a log line saying what became of each one."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings

import app as app_module
from chalicelib.domain.events import RoleRef, Skip, to_role_ref
from chalicelib.runtime import container
from chalicelib.service.enforce import handle_event
from tests.reliability.conftest import Account
from tests.reliability.strategies import FIXTURE_EVENTS, events
from tests.reliability.support import FUZZ_COUNTS, query_params
from tests.world import VULNERABLE

MakeAccount = Callable[..., Account]
IAM_ROLE_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
SEEDED = "order-pipeline-sfn"
WITH_MOTO = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def reset(acct: Account) -> None:
    """Each example meets the same account: the seeded role vulnerable again, the logs empty."""
    acct.world.iam.update_assume_role_policy(RoleName=SEEDED, PolicyDocument=json.dumps(VULNERABLE))
    acct.logs.lines.clear()


def iam_validates_role_names(acct: Account) -> None:
    """moto answers NoSuchEntity for any name; IAM answers ValidationError for an impossible one."""
    acct.faults.inject(
        "iam",
        "GetRole",
        "ValidationError",
        when=lambda request: IAM_ROLE_NAME.fullmatch(query_params(request).get("RoleName", "")) is None,
    )


@pytest.fixture
def acct(account: MakeAccount) -> Account:
    made = account(mode="enforce", idempotent=False)
    made.create_role(SEEDED, VULNERABLE, tags={"owner": "payments-team"})
    iam_validates_role_names(made)
    return made


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(app_module.app) as test_client:
        yield test_client


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(event=events)
def test_event_parsing_never_raises_and_never_guesses_a_role(event: Any) -> None:
    FUZZ_COUNTS["events: to_role_ref (pure)"] += 1
    # When any damaged event is read
    parsed = to_role_ref(event, lambda _issuer: False)
    # Then it is a skip with a reason, or a pointer at a name IAM could hold (ASCII, 1-64 characters)
    assert isinstance(parsed, RoleRef | Skip)
    if isinstance(parsed, RoleRef):
        assert IAM_ROLE_NAME.fullmatch(parsed.role_name), parsed.role_name
    else:
        assert parsed.reason


@pytest.mark.parametrize("name", ["order-pipeline-sfn\n", "rôle", "١٢٣", "\uff4f\uff52\uff44\uff45\uff52"])
def test_role_names_iam_would_reject_are_skipped(name: str) -> None:
    # Given an AttachRolePolicy event whose role name only a loose pattern would accept
    event = copy.deepcopy(
        next(
            e
            for e in FIXTURE_EVENTS
            if e["detail"]["eventName"] == "AttachRolePolicy" and "errorCode" not in e["detail"]
        )
    )
    event["detail"]["requestParameters"]["roleName"] = name
    # When it is read
    parsed = to_role_ref(event)
    # Then it is skipped as naming no role, never passed on to IAM
    assert isinstance(parsed, Skip) and parsed.reason == "no_role_name"


@WITH_MOTO
@given(event=events)
def test_handle_event_never_raises_and_always_logs_the_outcome(acct: Account, event: Any) -> None:
    FUZZ_COUNTS["events: service.handle_event (moto)"] += 1
    reset(acct)
    if not isinstance(event, dict):
        event = {"detail": event}
    # When any damaged event is handled against a real-shaped account
    out = handle_event(event, acct.deps)
    # Then the bot answers with a status, and one log line says what became of the event
    assert out["status"] in ("skipped", "processed")
    messages = acct.logs.messages()
    if out["status"] == "processed":
        assert acct.logs.decisions(out["role_name"])
    else:
        assert {"event skipped", "role gone before the event was handled"} & set(messages)


@WITH_MOTO
@given(event=events)
def test_the_lambda_handler_never_raises_on_any_event(acct: Account, client: Client, event: Any) -> None:
    FUZZ_COUNTS["events: on_iam_event via chalice.test.Client"] += 1
    reset(acct)
    container.install(acct.deps)
    # When the real Chalice handler is invoked with the damaged event
    response = client.lambda_.invoke("on_iam_event", event)
    # Then it returns a status; nothing escapes as an unhandled exception
    assert response.payload["status"] in ("skipped", "processed")
