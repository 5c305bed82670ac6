"""A dry run's read of a flagged role: its tags only (ListRoleTags), every page, on the listed document."""

from __future__ import annotations

import json
from collections.abc import Callable

import boto3
from botocore.stub import Stubber

from chalicelib.adapters.iam import IamGateway
from chalicelib.domain.models import RoleRecord
from chalicelib.service.scan import scan
from tests.world import VULNERABLE, World, deny_authorization_details

MakeWorld = Callable[..., World]
ARN = "arn:aws:iam::111122223333:role/orders-sfn"


def listed(document: str = "%7B%7D") -> RoleRecord:
    return RoleRecord(name="orders-sfn", arn=ARN, path="/", document=document, tags={}, tags_loaded=False)


def test_every_page_of_tags_is_read_and_the_listed_document_is_kept() -> None:
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    gateway = IamGateway(client)
    with Stubber(client) as stub:
        # Given IAM answers in two pages (IsTruncated, then the rest from the marker)
        first = [{"Key": "owner", "Value": "team-orders"}]
        second = [{"Key": "deputy-guard:mode", "Value": "notify"}]
        stub.add_response(
            "list_role_tags", {"Tags": first, "IsTruncated": True, "Marker": "m1"}, {"RoleName": "orders-sfn"}
        )
        stub.add_response(
            "list_role_tags", {"Tags": second, "IsTruncated": False}, {"RoleName": "orders-sfn", "Marker": "m1"}
        )
        # When the listed role's tags are read
        record = gateway.read_tags(listed("%7B%22Version%22%3A%222012-10-17%22%7D"))
        stub.assert_no_pending_responses()
    # Then the record has both pages' tags, the listing's document as IAM sent it, and counts as read
    assert record is not None and record.tags_loaded
    assert record.tags == {"owner": "team-orders", "deputy-guard:mode": "notify"}
    assert record.document == "%7B%22Version%22%3A%222012-10-17%22%7D" and record.arn == ARN


def test_a_role_deleted_since_the_listing_reads_as_gone() -> None:
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("list_role_tags", "NoSuchEntity", "The role cannot be found.", 404)
        assert IamGateway(client).read_tags(listed()) is None


def test_a_role_that_may_not_be_tag_read_is_read_with_get_role() -> None:
    # Given a member role deployed before iam:ListRoleTags was granted (GetRole still is)
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    role = {
        "Path": "/",
        "RoleName": "orders-sfn",
        "RoleId": "AROAEXAMPLEID0000001",
        "Arn": ARN,
        "CreateDate": "2026-11-20T09:14:03Z",
        "AssumeRolePolicyDocument": "%7B%7D",
        "Tags": [{"Key": "owner", "Value": "team-orders"}],
    }
    with Stubber(client) as stub:
        stub.add_client_error("list_role_tags", "AccessDenied", "not authorized to perform iam:ListRoleTags", 403)
        stub.add_response("get_role", {"Role": role}, {"RoleName": "orders-sfn"})
        # When its tags are read / Then GetRole answers instead, tags included
        gateway = IamGateway(client)
        record = gateway.read_tags(listed())
        stub.assert_no_pending_responses()
        # And the next role's tags come from GetRole at once, without another refused call
        stub.add_response("get_role", {"Role": role}, {"RoleName": "orders-sfn"})
        again = gateway.read_tags(listed())
        stub.assert_no_pending_responses()
    assert record is not None and record.tags == {"owner": "team-orders"} and record.tags_loaded
    assert again == record


def test_a_dry_run_decides_on_the_tags_it_read(make_world: MakeWorld) -> None:
    # Given three vulnerable roles: one tagged exempt, one CloudFormation-managed, one plain
    world = make_world(mode="enforce", idempotent=False)
    deny_authorization_details()  # (the ListRoles listing, whose flagged roles are read one by one)
    tags = {
        "exempt-sfn": [{"Key": "deputy-guard:mode", "Value": "exempt"}],
        "stack-sfn": [{"Key": "aws:cloudformation:stack-name", "Value": "orders"}],
        "plain-sfn": [],
    }
    for name, role_tags in tags.items():
        world.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(VULNERABLE), Tags=role_tags)
    world.calls.clear()
    # When the account is scanned as a dry run
    actions = {r.role_name: r.action.value for r in scan(world.deps, dry_run=True).results}
    # Then each role's tags decided its action, read with one ListRoleTags each (after one refused call)
    assert actions == {"exempt-sfn": "exempt", "stack-sfn": "would_notify", "plain-sfn": "would_fix"}
    assert world.aws_calls() == {"iam.GetAccountAuthorizationDetails": 1, "iam.ListRoles": 1, "iam.ListRoleTags": 3}
