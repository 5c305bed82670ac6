"""Shared helpers for the `check PATH...` tests: the project's own IaC fixtures, and a real CLI process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IAC = REPO / "tests" / "fixtures" / "iac"
OWN = "111122223333"
FOREIGN = "444455556666"


def run_cli(*args: str, stdin: str | int = "", cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``deputy-guard`` in a real process, as CI and pre-commit run it; ``stdin`` is text, or a descriptor."""
    return subprocess.run(
        [sys.executable, "-m", "deputy_guard.cli", *args],
        input=stdin if isinstance(stdin, str) else None,
        stdin=stdin if isinstance(stdin, int) else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def iac() -> Path:
    return IAC
