"""`deputy-guard check` on input a pull request can make hostile, or that is simply broken: one line, exit 2.

Every test runs the CLI as a process, as CI and pre-commit do. None measures time: a YAML bomb that were
expanded would not finish within the test's timeout, and reads are bounded by bytes.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from deputy_guard.iac import cfnyaml
from deputy_guard.iac.tfsource import MAX_MODULE_INSTANCES
from tests.check.conftest import OWN, run_cli
from tests.documents import VULNERABLE

ROLE_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  {logical_id}:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: 2012-10-17
        Statement:
          - Effect: Allow
            Principal: {{Service: states.amazonaws.com}}
            Action: sts:AssumeRole
"""


def _bomb(levels: int) -> str:
    """A "billion laughs": each level a list of nine aliases of the level before (9**levels leaves)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    lines.append('AWSTemplateFormatVersion: "2010-09-09"')
    leaf = f"*l{levels - 1}"
    lines.append(f"Resources: {{R: {{Type: AWS::IAM::Role, Properties: {{AssumeRolePolicyDocument: {leaf}}}}}}}")
    return "\n".join(lines) + "\n"


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("deputy-guard: error: ")
    return lines[0]


# --- broken input ---------------------------------------------------------------------------------


def test_an_empty_yaml_file_is_reported_as_empty_not_as_bad_json(tmp_path: Path) -> None:
    empty = tmp_path / "template.yaml"
    empty.write_text("", encoding="utf-8")
    line = _one_error_line(run_cli("check", str(empty)))
    assert "empty" in line and "JSON" not in line


def test_a_yaml_error_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "stack.yaml"
    broken.write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources: [\n", encoding="utf-8")
    line = _one_error_line(run_cli("check", str(broken)))
    assert f'"{broken}", line 3' in line
    assert "<unicode string>" not in line


def test_a_truncated_json_policy_in_a_walk_is_reported_after_the_others(tmp_path: Path) -> None:
    # Given a walked directory with a vulnerable policy and a policy cut off mid-file
    (tmp_path / "a-vulnerable.json").write_text(json.dumps(VULNERABLE), encoding="utf-8")
    (tmp_path / "b-truncated.json").write_text(json.dumps(VULNERABLE, indent=2)[:80], encoding="utf-8")
    # When the directory is checked
    result = run_cli("check", "--account", OWN, "--format", "json", str(tmp_path))
    # Then the vulnerable policy is reported and the truncated one is an error, exit 2
    report = json.loads(result.stdout)
    assert [item["verdict"] for item in report["results"]] == ["non_compliant"]
    assert [error["path"] for error in report["errors"]] == [str(tmp_path / "b-truncated.json")]
    assert "b-truncated.json: not JSON" in _one_error_line(result)


def test_a_walk_still_skips_json_that_is_no_policy_even_when_broken(tmp_path: Path) -> None:
    # A tsconfig.json with comments is not JSON, and not deputy-guard's business either.
    (tmp_path / "policy.json").write_text(json.dumps(VULNERABLE), encoding="utf-8")
    (tmp_path / "tsconfig.json").write_text('{\n  // comment\n  "compilerOptions": {}\n}\n', encoding="utf-8")
    result = run_cli("check", "--account", OWN, str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""


def test_an_empty_stdin_is_one_clear_line() -> None:
    line = _one_error_line(run_cli("check", "--account", OWN, stdin=""))
    assert line == "deputy-guard: error: <stdin>: empty: no trust policy, GetRole response, template or plan to check"


def test_check_without_a_path_on_a_terminal_stops_with_usage() -> None:
    # Given stdin is a terminal (a pseudo-terminal here) and no PATH
    controller, terminal = pty.openpty()
    try:
        result = run_cli("check", "--account", OWN, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    # Then it does not wait for a document: exit 2, one line with the usage
    line = _one_error_line(result)
    assert "stdin is a terminal" in line and "usage: deputy-guard check" in line


def test_check_without_a_path_reads_a_piped_stdin() -> None:
    result = run_cli("check", "--account", OWN, stdin=json.dumps(VULNERABLE))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("verdict: non_compliant")


# --- hostile input --------------------------------------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_in_one_line(tmp_path: Path) -> None:
    # Given a 9**9-leaf bomb of about a kilobyte (expanded, it would never finish)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb(9), encoding="utf-8")
    assert bomb.stat().st_size < 1200
    # When it is checked, Then it is refused without being expanded
    line = _one_error_line(run_cli("check", str(bomb)))
    assert "aliases expand the document past" in line


def test_the_alias_count_refuses_an_expansion_past_the_limit_and_keeps_ordinary_aliases() -> None:
    with pytest.raises(cfnyaml.YamlError, match="aliases expand"):
        cfnyaml.load(_bomb(4), "bomb.yaml", limit=1000)
    loaded = cfnyaml.load(_bomb(3), "small.yaml", limit=5000)
    assert len(loaded.data["l2"]) == 9 and loaded.data["l2"][0][0] == ["lol"] * 9


def test_a_symlink_to_dev_zero_in_a_walk_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "policy.json").write_text(json.dumps(VULNERABLE), encoding="utf-8")
    (tmp_path / "x.json").symlink_to("/dev/zero")
    result = run_cli("check", "--account", OWN, "--format", "json", str(tmp_path))
    assert [item["verdict"] for item in json.loads(result.stdout)["results"]] == ["non_compliant"]
    line = _one_error_line(result)
    assert line.endswith("x.json: a symbolic link out of the checked directory: not followed")


def test_sarif_names_a_refused_symlink_by_its_place_in_the_repository_not_its_target(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "x.json").symlink_to("/dev/zero")
    result = run_cli("check", "--format", "sarif", "infra", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (invocation,) = json.loads(result.stdout)["runs"][0]["invocations"]
    (notification,) = invocation["toolExecutionNotifications"]
    assert notification["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "infra/x.json"


def test_a_symlink_inside_the_tree_is_read(tmp_path: Path) -> None:
    (tmp_path / "policy.json").write_text(json.dumps(VULNERABLE), encoding="utf-8")
    (tmp_path / "alias.json").symlink_to(tmp_path / "policy.json")
    result = run_cli("check", "--account", OWN, str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert result.stdout.endswith("2 trust policies in 2 files: 2 non_compliant\n")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_a_walk_is_not_opened(tmp_path: Path) -> None:
    (tmp_path / "policy.json").write_text(json.dumps(VULNERABLE), encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.json")
    line = _one_error_line(run_cli("check", "--account", OWN, str(tmp_path)))
    assert line.endswith("pipe.json: not a regular file: not read")


def test_files_over_the_size_limit_are_refused_in_a_walk_and_by_name(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps(VULNERABLE, indent=2), encoding="utf-8")
    for target in (str(tmp_path), str(big)):
        line = _one_error_line(run_cli("check", "--account", OWN, "--max-file-size", "100", target))
        assert "larger than 100 bytes" in line and "--max-file-size" in line
    assert run_cli("check", "--account", OWN, "--max-file-size", "1k", str(big)).returncode == 1


def test_a_named_endless_file_is_read_only_up_to_the_limit() -> None:
    line = _one_error_line(run_cli("check", "--max-file-size", "64k", "/dev/zero"))
    assert "/dev/zero: larger than 65536 bytes" in line


def test_control_characters_in_file_names_and_logical_ids_are_escaped_in_text(tmp_path: Path) -> None:
    # Given a file name and a logical id that carry an escape sequence meant to clear the screen
    hidden = tmp_path / "ok\x1b[2J.yaml"
    hidden.write_text(ROLE_TEMPLATE.format(logical_id='"Role\\e[1A\\e[2K"'), encoding="utf-8")
    # When checked with the text output
    result = run_cli("check", "--account", OWN, str(tmp_path))
    # Then the finding is shown with the escapes visible, and no raw ESC reaches the terminal
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stdout
    assert "ok\\x1b[2J.yaml:6: Role\\x1b[1A\\x1b[2K: non_compliant" in result.stdout


_TF_ROLE = """
resource "aws_iam_role" "workflow" {
  assume_role_policy = jsonencode({
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "states.amazonaws.com" } }]
  })
}
"""


def _calls(*sources: str) -> str:
    return "".join(f'module "m{index}" {{\n  source = "{source}"\n}}\n' for index, source in enumerate(sources))


def test_a_module_that_calls_itself_is_one_line_not_an_endless_tree(tmp_path: Path) -> None:
    # Three calls of the module's own directory: each level would triple the work.
    (tmp_path / "main.tf").write_text(_calls("./", "./", "./") + _TF_ROLE, encoding="utf-8")
    result = run_cli("check", "--format", "json", str(tmp_path))
    line = _one_error_line(result)
    assert line.endswith("main.tf: module m0: source ./ calls a module that calls it (a cycle); not read")
    assert [item["resource"] for item in json.loads(result.stdout)["results"]] == ["aws_iam_role.workflow"]


def test_modules_calling_each_other_are_read_once_each(tmp_path: Path) -> None:
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "main.tf").write_text(_calls(f"../{other}") + _TF_ROLE, encoding="utf-8")
    (tmp_path / "main.tf").write_text(_calls("./a"), encoding="utf-8")
    result = run_cli("check", "--format", "json", str(tmp_path))
    assert result.returncode == 2
    assert [item["resource"] for item in json.loads(result.stdout)["results"]] == [
        "module.m0.module.m0.aws_iam_role.workflow",
        "module.m0.aws_iam_role.workflow",
    ]
    assert result.stderr.endswith("calls a module that calls it (a cycle); not read\n")


def test_a_chain_of_modules_each_calling_the_next_thrice_stops_at_the_instance_limit(tmp_path: Path) -> None:
    # 3^12 module instances if every call were followed: far past the limit, refused instead.
    for level in range(12):
        (tmp_path / f"m{level}").mkdir()
        below = f"../m{level + 1}"
        text = _calls(below, below, below) if level < 11 else _TF_ROLE
        (tmp_path / f"m{level}" / "main.tf").write_text(text, encoding="utf-8")
    (tmp_path / "main.tf").write_text(_calls("./m0"), encoding="utf-8")
    result = run_cli("check", "--format", "json", str(tmp_path))
    assert result.returncode == 2
    assert f"more than {MAX_MODULE_INSTANCES:,} module instances; not read" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(json.loads(result.stdout)["results"]) < MAX_MODULE_INSTANCES


def test_module_calls_deeper_than_the_limit_are_refused_not_dropped(tmp_path: Path) -> None:
    for level in range(20):
        (tmp_path / f"m{level}").mkdir()
        (tmp_path / f"m{level}" / "main.tf").write_text(_calls(f"../m{level + 1}"), encoding="utf-8")
    (tmp_path / "m20").mkdir()
    (tmp_path / "m20" / "main.tf").write_text(_TF_ROLE, encoding="utf-8")
    (tmp_path / "main.tf").write_text(_calls("./m0"), encoding="utf-8")
    line = _one_error_line(run_cli("check", str(tmp_path)))
    assert line.endswith("main.tf: module m0: more than 16 levels of module calls; not read")


@pytest.mark.parametrize(
    "text",
    [
        'resource "aws_iam_role" "r" {\n  assume_role_policy = jsonencode(' + "[" * 5_000 + "]" * 5_000 + ")\n}\n",
        'locals {\n  a0 = "states.amazonaws.com"\n'
        + "".join(f"  a{i + 1} = local.a{i}\n" for i in range(3_000))
        + "}\n"
        + _TF_ROLE.replace('"states.amazonaws.com"', "local.a3000").replace('"workflow"', '"r"'),
    ],
    ids=["nested-lists", "chain-of-locals"],
)
def test_a_terraform_value_nested_thousands_deep_is_one_line_not_a_traceback(tmp_path: Path, text: str) -> None:
    (tmp_path / "main.tf").write_text(text, encoding="utf-8")
    line = _one_error_line(run_cli("check", str(tmp_path)))
    assert line.endswith("main.tf: aws_iam_role.r: its trust policy is nested too deeply; not read")
