"""Events beyond Step Functions (DEPUTY_GUARD_SERVICES=all) against moto: each service pinned with its own ARN,
advise-level services only notified, out-of-scope principals answered without an AWS call, one parse per event."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.domain import events
from chalicelib.domain.models import Action, Notice, Verdict
from chalicelib.domain.slack_actions import APPLY_FIX, EXEMPT_30D, wanted_actions
from chalicelib.runtime import container
from chalicelib.runtime import handlers as runtime
from chalicelib.service import accounts as accounts_module
from chalicelib.service import enforce
from chalicelib.service.enforce import handle_event
from tests.world import ACCOUNT, World, load_event

MakeWorld = Callable[..., World]


def trust(*services: str) -> dict[str, Any]:
    principal: Any = services[0] if len(services) == 1 else list(services)
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}],
    }


def create_role_event(name: str, document: dict[str, Any]) -> dict[str, Any]:
    """A CloudTrail CreateRole event shaped like the recorded fixture, for another role and trust document."""
    event = copy.deepcopy(load_event("CreateRole-states-vulnerable.json"))
    event["id"] = f"evt-{name}"
    request = event["detail"]["requestParameters"]
    request["roleName"] = name
    request["assumeRolePolicyDocument"] = json.dumps(document, indent=2)
    event["detail"]["responseElements"]["role"].update(
        {"roleName": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "assumeRolePolicyDocument": "%7B%7D"}
    )
    return event


def arn_pin(document: dict[str, Any], index: int = 0) -> tuple[str | None, str | None]:
    condition = document["Statement"][index].get("Condition", {})
    return condition.get("StringEquals", {}).get("aws:SourceAccount"), condition.get("ArnLike", {}).get("aws:SourceArn")


@pytest.mark.parametrize(
    ("principal", "prefix"), [("scheduler.amazonaws.com", "scheduler"), ("vpc-flow-logs.amazonaws.com", "ec2")]
)
def test_with_every_service_enforce_pins_each_role_with_its_own_services_arn(
    make_world: MakeWorld, principal: str, prefix: str
) -> None:
    # Given every service guarded in enforce mode, and a new role of that service without pins
    world = make_world(mode="enforce", services="all")
    world.create_role("svc-role", trust(principal))
    # When its CreateRole event arrives
    out = handle_event(create_role_event("svc-role", trust(principal)), world.deps)
    # Then it is fixed with its own service's source ARN (Flow Logs' is ec2's) and the account
    assert out["action"] == "fixed"
    assert arn_pin(world.trust("svc-role")) == (ACCOUNT, f"arn:aws:{prefix}:*:{ACCOUNT}:*")
    assert out["services"] == [principal] and out["auto_fix"] is True


def test_a_cloudtrail_role_is_only_notified_with_its_patch_and_the_reason(make_world: MakeWorld) -> None:
    # Given every service guarded in enforce mode, and a CloudTrail role without pins
    world = make_world(mode="enforce", services="all")
    world.create_role("trail-to-logs", trust("cloudtrail.amazonaws.com"))
    world.calls.clear()
    # When its event arrives
    out = handle_event(create_role_event("trail-to-logs", trust("cloudtrail.amazonaws.com")), world.deps)
    # Then nothing is written: the owner gets the ready patch and the evidence's caveat, without an Apply button
    assert out["action"] == "notified" and out["auto_fix"] is False
    assert world.trust("trail-to-logs") == trust("cloudtrail.amazonaws.com")
    assert "iam.UpdateAssumeRolePolicy" not in world.aws_calls("iam")
    (notice,) = world.notifier.single
    assert notice.after is not None and "verify before applying" in notice.reason
    assert "CloudWatch Logs delivery role" in notice.reason
    assert wanted_actions(notice) == (EXEMPT_30D,)


def test_an_advise_level_role_is_refused_by_an_explicit_remediation(make_world: MakeWorld) -> None:
    world = make_world(mode="notify", services="all")
    world.create_role("codedeploy-role", trust("codedeploy.amazonaws.com"))
    container.install(world.deps)
    status, body = runtime.remediate("codedeploy-role", {}, "arn:aws:iam::111122223333:user/alice")
    assert status == 409 and body["action"] == "notified"
    assert world.trust("codedeploy-role") == trust("codedeploy.amazonaws.com")


@pytest.mark.parametrize(
    "principal", ["ec2.amazonaws.com", "secretsmanager.amazonaws.com", "elastictranscoder.amazonaws.com"]
)
def test_out_of_scope_roles_are_never_touched_and_cost_no_aws_call(make_world: MakeWorld, principal: str) -> None:
    # Given every service guarded, and a role of a service that sends no documented keys
    world = make_world(mode="enforce", services="all")
    world.create_role("other-role", trust(principal))
    world.calls.clear()
    container.install(world.deps)
    # When its event arrives through the Lambda handler
    out = runtime.on_iam_event(create_role_event("other-role", trust(principal)), None)
    # Then it is skipped without a single AWS call, and the role is as it was
    assert out["reason"] == "no_guarded_principal"
    assert world.aws_calls() == {}
    assert world.trust("other-role") == trust(principal)


def test_a_mixed_statement_is_split_so_each_service_gets_its_own_pins(make_world: MakeWorld) -> None:
    # Given a statement trusting Step Functions, Scheduler and EC2 together
    document = trust("states.amazonaws.com", "scheduler.amazonaws.com", "ec2.amazonaws.com")
    world = make_world(mode="enforce", services="all")
    world.create_role("mixed-role", document)
    # When its event arrives
    assert handle_event(create_role_event("mixed-role", document), world.deps)["action"] == "fixed"
    # Then EC2 keeps the original statement untouched; each pinned service has a statement and pins of its own
    fixed = world.trust("mixed-role")["Statement"]
    assert fixed[0] == {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]}, "Action": "sts:AssumeRole"}
    assert fixed[1]["Principal"] == {"Service": ["states.amazonaws.com"]}
    assert fixed[2]["Principal"] == {"Service": ["scheduler.amazonaws.com"]}
    assert arn_pin({"Statement": fixed}, 1) == (ACCOUNT, f"arn:aws:states:*:{ACCOUNT}:*")
    assert arn_pin({"Statement": fixed}, 2) == (ACCOUNT, f"arn:aws:scheduler:*:{ACCOUNT}:*")


def test_under_the_default_a_scheduler_role_is_skipped_as_before(make_world: MakeWorld) -> None:
    world = make_world(mode="enforce")
    world.create_role("svc-role", trust("scheduler.amazonaws.com"))
    world.calls.clear()
    out = handle_event(create_role_event("svc-role", trust("scheduler.amazonaws.com")), world.deps)
    assert out["reason"] == "no_step_functions_principal"
    assert world.aws_calls() == {} and world.trust("svc-role") == trust("scheduler.amazonaws.com")


@pytest.mark.parametrize(
    "scope",
    [{}, {"accounts": ACCOUNT, "work_queue_url": "https://sqs.us-east-1.amazonaws.com/111122223333/work"}],
    ids=["one-account", "organization"],
)
def test_the_handler_parses_an_event_once(
    make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch, scope: dict[str, str]
) -> None:
    # Given a spy on the one parser of events, wherever it is called from
    parses: list[str] = []
    real = events.to_role_ref

    def counting(event: Any, *args: Any, **kwargs: Any) -> Any:
        parses.append(event.get("id", ""))
        return real(event, *args, **kwargs)

    for module in (runtime, enforce, accounts_module):
        if hasattr(module, "to_role_ref"):
            monkeypatch.setattr(module, "to_role_ref", counting)
    world = make_world(mode="enforce", services="all", **scope)
    world.create_role("svc-role", trust("scheduler.amazonaws.com"))
    container.install(world.deps)
    # When a relevant event goes through the Lambda handler, in one account or in an organization
    out = runtime.on_iam_event(create_role_event("svc-role", trust("scheduler.amazonaws.com")), None)
    # Then it was read once, and the fix still happened
    assert out["action"] == "fixed"
    assert parses == ["evt-svc-role"]


def test_the_scan_body_selects_services_and_refuses_unknown_ones(make_world: MakeWorld) -> None:
    world = make_world(mode="notify")
    world.create_role("svc-role", trust("scheduler.amazonaws.com"))
    container.install(world.deps)
    status, report = runtime.post_scans({"services": ["scheduler"], "role_names": ["svc-role"]})
    (row,) = report["results"]
    assert (
        status == 200
        and row["verdict"] == Verdict.NON_COMPLIANT.value
        and row["services"] == ["scheduler.amazonaws.com"]
    )
    _, default = runtime.post_scans({"role_names": ["svc-role"]})
    assert default["results"][0]["verdict"] == Verdict.NOT_APPLICABLE.value and "services" not in default["results"][0]
    with pytest.raises(runtime.BadInput, match="'ec2' is not in the catalogue"):
        runtime.post_scans({"services": "ec2"})


def test_an_enforce_level_notice_still_offers_to_apply_the_fix() -> None:
    notice = Notice(
        account=ACCOUNT, region="us-east-1", role_name="r", role_arn=f"arn:aws:iam::{ACCOUNT}:role/r",
        verdict=Verdict.NON_COMPLIANT, problems=(), action=Action.NOTIFIED, reason="notify mode", before={}, after={},
        diff="", owner="team", actor=None, event_id=None, time="2026-12-07T00:00:00Z",
        services=("scheduler.amazonaws.com",),
    )  # fmt: skip
    assert wanted_actions(notice) == (APPLY_FIX, EXEMPT_30D)
