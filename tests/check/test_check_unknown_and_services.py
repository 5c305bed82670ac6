"""`check` on sources whose principal is known only at deploy time, and on services beyond Step Functions.

The Terraform shapes follow terraform-aws-modules' step-functions module (a literal service principal and a
``dynamic "principals"`` block for extra trusted entities) and the registry's ``aws_iam_policy_document`` docs;
the CloudFormation ones follow the ``AWS::IAM::Role`` reference. The CLI runs as a process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deputy_guard.checking import CheckOptions, check_paths
from tests.check.conftest import run_cli

_DYNAMIC_PRINCIPALS = """
variable "trusted_entities" {
  type    = list(string)
  default = []
}

data "aws_iam_policy_document" "assume_role" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    dynamic "principals" {
      for_each = length(var.trusted_entities) > 0 ? [true] : []
      content {
        type        = "AWS"
        identifiers = var.trusted_entities
      }
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "orders"
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
}
"""

_PARAMETER_PRINCIPAL = """
Parameters:
  TrustedPrincipal:
    Type: String
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: 2012-10-17
        Statement:
          - Effect: Allow
            Action: sts:AssumeRole
            Principal: !Ref TrustedPrincipal
"""


def _scheduler_role(more: str = "") -> str:
    """A Scheduler role from a policy document; ``more`` goes inside its statement."""
    return f"""
data "aws_iam_policy_document" "scheduler" {{
  statement {{
    actions = ["sts:AssumeRole"]
    principals {{
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }}
{more}  }}
}}

resource "aws_iam_role" "scheduler" {{
  name               = "scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler.json
}}
"""


_DYNAMIC_CONDITION = """    dynamic "condition" {
      for_each = var.conditions
      content {
        test     = condition.value.test
        variable = condition.value.variable
        values   = condition.value.values
      }
    }
"""

_FLOW_LOGS_TEMPLATE = """
Resources:
  FlowLogsRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: 2012-10-17
        Statement:
          - Effect: Allow
            Action: sts:AssumeRole
            Principal:
              Service: vpc-flow-logs.amazonaws.com
"""

# The reader's internal forms, which a report never shows.
_INTERNAL = ("Fn::Unresolved", "deputy-guard:unresolved", "<deploying-account>:*")


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _one(*args: str) -> dict[str, Any]:
    result = run_cli("check", "--format", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)
    rows = document.get("results", [document])
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


def _text(*args: str) -> str:
    result = run_cli("check", *args)
    assert result.returncode in (0, 1), result.stderr
    assert not any(internal in result.stdout for internal in _INTERNAL), result.stdout
    return result.stdout


def test_a_dynamic_principals_block_is_unresolved_not_an_invalid_document(tmp_path: Path) -> None:
    _write(tmp_path, "main.tf", _DYNAMIC_PRINCIPALS)
    row = _one(str(tmp_path))
    assert row["verdict"] == "needs_review"
    assert [problem["code"] for problem in row["problems"]] == ["unresolved_value"]
    assert 'a dynamic "principals" block' in row["problems"][0]["message"]
    _text(str(tmp_path))


def test_a_principal_from_a_template_parameter_is_unresolved_not_an_invalid_document(tmp_path: Path) -> None:
    template = _write(tmp_path, "template.yaml", _PARAMETER_PRINCIPAL)
    row = _one(str(template))
    assert row["verdict"] == "needs_review"
    assert [problem["code"] for problem in row["problems"]] == ["unresolved_value"]
    assert "TrustedPrincipal" in row["problems"][0]["message"]


def test_an_unknown_condition_of_a_selected_service_is_unresolved_and_never_shown_in_a_fix(tmp_path: Path) -> None:
    _write(tmp_path, "main.tf", _scheduler_role(_DYNAMIC_CONDITION))
    row = _one("--services", "all", str(tmp_path))
    assert row["verdict"] == "needs_review"
    assert "unresolved_value" in [problem["code"] for problem in row["problems"]]
    assert row["fixed_policy"] is None
    _text("--services", "all", str(tmp_path))


def test_the_fix_for_another_service_names_the_account_and_partition_the_source_way(tmp_path: Path) -> None:
    _write(tmp_path, "main.tf", _scheduler_role())
    text = _text("--services", "all", str(tmp_path))
    assert (
        'values   = ["arn:${data.aws_partition.current.partition}:scheduler:*:'
        '${data.aws_caller_identity.current.account_id}:*"]'
    ) in text
    template = _write(tmp_path, "flow-logs.yaml", _FLOW_LOGS_TEMPLATE)
    row = _one("--services", "all", str(template))
    condition = row["fixed_policy"]["Statement"][0]["Condition"]
    assert condition["ArnLike"]["aws:SourceArn"] == {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:*"}
    assert condition["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


_UNPINNED_JSON = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", '
    '"Principal": {"Service": "states.amazonaws.com"}}]}'
)


def _fix_of(directory: Path) -> str:
    rows = check_paths([str(directory / "main.tf")], CheckOptions()).results
    assert len(rows) == 1 and rows[0].fixed_source is not None
    return rows[0].fixed_source


def test_a_heredoc_fix_names_the_partition_and_account_by_their_data_sources(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "main.tf",
        f'resource "aws_iam_role" "r" {{\n  assume_role_policy = <<EOT\n{_UNPINNED_JSON}\nEOT\n}}\n',
    )
    fix = _fix_of(tmp_path)
    assert (
        '"arn:${data.aws_partition.current.partition}:states:*:${data.aws_caller_identity.current.account_id}:*"' in fix
    )
    # Pasted back beside the data sources it names, it reads as compliant
    prelude = 'data "aws_caller_identity" "current" {}\ndata "aws_partition" "current" {}\n'
    pasted = tmp_path / "pasted"
    pasted.mkdir()
    _write(pasted, "main.tf", prelude + f'resource "aws_iam_role" "r" {{\n{fix}}}\n')
    assert _one(str(pasted))["verdict"] == "compliant"


def test_a_file_fix_never_holds_an_interpolation_file_would_not_make(tmp_path: Path) -> None:
    _write(tmp_path, "trust.json", _UNPINNED_JSON)
    _write(tmp_path, "main.tf", 'resource "aws_iam_role" "r" {\n  assume_role_policy = file("trust.json")\n}\n')
    fix = _fix_of(tmp_path)
    assert "${" not in fix
    assert "write the deploying account's id for <deploying-account>" in fix
    # With the account written in, the file reads as compliant
    body = fix.split("\n", 1)[1].replace("<deploying-account>", "111122223333")
    _write(tmp_path, "trust.json", body)
    assert _one("--account", "111122223333", str(tmp_path / "main.tf"))["verdict"] == "compliant"
