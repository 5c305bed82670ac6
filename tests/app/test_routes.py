"""The REST routes through chalice.test.Client: reports, status codes, and 400 (never 500) on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.runtime import container
from tests.world import COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE, World

MakeWorld = Callable[..., World]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(app_module.app) as test_client:
        yield test_client


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    w = make_world(mode="notify")
    w.create_role("vulnerable-sfn", VULNERABLE, tags={"owner": "orders"})
    w.create_role("compliant-sfn", COMPLIANT)
    w.create_role("foreign-sfn", FOREIGN)
    w.create_role("lambda-only", LAMBDA_ONLY)
    container.install(w.deps)
    return w


def post(client: Client, path: str, body: Any = None, raw: str | None = None) -> Any:
    payload = raw if raw is not None else (json.dumps(body) if body is not None else "")
    return client.http.post(path, headers=JSON, body=payload)


def test_scan_dry_run_reports_every_role_and_changes_nothing(client: Client, world: World) -> None:
    response = post(client, "/scans", {"dry_run": True})
    assert response.status_code == 200
    report = response.json_body
    assert report["complete"] is True and report["next_token"] is None
    assert report["account"] == "111122223333"
    assert report["summary"] == {"compliant": 1, "not_applicable": 1, "non_compliant": 1, "needs_review": 1}
    by_name = {r["role_name"]: r for r in report["results"]}
    assert set(by_name["vulnerable-sfn"]) >= {"role_name", "role_arn", "verdict", "problems", "action", "diff"}
    assert by_name["vulnerable-sfn"]["action"] == "would_fix"
    assert world.trust("vulnerable-sfn") == VULNERABLE
    assert world.notifier.all == []
    assert "iam.UpdateAssumeRolePolicy" not in world.aws_calls()


def test_scan_with_fixes_fixes_and_sends_one_digest_per_owner(client: Client, world: World) -> None:
    report = post(client, "/scans", {"dry_run": False}).json_body
    actions = {r["role_name"]: r["action"] for r in report["results"]}
    assert actions == {
        "vulnerable-sfn": "fixed",
        "compliant-sfn": "none",
        "foreign-sfn": "review",
        "lambda-only": "none",
    }
    assert world.trust("vulnerable-sfn") != VULNERABLE
    owners = sorted(owner for owner, _notices in world.notifier.digests)
    assert owners == ["default", "orders"]
    assert world.notifier.single == []


def test_scan_of_named_roles_reports_missing_ones(client: Client, world: World) -> None:
    report = post(client, "/scans", {"dry_run": True, "role_names": ["vulnerable-sfn", "ghost"]}).json_body
    assert [r["role_name"] for r in report["results"]] == ["vulnerable-sfn"]
    assert report["missing"] == ["ghost"]


def test_scan_by_path_prefix(client: Client, world: World) -> None:
    world.create_role("team-sfn", VULNERABLE, path="/teams/data/")
    report = post(client, "/scans", {"dry_run": True, "path_prefix": "/teams/"}).json_body
    assert [r["role_name"] for r in report["results"]] == ["team-sfn"]


def test_scan_continues_through_next_token_when_the_budget_runs_out(client: Client, world: World) -> None:
    object.__setattr__(world.deps.settings, "scan_budget_seconds", 0.000001)
    seen: list[str] = []
    body: dict[str, Any] = {"dry_run": True}
    for _ in range(10):
        report = post(client, "/scans", body).json_body
        seen += [r["role_name"] for r in report["results"]]
        if report["complete"]:
            break
        body = {"dry_run": True, "next_token": report["next_token"]}
    assert report["complete"] is True
    assert sorted(seen) == ["compliant-sfn", "foreign-sfn", "lambda-only", "vulnerable-sfn"]


def test_get_role_evaluates_without_changing(client: Client, world: World) -> None:
    response = client.http.get("/roles/vulnerable-sfn")
    assert response.status_code == 200
    body = response.json_body
    # the same preview as a dry-run scan: what a run with fixes would do, whatever the bot's own mode
    assert body["verdict"] == "non_compliant" and body["action"] == "would_fix"
    assert body["fixed_policy"]["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}
    assert world.trust("vulnerable-sfn") == VULNERABLE


def test_remediate_fixes_now_whatever_the_global_mode(client: Client, world: World) -> None:
    response = post(client, "/roles/vulnerable-sfn/remediate")
    assert response.status_code == 200
    assert response.json_body["action"] == "fixed" and response.json_body["change_id"]
    assert world.trust("vulnerable-sfn") != VULNERABLE


def test_remediate_dry_run(client: Client, world: World) -> None:
    response = post(client, "/roles/vulnerable-sfn/remediate", {"dry_run": True})
    assert response.json_body["action"] == "would_fix"
    assert world.trust("vulnerable-sfn") == VULNERABLE


def test_remediate_refuses_needs_review_and_exempt_roles(client: Client, world: World) -> None:
    world.create_role("exempt-sfn", VULNERABLE, tags={"deputy-guard:mode": "exempt"})
    assert post(client, "/roles/foreign-sfn/remediate").status_code == 409
    assert post(client, "/roles/exempt-sfn/remediate").status_code == 409
    assert world.trust("foreign-sfn") == FOREIGN and world.trust("exempt-sfn") == VULNERABLE


def test_revert_route_restores_and_refuses_per_the_rules(client: Client, world: World) -> None:
    post(client, "/roles/vulnerable-sfn/remediate")
    assert post(client, "/roles/vulnerable-sfn/revert").status_code == 200
    assert world.trust("vulnerable-sfn") == VULNERABLE
    again = post(client, "/roles/vulnerable-sfn/revert")  # a retry finds its work done
    assert again.status_code == 200 and again.json_body["status"] == "already_reverted"
    assert post(client, "/roles/compliant-sfn/revert").status_code == 409  # nothing to revert
    assert post(client, "/roles/compliant-sfn/revert", {"force": True}).status_code == 409


def test_revert_refusal_after_a_foreign_change(client: Client, world: World) -> None:
    post(client, "/roles/vulnerable-sfn/remediate")
    world.iam.update_assume_role_policy(RoleName="vulnerable-sfn", PolicyDocument=json.dumps(COMPLIANT))
    refused = post(client, "/roles/vulnerable-sfn/revert")
    assert refused.status_code == 409 and "--force" in refused.json_body["message"]
    # force runs only from the CLI with the caller's own credentials, never with the bot's
    forced = post(client, "/roles/vulnerable-sfn/revert", {"force": True})
    assert forced.status_code == 409 and "CLI" in forced.json_body["message"]
    assert world.trust("vulnerable-sfn") == COMPLIANT


@pytest.mark.parametrize("path", ["/roles/ghost", "/roles/ghost/remediate", "/roles/ghost/revert"])
def test_unknown_role_is_404(client: Client, world: World, path: str) -> None:
    response = client.http.get(path) if path.count("/") == 2 else post(client, path)
    assert response.status_code == 404
    assert "ghost" in response.json_body["Message"]


@pytest.mark.parametrize(
    ("path", "body", "raw", "message"),
    [
        ("/scans", None, "{not json", "malformed body"),
        ("/scans", ["dry_run"], None, "expected a JSON object"),
        ("/scans", {"dry_run": "yes"}, None, "dry_run"),
        ("/scans", {"dryrun": True}, None, "unknown field"),
        ("/scans", {"role_names": "vulnerable-sfn"}, None, "role_names"),
        ("/scans", {"role_names": []}, None, "role_names"),
        ("/scans", {"role_names": ["bad name!"]}, None, "invalid role name"),
        ("/scans", {"path_prefix": "teams"}, None, "path_prefix"),
        ("/scans", {"next_token": 7}, None, "next_token"),
        ("/scans", {"next_token": "bm90IGEgdG9rZW4"}, None, "next_token"),
        ("/roles/vulnerable-sfn/remediate", {"dry_run": 1}, None, "dry_run"),
        ("/roles/vulnerable-sfn/remediate", {"force": True}, None, "unknown field"),
        ("/roles/vulnerable-sfn/revert", {"force": "yes"}, None, "force"),
        ("/roles/vulnerable-sfn/revert", None, "[1,", "malformed body"),
    ],
)
def test_bad_input_is_400_with_a_message(
    client: Client, world: World, path: str, body: Any, raw: str | None, message: str
) -> None:
    response = post(client, path, body, raw)
    assert response.status_code == 400, response.body
    assert message in response.json_body["Message"]


@pytest.mark.parametrize("name", ["a" * 65, "star*name", "sp ace", "%00", "quote'name"])
def test_invalid_role_name_in_the_path_is_400(client: Client, world: World, name: str) -> None:
    assert client.http.get(f"/roles/{name}").status_code == 400


def test_every_route_requires_iam_authorisation() -> None:
    routes = app_module.app.routes
    for path, method in [
        ("/scans", "POST"),
        ("/roles/{role_name}", "GET"),
        ("/roles/{role_name}/remediate", "POST"),
        ("/roles/{role_name}/revert", "POST"),
    ]:
        assert type(routes[path][method].authorizer).__name__ == "IAMAuthorizer"


def test_a_scan_of_many_named_roles_continues_through_a_short_token(client: Client, world: World) -> None:
    # Given 1,000 role names (the most a request may name) and a budget that runs out at once
    object.__setattr__(world.deps.settings, "scan_budget_seconds", 0.000001)
    names = ["vulnerable-sfn", "compliant-sfn"] + [f"ghost-{i:03d}" for i in range(998)]
    report = post(client, "/scans", {"dry_run": True, "role_names": names}).json_body
    # Then the token stays small and continuing with it is accepted
    assert report["complete"] is False and len(report["next_token"]) < 200
    again = post(client, "/scans", {"dry_run": True, "role_names": names, "next_token": report["next_token"]})
    assert again.status_code == 200
    # And a token presented with another request is refused
    other = post(client, "/scans", {"dry_run": True, "role_names": names[:5], "next_token": report["next_token"]})
    assert other.status_code == 400


def test_a_report_without_any_role_still_names_the_account(client: Client, world: World) -> None:
    report = post(client, "/scans", {"dry_run": True, "role_names": ["ghost"]}).json_body
    assert report["account"] == "111122223333" and report["results"] == [] and report["missing"] == ["ghost"]
