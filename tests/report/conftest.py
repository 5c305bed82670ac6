"""The report tests run the CLI against moto's server over HTTP (fixtures shared with tests/e2e and tests/org)."""

from __future__ import annotations

from tests.e2e.conftest import endpoint, moto_server
from tests.org.conftest import org_server, org_world

__all__ = ["endpoint", "moto_server", "org_server", "org_world"]
