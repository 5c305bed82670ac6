"""The CLI's basics (issue 18): --version, completion, settings shared with the bot, one-line AWS errors,
the demo without its extra, the demo's export line, and make recipes that keep stdout clean."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as boto

from chalicelib.adapters.errors import AwsError, Unavailable
from deputy_guard import cli
from deputy_guard.aws_cli import apply_aws_options, describe_aws_failure
from deputy_guard.demo_shell import Arrivals, export_line
from tests.documents import ACCOUNT, VULNERABLE

REPO = Path(__file__).resolve().parents[2]
SOURCE_ACCOUNT_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ],
}


def run_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], *flags: str) -> Any:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(document))
    status = cli.main(["check", "--account", ACCOUNT, "--format", "json", *flags, str(path)])
    out = capsys.readouterr().out
    return status, json.loads(out) if out else None


# --- --version and bare usage ---------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("deputy-guard 0.")


# --- check reads the bot's settings, its flags winning --------------------------------------------


def test_check_reads_deputy_guard_require_like_the_bot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a policy pinning aws:SourceAccount only
    assert run_check(tmp_path, capsys, SOURCE_ACCOUNT_ONLY)[1]["verdict"] == "non_compliant"
    # When the bot's variable says either pin is enough / Then check agrees
    monkeypatch.setenv("DEPUTY_GUARD_REQUIRE", "either")
    status, out = run_check(tmp_path, capsys, SOURCE_ACCOUNT_ONLY)
    assert (status, out["verdict"]) == (0, "compliant")
    # And the flag wins over the variable
    status, out = run_check(tmp_path, capsys, SOURCE_ACCOUNT_ONLY, "--require", "both")
    assert (status, out["verdict"]) == (1, "non_compliant")


def test_check_fixes_with_the_bots_source_arn_and_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPUTY_GUARD_SOURCE_ARN", "arn:{partition}:states:eu-west-1:{account}:stateMachine:*")
    _status, out = run_check(tmp_path, capsys, VULNERABLE)
    arn = out["fixed_policy"]["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"]
    assert arn == f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:*"
    monkeypatch.setenv("DEPUTY_GUARD_SIZE_QUOTA", "256")
    assert run_check(tmp_path, capsys, VULNERABLE)[1]["verdict"] == "needs_review"  # the fix is over 256
    assert run_check(tmp_path, capsys, VULNERABLE, "--size-quota", "2048")[1]["verdict"] == "non_compliant"


def test_a_bad_shared_setting_is_one_line_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPUTY_GUARD_REQUIRE", "sometimes")
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(VULNERABLE))
    assert cli.main(["check", "--account", ACCOUNT, str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "DEPUTY_GUARD_REQUIRE" in captured.err
    # as for the bot, a bad value fails fast, even beside the flag that would win
    assert cli.main(["check", "--account", ACCOUNT, "--require", "both", str(path)]) == 2


# --- --profile and --region -----------------------------------------------------------------------


def test_profile_and_region_win_over_the_environment() -> None:
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t", "AWS_REGION": "us-east-1"}
    apply_aws_options(argparse.Namespace(profile="ops", region="eu-west-1"), env)
    assert env == {"AWS_PROFILE": "ops", "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--profile", "p", "--region", "r", "scan"],
        ["scan", "--profile", "p", "--region", "r"],
        ["--profile", "p", "revert", "x", "--region", "r"],
        ["setup", "--profile", "p", "--region", "r"],
        ["api", "--profile", "p", "--region", "r", "role", "x"],
    ],
)
def test_profile_and_region_parse_before_and_after_the_command(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.profile, args.region) == ("p", "r")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (boto.ProfileNotFound(profile="ops"), "AWS profile 'ops' not found"),
        (boto.NoCredentialsError(), "no AWS credentials found"),
        (boto.NoRegionError(), "no AWS region"),
        (boto.EndpointConnectionError(endpoint_url="https://iam.amazonaws.com"), "cannot reach https://iam"),
        (boto.TokenRetrievalError(provider="sso", error_msg="expired"), "aws sso login"),
        (
            boto.ClientError({"Error": {"Code": "ExpiredToken", "Message": "expired"}}, "GetCallerIdentity"),
            "AWS rejected the credentials (ExpiredToken)",
        ),
        (AwsError("ListRoles", "AccessDenied", "no"), "AWS call failed: ListRoles: AccessDenied: no"),
    ],
)
def test_aws_failures_are_one_clear_line(error: Exception, expected: str) -> None:
    assert expected in (describe_aws_failure(error) or "")


def test_a_gateway_error_is_described_by_its_botocore_cause() -> None:
    try:
        try:
            raise boto.NoCredentialsError()
        except boto.NoCredentialsError as cause:
            raise Unavailable("ListRoles", "NoCredentialsError", str(cause)) from cause
    except AwsError as exc:
        assert (describe_aws_failure(exc) or "").startswith("no AWS credentials found")


def test_anything_else_is_not_swallowed() -> None:
    assert describe_aws_failure(ValueError("a bug")) is None


# --- completion -----------------------------------------------------------------------------------


def complete(script: str, *words: str) -> list[str]:
    program = (
        f"{script}\nCOMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_deputy_guard; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_options_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o default -F _deputy_guard deputy-guard" in script
    assert "api" in complete(script, "deputy-guard", "a")
    assert complete(script, "deputy-guard", "scan", "--fo") == ["--format"]
    assert complete(script, "deputy-guard", "scan", "--format", "") == [
        "table",
        "json",
        "csv",
        "sarif",
        "asff",
        "html",
        "text",
    ]
    assert complete(script, "deputy-guard", "api", "rem") == ["remediate"]
    assert set(complete(script, "deputy-guard", "--region", "r", "revert", "--")) >= {"--force", "--profile"}


def test_zsh_completion_loads_the_bash_function_through_bashcompinit(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert "bashcompinit" in script and "complete -o default -F _deputy_guard deputy-guard" in script
    if shutil.which("zsh"):
        subprocess.run(["zsh", "-c", script], check=True, timeout=30, capture_output=True)


# --- the demo -------------------------------------------------------------------------------------


def test_the_demo_without_its_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    # Given an install where moto cannot be imported (as after `pip install .`)
    (tmp_path / "moto").mkdir()
    (tmp_path / "moto" / "__init__.py").write_text('raise ImportError("No module named moto")\n')
    result = subprocess.run(
        [sys.executable, "-m", "deputy_guard.cli", "demo"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
    )
    # Then one line says what to install, and exit 2
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "pip install 'deputy-guard[demo]'" in result.stderr


def test_the_keep_running_export_line_carries_the_notification_channels() -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DEPUTY_GUARD_TABLE": "deputy-guard-demo",
        "DEPUTY_GUARD_EXEMPTIONS": '[{"name": "legacy-*", "reason": "retired at the end of the quarter"}]',
        "DEPUTY_GUARD_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:deputy-guard-demo",
        "DEPUTY_GUARD_SLACK_WEBHOOK_URL": "http://127.0.0.1:5001/services/T0/B0/x",
        "DEPUTY_GUARD_MODE": "enforce",
        "HOME": "/root",
    }
    line = export_line(environ, "http://127.0.0.1:5002")
    assert line.startswith("unset AWS_PROFILE; export ")
    # a shell reading the line gets exactly these values back (the JSON exemptions quoted)
    exported = dict(word.split("=", 1) for word in shlex.split(line.split("export ", 1)[1]))
    assert exported["DEPUTY_GUARD_SNS_TOPIC_ARN"] == environ["DEPUTY_GUARD_SNS_TOPIC_ARN"]
    assert exported["DEPUTY_GUARD_SLACK_WEBHOOK_URL"] == environ["DEPUTY_GUARD_SLACK_WEBHOOK_URL"]
    assert exported["DEPUTY_GUARD_EXEMPTIONS"] == environ["DEPUTY_GUARD_EXEMPTIONS"]
    assert exported["DEPUTY_GUARD_API_URL"] == "http://127.0.0.1:5002"
    assert "HOME" not in exported and "DEPUTY_GUARD_MODE" not in exported


def test_messages_arriving_while_the_demo_runs_are_shown() -> None:
    slack: list[dict[str, Any]] = [{"text": "old"}]
    sns = [[{"subject": "deputy-guard: fixed x", "attributes": {"action": "fixed"}}], []]
    shown: list[str] = []
    arrivals = Arrivals(slack, lambda: sns.pop(0) if sns else [], shown.append)
    slack.append({"text": "fixed orders-sfn\nmore"})
    arrivals.check()
    arrivals.check()
    assert shown == ["  Slack: fixed orders-sfn", "  SNS: deputy-guard: fixed x  [action=fixed]"]


# --- make -----------------------------------------------------------------------------------------

MAKE = shutil.which("make")
DEMO_STAMP = ".venv/.deputy-guard-demo-installed"


def _make_plan(target: str) -> str:
    """What ``make TARGET`` would run (-n) as if pyproject.toml had changed (-W), so the install step shows."""
    return subprocess.run(
        [str(MAKE), "-n", "-W", "pyproject.toml", target],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    ).stdout


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_demo_installs_only_the_demo_extra() -> None:
    plan = _make_plan("demo")
    assert "-e '.[demo]'" in plan and ".[dev]" not in plan
    test_plan = _make_plan("lint")
    assert "-e '.[dev]'" in test_plan


@pytest.mark.slow
@pytest.mark.skipif(MAKE is None, reason="make is not installed")
@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "deputy-guard").exists(), reason="no .venv to run the demo from")
def test_make_demo_json_is_only_json_on_stdout() -> None:
    # Given the environment already installed (-o: do not reinstall) / When `make demo ARGS=--json` runs
    # (a user's environment: nothing of this test run's fake AWS settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_", "MOTO_"))}
    env = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    # and make run from a shell, not inside `make test` (a nested make announces its directory on stdout)
    env = {k: v for k, v in env.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        [str(MAKE), "-o", DEMO_STAMP, "-o", ".venv/bin/python", "demo", "ARGS=--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=170,
        check=False,
        env=env,
    )
    # Then stdout is the demo's JSON and nothing else (what `| python3 -m json.tool` needs)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["mode"] == "enforce"
