"""The command line a security engineer expects (issue 18), against moto's server over HTTP.

One-line errors with exit 2 for profile and credential problems, a pre-flight for the audit table,
conflicting filters refused, one exit status for an unknown role, summaries of what happened, the
formats, --profile and --region, progress only on a terminal.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
from pathlib import Path

import botocore.session
import jsonschema
import pytest
from botocore.validate import ParamValidator

from tests.cli.conftest import run
from tests.e2e.conftest import CLI, cli_env, create_role, trust
from tests.world import COMPLIANT, FOREIGN, VULNERABLE

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = json.loads((REPO / "tests" / "fixtures" / "sarif" / "sarif-schema-2.1.0.json").read_text())


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("deputy-guard: error: ") and "Traceback" not in stderr
    return lines[0]


# --- 1. profiles and credentials ------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["scan"], ["revert", "some-role"], ["setup"], ["scan", "--fix"]])
def test_a_missing_profile_is_one_line_and_exit_2(endpoint: str, argv: list[str]) -> None:
    result = run(endpoint, *argv, AWS_PROFILE="nosuch")
    assert result.returncode == 2
    assert "'nosuch' not found" in one_line(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize("argv", [["--profile", "nosuch", "scan"], ["scan", "--profile", "nosuch"]])
def test_the_profile_flag_before_or_after_the_command(endpoint: str, argv: list[str]) -> None:
    result = run(endpoint, *argv)
    assert result.returncode == 2 and "'nosuch' not found" in one_line(result.stderr)


def test_no_credentials_at_all_is_one_line(endpoint: str, tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env(endpoint).items() if not k.startswith("AWS_ACCESS_KEY") and "SECRET" not in k}
    env.update(
        HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none")
    )
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    result = run(endpoint, "scan", env=env)
    assert result.returncode == 2
    assert "no AWS credentials found" in one_line(result.stderr)


def test_a_named_profile_and_region_are_used(endpoint: str, tmp_path: Path) -> None:
    # Given a profile holding the credentials and a region, and no keys in the environment
    (tmp_path / "credentials").write_text("[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    (tmp_path / "config").write_text("[profile ops]\nregion = eu-west-1\n")
    env = {k: v for k, v in cli_env(endpoint).items() if not k.startswith(("AWS_ACCESS_KEY", "AWS_SECRET"))}
    env.pop("AWS_DEFAULT_REGION")
    env.update(AWS_CONFIG_FILE=str(tmp_path / "config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    create_role("vulnerable-sfn", VULNERABLE)
    # When scanned with --profile (the profile's region), then with --region as well
    by_profile = run(endpoint, "scan", "--profile", "ops", "--format", "asff", env=env)
    by_flag = run(endpoint, "--profile", "ops", "--region", "ap-southeast-2", "scan", "--format", "asff", env=env)
    # Then the findings name the region each run used
    assert by_profile.returncode == 1, by_profile.stderr
    assert json.loads(by_profile.stdout)[0]["ProductArn"].startswith("arn:aws:securityhub:eu-west-1:")
    assert json.loads(by_flag.stdout)[0]["ProductArn"].startswith("arn:aws:securityhub:ap-southeast-2:")


# --- 2. the audit table's pre-flight --------------------------------------------------------------


def test_scan_fix_without_setup_is_one_line_naming_setup(endpoint: str) -> None:
    # Given roles to fix and no audit table
    for index in range(20):
        create_role(f"vulnerable-{index:02d}", VULNERABLE)
    # When fixing
    result = run(endpoint, "scan", "--fix")
    # Then one line names `deputy-guard setup` (before any role is tried), and nothing was changed
    assert result.returncode == 2
    assert "`deputy-guard setup`" in one_line(result.stderr)
    assert result.stdout == ""
    assert trust("vulnerable-00") == VULNERABLE


def test_revert_without_setup_is_one_line_naming_setup(endpoint: str) -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    result = run(endpoint, "revert", "vulnerable-sfn")
    assert result.returncode == 2 and "`deputy-guard setup`" in one_line(result.stderr)


def test_a_dry_run_needs_no_table(endpoint: str) -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    assert run(endpoint, "scan").returncode == 1


# --- filters and not-found ------------------------------------------------------------------------


def test_role_and_path_prefix_together_are_refused(endpoint: str) -> None:
    result = run(endpoint, "scan", "--role", "a", "--path-prefix", "/teams/")
    assert result.returncode == 2
    assert "--role and --path-prefix cannot be combined" in one_line(result.stderr)


def test_an_unknown_role_is_exit_2_for_scan_and_for_revert(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("vulnerable-sfn", VULNERABLE)
    scanned = run(endpoint, "scan", "--role", "vulnerable-sfn", "--role", "nope")
    reverted = run(endpoint, "revert", "nope")
    assert scanned.returncode == reverted.returncode == 2
    assert "'nope' not found" in one_line(scanned.stderr)
    assert "'nope'" in one_line(reverted.stderr)
    # the roles that exist are still reported
    assert "vulnerable-sfn" in scanned.stdout and "not found: nope" in scanned.stdout


def test_a_second_revert_says_already_reverted(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("vulnerable-sfn", VULNERABLE)
    run(endpoint, "scan", "--fix")
    assert run(endpoint, "revert", "vulnerable-sfn").returncode == 0
    again = run(endpoint, "revert", "vulnerable-sfn")
    assert again.returncode == 0 and "already reverted" in again.stdout and again.stderr == ""


# --- summaries ------------------------------------------------------------------------------------


def test_the_summary_counts_what_the_fix_did(endpoint: str) -> None:
    run(endpoint, "setup")
    create_role("vulnerable-a", VULNERABLE)
    create_role("vulnerable-b", VULNERABLE)
    create_role("compliant-sfn", COMPLIANT)
    result = run(endpoint, "scan", "--fix")
    assert result.returncode == 0, result.stderr
    assert "3 roles: 2 fixed, 1 compliant" in result.stdout
    assert "non_compliant)" not in result.stdout


def test_the_cap_says_how_to_continue(endpoint: str) -> None:
    run(endpoint, "setup")
    for name in ("v1", "v2", "v3"):
        create_role(name, VULNERABLE)
    first = run(endpoint, "scan", "--fix", DEPUTY_GUARD_MAX_FIXES_PER_RUN="1")
    assert first.returncode == 1
    assert "3 roles: 1 fixed, 2 capped" in first.stdout
    assert "2 roles held back by the cap of 1 fixes per run: run `deputy-guard scan --fix` again" in first.stdout
    second = run(endpoint, "scan", "--fix", DEPUTY_GUARD_MAX_FIXES_PER_RUN="1")
    assert "3 roles: 1 fixed, 1 capped, 1 compliant" in second.stdout


def test_one_role_is_one_role(endpoint: str) -> None:
    create_role("compliant-sfn", COMPLIANT)
    assert "1 role: 1 compliant" in run(endpoint, "scan").stdout


# --- formats --------------------------------------------------------------------------------------


def seed_three() -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    create_role("foreign-sfn", FOREIGN)
    create_role("compliant-sfn", COMPLIANT)


def test_json_carries_the_schema_version(endpoint: str) -> None:
    seed_three()
    report = json.loads(run(endpoint, "scan", "--format", "json").stdout)
    assert report["schema_version"] == "1"
    assert report["actions"] == {"would_fix": 1, "review": 1, "none": 1}


def test_csv_has_a_header_and_a_row_per_role(endpoint: str) -> None:
    seed_three()
    rows = list(csv.DictReader(io.StringIO(run(endpoint, "scan", "--format", "csv").stdout)))
    by_name = {row["role_name"]: row for row in rows}
    assert set(by_name) == {"vulnerable-sfn", "foreign-sfn", "compliant-sfn"}
    assert by_name["vulnerable-sfn"]["problems"] == "missing_source_account;missing_source_arn"
    assert (by_name["vulnerable-sfn"]["action"], by_name["vulnerable-sfn"]["account"]) == ("would_fix", "111122223333")


def test_asff_is_ready_for_batch_import_findings(endpoint: str) -> None:
    seed_three()
    findings = json.loads(run(endpoint, "scan", "--format", "asff").stdout)
    assert sorted(f["Resources"][0]["Details"]["AwsIamRole"]["RoleName"] for f in findings) == [
        "foreign-sfn",
        "vulnerable-sfn",
    ]
    assert all(f["Resources"][0]["Type"] == "AwsIamRole" for f in findings)
    shape = botocore.session.get_session().get_service_model("securityhub").operation_model("BatchImportFindings")
    report = ParamValidator().validate({"Findings": findings}, shape.input_shape)
    assert not report.has_errors(), report.generate_report()


def test_sarif_is_valid_against_the_official_schema(endpoint: str) -> None:
    seed_three()
    log = json.loads(run(endpoint, "scan", "--format", "sarif").stdout)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    results = log["runs"][0]["results"]
    assert {(r["ruleId"], r["level"]) for r in results} >= {
        ("missing_source_account", "error"),
        ("foreign_account", "warning"),
    }
    assert {r["locations"][0]["logicalLocations"][0]["name"] for r in results} == {"vulnerable-sfn", "foreign-sfn"}


# --- progress -------------------------------------------------------------------------------------


def test_progress_goes_to_stderr_on_a_terminal_and_nowhere_otherwise(endpoint: str) -> None:
    create_role("vulnerable-sfn", VULNERABLE)
    # When stderr is a pipe: nothing on it
    piped = run(endpoint, "scan")
    assert piped.stderr == ""
    # When stderr is a terminal: the progress line, and the report on stdout untouched
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [CLI, "scan", "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=cli_env(endpoint),
            timeout=120,
            check=False,
        )
        os.set_blocking(controller, False)
        shown = os.read(controller, 65536).decode()
    finally:
        os.close(terminal)
        os.close(controller)
    assert "scanning account 111122223333" in shown
    assert json.loads(process.stdout)["schema_version"] == "1"
