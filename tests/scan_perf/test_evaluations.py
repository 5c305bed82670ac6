"""A scan evaluates each distinct document once per context, renders each shared fix's diff once, and every
role still gets its own verdict."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.models import Evaluation, RoleRecord, Verdict
from chalicelib.domain.policy import render_diff
from chalicelib.service import enforce as enforce_module
from chalicelib.service.deps import Deps
from chalicelib.service.enforce import evaluate_role
from chalicelib.service.scan import scan
from tests.scan_perf.conftest import MakeWorld, seed
from tests.world import VULNERABLE, deny_authorization_details


def test_roles_with_the_same_document_and_path_share_one_evaluation(
    make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 90 roles with 4 distinct documents, and one more vulnerable document under the service-linked
    # path (which IAM lets no one edit: not applicable, whatever its document says)
    world = make_world(idempotent=False)
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    seed({"lambda": 40, "compliant": 30, "vulnerable": 15, "foreign": 5})
    world.iam.create_role(
        RoleName="AWSServiceRoleForStepFunctions",
        Path="/aws-service-role/states.amazonaws.com/",
        AssumeRolePolicyDocument=json.dumps(VULNERABLE),
    )
    evaluated: list[str] = []
    diffs: list[object] = []

    def counting(role: RoleRecord, deps: Deps) -> Evaluation:
        evaluated.append(role.name)
        return evaluate_role(role, deps)

    def counting_diff(before: object, after: object) -> str:
        diffs.append(before)
        return render_diff(before, after)

    monkeypatch.setattr(enforce_module, "evaluate_role", counting)
    monkeypatch.setattr(enforce_module, "render_diff", counting_diff)
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then the listing's documents were evaluated once per document and path (4 + 1), the flagged roles
    # once more per document after their tags were read (every role has the same owner tag: vulnerable
    # and foreign), the shared fix's diff was rendered once, and each role has its verdict
    assert len(evaluated) == 4 + 1 + 2
    assert len(diffs) == 1
    verdicts = {r.role_name: r.verdict for r in report.results}
    assert verdicts["AWSServiceRoleForStepFunctions"] is Verdict.NOT_APPLICABLE
    assert {v for name, v in verdicts.items() if name.startswith("vulnerable")} == {Verdict.NON_COMPLIANT}
    assert {v for name, v in verdicts.items() if name.startswith("foreign")} == {Verdict.NEEDS_REVIEW}
    assert len(report.results) == 91 and sum(r.diff != "" for r in report.results) == 15


def test_a_scan_keeps_a_bounded_number_of_shared_evaluations(
    make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 6 different documents and room for 2 shared evaluations
    world = make_world(idempotent=False)
    for index in range(6):
        document = {**VULNERABLE, "Id": f"document-{index}"}
        for copy in range(2):
            world.iam.create_role(RoleName=f"sfn-{index}-{copy}", AssumeRolePolicyDocument=json.dumps(document))
    monkeypatch.setattr(enforce_module, "EVALUATIONS_KEPT", 2)
    # When scanned
    report = scan(world.deps, dry_run=True)
    # Then every role is still judged on its own document, with its own document's diff
    assert len(report.results) == 12 and {r.verdict for r in report.results} == {Verdict.NON_COMPLIANT}
    for result in report.results:
        assert f'"Id": "document-{result.role_name.split("-")[1]}"' in result.diff
