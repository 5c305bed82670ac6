"""`deputy-guard demo --keep-running`: its export line lets another shell's `scan --fix` notify, shown by the demo."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import CLI
from tests.world import VULNERABLE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def user_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_", "MOTO_"))}
    return {k: v for k, v in env.items() if k.lower() != "no_proxy"}


def exported(line: str) -> dict[str, str]:
    """What a shell gets from the demo's ``unset AWS_PROFILE; export A=1 B=2`` line."""
    words = shlex.split(line.split("export ", 1)[1])
    return dict(word.split("=", 1) for word in words)


@contextmanager
def running_demo() -> Iterator[Callable[[str, float], str]]:
    """``deputy-guard demo --keep-running`` as a process; yields ``wait_for(text, seconds)`` over its output lines."""
    demo = subprocess.Popen(
        [CLI, "demo", "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=user_environment(),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout or []], daemon=True).start()

    def wait_for(predicate: str, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if predicate in line:
                return line
        raise AssertionError(f"the demo never printed {predicate!r}")

    try:
        yield wait_for
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)


def test_a_second_shell_fixes_and_the_demo_shows_the_messages() -> None:
    with running_demo() as wait_for:
        # Given the running demo's export line, as a user pastes it into a second shell
        env = user_environment() | exported(wait_for("export AWS_ENDPOINT_URL=", 150).strip())
        assert env["DEPUTY_GUARD_SNS_TOPIC_ARN"].startswith("arn:aws:sns:")
        assert env["DEPUTY_GUARD_SLACK_WEBHOOK_URL"].startswith("http://127.0.0.1:")
        assert env["DEPUTY_GUARD_API_URL"].startswith("http://127.0.0.1:")
        iam = boto3.client(
            "iam",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
        )
        iam.create_role(RoleName="second-shell-sfn", AssumeRolePolicyDocument=json.dumps(VULNERABLE))
        # When that shell fixes the account
        fixed = subprocess.run(
            [CLI, "scan", "--fix"], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert "second-shell-sfn" in fixed.stdout and "fixed" in fixed.stdout, fixed.stderr
        # Then the owners' digest reaches the demo's Slack stand-in and SNS topic, and the demo shows both
        # (the demo may still be printing messages of its own story first: wait for the digest's two lines)
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            any("SNS:" in line and "action=digest" in line for line in seen)
            and any("Slack:" in line and "1 role" in line for line in seen)
        ):
            seen.append(wait_for("", deadline - time.monotonic()))
        assert any("SNS:" in line and "action=digest" in line for line in seen), seen
        assert any("Slack:" in line and "1 role" in line for line in seen), seen
        # And the REST API the line names answers the CLI's signed calls
        api = subprocess.run(
            [CLI, "api", "role", "second-shell-sfn"], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert api.returncode == 0 and json.loads(api.stdout)["verdict"] == "compliant", api.stderr


RUNNABLE = "<!-- runnable against `deputy-guard demo --keep-running` -->"


def runnable_blocks() -> list[str]:
    """The commands of the README's shell blocks marked as runnable against the running demo."""
    from tests.cli.doc_commands import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands: list[str] = []
    for part in text.split(RUNNABLE)[1:]:
        block = part.split("```sh\n", 1)[1].split("```", 1)[0]
        commands += [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    return commands


def test_the_readme_blocks_marked_runnable_run_against_the_demo(tmp_path: Path) -> None:
    # Given the README's marked blocks, and the demo kept running
    commands = runnable_blocks()
    assert len(commands) >= 3
    with running_demo() as wait_for:
        line = wait_for("export AWS_ENDPOINT_URL=", 150)
        env = user_environment() | exported(line.strip())
        env["PATH"] = f"{os.path.dirname(CLI)}:{env.get('PATH', '')}"
        # When each command runs in a second shell with the demo's export line
        for command in commands:
            result = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120, check=False
            )
            # Then it runs: 0 clean or 1 findings to act on, never an error or a traceback
            assert result.returncode in (0, 1), (command, result.stderr)
            assert "Traceback" not in result.stderr and "error:" not in result.stderr, (command, result.stderr)
            assert result.stdout, command
        assert (tmp_path / "reports" / "deputy-guard-scan.html").exists()
