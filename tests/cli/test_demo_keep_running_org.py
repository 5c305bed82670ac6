"""`deputy-guard demo --keep-running` serves the demo's organization: member accounts' fixes undone over HTTP."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.cli.test_demo_keep_running import exported, user_environment
from tests.e2e.conftest import CLI

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_api_revert_and_revert_with_account_act_in_a_member_account_of_the_running_demo() -> None:
    demo = subprocess.Popen(
        [CLI, "demo", "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=user_environment(),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout or []], daemon=True).start()

    def wait_for(text: str, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if text in line:
                return line
        raise AssertionError(f"the demo never printed {text!r}")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=120, check=False)

    try:
        # Given the running demo's export line and its hint for a member account's fixed role
        env = user_environment() | exported(wait_for("export AWS_ENDPOINT_URL=", 150).strip())
        hint = wait_for(" api revert payments-sfn --account ", 30)
        found = re.search(r"--account (\d{12})", hint)
        assert found is not None, hint
        member = found.group(1)
        # When a second shell asks the running bot's API to revert that member's role
        reverted = cli("api", "revert", "payments-sfn", "--account", member)
        # Then the bot reverts it in the member account, over HTTP
        assert reverted.returncode == 0, reverted.stderr
        assert json.loads(reverted.stdout)["status"] == "reverted"
        role = cli("api", "role", "payments-sfn", "--account", member)
        assert role.returncode == 0, role.stderr
        assert (json.loads(role.stdout)["verdict"], json.loads(role.stdout)["action"]) == ("non_compliant", "exempt")
        # And the CLI itself, with the demo's (central) credentials, reverts the sweep's fix in that account
        # through the member role, its records in the demo's central table
        local = cli("revert", "ledger-sfn", "--account", member)
        assert local.returncode == 0, local.stderr
        assert local.stdout.startswith(f"account {member}: restored the original trust policy of 'ledger-sfn'")
        # And a repeat through the API finds the work done
        again = cli("api", "revert", "ledger-sfn", "--account", member)
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "already_reverted", again.stderr
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
