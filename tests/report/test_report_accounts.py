"""`scan --accounts ... --output-dir DIR --format ...`: every format for many accounts from one run.

The CLI as a user runs it over several member accounts of the embedded AWS; the HTML page is opened in a
real headless Chromium.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest

from tests.org.conftest import CLI, OrgWorld
from tests.report.browser import WIDTH, measure

pytestmark = pytest.mark.e2e


def scan(world: OrgWorld, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "scan", *args], capture_output=True, text=True, timeout=180, env=world.cli_env(), check=False
    )


def test_many_accounts_write_every_format_in_one_run(org_world: OrgWorld, tmp_path: Path) -> None:
    # Given three member accounts, each with a role to fix and one that is not Step Functions'
    listed = org_world.healthy[:3]
    out = tmp_path / "org"
    # When scanned once into every format
    result = scan(
        org_world, "--accounts", ",".join(listed), "--output-dir", str(out), "--format", "json,csv,sarif,asff,html"
    )
    # Then nothing is refused, and every file covers every account
    assert result.returncode == 1, result.stderr
    report = json.loads((out / "deputy-guard-scan.json").read_text())
    assert [entry["account"] for entry in report["accounts"]] == listed
    rows = list(csv.DictReader(io.StringIO((out / "deputy-guard-scan.csv").read_text())))
    assert {row["account"] for row in rows} == set(listed)
    assert len(rows) == sum(len(entry["results"]) for entry in report["accounts"])
    findings = json.loads((out / "deputy-guard-scan.asff.json").read_text())
    assert sorted(f["AwsAccountId"] for f in findings) == sorted(listed)
    sarif = json.loads((out / "deputy-guard-scan.sarif").read_text())
    located = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].split(":")[4]
        for r in sarif["runs"][0]["results"]
    }
    assert located == set(listed)
    # And the page, in a browser, has each account's counts as the JSON has them, and filters by account
    seen = measure(out / "deputy-guard-scan.html", tmp_path, search="orders-sfn", account=listed[1])
    assert seen["scrollWidth"] <= WIDTH
    for entry in report["accounts"]:
        for verdict, count in entry["summary"].items():
            assert seen["summary"][f"{entry['account']}/{verdict}"] == count
            assert seen["roles"].get(f"{entry['account']}/{verdict}", 0) == count
    assert seen["totals"] == report["summary"]
    assert seen["visibleSearch"] == len(listed)  # orders-sfn in each account
    assert seen["visibleAccount"] == len(report["accounts"][1]["results"])  # every role of the account chosen
    page = (out / "deputy-guard-scan.html").read_text()
    assert f"deputy-guard scan --fix --accounts {listed[0]} --role orders-sfn" in page


@pytest.mark.parametrize("format_name", ["csv", "sarif", "asff"])
def test_many_accounts_print_the_formats_once_refused(org_world: OrgWorld, format_name: str) -> None:
    listed = org_world.healthy[:2]
    result = scan(org_world, "--accounts", ",".join(listed), "--format", format_name)
    assert result.returncode == 1, result.stderr
    for account in listed:
        assert account in result.stdout


def counts(line: str) -> tuple[int, dict[str, int]]:
    """``...: 4 roles: 1 would_fix, 3 not_applicable`` as (4, {"would_fix": 1, "not_applicable": 3})."""
    _, roles, happened = line.rsplit(": ", 2)
    tally = {name: int(count) for count, name in (part.split(" ", 1) for part in happened.split(", "))}
    return int(roles.split()[0]), tally


def test_the_per_account_lines_add_up_to_the_last_line(org_world: OrgWorld) -> None:
    # When three accounts are scanned as a table
    listed = org_world.healthy[:3]
    result = scan(org_world, "--accounts", ",".join(listed))
    lines = result.stdout.strip().splitlines()
    per_account = [counts(line) for line in lines if line.startswith("account ")]
    # Then the last line counts the roles as each account's line does, in the same words, added up
    assert len(per_account) == 3
    assert lines[-1].startswith("3 accounts (0 failed): ")
    roles, tally = counts(lines[-1])
    assert roles == sum(n for n, _ in per_account) and roles > 0
    added: dict[str, int] = {}
    for _, each in per_account:
        for name, count in each.items():
            added[name] = added.get(name, 0) + count
    assert tally == added and tally["would_fix"] == 3


def test_status_filters_the_accounts_report(org_world: OrgWorld) -> None:
    listed = org_world.healthy[:2]
    report = json.loads(
        scan(org_world, "--accounts", ",".join(listed), "--status", "not_applicable", "--format", "json").stdout
    )
    for entry in report["accounts"]:
        names = [row["role_name"] for row in entry["results"]]
        assert "thumbnails" in names and "orders-sfn" not in names
        assert {row["verdict"] for row in entry["results"]} == {"not_applicable"}
        assert entry["summary"]["non_compliant"] == 0
