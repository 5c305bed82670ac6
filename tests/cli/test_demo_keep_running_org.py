"""`deputy-guard demo --keep-running` serves the demo's organization: member accounts' fixes undone over HTTP."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.cli.test_demo_keep_running import exported, running_demo, user_environment
from tests.e2e.conftest import CLI

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_api_revert_and_revert_with_account_act_in_a_member_account_of_the_running_demo() -> None:
    with running_demo() as wait_for:
        # Given the running demo's export line and its hint for a member account's fixed role
        env = user_environment() | exported(wait_for("export AWS_ENDPOINT_URL=", 150).strip())
        hint = wait_for(" api revert payments-sfn --account ", 30)
        found = re.search(r"--account (\d{12})", hint)
        assert found is not None, hint
        member = found.group(1)
        # When a second shell asks the running bot's API to revert that member's role
        reverted = cli(env, "api", "revert", "payments-sfn", "--account", member)
        # Then the bot reverts it in the member account, over HTTP
        assert reverted.returncode == 0, reverted.stderr
        assert json.loads(reverted.stdout)["status"] == "reverted"
        role = cli(env, "api", "role", "payments-sfn", "--account", member)
        assert role.returncode == 0, role.stderr
        assert (json.loads(role.stdout)["verdict"], json.loads(role.stdout)["action"]) == ("non_compliant", "exempt")
        # And the CLI itself, with the demo's (central) credentials, reverts the sweep's fix in that account
        # through the member role, its records in the demo's central table
        local = cli(env, "revert", "ledger-sfn", "--account", member)
        assert local.returncode == 0, local.stderr
        assert local.stdout.startswith(f"account {member}: restored the original trust policy of 'ledger-sfn'")
        # And a repeat through the API finds the work done
        again = cli(env, "api", "revert", "ledger-sfn", "--account", member)
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "already_reverted", again.stderr
