""".chalice/config.json: the stages, their environment and the per-function settings, as Chalice reads them."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

import app as chalice_app
from chalicelib.domain.models import Mode
from chalicelib.domain.settings import DEFAULT_SCAN_BUDGET_SECONDS, MAX_SCAN_BUDGET_SECONDS, load_settings
from tests.deploy.support import CONFIG_FILE, PROJECT, load_json

STAGES = ("dev", "prod")
API_GATEWAY_LIMIT_SECONDS = 29


def known_variables() -> set[str]:
    """Every environment variable the bot reads: the names settings.py and runtime.py spell out, and LOG_LEVEL."""
    names = {"LOG_LEVEL"}  # read by Powertools Logger itself
    for module in ("domain/settings.py", "runtime/handlers.py"):
        tree = ast.parse((PROJECT / "chalicelib" / module).read_text(encoding="utf-8"))
        names |= {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and re.fullmatch(r"(DEPUTY_GUARD|POWERTOOLS)_[A-Z_]+", n.value)
        }
    return names


def functions(chalice_graph: Any, stage: str) -> dict[str, Any]:
    from chalice.deploy.models import LambdaFunction

    return {m.resource_name: m for m in chalice_graph(stage) if isinstance(m, LambdaFunction)}


def test_the_stages_are_dev_and_prod() -> None:
    assert tuple(sorted(load_json(CONFIG_FILE)["stages"])) == STAGES


def test_the_scan_finds_the_settings_the_design_names() -> None:
    assert known_variables() >= {
        "DEPUTY_GUARD_MODE",
        "DEPUTY_GUARD_REQUIRE",
        "DEPUTY_GUARD_SNS_TOPIC_ARN",
        "DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER",
        "DEPUTY_GUARD_TABLE",
        "DEPUTY_GUARD_MAX_FIXES_PER_RUN",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
    }


@pytest.mark.parametrize("stage", STAGES)
def test_every_configured_variable_is_one_the_bot_reads(chalice_graph: Any, stage: str) -> None:
    for name, function in functions(chalice_graph, stage).items():
        unknown = set(function.environment_variables) - known_variables()
        assert not unknown, f"{stage}/{name}: the bot does not read {sorted(unknown)}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_environment_is_valid_settings(chalice_graph: Any, stage: str) -> None:
    for name, function in functions(chalice_graph, stage).items():
        settings = load_settings(function.environment_variables)
        assert settings.table == f"deputy-guard-{stage}", name
        assert settings.slack_webhook_parameter == f"/deputy-guard/{stage}/slack-webhook", name
        assert settings.slack_webhook_url is None, name  # a URL is a secret: never in config.json


def test_prod_starts_in_notify_mode(chalice_graph: Any) -> None:
    for function in functions(chalice_graph, "prod").values():
        assert load_settings(function.environment_variables).mode is Mode.NOTIFY


@pytest.mark.parametrize("stage", STAGES)
def test_the_event_handler_has_reserved_concurrency(chalice_graph: Any, stage: str) -> None:
    handlers = functions(chalice_graph, stage)
    assert handlers["on_iam_event"].reserved_concurrency >= 1
    assert handlers["sweep"].reserved_concurrency == 1  # two sweeps never run at once


@pytest.mark.parametrize("stage", STAGES)
def test_timeouts_fit_each_trigger(chalice_graph: Any, stage: str) -> None:
    handlers = functions(chalice_graph, stage)
    api = handlers["api_handler"].timeout
    # API Gateway gives up after 29 s; a scan stops at its budget, well before the function's timeout
    assert DEFAULT_SCAN_BUDGET_SECONDS < MAX_SCAN_BUDGET_SECONDS < api <= API_GATEWAY_LIMIT_SECONDS
    assert handlers["sweep"].timeout == 900  # Lambda's maximum: the sweep pages through every role
    assert handlers["on_iam_event"].timeout >= 30


@pytest.mark.parametrize("stage", STAGES)
def test_logs_are_kept_for_a_bounded_time(chalice_graph: Any, stage: str) -> None:
    for name, function in functions(chalice_graph, stage).items():
        assert function.log_group is not None and function.log_group.retention_in_days > 0, name


def test_the_event_handler_and_the_sweep_are_wired_to_their_triggers(chalice_graph: Any) -> None:
    from chalice.deploy.models import CloudWatchEvent, ScheduledEvent

    graph = chalice_graph("prod")
    rules = [m for m in graph if isinstance(m, CloudWatchEvent)]
    schedules = [m for m in graph if isinstance(m, ScheduledEvent)]
    assert [(r.lambda_function.resource_name, json.loads(r.event_pattern)) for r in rules] == [
        ("on_iam_event", chalice_app.IAM_EVENT_PATTERN)
    ]
    assert [(s.lambda_function.resource_name, s.schedule_expression) for s in schedules] == [
        ("sweep", chalice_app.SWEEP_SCHEDULE)
    ]


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_runs_on_arm64(chalice_graph: Any, stage: str) -> None:
    # chalice deploy and chalice package both read lambda_architecture; the runtime comes from the interpreter
    for name, function in functions(chalice_graph, stage).items():
        assert function.architecture == "arm64", name
