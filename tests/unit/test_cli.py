"""`deputy-guard check` and the CLI's parser and dispatch."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from deputy_guard import cli
from tests.documents import ACCOUNT, COMPLIANT, VULNERABLE

REPO = Path(__file__).resolve().parents[2]
PROTECTED = COMPLIANT
EVENTS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def write(tmp_path: Path, document: Any, name: str = "trust.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2), encoding="utf-8")
    return str(path)


def get_role(document: Any, arn: str, path: str = "/") -> dict[str, Any]:
    name = arn.rsplit("/", 1)[1]
    return {"Role": {"Path": path, "RoleName": name, "Arn": arn, "AssumeRolePolicyDocument": document}}


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("deputy-guard: error: ")
    return lines[0]


# --- check: verdicts and exit status --------------------------------------------------------------


def test_check_json_reports_a_vulnerable_policy_with_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a vulnerable trust policy in a file
    path = write(tmp_path, VULNERABLE)
    # When checked as JSON
    status = cli.main(["check", "--account", ACCOUNT, "--format", "json", path])
    # Then it exits 1 and prints the contract's JSON with the fix
    out = json.loads(capsys.readouterr().out)
    assert status == 1
    assert list(out) == ["verdict", "problems", "fixed_policy"]
    assert out["verdict"] == "non_compliant"
    assert [(p["code"], p["statement"]) for p in out["problems"]] == [
        ("missing_source_account", 0),
        ("missing_source_arn", 0),
    ]
    assert out["fixed_policy"]["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:states:*:{ACCOUNT}:*"},
    }


@pytest.mark.parametrize(
    ("document", "verdict", "status"),
    [
        (PROTECTED, "compliant", 0),
        (EVENTS_ONLY, "not_applicable", 0),
        ({**VULNERABLE, "Statement": [{**VULNERABLE["Statement"][0], "Principal": "*"}]}, "needs_review", 1),
    ],
)
def test_check_exit_status_follows_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any, verdict: str, status: int
) -> None:
    path = write(tmp_path, document)
    assert cli.main(["check", "--account", ACCOUNT, "--format", "json", path]) == status
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == verdict
    assert out["fixed_policy"] is None


def test_check_text_shows_verdict_problems_and_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a vulnerable policy
    path = write(tmp_path, VULNERABLE)
    # When checked in the default text format
    status = cli.main(["check", "--account", ACCOUNT, path])
    # Then people see the verdict, one line per problem, and the proposed change as a unified diff
    out = capsys.readouterr().out
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == "verdict: non_compliant"
    assert lines[1].startswith("  [statement 0] missing_source_account: ")
    assert lines[2].startswith("  [statement 0] missing_source_arn: ")
    assert "proposed fix:\n--- current\n+++ fixed\n@@ " in out
    assert f'+          "aws:SourceAccount": "{ACCOUNT}"' in out


def test_check_text_for_a_compliant_policy_has_no_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--account", ACCOUNT, write(tmp_path, PROTECTED)]) == 0
    assert capsys.readouterr().out == "verdict: compliant\n"


def test_check_reads_stdin_by_default(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(PROTECTED)))
    assert cli.main(["check", "--account", ACCOUNT, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "compliant"


def test_check_reads_url_encoded_stdin_given_as_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(quote(json.dumps(VULNERABLE), safe="")))
    assert cli.main(["check", "--account", ACCOUNT, "--format", "json", "-"]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "non_compliant"


def test_check_accepts_a_file_with_a_byte_order_mark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "\ufeff" + json.dumps(PROTECTED))
    assert cli.main(["check", "--account", ACCOUNT, path]) == 0


def test_check_size_quota_refuses_a_fix_that_would_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, VULNERABLE)
    assert cli.main(["check", "--account", ACCOUNT, "--size-quota", "100", "--format", "json", path]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "needs_review"
    assert "too_large" in [p["code"] for p in out["problems"]]


def test_check_require_either_accepts_one_pin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a statement that pins aws:SourceAccount only
    statement = {**VULNERABLE["Statement"][0], "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}
    path = write(tmp_path, {**VULNERABLE, "Statement": [statement]})
    # Then it passes under --require either, and fails under the default, both
    assert cli.main(["check", "--account", ACCOUNT, "--require", "either", path]) == 0
    assert cli.main(["check", "--account", ACCOUNT, path]) == 1


# --- check: the role's context --------------------------------------------------------------------


def test_check_takes_account_and_partition_from_a_get_role_response(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given `aws iam get-role` output for a China-partition role, without --account
    path = write(tmp_path, get_role(VULNERABLE, f"arn:aws-cn:iam::{ACCOUNT}:role/workflows/Orders"))
    # When checked
    assert cli.main(["check", "--format", "json", path]) == 1
    # Then the fix uses the ARN's account and partition
    fixed = json.loads(capsys.readouterr().out)["fixed_policy"]
    assert fixed["Statement"][0]["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws-cn:states:*:{ACCOUNT}:*"}


def test_check_reads_a_url_encoded_document_inside_a_get_role_response(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, get_role(quote(json.dumps(PROTECTED), safe=""), f"arn:aws:iam::{ACCOUNT}:role/Orders"))
    assert cli.main(["check", path]) == 0


def test_check_treats_a_service_linked_get_role_response_as_not_applicable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/states.amazonaws.com/AWSServiceRoleForStepFunctions"
    path = write(tmp_path, get_role(VULNERABLE, arn, path="/aws-service-role/states.amazonaws.com/"))
    assert cli.main(["check", path]) == 0
    assert capsys.readouterr().out == "verdict: not_applicable\n"


def test_check_refuses_flags_that_contradict_the_get_role_response(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a policy pinned to ACCOUNT, in the GetRole response of a role in another account
    path = write(tmp_path, get_role(PROTECTED, "arn:aws:iam::444455556666:role/Orders"))
    # Then, judged as the role it is, the pin names a foreign account
    assert cli.main(["check", "--format", "json", path]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "needs_review"
    # And an --account claiming otherwise is refused rather than allowed to make the foreign pin look own
    assert cli.main(["check", "--account", ACCOUNT, path]) == 2
    assert "contradicts the role ARN" in one_error_line(capsys.readouterr().err)
    assert cli.main(["check", "--partition", "aws-cn", path]) == 2
    capsys.readouterr()
    assert cli.main(["check", "--account", "444455556666", path]) == 1  # agreeing flags are fine


def test_check_never_guesses_the_account_from_the_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a policy that names one account, and no --account
    path = write(tmp_path, PROTECTED)
    # When checked
    status = cli.main(["check", path])
    # Then it refuses, on one line, and says how to give the account
    assert status == 2
    captured = capsys.readouterr()
    assert "--account" in one_error_line(captured.err)
    assert captured.out == ""


def test_check_rejects_a_get_role_response_without_a_role_arn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"Role": {"RoleName": "x", "Arn": "arn:aws:iam::1:user/x", "AssumeRolePolicyDocument": {}}})
    assert cli.main(["check", path]) == 2
    assert "not an IAM role ARN" in one_error_line(capsys.readouterr().err)


# --- check: bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"Version": ', "not JSON"),
        ("", "empty: no trust policy"),  # an empty file is empty, not bad JSON
        ("[]", "must be a JSON object"),
        ('{"Version": "2012-10-17"}', "the policy has no Statement"),
        ('{"Statement": [{"Effect": "Allow", "Action": 1}]}', "statement 0: Action must be"),
        ('{"Statement": [{"Effect": "Allow"}, {"Effect": "Allow", "Principal": "states"}]}', "statement 1: Principal"),
    ],
)
def test_check_rejects_what_is_not_a_policy_with_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    status = cli.main(["check", "--account", ACCOUNT, write(tmp_path, content)])
    captured = capsys.readouterr()
    assert status == 2
    assert message in one_error_line(captured.err)
    assert captured.out == ""


@pytest.mark.parametrize(
    "flags",
    [
        ["--account", "1234"],
        ["--account", "11112222333a"],
        ["--partition", "azure"],
        ["--size-quota", "0"],
        ["--size-quota", "big"],
        ["--require", "all"],
        ["--format", "yaml"],
        ["--path", "no-slashes"],
        ["--no-such-flag"],
    ],
)
def test_check_rejects_bad_flags_with_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    path = write(tmp_path, PROTECTED)
    assert cli.main(["check", "--account", ACCOUNT, *flags, path]) == 2
    one_error_line(capsys.readouterr().err)


def test_check_reports_an_unreadable_file_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--account", ACCOUNT, str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in one_error_line(capsys.readouterr().err)
    assert cli.main(["check", "--account", ACCOUNT, str(tmp_path)]) == 2
    assert "cannot read" in one_error_line(capsys.readouterr().err)


def test_check_reports_a_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"Sid": "caf\xe9"}'.encode("latin-1"))
    assert cli.main(["check", "--account", ACCOUNT, str(path)]) == 2
    assert "not UTF-8" in one_error_line(capsys.readouterr().err)


def test_a_missing_subcommand_shows_the_usage_and_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    # Given no arguments at all / Then the usage line and every command, on stderr, and exit 2
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: deputy-guard ")
    assert all(name in captured.err for name in ("check", "scan", "revert", "setup", "demo", "api", "completion"))


def test_check_help_explains_where_the_account_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: deputy-guard check" in out
    assert "never guessed from the policy" in out


# --- parser and dispatch for the other subcommands ------------------------------------------------


def test_the_parser_knows_every_subcommand_and_its_flags() -> None:
    parser = cli.build_parser()
    scan = parser.parse_args(
        ["scan", "--fix", "--role", "A", "--role", "B", "--path-prefix", "/x/", "--format", "json"]
    )
    assert (scan.command, scan.fix, scan.role, scan.path_prefix, scan.format) == (
        "scan",
        True,
        ["A", "B"],
        "/x/",
        "json",
    )
    defaults = parser.parse_args(["scan"])
    assert (defaults.fix, defaults.role, defaults.path_prefix, defaults.format) == (False, None, None, "table")
    revert = parser.parse_args(["revert", "Orders", "--force"])
    assert (revert.command, revert.role, revert.force) == ("revert", "Orders", True)
    demo = parser.parse_args(["demo", "--mode", "notify", "--keep-running", "--json"])
    assert (demo.mode, demo.keep_running, demo.json) == ("notify", True, True)
    assert parser.parse_args(["setup"]).command == "setup"
    remediate = parser.parse_args(["remediate", "Orders", "--dry-run", "--account", "111122223333"])
    assert (remediate.command, remediate.dry_run, remediate.account) == ("remediate", True, "111122223333")
    exempt = parser.parse_args(["exempt", "Orders", "--days", "7", "--reason", "migrating", "--member-role", "m"])
    assert (exempt.command, exempt.days, exempt.reason, exempt.member_role) == ("exempt", 7, "migrating", "m")
    assert set(cli.HANDLERS) == {
        "check",
        "scan",
        "revert",
        "remediate",
        "exempt",
        "setup",
        "demo",
        "api",
        "completion",
        "services",
    }


@pytest.mark.parametrize(
    ("argv", "module", "handler"),
    [
        (["scan", "--role", "A"], "commands", "run_scan"),
        (["revert", "A"], "actions", "run_revert"),
        (["remediate", "A"], "actions", "run_remediate"),
        (["exempt", "A", "--reason", "r"], "actions", "run_exempt"),
        (["setup"], "commands", "run_setup"),
        (["demo"], "commands", "run_demo"),
    ],
)
def test_aws_subcommands_are_dispatched_to_chalicelib_commands(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], module: str, handler: str
) -> None:
    # Given a stand-in for the command module's handler
    import importlib

    commands = importlib.import_module(f"deputy_guard.{module}")
    seen: list[argparse.Namespace] = []

    def fake(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    monkeypatch.setattr(commands, handler, fake)
    # When the subcommand runs
    # Then main hands it the parsed arguments and returns its status
    assert cli.main(argv) == 7
    assert seen[0].command == argv[0]


# --- real processes -------------------------------------------------------------------------------


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deputy_guard.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_a_real_process_checks_a_file_and_prints_json(tmp_path: Path) -> None:
    result = run_cli("check", "--account", ACCOUNT, "--format", "json", write(tmp_path, VULNERABLE))
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["verdict"] == "non_compliant"
    assert result.stderr == ""


def test_a_real_process_reports_bad_json_on_one_line_without_a_traceback() -> None:
    result = run_cli("check", "--account", ACCOUNT, stdin="{not json")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    one_error_line(result.stderr)
    assert result.stdout == ""


def test_the_installed_console_script_runs_check(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "deputy-guard"
    if not script.exists():
        pytest.skip("the deputy-guard console script is not installed in this environment")
    result = subprocess.run(
        [str(script), "check", "--account", ACCOUNT, write(tmp_path, PROTECTED)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "verdict: compliant\n"), result.stderr


def test_importing_the_cli_does_not_import_boto3() -> None:
    code = "import sys, deputy_guard.cli; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )
    assert result.stdout.strip() == "False False", result.stderr


# --- check: hostile inputs end in an answer or one line, never a traceback ------------------------

SURROGATE_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},'
    ' "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "ops\\ud800"}}}]}'
)
SURROGATE_TEMPLATE = (
    '{"Resources": {"Workflow\\udc80Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument":'
    ' {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},'
    ' "Action": "sts:AssumeRole"}]}}}}}'
)


@pytest.mark.parametrize("output", ["text", "json"])
def test_check_answers_a_policy_holding_a_lone_surrogate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str
) -> None:
    # Given a policy whose JSON holds a lone surrogate escape
    path = write(tmp_path, SURROGATE_POLICY)
    # When checked
    status = cli.main(["check", "--account", ACCOUNT, "--format", output, path])
    # Then it needs review as a document IAM would not take, and the output can be encoded
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert "invalid_document" in captured.out
    captured.out.encode("utf-8")


@pytest.mark.parametrize("output", ["text", "json"])
def test_check_writes_a_lone_surrogate_from_a_template_as_an_escape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str
) -> None:
    # Given a template whose resource name holds a lone surrogate (the name is printed, not judged)
    path = write(tmp_path, SURROGATE_TEMPLATE, "template.json")
    # When checked
    status = cli.main(["check", "--account", ACCOUNT, "--format", output, path])
    # Then the report is written with the surrogate escaped; as JSON it reads back to the same name
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert "Workflow\\udc80Role" in captured.out
    if output == "json":
        assert json.loads(captured.out)["results"][0]["resource"] == "Workflow\udc80Role"


def test_check_reports_output_it_cannot_encode_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # SARIF fingerprints hash the resource name as UTF-8, which a lone surrogate cannot be: whatever the
    # SARIF writer does with it, the answer is a report or one line with exit 2, not a traceback
    status = cli.main(["check", "--account", ACCOUNT, "--format", "sarif", write(tmp_path, SURROGATE_TEMPLATE)])
    captured = capsys.readouterr()
    assert status in (1, 2)
    if status == 2:
        assert "cannot be encoded" in one_error_line(captured.err)
    else:
        assert json.loads(captured.out)["version"] == "2.1.0"


@pytest.mark.parametrize("depth", [500, 100_000])
def test_check_refuses_deeply_nested_input_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], depth: int
) -> None:
    nested = '{"Version": "2012-10-17", "Statement": [], "X": ' + "[" * depth + "]" * depth + "}"
    assert cli.main(["check", "--account", ACCOUNT, write(tmp_path, nested)]) == 2
    assert "nested too deeply" in one_error_line(capsys.readouterr().err)


def test_check_answers_a_hundred_thousand_actions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    statement = {**VULNERABLE["Statement"][0], "Action": ["sts:TagSession"] * 100_000 + ["sts:AssumeRole"]}
    path = write(tmp_path, {**VULNERABLE, "Statement": [statement]})
    assert cli.main(["check", "--account", ACCOUNT, "--format", "json", path]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "needs_review"  # the fix is over the quota


def test_check_sends_duplicate_keys_for_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(PROTECTED).replace('"Effect": "Allow"', '"Effect": "Deny", "Effect": "Allow"', 1)
    assert cli.main(["check", "--account", ACCOUNT, "--format", "json", write(tmp_path, text)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["verdict"], [p["code"] for p in out["problems"]], out["fixed_policy"]) == (
        "needs_review",
        ["duplicate_keys"],
        None,
    )


def test_a_real_process_answers_hostile_input_without_a_traceback() -> None:
    for stdin, status in ((SURROGATE_POLICY, 1), (SURROGATE_TEMPLATE, 1), ("[" * 100_000 + "]" * 100_000, 2)):
        result = run_cli("check", "--account", ACCOUNT, stdin=stdin)
        assert result.returncode == status, result.stderr
        assert "Traceback" not in result.stderr
