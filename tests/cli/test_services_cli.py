"""--services and `deputy-guard services` as a user runs them: a subprocess, against moto's server for scans."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.catalogue import CATALOGUE
from tests.cli.conftest import run
from tests.e2e.conftest import CLI, create_role

pytestmark = pytest.mark.e2e
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
ACCOUNT = "111122223333"


def trust(*services: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": list(services)}, "Action": "sts:AssumeRole"}],
    }


def check(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "check", "--account", ACCOUNT, *args, str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("output", ["text", "json", "sarif"])
def test_check_with_services_states_prints_exactly_what_the_default_prints(tmp_path: Path, output: str) -> None:
    # Given a policy trusting Step Functions beside Scheduler and EC2
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(trust("states.amazonaws.com", "scheduler.amazonaws.com", "ec2.amazonaws.com")))
    # When checked by default and with --services states
    default = check(path, "--format", output)
    explicit = check(path, "--format", output, "--services", "states")
    # Then the output and the exit status are the same, byte for byte
    assert (explicit.stdout, explicit.returncode) == (default.stdout, default.returncode)
    assert default.returncode == 1 and "scheduler" not in default.stdout.replace("scheduler.amazonaws.com", "")


def test_check_with_every_service_reports_each_services_pins_and_links_the_evidence(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(trust("cloudtrail.amazonaws.com")))
    result = check(path, "--format", "json", "--services", "all")
    body = json.loads(result.stdout)
    assert result.returncode == 1
    assert body["services"] == ["cloudtrail.amazonaws.com"] and body["auto_fix"] is False
    assert {p["service"] for p in body["problems"]} == {"cloudtrail.amazonaws.com"}
    text = check(path, "--services", "all").stdout
    assert "evidence: CloudTrail (advise): https://docs.aws.amazon.com/awscloudtrail/" in text
    assert "verify before applying" in text


def test_an_unknown_service_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(trust("states.amazonaws.com")))
    result = check(path, "--services", "states,ec2")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "deputy-guard: error: --services: 'ec2' is not in the catalogue (deputy-guard services lists it): "
        "write all, or names such as states,scheduler"
    ]


def test_the_services_command_lists_every_entry_with_its_level_prefix_and_evidence() -> None:
    text = subprocess.run([CLI, "services"], capture_output=True, text=True, timeout=60, check=True).stdout
    for entry in CATALOGUE:
        assert f"{entry.principal}" in text and entry.evidence in text
    listed = json.loads(
        subprocess.run(
            [CLI, "services", "--format", "json"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    assert [(row["principal"], row["level"], row["arn_prefix"]) for row in listed] == [
        (e.principal, e.level.value, e.arn_prefix) for e in CATALOGUE
    ]


def test_scan_with_services_states_prints_exactly_what_the_default_prints(endpoint: str) -> None:
    # Given roles of Step Functions and of Scheduler in the account
    suffix = uuid.uuid4().hex[:8]
    create_role(f"sfn-{suffix}", trust("states.amazonaws.com"))
    create_role(f"sched-{suffix}", trust("scheduler.amazonaws.com"))
    roles = ["--role", f"sfn-{suffix}", "--role", f"sched-{suffix}"]
    # When scanned by default and with --services states
    default = run(endpoint, "scan", *roles, "--format", "json")
    explicit = run(endpoint, "scan", *roles, "--format", "json", "--services", "states")
    # Then the reports are the same, byte for byte in every format; with every service the Scheduler role is a
    # finding too
    assert (explicit.stdout, explicit.returncode) == (default.stdout, default.returncode)
    for output in ("table", "sarif", "csv", "asff"):
        same = [run(endpoint, "scan", *roles, "--format", output, *more) for more in ((), ("--services", "states"))]
        # ASFF stamps each finding with the time it was made; everything else is the same
        stdout = [_TIMESTAMP.sub("<time>", result.stdout) for result in same]
        assert stdout[0] == stdout[1], output
        assert same[0].returncode == same[1].returncode, output
    verdicts = {row["role_name"]: row["verdict"] for row in json.loads(default.stdout)["results"]}
    assert verdicts == {f"sfn-{suffix}": "non_compliant", f"sched-{suffix}": "not_applicable"}
    wide = json.loads(run(endpoint, "scan", *roles, "--format", "json", "--services", "all").stdout)
    rows = {row["role_name"]: row for row in wide["results"]}
    assert rows[f"sched-{suffix}"]["verdict"] == "non_compliant"
    assert rows[f"sched-{suffix}"]["services"] == ["scheduler.amazonaws.com"]
