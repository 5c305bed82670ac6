"""The CLI as a user runs it: a subprocess against moto's server over HTTP (fixtures shared with tests/e2e)."""

from __future__ import annotations

import subprocess

from tests.e2e.conftest import CLI, cli_env, endpoint, moto_server, slack

__all__ = ["endpoint", "moto_server", "run", "slack"]


def run(endpoint: str, *args: str, env: dict[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    """``deputy-guard ARGS`` with a user's environment pointed at the embedded AWS."""
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else cli_env(endpoint, **extra),
        check=False,
    )
