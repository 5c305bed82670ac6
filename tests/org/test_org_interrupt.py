"""Ctrl-C during `scan --accounts org`: one line, exit 130, no traceback; accounts not started stay untouched."""

from __future__ import annotations

import pytest

from tests.cli.test_interrupt import closing, on_terminal
from tests.org.conftest import OrgWorld

pytestmark = pytest.mark.e2e


def test_an_organization_scan_stops_between_accounts(org_world: OrgWorld) -> None:
    argv = ["scan", "--accounts", "org", "--concurrency", "1"]
    status, out, shown = on_terminal(argv, org_world.cli_env(), "scanned 1/")
    assert status == 130 and out == ""
    fixed, scanned, left = closing(shown)
    assert fixed == 0 and scanned >= 1 and "again" in left
