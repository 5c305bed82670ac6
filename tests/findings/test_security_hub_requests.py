"""The exact Security Hub requests (botocore Stubber): import, resolve (archive + workflow RESOLVED), batching.

The roles live in moto's IAM; only the Security Hub client is stubbed, so every request is asserted as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.stub import ANY, Stubber

from chalicelib.adapters.securityhub import SecurityHubGateway
from chalicelib.domain.asff import GENERATOR_ID, NOTE_AUTHOR, RESOLVED_NOTE, finding_id, to_finding
from chalicelib.service.deps import FindingsHub
from chalicelib.service.enforce import handle_event, remediate
from chalicelib.service.scan import sweep
from tests.world import ACCOUNT, COMPLIANT, VULNERABLE, World, load_event

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PRODUCT = f"arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default"
MakeWorld = Callable[..., World]


class Hub:
    """A stubbed Security Hub client in the world's deps, recording what each call sent."""

    def __init__(self, world: World) -> None:
        self.client = botocore.session.get_session().create_client(
            "securityhub", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.stub = Stubber(self.client)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register("provide-client-params.securityhub.*", self._record)
        world.deps.security_hub = FindingsHub(SecurityHubGateway(self.client), lambda: ACCOUNT)
        world.deps.clock = lambda: NOW

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.sent.append((model.name, json.loads(json.dumps(params))))

    def imports(self, findings: Any = ANY, failed: list[dict[str, str]] | None = None) -> None:
        failed = failed or []
        response = {"FailedCount": len(failed), "SuccessCount": 1, "FailedFindings": failed}
        self.stub.add_response("batch_import_findings", response, {"Findings": findings})

    def resolves(self, ids: list[str]) -> None:
        self.stub.add_response(
            "batch_update_findings",
            {"ProcessedFindings": [{"Id": i, "ProductArn": PRODUCT} for i in ids], "UnprocessedFindings": []},
            {
                "FindingIdentifiers": [{"Id": i, "ProductArn": PRODUCT} for i in ids],
                "Workflow": {"Status": "RESOLVED"},
                "Note": {"Text": RESOLVED_NOTE, "UpdatedBy": NOTE_AUTHOR},
            },
        )

    def lists(self, filters: dict[str, Any], active: list[str]) -> None:
        found = [stored_finding(i) for i in active]
        self.stub.add_response("get_findings", {"Findings": found}, {"Filters": filters, "MaxResults": 100})


def stored_finding(identifier: str) -> dict[str, Any]:
    """A finding as GetFindings returns it (every member its output shape requires)."""
    return {
        "SchemaVersion": "2018-10-08",
        "Id": identifier,
        "ProductArn": PRODUCT,
        "GeneratorId": GENERATOR_ID,
        "AwsAccountId": ACCOUNT,
        "CreatedAt": "2026-11-01T00:00:00.000Z",
        "UpdatedAt": "2026-11-01T00:00:00.000Z",
        "Title": "t",
        "Description": "d",
        "Resources": [{"Type": "AwsIamRole", "Id": f"arn:aws:iam::{ACCOUNT}:role/x"}],
        "RecordState": "ACTIVE",
    }


@pytest.fixture
def hub_world(make_world: MakeWorld) -> Iterator[tuple[World, Hub]]:
    world = make_world(mode="enforce", security_hub="true")
    hub = Hub(world)
    with hub.stub:
        yield world, hub
        hub.stub.assert_no_pending_responses()


def filters(*ids: str) -> dict[str, Any]:
    wanted = {
        "ProductArn": [{"Value": PRODUCT, "Comparison": "EQUALS"}],
        "GeneratorId": [{"Value": GENERATOR_ID, "Comparison": "EQUALS"}],
        "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
    }
    if ids:
        wanted["Id"] = [{"Value": i, "Comparison": "EQUALS"} for i in ids]
    return wanted


def test_a_fix_archives_the_finding_then_resolves_its_workflow(hub_world: tuple[World, Hub]) -> None:
    # Given a vulnerable role / When a remediation fixes it
    world, hub = hub_world
    world.create_role("orders-sfn", VULNERABLE)
    hub.imports()
    hub.resolves([finding_id(ACCOUNT, "orders-sfn")])
    result = remediate("orders-sfn", world.deps)
    # Then one import sends the finding ARCHIVED (compliance PASSED), then one BatchUpdateFindings sets RESOLVED
    assert result is not None and result.action.value == "fixed"
    assert [name for name, _ in hub.sent] == ["BatchImportFindings", "BatchUpdateFindings"]
    (finding,) = hub.sent[0][1]["Findings"]
    assert finding == to_finding(result, region="us-east-1", now=NOW, resolved=True)
    assert (finding["RecordState"], finding["Compliance"]) == ("ARCHIVED", {"Status": "PASSED"})


def test_an_event_for_a_compliant_role_resolves_only_an_active_finding(hub_world: tuple[World, Hub]) -> None:
    # Given a role its owner pinned by hand, with an ACTIVE finding from before
    world, hub = hub_world
    world.create_role("order-pipeline-sfn", COMPLIANT)
    wanted = finding_id(ACCOUNT, "order-pipeline-sfn")
    hub.lists(filters(wanted), active=[wanted])
    hub.imports()
    hub.resolves([wanted])
    # When its event arrives
    out = handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    # Then the finding is looked up by Id, archived and resolved
    assert out["verdict"] == "compliant"
    assert [name for name, _ in hub.sent] == ["GetFindings", "BatchImportFindings", "BatchUpdateFindings"]
    assert hub.sent[1][1]["Findings"][0]["RecordState"] == "ARCHIVED"


def test_a_compliant_role_without_a_finding_costs_one_lookup(hub_world: tuple[World, Hub]) -> None:
    world, hub = hub_world
    world.create_role("order-pipeline-sfn", COMPLIANT)
    hub.lists(filters(finding_id(ACCOUNT, "order-pipeline-sfn")), active=[])
    handle_event(load_event("CreateRole-states-vulnerable.json"), world.deps)
    assert [name for name, _ in hub.sent] == ["GetFindings"]


def test_a_sweep_imports_in_batches_of_a_hundred(make_world: MakeWorld) -> None:
    # Given 150 roles needing review (never rewritten) and Security Hub on
    world = make_world(security_hub="true")
    hub = Hub(world)
    foreign = {**VULNERABLE, "Statement": [{**VULNERABLE["Statement"][0], "Principal": "*"}]}
    for index in range(150):
        world.create_role(f"review-{index:03d}", foreign)
    with hub.stub:
        hub.imports()
        hub.imports()
        sweep(world.deps)
        hub.stub.assert_no_pending_responses()
    assert [len(params["Findings"]) for _name, params in hub.sent] == [100, 50]
    assert {f["RecordState"] for _name, params in hub.sent for f in params["Findings"]} == {"ACTIVE"}


def test_a_sweep_lists_active_findings_once_when_many_roles_are_settled(make_world: MakeWorld) -> None:
    world = make_world(security_hub="true")
    hub = Hub(world)
    for index in range(25):
        world.create_role(f"ok-{index:02d}", COMPLIANT)
    with hub.stub:
        hub.lists(filters(), active=[finding_id(ACCOUNT, "ok-07"), finding_id(ACCOUNT, "deleted-role")])
        hub.imports()
        hub.resolves([finding_id(ACCOUNT, "ok-07")])
        sweep(world.deps)
        hub.stub.assert_no_pending_responses()
    (archived,) = hub.sent[1][1]["Findings"]
    assert archived["Id"] == finding_id(ACCOUNT, "ok-07") and archived["RecordState"] == "ARCHIVED"


def test_a_refused_import_is_not_resolved_and_is_counted(hub_world: tuple[World, Hub]) -> None:
    world, hub = hub_world
    world.create_role("orders-sfn", VULNERABLE)
    wanted = finding_id(ACCOUNT, "orders-sfn")
    hub.imports(failed=[{"Id": wanted, "ErrorCode": "InvalidInput", "ErrorMessage": "no"}])
    result = remediate("orders-sfn", world.deps)
    assert result is not None and result.action.value == "fixed"
    assert [name for name, _ in hub.sent] == ["BatchImportFindings"]
    assert world.deps.metrics.counts["SecurityHubFailed"] == 1  # type: ignore[attr-defined]


def test_security_hub_refusing_never_changes_the_outcome(hub_world: tuple[World, Hub]) -> None:
    # Given Security Hub not enabled in the account (or the call denied)
    world, hub = hub_world
    world.create_role("orders-sfn", VULNERABLE)
    hub.stub.add_client_error("batch_import_findings", "InvalidAccessException", "not subscribed", 403)
    # When a fix is made / Then it is made and reported, and the failure is a metric and a log line
    result = remediate("orders-sfn", world.deps)
    assert result is not None and result.action.value == "fixed"
    assert world.deps.metrics.counts["SecurityHubFailed"] == 1  # type: ignore[attr-defined]
