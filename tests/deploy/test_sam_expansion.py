"""Lint what will really be deployed: the plain CloudFormation the SAM transform makes of the template.

cfn-lint no longer expands AWS::Serverless resources itself, so linting dist/sam.json alone never sees the
Lambda functions, the rules, the permissions or the API stage SAM generates. samtranslator expands the
template offline (tests/deploy/support.expand_sam) and cfn-lint checks the expansion.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.stack import ASYNC_FUNCTIONS, FUNCTIONS, RULE
from tests.deploy.support import ARCHITECTURE, RUNTIME, Packaged, assert_cfn_lint_clean, expand_sam

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def expanded(packaged: Packaged) -> dict[str, Any]:
    return expand_sam(packaged.template)


def test_the_expansion_has_no_sam_resources_left(expanded: dict[str, Any]) -> None:
    kinds = Counter(r["Type"] for r in expanded["Resources"].values())
    assert not [k for k in kinds if k.startswith("AWS::Serverless::")]
    assert "Transform" not in expanded
    assert kinds["AWS::Lambda::Function"] == 4
    assert kinds["AWS::Lambda::EventInvokeConfig"] == 2
    assert kinds["AWS::Events::Rule"] == 3  # the IAM event rule, the sweep's schedule, the organization bus's rule
    assert kinds["AWS::ApiGateway::RestApi"] == kinds["AWS::ApiGateway::Stage"] == 1
    assert kinds["AWS::Lambda::Permission"] >= 3


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_generated_function_is_what_the_template_says(expanded: dict[str, Any], function: str) -> None:
    resource = expanded["Resources"][function]
    assert resource["Type"] == "AWS::Lambda::Function"
    assert resource["Properties"]["Runtime"] == RUNTIME
    assert resource["Properties"]["Architectures"] == [ARCHITECTURE]
    assert "OwnRolesDeny" in resource["DependsOn"]


def test_the_rule_is_the_one_the_alarms_and_the_queue_policy_name(expanded: dict[str, Any]) -> None:
    rule = expanded["Resources"][RULE]
    assert rule["Type"] == "AWS::Events::Rule"
    (target,) = rule["Properties"]["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FailedEvents", "Arn"]}}
    permission = expanded["Resources"][f"{RULE}Permission"]["Properties"]
    assert permission["SourceArn"] == {"Fn::GetAtt": [RULE, "Arn"]}


def test_async_functions_keep_their_failures(expanded: dict[str, Any]) -> None:
    configs = [r for r in expanded["Resources"].values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert sorted(c["Properties"]["FunctionName"]["Ref"] for c in configs) == sorted(ASYNC_FUNCTIONS)
    for config in configs:
        destination = config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        assert destination == {"Fn::GetAtt": ["FailedEvents", "Arn"]}


def test_cfn_lint_finds_no_errors_in_the_expansion(expanded: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "expanded.json"
    path.write_text(json.dumps(expanded, indent=1), encoding="utf-8")
    assert_cfn_lint_clean(path)
