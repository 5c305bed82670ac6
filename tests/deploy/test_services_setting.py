""".chalice/config.json carries DEPUTY_GUARD_SERVICES: every function of every stage guards the same services,
Step Functions by default, and a deployer widens it in one place."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.catalogue import DEFAULT_SERVICES
from chalicelib.domain.settings import SettingsError, load_settings
from tests.deploy.support import CONFIG_FILE, load_json

STAGES = ("dev", "prod")


def functions(chalice_graph: Any, stage: str) -> dict[str, Any]:
    from chalice.deploy.models import LambdaFunction

    return {m.resource_name: m for m in chalice_graph(stage) if isinstance(m, LambdaFunction)}


def test_the_shared_environment_names_the_selection() -> None:
    assert load_json(CONFIG_FILE)["environment_variables"]["DEPUTY_GUARD_SERVICES"] == "states"


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_guards_step_functions_by_default(chalice_graph: Any, stage: str) -> None:
    for name, function in functions(chalice_graph, stage).items():
        assert function.environment_variables["DEPUTY_GUARD_SERVICES"] == "states", name
        assert load_settings(function.environment_variables).services == DEFAULT_SERVICES, name


def test_a_bad_selection_fails_fast_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="DEPUTY_GUARD_SERVICES: 'ec2' is not in the catalogue"):
        load_settings({"DEPUTY_GUARD_SERVICES": "states,ec2"})
