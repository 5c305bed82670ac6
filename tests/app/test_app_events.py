"""The Chalice handlers through chalice.test.Client: on_iam_event and sweep wired to the service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.runtime import container
from chalicelib.runtime import handlers as runtime
from tests.world import VULNERABLE, World, load_event

MakeWorld = Callable[..., World]


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(app_module.app) as test_client:
        yield test_client


def test_on_iam_event_fixes_through_the_real_handler(make_world: MakeWorld, client: Client) -> None:
    world = make_world(mode="enforce")
    world.create_role("order-pipeline-sfn")
    container.install(world.deps)
    response = client.lambda_.invoke("on_iam_event", load_event("CreateRole-states-vulnerable.json"))
    assert response.payload["action"] == "fixed"
    assert world.trust("order-pipeline-sfn") != VULNERABLE


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"detail": "garbage"},
        {"version": "0", "id": "x", "source": "aws.iam", "detail-type": "AWS API Call via CloudTrail", "detail": {}},
        {
            "version": "0",
            "id": "x",
            "source": "aws.iam",
            "detail": {"eventSource": "iam.amazonaws.com", "eventName": "CreateRole", "requestParameters": 7},
        },
    ],
)
def test_malformed_event_is_logged_and_dropped(
    make_world: MakeWorld, client: Client, payload: dict, caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world(mode="enforce")
    container.install(world.deps)
    with caplog.at_level("INFO"):
        response = client.lambda_.invoke("on_iam_event", payload)
    assert response.payload["status"] == "skipped"
    assert any(r.getMessage() == "event skipped" for r in caplog.records)


def test_sweep_handler_runs_the_configured_mode(make_world: MakeWorld, client: Client) -> None:
    world = make_world(mode="enforce")
    for name in ("sfn-a", "sfn-b"):
        world.create_role(name)
    container.install(world.deps)
    response = client.lambda_.invoke(
        "sweep",
        {
            "version": "0",
            "id": "s1",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "111122223333",
            "time": "2026-11-29T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {},
        },
    )
    assert response.payload["status"] == "complete"
    assert response.payload["actions"] == {"fixed": 2}
    assert world.trust("sfn-a") != VULNERABLE


def test_settings_come_from_the_environment_at_first_use(
    make_world: MakeWorld, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_world()  # moto running, table created
    monkeypatch.setenv("DEPUTY_GUARD_MODE", "dry-run")
    container.reset()
    assert container.settings().mode.value == "dry-run"


def test_bad_setting_fails_fast_naming_the_variable(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPUTY_GUARD_MODE", "sometimes")
    container.reset()
    with pytest.raises(runtime.Misconfigured, match="DEPUTY_GUARD_MODE"):
        runtime.on_iam_event(load_event("CreateRole-states-vulnerable.json"), None)


def test_bad_log_level_is_reported_by_name_not_by_a_logging_crash(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    container.reset()
    with pytest.raises(runtime.Misconfigured, match="LOG_LEVEL"):
        runtime.observe(
            SimpleNamespace(context=None),
            lambda _event: runtime.on_iam_event(load_event("CreateRole-states-vulnerable.json"), None),
        )
