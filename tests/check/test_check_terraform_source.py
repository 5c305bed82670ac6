"""`deputy-guard check` on Terraform sources (`.tf`), with no plan: the CLI as a process.

The fixture `tests/fixtures/iac/terraform-src` is a root module (the registry's `aws_iam_role` and
`aws_iam_policy_document` shapes) calling a local module shaped like terraform-aws-modules' step-functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deputy_guard.checking import CheckOptions, check_paths
from tests.check.conftest import FOREIGN, IAC, OWN, run_cli
from tests.documents import VULNERABLE

SOURCE = IAC / "terraform-src"
MAIN = SOURCE / "main.tf"
MODULE = SOURCE / "modules" / "step-function" / "main.tf"


def _results(*args: str) -> dict[str, dict[str, Any]]:
    result = run_cli("check", "--format", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr == ""
    return {item["resource"]: item for item in json.loads(result.stdout)["results"]}


def _codes(item: dict[str, Any]) -> list[str]:
    return [problem["code"] for problem in item["problems"]]


def _line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_every_role_of_a_module_and_its_local_module_is_read_with_its_address_and_line() -> None:
    results = _results(str(SOURCE))
    assert list(results) == [
        "aws_iam_role.test_role",
        "aws_iam_role.orders",
        "aws_iam_role.batch",
        "aws_iam_role.reporting",
        "aws_iam_role.reconcile",
        "awscc_iam_role.audit",
        "aws_iam_role.lambda",
        "module.step_function.aws_iam_role.this[0]",
    ]
    # jsonencode: the line of the argument; a policy document: the line of its data block
    assert results["aws_iam_role.test_role"]["line"] == _line_of(MAIN, "assume_role_policy = jsonencode")
    assert results["aws_iam_role.orders"]["line"] == _line_of(MAIN, 'data "aws_iam_policy_document" "orders_trust"')
    module_role = results["module.step_function.aws_iam_role.this[0]"]
    assert module_role["path"] == str(MODULE)
    assert module_role["line"] == _line_of(MODULE, 'data "aws_iam_policy_document" "assume_role"')


def test_jsonencode_without_pins_is_non_compliant_and_the_fix_is_jsonencode() -> None:
    results = _results(str(SOURCE))
    assert results["aws_iam_role.test_role"]["verdict"] == "non_compliant"
    text = run_cli("check", str(MAIN)).stdout
    block = text.split("aws_iam_role.test_role: non_compliant", 1)[1].split("\n\n", 1)[0]
    assert "assume_role_policy = jsonencode({" in block
    assert '"aws:SourceAccount" = "${data.aws_caller_identity.current.account_id}"' in block
    assert 'Service = "${local.service_name}"' in block


def test_a_policy_document_pinned_through_locals_and_data_sources_is_compliant() -> None:
    assert _results(str(SOURCE))["aws_iam_role.orders"]["verdict"] == "compliant"


def test_source_and_override_documents_are_merged_by_sid_and_the_fix_is_hcl() -> None:
    batch = _results(str(SOURCE))["aws_iam_role.batch"]
    # The override's Step Functions statement replaced the one with its sid; the source's Lambda one stays.
    statements = batch["fixed_policy"]["Statement"]
    assert [statement["Sid"] for statement in statements] == ["Lambda", "StepFunctions"]
    assert statements[1]["Principal"] == {"Service": ["states.amazonaws.com"]}
    assert statements[1]["Action"] == ["sts:AssumeRole"]
    text = run_cli("check", str(MAIN)).stdout
    block = text.split("aws_iam_role.batch: non_compliant", 1)[1].split("\n\n", 1)[0]
    assert 'data "aws_iam_policy_document" "batch_trust" {' in block
    assert 'variable = "aws:SourceArn"' in block
    assert (
        "arn:${data.aws_partition.current.partition}:states:*:${data.aws_caller_identity.current.account_id}:*" in block
    )


def test_a_heredoc_with_a_literal_account_is_compared_with_the_account() -> None:
    assert _codes(_results(str(SOURCE))["aws_iam_role.reporting"]) == ["account_unknown", "account_unknown"]
    assert _results("--account", FOREIGN, str(SOURCE))["aws_iam_role.reporting"]["verdict"] == "compliant"
    assert _results("--account", OWN, str(SOURCE))["aws_iam_role.reporting"]["verdict"] == "needs_review"


def test_a_root_variable_pins_nothing_and_is_reported_unresolved() -> None:
    reconcile = _results(str(SOURCE))["aws_iam_role.reconcile"]
    assert reconcile["verdict"] == "needs_review"
    unresolved = [p["message"] for p in reconcile["problems"] if p["code"] == "unresolved_value"]
    assert len(unresolved) == 2 and all("var.partner_account" in message for message in unresolved)
    assert reconcile["fixed_policy"] is None


def test_awscc_iam_role_is_read() -> None:
    audit = _results(str(SOURCE))["awscc_iam_role.audit"]
    assert audit["verdict"] == "non_compliant"
    text = run_cli("check", str(MAIN)).stdout
    assert "assume_role_policy_document = jsonencode({" in text


def test_a_module_variable_takes_its_default_when_the_call_does_not_pass_it() -> None:
    # trusted_entities defaults to [], so the module's principal list is known: Step Functions only.
    role = _results(str(SOURCE))["module.step_function.aws_iam_role.this[0]"]
    assert role["verdict"] == "non_compliant"
    assert role["fixed_policy"]["Statement"][0]["Principal"] == {"Service": ["states.amazonaws.com"]}


def test_a_named_tf_file_reports_only_its_own_roles_and_a_module_dir_walked_alone_is_a_root(tmp_path: Path) -> None:
    assert list(_results(str(MODULE))) == ["aws_iam_role.this[0]"]
    assert "module.step_function.aws_iam_role.this[0]" in _results(str(MAIN))


def test_values_check_cannot_resolve_are_unresolved_never_guessed(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        """
module "remote" {
  source = "terraform-aws-modules/step-functions/aws"
}
resource "aws_iam_role" "from_function" {
  assume_role_policy = templatefile("trust.json.tpl", {})
}
resource "aws_iam_role" "from_remote" {
  assume_role_policy = module.remote.trust_json
}
data "aws_iam_policy_document" "dynamic" {
  dynamic "statement" {
    for_each = var.statements
    content {
      actions = ["sts:AssumeRole"]
    }
  }
}
resource "aws_iam_role" "from_dynamic" {
  assume_role_policy = data.aws_iam_policy_document.dynamic.json
}
resource "aws_iam_role" "conditional" {
  assume_role_policy = jsonencode({
    Statement = [{
      Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "states.amazonaws.com" }
      Condition = { StringEquals = { "aws:SourceAccount" = var.pin ? "111122223333" : "*" } }
    }]
  })
}
""",
        encoding="utf-8",
    )
    results = _results("--account", OWN, str(tmp_path))
    assert {name: item["verdict"] for name, item in results.items()} == {
        "aws_iam_role.from_function": "needs_review",
        "aws_iam_role.from_remote": "needs_review",
        "aws_iam_role.from_dynamic": "needs_review",
        "aws_iam_role.conditional": "needs_review",
    }
    assert 'a dynamic "statement" block' in results["aws_iam_role.from_dynamic"]["problems"][0]["message"]
    assert all("unresolved_value" in _codes(item) for item in results.values())
    assert "templatefile()" in results["aws_iam_role.from_function"]["problems"][0]["message"]
    assert "module.remote.trust_json" in results["aws_iam_role.from_remote"]["problems"][0]["message"]


def test_a_heredoc_interpolating_the_account_data_source_pins(tmp_path: Path) -> None:
    (tmp_path / "role.tf").write_text(
        """
data "aws_caller_identity" "current" {}
resource "aws_iam_role" "pinned" {
  assume_role_policy = <<EOF
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
  "Principal": {"Service": "states.amazonaws.com"},
  "Condition": {"StringEquals": {"aws:SourceAccount": "${data.aws_caller_identity.current.account_id}"},
                "ArnLike": {"aws:SourceArn": "arn:aws:states:*:${data.aws_caller_identity.current.account_id}:*"}}}]}
EOF
}
""",
        encoding="utf-8",
    )
    assert _results(str(tmp_path))["aws_iam_role.pinned"]["verdict"] == "compliant"


def test_a_tf_file_that_is_not_hcl_is_exit_2_after_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.tf").write_text(
        MAIN.read_text(encoding="utf-8").split('\nmodule "step_function"')[0], encoding="utf-8"
    )
    (tmp_path / "broken.tf").write_text('resource "aws_iam_role" "x" {\n  name = \n', encoding="utf-8")
    result = run_cli("check", "--format", "json", str(tmp_path))
    assert result.returncode == 2
    assert len(json.loads(result.stdout)["results"]) == 7
    assert result.stderr.strip().endswith(
        "broken.tf: not Terraform (HCL) that deputy-guard reads: a syntax error at line 1"
    )


def test_reading_a_tf_file_parses_each_file_once_in_one_process() -> None:
    # Bounded work instead of time: the module's files are parsed once however often they are referenced.
    report = check_paths([str(SOURCE)], CheckOptions())
    assert report.files == 3
    assert not report.failures


def test_a_directory_named_by_a_source_line_that_is_no_module_call_is_still_read(tmp_path: Path) -> None:
    # Given a root whose only "source" line is a provisioner's, naming a directory that holds a role
    (tmp_path / "main.tf").write_text(
        'resource "null_resource" "copy" {\n  provisioner "file" {\n    source = "./roles"\n  }\n}\n',
        encoding="utf-8",
    )
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles" / "role.tf").write_text(MODULE.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "roles" / "variables.tf").write_text(
        (MODULE.parent / "variables.tf").read_text(encoding="utf-8"), encoding="utf-8"
    )
    # When the tree is walked, Then the role is reported as a root module's
    assert list(_results(str(tmp_path))) == ["aws_iam_role.this[0]"]


def test_sarif_results_for_tf_sources_point_at_the_trust_policy_line() -> None:
    log = json.loads(run_cli("check", "--format", "sarif", str(SOURCE)).stdout)
    locations = {
        result["message"]["text"].split(" ", 2)[1]: result["locations"][0]["physicalLocation"]
        for result in log["runs"][0]["results"]
    }
    module_role = locations["module.step_function.aws_iam_role.this[0]"]
    assert module_role["artifactLocation"]["uri"] == "tests/fixtures/iac/terraform-src/modules/step-function/main.tf"
    assert module_role["region"] == {"startLine": _line_of(MODULE, 'data "aws_iam_policy_document" "assume_role"')}


def test_each_fix_pasted_back_into_its_module_is_compliant(tmp_path: Path) -> None:
    # Given every fix check proposes for the fixture, in the form the source wrote it
    report = check_paths([str(SOURCE)], CheckOptions())
    fixes = {result.resource: result.fixed_source for result in report.results if result.fixed_source}
    assert set(fixes) == {
        "aws_iam_role.test_role",
        "aws_iam_role.batch",
        "awscc_iam_role.audit",
        "module.step_function.aws_iam_role.this[0]",
    }
    for index, (address, fix) in enumerate(sorted(fixes.items())):
        # When each is pasted into a module of its own, beside the data sources it names
        module = tmp_path / f"module-{index}"
        module.mkdir()
        kind = address.split(".")[-2].split("[")[0]
        if fix.startswith("data "):
            name = fix.split('"')[3]
            role = (
                f'resource "{kind}" "fixed" {{\n  assume_role_policy = data.aws_iam_policy_document.{name}.json\n}}\n'
            )
        else:
            role = f'resource "{kind}" "fixed" {{\n{fix}}}\n'
        prelude = 'data "aws_caller_identity" "current" {}\ndata "aws_partition" "current" {}\n'
        locals_block = 'locals {\n  service_name = "states.amazonaws.com"\n}\n'
        (module / "main.tf").write_text(prelude + locals_block + (fix if fix.startswith("data ") else "") + role)
        # Then it is read back as compliant
        results = _results(str(module))
        assert [item["verdict"] for item in results.values()] == ["compliant"], (address, fix)


def test_file_reads_a_policy_inside_the_module_and_nothing_outside(tmp_path: Path) -> None:
    # Given a role whose trust policy is a JSON file of the module, and one that names a file outside it
    (tmp_path / "trust.json").write_text(json.dumps(VULNERABLE), encoding="utf-8")
    (tmp_path / "main.tf").write_text(
        """
resource "aws_iam_role" "from_file" {
  assume_role_policy = file("${path.module}/trust.json")
}
resource "aws_iam_role" "outside" {
  assume_role_policy = file("/etc/hostname")
}
""",
        encoding="utf-8",
    )
    # When the module is checked (the walk also judges trust.json itself, as a plain policy)
    results = _results("--account", OWN, str(tmp_path))
    # Then the file is judged as the policy, and the fix is shown as the file's JSON
    assert results["aws_iam_role.from_file"]["verdict"] == "non_compliant"
    text = run_cli("check", "--account", OWN, str(tmp_path / "main.tf")).stdout
    assert "# the JSON file that assume_role_policy reads with file():" in text
    # And the file outside the module is not read: the policy is unknown
    outside = results["aws_iam_role.outside"]
    assert outside["verdict"] == "needs_review"
    assert 'file("/etc/hostname"): outside the module, not read' in outside["problems"][0]["message"]
