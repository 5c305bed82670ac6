"""`scan --output-dir DIR --format ...`: every format from one scan, and an HTML page a person can use.

The CLI runs as a user runs it, against moto's server over HTTP; the page is opened in a real headless
Chromium at 1280 pixels: it renders, its counts match the JSON report, nothing overflows, its filters work.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.cli.conftest import run
from tests.documents import ACCOUNT as DOCUMENTS_ACCOUNT
from tests.e2e.conftest import create_role
from tests.report.browser import WIDTH, measure, screenshot
from tests.world import COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE

pytestmark = pytest.mark.e2e
ALL_FORMATS = "json,csv,sarif,asff,html"
LONG_NAME = "a-very-long-role-name-for-the-data-platform-team-nightly-ingestion-pipeline-sfn"
FINDINGS = ("non_compliant", "needs_review")


def pinned(account: str) -> dict[str, Any]:
    """The shared compliant policy, pinned to ``account``."""
    return dict(json.loads(json.dumps(COMPLIANT).replace(DOCUMENTS_ACCOUNT, account)))


@pytest.fixture
def account(endpoint: str) -> str:
    """An account holding every kind of role: to fix, to review, exempt, compliant, not applicable."""
    number = str(boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"])
    create_role("orders-sfn", VULNERABLE)
    create_role(LONG_NAME, VULNERABLE)
    create_role("partner-sfn", FOREIGN)
    create_role("pinned-sfn", pinned(number))
    create_role("thumbnails", LAMBDA_ONLY)
    create_role(
        "legacy-batch-sfn",
        VULNERABLE,
        Tags=[{"Key": "deputy-guard:mode", "Value": "exempt"}, {"Key": "deputy-guard:reason", "Value": "retired"}],
    )
    return endpoint


def files(folder: Path) -> dict[str, Path]:
    return {path.name: path for path in folder.iterdir()}


def test_one_scan_writes_every_format_once_into_the_folder(account: str, tmp_path: Path) -> None:
    # When one scan writes every format
    out = tmp_path / "report"
    result = run(account, "scan", "--output-dir", str(out), "--format", ALL_FORMATS)
    # Then each file is there once, the exit status is the scan's, and stdout names the files written
    assert result.returncode == 1, result.stderr
    written = files(out)
    assert sorted(written) == sorted(
        [
            "deputy-guard-scan.json",
            "deputy-guard-scan.csv",
            "deputy-guard-scan.sarif",
            "deputy-guard-scan.asff.json",
            "deputy-guard-scan.html",
        ]
    )
    assert result.stdout.count("wrote ") == 5
    # and every format tells of the same roles
    report = json.loads(written["deputy-guard-scan.json"].read_text())
    names = {row["role_name"] for row in report["results"]}
    assert len(names) == 6
    rows = list(csv.DictReader(io.StringIO(written["deputy-guard-scan.csv"].read_text())))
    assert {row["role_name"] for row in rows} == names
    findings = {
        f["Resources"][0]["Details"]["AwsIamRole"]["RoleName"]
        for f in json.loads(written["deputy-guard-scan.asff.json"].read_text())
    }
    assert findings == {row["role_name"] for row in report["results"] if row["verdict"] in FINDINGS}
    sarif = json.loads(written["deputy-guard-scan.sarif"].read_text())
    assert {r["locations"][0]["logicalLocations"][0]["name"] for r in sarif["runs"][0]["results"]} == findings


def test_the_html_page_renders_in_a_browser_with_the_counts_of_the_json(account: str, tmp_path: Path) -> None:
    # Given the JSON and the HTML of one scan
    out = tmp_path / "report"
    run(account, "scan", "--output-dir", str(out), "--format", "json,html")
    report = json.loads((out / "deputy-guard-scan.json").read_text())
    page = out / "deputy-guard-scan.html"
    # Then the page is self-contained: nothing is fetched from anywhere
    text = page.read_text()
    assert not re.search(r"""(?:src|href)\s*=|url\(|@import|https?://(?!docs\.aws)""", text), "a reference out"
    # When Chromium opens it at 1280 pixels
    seen = measure(page, tmp_path, search="orders-sfn")
    # Then nothing overflows sideways, even the long role name and the diffs
    assert seen["innerWidth"] == WIDTH
    assert seen["scrollWidth"] <= WIDTH and seen["bodyScrollWidth"] <= WIDTH
    # and the summary and the roles listed count what the JSON counts
    number = report["account"]
    for verdict, count in report["summary"].items():
        assert seen["summary"][f"{number}/{verdict}"] == count, verdict
        assert seen["totals"][verdict] == count, verdict
        assert seen["roles"].get(f"{number}/{verdict}", 0) == count, verdict
    assert seen["chartBars"] == sum(1 for count in report["summary"].values() if count)
    # and the filters work without a server: findings first, every role, one role by name
    findings = sum(report["summary"][verdict] for verdict in FINDINGS)
    assert seen["visibleAtFirst"] == seen["shownAtFirst"] == findings
    assert seen["visibleAll"] == len(report["results"])
    assert seen["visibleSearch"] == 1


def test_each_finding_carries_its_diff_owner_reason_and_command(account: str, tmp_path: Path) -> None:
    result = run(account, "scan", "--format", "html")
    page = result.stdout
    block = page[page.index("<b>orders-sfn</b>") :]
    block = block[: block.index("</details>")]
    assert "deputy-guard scan --fix --role orders-sfn" in block
    assert "<dt>owner</dt>" in block and "<dt>reason</dt>" in block
    assert '<span class="add">' in block and "aws:SourceAccount" in block
    exempt = page[page.index("<b>legacy-batch-sfn</b>") :]
    assert "retired" in exempt[: exempt.index("</details>")]


def test_the_page_at_1280_pixels_shows_no_horizontal_overflow(account: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    run(account, "scan", "--output-dir", str(out), "--format", "html")
    width, height = screenshot(out / "deputy-guard-scan.html", tmp_path / "report-1280.png")
    assert (width, height) == (WIDTH, 1400)
    assert measure(out / "deputy-guard-scan.html", tmp_path, search="")["scrollWidth"] <= WIDTH


@pytest.mark.parametrize("format_name", ["table", "json", "csv", "sarif", "asff", "html"])
def test_status_keeps_only_the_verdicts_named_in_every_format(account: str, format_name: str) -> None:
    # When only the roles that need a review are asked for
    result = run(account, "scan", "--status", "needs_review", "--format", format_name)
    # Then only partner-sfn is reported, whatever the format, and the exit status still counts every role
    assert result.returncode == 1, result.stderr
    assert "partner-sfn" in result.stdout
    for other in ("orders-sfn", "pinned-sfn", "thumbnails", "legacy-batch-sfn"):
        assert other not in result.stdout, (format_name, other)


def test_status_with_two_verdicts_and_the_summary_counts_what_is_shown(account: str) -> None:
    report = json.loads(run(account, "scan", "--status", "non_compliant,needs_review", "--format", "json").stdout)
    assert {row["verdict"] for row in report["results"]} == set(FINDINGS)
    assert report["summary"]["compliant"] == report["summary"]["not_applicable"] == 0


def test_text_is_another_name_for_table(account: str) -> None:
    as_text, as_table = run(account, "scan", "--format", "text"), run(account, "scan", "--format", "table")
    assert as_text.returncode == as_table.returncode == 1
    assert as_text.stdout == as_table.stdout and as_text.stdout.startswith("VERDICT")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--format", "json,csv"], "--output-dir"),
        (["--format", "json,pdf"], "invalid choice"),
        (["--status", "failed"], "invalid choice"),
        (["--member-role", "auditor"], "--accounts"),
        (["--concurrency", "4"], "--accounts"),
    ],
)
def test_flags_that_cannot_work_are_one_line_and_exit_2(account: str, args: list[str], says: str) -> None:
    result = run(account, "scan", *args)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("deputy-guard: error: ") and says in line


def test_the_folder_cannot_be_a_file(account: str, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    result = run(account, "scan", "--output-dir", str(taken), "--format", "json")
    assert result.returncode == 2 and "not a folder" in result.stderr
