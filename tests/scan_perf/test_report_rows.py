"""The scan report stays lean: findings carry what their owners act on, the other rows only who and what."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.settings import (
    DEFAULT_SCAN_CONCURRENCY,
    MAX_SCAN_CONCURRENCY,
    SettingsError,
    load_settings,
)
from chalicelib.service.scan import scan
from tests.scan_perf.conftest import MakeWorld, seed

CONTRACT = {"role_name", "role_arn", "verdict", "problems", "action", "diff"}


def test_findings_carry_the_contract_fields_and_the_rest_carry_no_diff(make_world: MakeWorld) -> None:
    # Given a compliant, an unrelated, a vulnerable and a foreign-account role
    world = make_world(idempotent=False)
    seed({"compliant": 1, "lambda": 1, "vulnerable": 1, "foreign": 1})
    # When the account is scanned as a dry run
    by_name = {row["role_name"]: row for row in scan(world.deps, dry_run=True).to_dict()["results"]}
    # Then a finding carries the contract's fields and the reason for its action, and its patch when
    # there is one (needs_review: none, the bot never rewrites it)
    vulnerable, foreign = by_name["vulnerable-0000"], by_name["foreign-0000"]
    assert set(vulnerable) == set(foreign) == CONTRACT | {"reason"}
    assert vulnerable["diff"].startswith("--- before\n+++ after\n") and '"aws:SourceAccount"' in vulnerable["diff"]
    assert foreign["diff"] == "" and foreign["action"] == "review" and foreign["problems"]
    assert all(set(p) == {"code", "statement", "message"} for p in vulnerable["problems"] + foreign["problems"])
    # And a compliant or not-applicable role carries who it is, its verdict, no problems and no action
    for name, verdict in (("compliant-0000", "compliant"), ("lambda-0000", "not_applicable")):
        assert by_name[name] == {
            "role_name": name,
            "role_arn": f"arn:aws:iam::111122223333:role/{name}",
            "verdict": verdict,
            "problems": [],
            "action": "none",
        }


def test_a_report_of_mostly_compliant_roles_is_mostly_names(make_world: MakeWorld) -> None:
    # Given 300 roles, 10 of them vulnerable
    world = make_world(idempotent=False)
    seed({"lambda": 200, "compliant": 90, "vulnerable": 10})
    # When scanned, the report's rows as the API sends them
    rows = scan(world.deps, dry_run=True).to_dict()["results"]
    sizes = {row["role_name"]: len(json.dumps(row, separators=(",", ":"))) for row in rows}
    # Then a row without a finding is its names, verdict and action (under 150 bytes here), and the
    # findings (their problems and patches) are the bulk of the rest
    assert max(size for name, size in sizes.items() if not name.startswith("vulnerable")) < 150
    assert min(size for name, size in sizes.items() if name.startswith("vulnerable")) > 500


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_SCAN_CONCURRENCY), ("1", 1), (str(MAX_SCAN_CONCURRENCY), MAX_SCAN_CONCURRENCY)],
)
def test_the_reads_in_flight_are_a_setting(value: str | None, expected: int) -> None:
    env = {} if value is None else {"DEPUTY_GUARD_SCAN_CONCURRENCY": value}
    assert load_settings(env).scan_concurrency == expected


@pytest.mark.parametrize("value", ["0", "-2", str(MAX_SCAN_CONCURRENCY + 1), "many", "2.5"])
def test_a_bad_number_of_reads_in_flight_fails_fast_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="DEPUTY_GUARD_SCAN_CONCURRENCY"):
        load_settings({"DEPUTY_GUARD_SCAN_CONCURRENCY": value})
