"""What a user sees on the terminal: results and one-line errors, never log records unless --verbose, and
flags that cannot apply refused rather than ignored. The CLI runs as a process."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli.conftest import run
from tests.e2e.conftest import CLI, create_role
from tests.world import VULNERABLE

pytestmark = pytest.mark.e2e
LOG_RECORD = '"level":'  # every record of the bot's structured log carries its level


def test_a_fix_with_no_notification_channel_says_nobody_was_told(endpoint: str) -> None:
    # Given the audit table, a role to fix and no Slack webhook nor SNS topic
    assert run(endpoint, "setup").returncode == 0
    create_role("orders-sfn", VULNERABLE)
    # When it is fixed
    result = run(endpoint, "scan", "--fix", "--format", "json")
    # Then the fix is reported, and one line says no owner was told
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["action"] == "fixed"
    [note] = result.stderr.splitlines()
    assert "no notification channel is configured" in note and "1 role fixed" in note


def test_a_fix_with_a_channel_has_no_such_note(endpoint: str, slack) -> None:  # type: ignore[no-untyped-def]
    assert run(endpoint, "setup").returncode == 0
    create_role("orders-sfn", VULNERABLE)
    result = run(endpoint, "scan", "--fix", DEPUTY_GUARD_SLACK_WEBHOOK_URL=slack.url)
    assert result.returncode == 0, result.stderr
    assert "notification channel" not in result.stderr


def test_a_dry_run_says_nothing_about_channels(endpoint: str) -> None:
    create_role("orders-sfn", VULNERABLE)
    assert "notification channel" not in run(endpoint, "scan").stderr


def test_no_log_record_reaches_the_terminal_unless_verbose(endpoint: str) -> None:
    # Given a fix that the bot logs (its decision, at INFO) with LOG_LEVEL asking for everything
    assert run(endpoint, "setup").returncode == 0
    create_role("orders-sfn", VULNERABLE)
    quiet = run(endpoint, "scan", "--fix", "--role", "orders-sfn", LOG_LEVEL="DEBUG")
    assert LOG_RECORD not in quiet.stderr and LOG_RECORD not in quiet.stdout
    # When --verbose asks for them, they are on stderr (stdout keeps the results only)
    create_role("billing-sfn", VULNERABLE)
    loud = run(endpoint, "scan", "--fix", "--role", "billing-sfn", "--verbose", LOG_LEVEL="DEBUG")
    assert LOG_RECORD in loud.stderr and LOG_RECORD not in loud.stdout


def test_completion_into_a_closed_pipe_is_quiet() -> None:
    # When the completion script is piped into a reader that has already gone (`head -n 0` reads nothing)
    result = subprocess.run(
        f"'{CLI}' completion zsh | head -n 0; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then the writer stops without a word, with the status a shell gives a writer whose reader went away
    assert result.stderr == "", result.stderr
    assert result.returncode == 141


def test_demo_json_with_keep_running_is_refused_at_once() -> None:
    result = subprocess.run(
        [CLI, "demo", "--json", "--keep-running"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "--json and --keep-running cannot be combined" in line


def test_the_member_role_alone_is_refused(endpoint: str) -> None:
    result = run(endpoint, "scan", "--member-role", "auditor", "--concurrency", "2")
    assert result.returncode == 2 and "--member-role and --concurrency" in result.stderr
