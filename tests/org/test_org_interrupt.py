"""`scan --accounts org` on a terminal: Ctrl-C gives one line and exit 130; progress carries no log record."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest

from tests.cli.test_interrupt import closing, on_terminal
from tests.org.conftest import CLI, OrgWorld

pytestmark = pytest.mark.e2e


def test_an_organization_scan_stops_between_accounts(org_world: OrgWorld) -> None:
    argv = ["scan", "--accounts", "org", "--concurrency", "1"]
    status, out, shown = on_terminal(argv, org_world.cli_env(), "scanned 1/")
    assert status == 130 and out == ""
    fixed, scanned, left = closing(shown)
    assert fixed == 0 and scanned >= 1 and "again" in left


def test_the_progress_line_carries_no_log_record(org_world: OrgWorld) -> None:
    # When the organization, one account of which cannot be scanned, is scanned on a terminal
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [CLI, "scan", "--accounts", "org"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=org_world.cli_env(),
            timeout=180,
            check=False,
        )
        os.set_blocking(controller, False)
        shown = os.read(controller, 1 << 20).decode()
    finally:
        os.close(terminal)
        os.close(controller)
    # Then the terminal shows the progress and the failed account's one line, and no log record
    assert process.returncode == 2 and org_world.broken in shown and "accounts…" in shown
    assert '"level":' not in shown and '"level":' not in process.stdout.decode()
