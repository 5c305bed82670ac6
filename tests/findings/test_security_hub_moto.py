"""Security Hub on events and sweeps (DEPUTY_GUARD_SECURITY_HUB=true), against moto's Security Hub.

moto keeps what BatchImportFindings sends (GetFindings returns it, without filtering) but has no
BatchUpdateFindings: the workflow half of a resolution is pinned by test_security_hub_requests.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3

from chalicelib.domain.asff import GENERATOR_ID, finding_id
from chalicelib.service.deps import FindingsHub
from chalicelib.service.enforce import handle_event
from chalicelib.service.findings import record_findings
from chalicelib.service.scan import sweep
from tests.world import ACCOUNT, COMPLIANT, FOREIGN, VULNERABLE, World, load_event

ROLE = "order-pipeline-sfn"  # the role the CreateRole fixture event names
CREATE = "CreateRole-states-vulnerable.json"
MakeWorld = Callable[..., World]


def findings() -> dict[str, dict[str, Any]]:
    response = boto3.client("securityhub", region_name="us-east-1").get_findings()
    return {f["Id"]: f for f in response["Findings"]}


def test_an_event_imports_the_roles_finding(make_world: MakeWorld) -> None:
    # Given Security Hub enabled and a role without pins, in notify mode
    world = make_world(security_hub="true")
    world.create_role(ROLE)
    # When its CreateRole event is handled
    out = handle_event(load_event(CREATE), world.deps)
    # Then Security Hub holds one ACTIVE finding for the role, the bot's own product, the patch attached
    assert out["action"] == "notified"
    found = findings()
    assert list(found) == [finding_id(ACCOUNT, ROLE)]
    finding = found[finding_id(ACCOUNT, ROLE)]
    assert finding["GeneratorId"] == GENERATOR_ID and finding["RecordState"] == "ACTIVE"
    assert finding["ProductArn"] == f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default"
    assert finding["Resources"][0]["Type"] == "AwsIamRole"
    assert "+" in finding["ProductFields"]["deputy-guard/Diff"]
    assert world.deps.metrics.counts.get("SecurityHubFailed") is None  # type: ignore[attr-defined]


def test_without_the_setting_nothing_reaches_security_hub(make_world: MakeWorld) -> None:
    world = make_world()
    world.create_role(ROLE)
    handle_event(load_event(CREATE), world.deps)
    assert world.deps.security_hub is None
    assert findings() == {}


def test_a_sweep_imports_every_open_finding_and_nothing_for_compliant_roles(make_world: MakeWorld) -> None:
    world = make_world(security_hub="true")
    world.create_role("vulnerable-sfn", VULNERABLE)
    world.create_role("foreign-sfn", FOREIGN)
    world.create_role("compliant-sfn", COMPLIANT)
    summary = sweep(world.deps)
    assert summary["actions"] == {"notified": 1, "review": 1, "none": 1}
    found = findings()
    assert sorted(found) == sorted(finding_id(ACCOUNT, n) for n in ("vulnerable-sfn", "foreign-sfn"))
    assert found[finding_id(ACCOUNT, "foreign-sfn")]["Severity"]["Label"] == "CRITICAL"


def test_a_role_fixed_by_hand_is_archived_at_the_next_sweep(make_world: MakeWorld) -> None:
    # Given an ACTIVE finding for a role
    world = make_world(security_hub="true")
    world.create_role("vulnerable-sfn", VULNERABLE)
    sweep(world.deps)
    # When its owner pins it by hand and the next sweep runs
    world.iam.update_assume_role_policy(RoleName="vulnerable-sfn", PolicyDocument=json.dumps(COMPLIANT))
    summary = sweep(world.deps)
    # Then the finding is archived with compliance PASSED; the sweep itself is unaffected by moto's missing
    # BatchUpdateFindings (counted as a Security Hub failure, nothing else)
    finding = findings()[finding_id(ACCOUNT, "vulnerable-sfn")]
    assert (finding["RecordState"], finding["Compliance"]["Status"]) == ("ARCHIVED", "PASSED")
    assert summary["actions"] == {"none": 1}
    assert world.deps.metrics.counts["SecurityHubFailed"] == 1  # type: ignore[attr-defined]


def test_findings_of_another_account_are_not_sent(make_world: MakeWorld) -> None:
    # Given a hub for another account than the roles' (the central account of an organization)
    world = make_world(security_hub="true")
    hub = world.deps.security_hub
    assert hub is not None
    world.deps.security_hub = FindingsHub(hub.gateway, lambda: "999988887777")
    world.create_role(ROLE)
    handle_event(load_event(CREATE), world.deps)
    assert findings() == {}


def test_no_results_no_call(make_world: MakeWorld) -> None:
    world = make_world(security_hub="true")
    record_findings(world.deps, [])
    assert findings() == {}
