"""A whole-account scan lists roles with their tags (GetAccountAuthorizationDetails): no call per role.

moto answers GetAccountAuthorizationDetails in one page whatever MaxItems says; IAM pages it by MaxItems
and Marker, so the paging is pinned here with botocore's Stubber (answers shaped like IAM's RoleDetail).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters import aws
from chalicelib.adapters.iam import IamGateway
from chalicelib.domain.models import Mode
from chalicelib.service.scan import BadToken, decode_token, encode_token, request_digest, scan, sweep
from tests.scan_perf.conftest import rows
from tests.world import ACCOUNT, COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE, World, deny_authorization_details

MakeWorld = Callable[..., World]
DETAILS = {"Filter": ["Role"], "MaxItems": 1000}


def seed(world: World, counts: dict[str, int], *, path: str = "/") -> None:
    documents = {"lambda": LAMBDA_ONLY, "compliant": COMPLIANT, "vulnerable": VULNERABLE, "foreign": FOREIGN}
    for kind, count in counts.items():
        for index in range(count):
            world.create_role(f"{kind}-{index:04d}", documents[kind], path=path, tags={"owner": "team-a"})


def detail(name: str, document: dict[str, Any], tags: dict[str, str] | None = None) -> dict[str, Any]:
    """A RoleDetail as IAM sends it: the trust policy URL-encoded, the lists the scan does not read empty."""
    return {
        "Path": "/",
        "RoleName": name,
        "RoleId": f"AROA{name.upper().replace('-', '')[:17]:0<17}",
        "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "CreateDate": "2026-11-20T09:14:03Z",
        "AssumeRolePolicyDocument": quote(json.dumps(document)),
        "InstanceProfileList": [],
        "RolePolicyList": [],
        "AttachedManagedPolicies": [],
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        "RoleLastUsed": {},
    }


def page(details: list[dict[str, Any]], marker: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "RoleDetailList": details,
        "UserDetailList": [],
        "GroupDetailList": [],
        "Policies": [],
        "IsTruncated": marker is not None,
    }
    if marker is not None:
        answer["Marker"] = marker
    return answer


def stubbed_client() -> Any:
    return boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


# --- the gateway ----------------------------------------------------------------------------------------


def test_each_page_asks_for_roles_only_a_thousand_at_a_time_and_carries_their_tags() -> None:
    client = stubbed_client()
    gateway = IamGateway(client)
    with Stubber(client) as stub:
        # Given IAM answers in two pages
        stub.add_response("get_account_authorization_details", page([detail("a", VULNERABLE)], "m1"), DETAILS)
        stub.add_response(
            "get_account_authorization_details",
            page([detail("b", COMPLIANT, {"owner": "team-b"})]),
            {**DETAILS, "Marker": "m1"},
        )
        # When both pages are listed
        first = gateway.list_role_details_page()
        assert first is not None and first.marker == "m1"
        second = gateway.list_role_details_page(marker=first.marker)
        stub.assert_no_pending_responses()
    # Then each role comes with its tags (no read needed) and its trust policy as IAM sent it
    assert second is not None and second.marker is None
    (a,), (b,) = first.roles, second.roles
    assert a.tags_loaded and b.tags_loaded and b.tags == {"owner": "team-b"}
    assert a.document == quote(json.dumps(VULNERABLE)) and a.arn == f"arn:aws:iam::{ACCOUNT}:role/a"


def test_an_account_that_denies_the_listing_pays_one_refused_call() -> None:
    client = stubbed_client()
    gateway = IamGateway(client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_account_authorization_details", "AccessDenied", "not authorized", 403, expected_params=DETAILS
        )
        # When the listing is refused / Then the gateway says so, and asks no more
        assert gateway.list_role_details_page() is None
        assert gateway.list_role_details_page() is None
        stub.assert_no_pending_responses()


# --- scans ----------------------------------------------------------------------------------------------


def test_a_dry_run_scan_makes_one_listing_call_per_thousand_roles_and_none_per_role(make_world: MakeWorld) -> None:
    # Given 1,030 roles, 10 of them flagged
    world = make_world(idempotent=False)
    seed(world, {"lambda": 1000, "compliant": 20, "vulnerable": 7, "foreign": 3})
    world.calls.clear()
    # When the account is scanned as a dry run
    report = scan(world.deps, dry_run=True)
    # Then the listing was all it took (moto answers in one page), with every verdict
    assert report.complete and len(report.results) == 1030
    assert report.summary == {"compliant": 20, "not_applicable": 1000, "non_compliant": 7, "needs_review": 3}
    assert world.aws_calls() == {"iam.GetAccountAuthorizationDetails": 1}


def test_both_listings_report_the_same_rows(make_world: MakeWorld) -> None:
    # Given an account with every kind of role, tagged
    world = make_world(idempotent=False)
    seed(world, {"lambda": 30, "compliant": 20, "vulnerable": 15, "foreign": 5})
    world.create_role("exempt-sfn", VULNERABLE, tags={"deputy-guard:mode": "exempt"})
    world.create_role("stack-sfn", VULNERABLE, tags={"aws:cloudformation:stack-name": "orders"})
    # When it is scanned with the whole-account listing, then by an account that denies it
    details = scan(world.deps, dry_run=True)
    deny_authorization_details()
    listed = scan(world.deps, dry_run=True)
    # Then the rows are the same, by name (the two listings need not share an order)
    assert world.aws_calls()["iam.ListRoleTags"] == 22
    assert sorted(rows(details), key=lambda r: r["role_name"]) == sorted(rows(listed), key=lambda r: r["role_name"])
    actions = {r.role_name: r.action.value for r in details.results}
    assert (actions["exempt-sfn"], actions["stack-sfn"], actions["vulnerable-0000"]) == (
        "exempt",
        "would_notify",
        "would_fix",
    )


def test_a_scan_pages_the_listing_by_marker_and_its_token_resumes_the_same_listing(make_world: MakeWorld) -> None:
    # Given IAM's answers over two pages: a vulnerable role, then a compliant one and a vulnerable one
    world = make_world(idempotent=False)
    client = stubbed_client()
    deps = replace(world.deps, iam=IamGateway(client))
    first = page([detail("sfn-a", VULNERABLE)], "m1")
    second = page([detail("sfn-b", COMPLIANT), detail("sfn-c", VULNERABLE, {"owner": "team-c"})])
    with Stubber(client) as stub:
        stub.add_response("get_account_authorization_details", first, DETAILS)
        stub.add_response("get_account_authorization_details", second, {**DETAILS, "Marker": "m1"})
        # When a dry run with no time left makes its one role of progress
        cut = scan(deps, dry_run=True, budget_seconds=0)
        # and the scan continues from its token
        rest = scan(deps, dry_run=True, next_token=cut.next_token)
        stub.assert_no_pending_responses()
    # Then the token names the listing (its markers are its own), and the two calls saw every role once
    assert cut.next_token is not None and [r.role_name for r in cut.results] == ["sfn-a"]
    assert decode_token(cut.next_token)["listing"] == "details"
    assert rest.complete and [r.role_name for r in rest.results] == ["sfn-b", "sfn-c"]
    assert [r.action.value for r in rest.results] == ["none", "would_fix"]


def test_a_listing_refused_part_way_is_a_stale_token(make_world: MakeWorld) -> None:
    # Given a token from the whole-account listing, and an account that now denies it
    world = make_world(idempotent=False)
    seed(world, {"vulnerable": 2})
    deny_authorization_details()
    token = encode_token({"request": request_digest(None, "/"), "listing": "details", "marker": "m1", "skip": 0})
    # When the scan continues / Then the token is refused (a ListRoles marker it is not)
    with pytest.raises(BadToken):
        scan(world.deps, dry_run=True, next_token=token)


def test_a_token_from_before_the_whole_account_listing_continues_with_list_roles(make_world: MakeWorld) -> None:
    # Given a sweep cursor saved by an earlier version (no listing named: a ListRoles marker)
    world = make_world(idempotent=False)
    seed(world, {"lambda": 3, "vulnerable": 2})
    world.calls.clear()
    token = encode_token({"request": request_digest(None, "/"), "marker": None, "skip": 2})
    # When the scan continues from it
    report = scan(world.deps, dry_run=True, next_token=token)
    # Then it pages ListRoles, skipping the roles already done
    assert report.complete and len(report.results) == 3
    assert world.aws_calls().get("iam.ListRoles") == 1 and "iam.GetAccountAuthorizationDetails" not in world.aws_calls()


def test_a_path_prefix_scan_lists_with_list_roles_filtered_by_iam(make_world: MakeWorld) -> None:
    # Given roles under /teams/ and elsewhere (the whole-account listing has no path filter)
    world = make_world(idempotent=False)
    seed(world, {"lambda": 5, "vulnerable": 3})
    seed(world, {"compliant": 4}, path="/teams/")
    world.create_role("team-sfn", VULNERABLE, path="/teams/", tags={"owner": "team-t"})
    world.calls.clear()
    # When the prefix is scanned
    report = scan(world.deps, dry_run=True, path_prefix="/teams/")
    # Then IAM filtered the listing, and the one flagged role under it was tag-read
    expected = {f"compliant-{index:04d}" for index in range(4)} | {"team-sfn"}
    assert {r.role_name for r in report.results} == expected and len(report.results) == 5
    assert world.aws_calls() == {"iam.ListRoles": 1, "iam.ListRoleTags": 1}


# --- runs that may write ----------------------------------------------------------------------------------


def test_a_sweep_re_reads_only_the_roles_it_writes_just_before_writing(make_world: MakeWorld) -> None:
    # Given an enforce-mode account: a plain vulnerable role, one tagged notify, one exempt, one compliant
    world = make_world(mode="enforce")
    world.create_role("plain-sfn", VULNERABLE)
    world.create_role("told-sfn", VULNERABLE, tags={"deputy-guard:mode": "notify"})
    world.create_role("exempt-sfn", VULNERABLE, tags={"deputy-guard:mode": "exempt"})
    world.create_role("fine-sfn", COMPLIANT)
    world.calls.clear()
    # When the sweep runs
    summary = sweep(world.deps)
    # Then the listing decided the notice and the exemption; only the role written was read again
    assert summary["actions"] == {"fixed": 1, "notified": 1, "exempt": 1, "none": 1}
    iam = world.aws_calls("iam")
    assert iam == {"iam.GetAccountAuthorizationDetails": 1, "iam.GetRole": 1, "iam.UpdateAssumeRolePolicy": 1}
    assert world.trust("told-sfn") == VULNERABLE and world.trust("plain-sfn") != VULNERABLE


def test_a_notify_sweep_makes_no_call_per_role(make_world: MakeWorld) -> None:
    world = make_world(mode="notify")
    seed(world, {"lambda": 5, "vulnerable": 4, "foreign": 2})
    world.calls.clear()
    summary = sweep(world.deps)
    assert summary["actions"] == {"none": 5, "notified": 4, "review": 2}
    assert world.aws_calls("iam") == {"iam.GetAccountAuthorizationDetails": 1}


def test_a_write_is_decided_on_what_iam_holds_at_the_write_not_on_the_listing(make_world: MakeWorld) -> None:
    # Given a vulnerable role that its owner pins between the listing and the bot's write
    world = make_world(mode="enforce")
    world.create_role("racing-sfn", VULNERABLE)

    def owner_fixes_it_first(**_: Any) -> None:
        world.iam.update_assume_role_policy(RoleName="racing-sfn", PolicyDocument=json.dumps(COMPLIANT))

    aws.make_client("iam").meta.events.register_first("before-call.iam.GetRole", owner_fixes_it_first)
    world.calls.clear()
    # When a scan with fixes runs
    report = scan(world.deps, dry_run=False, mode=Mode.ENFORCE)
    # Then the fresh read found the role compliant: nothing was written, nothing recorded as a fix
    (result,) = report.results
    assert (result.verdict.value, result.action.value) == ("compliant", "none")
    assert "iam.UpdateAssumeRolePolicy" not in world.aws_calls() and world.trust("racing-sfn") == COMPLIANT


def test_a_scan_of_named_roles_reads_each_with_get_role_and_lists_nothing(make_world: MakeWorld) -> None:
    # Given an account of 40 roles, two of which are asked for by name (one tagged exempt), and a missing one
    world = make_world(idempotent=False)
    seed(world, {"lambda": 20, "vulnerable": 18})
    world.create_role("exempt-sfn", VULNERABLE, tags={"deputy-guard:mode": "exempt"})
    world.calls.clear()
    # When only those roles are scanned
    report = scan(world.deps, dry_run=True, role_names=["vulnerable-0003", "exempt-sfn", "gone-sfn"])
    # Then each named role was read once with GetRole (its document and tags together), and nothing listed
    assert world.aws_calls() == {"iam.GetRole": 3}
    assert [(r.role_name, r.action.value) for r in report.results] == [
        ("vulnerable-0003", "would_fix"),
        ("exempt-sfn", "exempt"),
    ]
    assert report.missing == ("gone-sfn",)
