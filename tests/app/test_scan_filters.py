"""POST /scans refuses role_names with path_prefix, as `deputy-guard scan --role --path-prefix` does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.runtime import container
from tests.world import VULNERABLE, World

MakeWorld = Callable[..., World]


@pytest.fixture
def client(make_world: MakeWorld) -> Iterator[Client]:
    world = make_world()
    world.create_role("orders-sfn", VULNERABLE, path="/teams/")
    container.install(world.deps)
    with Client(app_module.app) as test_client:
        yield test_client


def scan(client: Client, body: dict[str, object]) -> Any:
    return client.http.post("/scans", headers={"Content-Type": "application/json"}, body=json.dumps(body))


def test_names_and_a_path_prefix_together_are_a_400(client: Client) -> None:
    response = scan(client, {"role_names": ["orders-sfn"], "path_prefix": "/other/"})
    assert response.status_code == 400
    assert "cannot be combined" in json.dumps(response.json_body)


def test_either_filter_alone_is_fine(client: Client) -> None:
    assert scan(client, {"role_names": ["orders-sfn"]}).status_code == 200
    by_path = scan(client, {"path_prefix": "/teams/"})
    assert [r["role_name"] for r in by_path.json_body["results"]] == ["orders-sfn"]
