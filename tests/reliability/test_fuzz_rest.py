"""Hostile REST requests through chalice.test.Client: 400 or 404 with a message, never a 500."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import app as app_module
from chalicelib.runtime import container
from tests.reliability.conftest import Account
from tests.reliability.strategies import flag_bodies, odd_role_names, raw_bodies, scan_bodies
from tests.reliability.support import FUZZ_COUNTS
from tests.world import COMPLIANT, FOREIGN, VULNERABLE

MakeAccount = Callable[..., Account]
JSON = {"Content-Type": "application/json"}
ROLES = ["vulnerable-sfn", "compliant-sfn", "foreign-sfn"]
# 403: API Gateway's (and chalice local's) answer to a path no route matches; 409: a refused change.
ACCEPTABLE = {200, 400, 403, 404, 409}
REST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def acct(account: MakeAccount) -> Account:
    made = account(mode="notify", idempotent=False)
    for name, document in zip(ROLES, (VULNERABLE, COMPLIANT, FOREIGN), strict=True):
        made.create_role(name, document)
    container.install(made.deps)
    return made


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(app_module.app) as test_client:
        yield test_client


def check(response: Any) -> None:
    """Never a 5xx; every client error says what was wrong."""
    assert response.status_code in ACCEPTABLE, (response.status_code, response.body[:300])
    if response.status_code == 400:
        assert json.loads(response.body)["Message"]


def payload(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body)


@REST
@given(body=st.one_of(scan_bodies, raw_bodies))
def test_scans_answers_any_body_without_a_server_error(acct: Account, client: Client, body: Any) -> None:
    FUZZ_COUNTS["REST: POST /scans bodies"] += 1
    check(client.http.post("/scans", headers=JSON, body=payload(body)))


@REST
@given(
    name=st.one_of(odd_role_names, st.sampled_from(ROLES)),
    route=st.sampled_from(["get", "remediate", "revert"]),
    body=st.one_of(flag_bodies, raw_bodies, st.just("")),
)
def test_role_routes_answer_any_name_and_body_without_a_server_error(
    acct: Account, client: Client, name: str, route: str, body: Any
) -> None:
    FUZZ_COUNTS["REST: /roles/{role_name} names, routes and bodies"] += 1
    path = "/roles/" + quote(name, safe="", errors="surrogatepass")
    if route == "get":
        response = client.http.get(path)
    else:
        response = client.http.post(f"{path}/{route}", headers=JSON, body=payload(body))
    check(response)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[" * 100_000, id="nested-past-the-recursion-limit"),
        pytest.param('{"a":' * 5_000 + "1" + "}" * 5_000, id="objects-past-the-recursion-limit"),
        pytest.param("\udcff", id="not-encodable-as-utf-8"),
    ],
)
@pytest.mark.parametrize("path", ["/scans", "/roles/vulnerable-sfn/remediate", "/roles/vulnerable-sfn/revert"])
def test_bodies_json_cannot_parse_are_a_400(client: Client, path: str, raw: str) -> None:
    # When a body the JSON parser cannot take is posted (no AWS needed: the body is read first)
    response = client.http.post(path, headers=JSON, body=raw)
    # Then it is a 400 with a message
    assert response.status_code == 400
    assert json.loads(response.body)["Message"].startswith("malformed body")


def test_a_crafted_next_token_is_a_400(acct: Account, client: Client) -> None:
    # Given a token shaped like the bot's own, but with a marker that is not a string
    from chalicelib.service.scan import request_digest
    from tests.reliability.strategies import token_of

    token = token_of({"request": request_digest(None, "/"), "marker": {"Marker": 1}, "skip": -1})
    # When it is sent to continue a scan
    response = client.http.post("/scans", headers=JSON, body=json.dumps({"next_token": token}))
    # Then it is refused as a token the bot did not issue
    assert response.status_code == 400
    assert "next_token" in json.loads(response.body)["Message"]
