"""Templates CloudFormation accepts: `Fn::ForEach` expanded, or the template reported unreadable (never a 0).

The fixture `tests/fixtures/iac/foreach/workflows.yaml` is shaped like the `Fn::ForEach` examples in AWS's
CloudFormation docs. Every test runs the CLI as a process (the pre-commit hook included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deputy_guard.iac import cfnyaml
from deputy_guard.iac.langext import MAX_EXPANDED, MAX_EXPANDED_VALUES, expand
from deputy_guard.iac.site import InputError
from tests.check.conftest import IAC, run_cli

WORKFLOWS = IAC / "foreach" / "workflows.yaml"
LOOP_OVER_PARAMETER = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::LanguageExtensions
Parameters:
  Workflows: {Type: CommaDelimitedList}
Resources:
  Fn::ForEach::Roles:
    - Name
    - !Ref Workflows
    - Role${Name}:
        Type: AWS::IAM::Role
        Properties:
          AssumeRolePolicyDocument:
            Statement: [{Effect: Allow, Principal: {Service: states.amazonaws.com}, Action: sts:AssumeRole}]
"""


def test_every_role_of_a_foreach_template_is_read_loops_and_plain_roles_alike() -> None:
    result = run_cli("check", "--format", "json", str(WORKFLOWS))
    assert result.returncode == 1, result.stderr
    verdicts = {item["resource"]: (item["verdict"], item["line"]) for item in json.loads(result.stdout)["results"]}
    assert verdicts == {
        "AuditRole": ("non_compliant", 12),
        "Roleorders": ("compliant", 21),
        "Rolepayouts": ("compliant", 21),
        "DeveastBatchRole": ("non_compliant", 42),
        "DevwestBatchRole": ("non_compliant", 42),
        "ProdeastBatchRole": ("non_compliant", 42),
        "ProdwestBatchRole": ("non_compliant", 42),
    }


def test_a_foreach_template_fails_the_directory_check_the_sarif_and_the_pre_commit_hook(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(WORKFLOWS.read_text(encoding="utf-8"), encoding="utf-8")
    assert run_cli("check", str(tmp_path)).returncode == 1
    sarif = run_cli("check", "--format", "sarif", str(tmp_path))
    assert {r["ruleId"] for r in json.loads(sarif.stdout)["runs"][0]["results"]} == {
        "missing_source_account",
        "missing_source_arn",
    }
    hook = run_cli("check", "--ignore-unknown", str(tmp_path / "workflows.yaml"))
    assert hook.returncode == 1, hook.stderr


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (LOOP_OVER_PARAMETER, "Fn::ForEach::Roles: its collection is known only at deploy time"),
        (
            'Transform: ["AWS::Include"]\nResources:\n  R: {Type: AWS::IAM::Role, Properties: {}}\n',
            "the transform AWS::Include rewrites the template",
        ),
        (
            "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      Fn::Transform: {Name: MyMacro}\n",
            "Fn::Transform runs a macro",
        ),
        (
            'AWSTemplateFormatVersion: "2010-09-09"\nResources:\n  Role:\n    Properties: {}\n',
            "looks like a CloudFormation template",
        ),
    ],
)
def test_a_template_check_cannot_expand_is_unreadable_exit_2_with_a_sarif_notification(
    tmp_path: Path, template: str, message: str
) -> None:
    (tmp_path / "stack.yaml").write_text(template, encoding="utf-8")
    result = run_cli("check", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    sarif = json.loads(run_cli("check", "--format", "sarif", str(tmp_path)).stdout)
    invocation = sarif["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert message in invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert run_cli("check", "--ignore-unknown", str(tmp_path / "stack.yaml")).returncode == 2


def test_length_and_to_json_string_are_evaluated_inside_loops() -> None:
    template = {
        "Transform": "AWS::LanguageExtensions",
        "Resources": {
            "Fn::ForEach::Topics": [
                "Name",
                ["a-b", "c"],
                {
                    "Topic&{Name}": {
                        "Type": "AWS::SNS::Topic",
                        "Properties": {
                            "TopicName": {"Fn::Sub": "${Name}-topic"},
                            "Size": {"Fn::Length": [1, 2, 3]},
                            "Json": {"Fn::ToJsonString": {"name": {"Ref": "Name"}}},
                        },
                    }
                },
            ]
        },
    }
    expanded, loops = expand(template)
    assert loops == {"Topicab": "Fn::ForEach::Topics", "Topicc": "Fn::ForEach::Topics"}
    properties = expanded["Resources"]["Topicab"]["Properties"]
    assert properties == {"TopicName": {"Fn::Sub": "a-b-topic"}, "Size": 3, "Json": '{"name":"a-b"}'}


def test_foreach_without_the_transform_is_refused() -> None:
    with pytest.raises(InputError, match="needs the AWS::LanguageExtensions transform"):
        expand({"Resources": {"Fn::ForEach::X": ["I", ["a"], {"R${I}": {"Type": "AWS::SNS::Topic"}}]}})


def _topics_loop(count: int, fragment: dict[str, Any] | None = None) -> dict[str, Any]:
    """A template with one loop of ``count`` topics, each ``fragment`` (a bare topic by default)."""
    topic = fragment or {"Type": "AWS::SNS::Topic"}
    items = [f"t{index}" for index in range(count)]
    return {
        "Transform": "AWS::LanguageExtensions",
        "Resources": {"Fn::ForEach::Topics": ["N", items, {"T${N}": topic}]},
    }


def test_a_loop_makes_up_to_the_documented_number_of_copies_and_no_more() -> None:
    expanded, loops = expand(_topics_loop(MAX_EXPANDED))
    assert len(expanded["Resources"]) == len(loops) == MAX_EXPANDED
    with pytest.raises(InputError, match=f"past {MAX_EXPANDED} copies"):
        expand(_topics_loop(MAX_EXPANDED + 1))


def test_a_small_loop_over_a_large_fragment_is_refused_in_one_line(tmp_path: Path) -> None:
    # 400 copies of a topic with 3,000 tags: a 200 KB file that would expand to millions of values.
    tags = [{"Key": f"k{index}", "Value": "v"} for index in range(3_000)]
    template = _topics_loop(400, {"Type": "AWS::SNS::Topic", "Properties": {"Tags": tags}})
    path = tmp_path / "topics.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    result = run_cli("check", str(path))
    assert result.returncode == 2, result.stdout
    assert result.stderr == f"deputy-guard: error: {path}: Fn::ForEach loops expand past 1,000,000 values; not read\n"
    assert MAX_EXPANDED_VALUES == 1_000_000


def test_a_role_made_by_a_loop_in_a_json_template_is_shown_at_the_loop(tmp_path: Path) -> None:
    # The YAML fixture written as JSON, as CDK or a generator would write it.
    text = json.dumps(cfnyaml.load(WORKFLOWS.read_text(encoding="utf-8")).data, indent=2)
    path = tmp_path / "workflows.json"
    path.write_text(text, encoding="utf-8")
    result = run_cli("check", "--format", "json", str(path))
    assert result.returncode == 1, result.stderr
    lines = {item["resource"]: item["line"] for item in json.loads(result.stdout)["results"]}
    loop = next(number for number, line in enumerate(text.splitlines(), 1) if '"Fn::ForEach::Stages"' in line)
    assert lines["DeveastBatchRole"] == lines["ProdwestBatchRole"] == loop
    assert lines["AuditRole"] < loop
