"""The API function answers API Gateway only: a direct lambda:InvokeFunction cannot choose the recorded actor.

The attacker holds lambda:InvokeFunction on the API function and crafts the proxy event API Gateway would send.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import app as app_module
from chalicelib.runtime import container
from chalicelib.service.enforce import handle_event
from tests.world import VULNERABLE, World, load_event

ROLE = "order-pipeline-sfn"  # the role of CreateRole-states-vulnerable.json
MakeWorld = Callable[..., World]
SECURITY_LEAD = "arn:aws:iam::111122223333:role/SecurityLead"


class LambdaContext:
    aws_request_id = "direct-invoke-1"
    function_name = "deputy-guard-prod-APIHandler"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def proxy_event(path: str, resource: str, request_context: dict[str, Any]) -> dict[str, Any]:
    """A REST API proxy event for POST ``path``, with the request context the caller chose."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "POST",
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"content-type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"role_name": ROLE},
        "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": "POST", "path": f"/api{path}", **request_context},
        "body": json.dumps({}),
        "isBase64Encoded": False,
    }


@pytest.fixture
def fixed_role(make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> World:
    """A role the bot fixed, in a deployed function (Lambda's environment)."""
    world = make_world(mode="enforce")
    world.create_role(ROLE, VULNERABLE)
    assert handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)["action"] == "fixed"
    container.install(world.deps)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "deputy-guard-prod-APIHandler")
    return world


@pytest.mark.parametrize(
    "request_context",
    [
        {"identity": {"userArn": SECURITY_LEAD, "sourceIp": "10.0.0.1"}},  # an actor, but no API Gateway
        {"apiId": "a1b2c3d4e5", "stage": "api", "identity": {"sourceIp": "10.0.0.1"}},  # no verified caller
        {},
    ],
)
def test_a_direct_invoke_without_api_gateways_context_reverts_nothing(
    fixed_role: World, request_context: dict[str, Any]
) -> None:
    # Given the bot's fix on a role / When the API function is invoked directly, naming an actor of its choosing
    fixed = fixed_role.trust(ROLE)
    event = proxy_event(f"/roles/{ROLE}/revert", "/roles/{role_name}/revert", request_context)
    answer = app_module.app(event, LambdaContext())
    # Then it is refused, and neither the role nor the audit trail changes
    assert answer["statusCode"] == 403
    assert fixed_role.trust(ROLE) == fixed
    assert "deputy-guard:mode" not in fixed_role.tags(ROLE)
    assert [r.kind.value for r in fixed_role.audit().history(f"arn:aws:iam::111122223333:role/{ROLE}")] == ["fix"]


def test_api_gateways_verified_caller_is_the_recorded_actor(fixed_role: World) -> None:
    # Given a request as API Gateway passes it on after IAM authentication
    context = {"apiId": "a1b2c3d4e5", "stage": "api", "identity": {"userArn": SECURITY_LEAD, "accountId": "1"}}
    event = proxy_event(f"/roles/{ROLE}/revert", "/roles/{role_name}/revert", context)
    # When it runs / Then the revert is done and recorded under that caller
    answer = app_module.app(event, LambdaContext())
    assert answer["statusCode"] == 200, answer
    assert fixed_role.trust(ROLE) == VULNERABLE
    latest = fixed_role.audit().history(f"arn:aws:iam::111122223333:role/{ROLE}")[0]
    assert latest.kind.value == "revert" and latest.actor == SECURITY_LEAD
