"""Ctrl-C: one line saying what was done and what is left, exit 130, no traceback, every write audited.

Each command runs as a process; the test waits until it is verifiably mid-way (its progress line on a
terminal, or the kernel showing it blocked on its input) and then sends SIGINT, as a terminal does.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import pty
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from chalicelib.adapters import aws
from chalicelib.adapters.store import AuditTrail, ChangeStatus
from tests.cli.conftest import run
from tests.e2e.conftest import CLI, cli_env, create_role, trust
from tests.world import VULNERABLE

pytestmark = pytest.mark.e2e
LINE = re.compile(r"^interrupted: (\d+) roles? fixed, (\d+) scanned; (.+)$")
# The system calls a process blocks in while it waits for its input (read, openat), per architecture.
BLOCKING_CALLS = {"x86_64": {"0", "257"}, "aarch64": {"63", "56"}}
NO_CAP = {"DEPUTY_GUARD_MAX_FIXES_PER_RUN": "1000"}  # every role may be fixed in one run
WAIT_STEPS = 6000  # 100 ms polls at most: a process that never gets there fails the test, not hangs it


def poll(ready: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    """Wait until ``ready()`` (polled every 0.1 s, for a bounded number of polls) while the process runs."""
    for _ in range(WAIT_STEPS):
        if ready():
            return
        assert process.poll() is None, "the command ended before it could be interrupted"
        time.sleep(0.1)
    raise AssertionError("the command never got there")


def blocked_on_input(pid: int) -> bool:
    """Whether the kernel shows the process asleep in a read or an open (its input not there yet)."""
    try:
        call = Path(f"/proc/{pid}/syscall").read_text().split()[0]
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state == "S" and call in BLOCKING_CALLS.get(platform.machine(), set())


def closing(stderr: str) -> tuple[int, int, str]:
    """The one closing line (and nothing that looks like a traceback): fixed, scanned, what is left."""
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, stderr
    found = LINE.match(lines[0])
    assert found, lines[0]
    return int(found[1]), int(found[2]), found[3]


def on_terminal(
    argv: list[str], env: dict[str, str], shows: str, then: Callable[[], bool] = lambda: True
) -> tuple[int, str, str]:
    """Run on a terminal (progress shown); SIGINT once ``shows`` appears and ``then()`` holds.

    Returns the exit status, stdout and what the terminal showed.
    """
    controller, terminal = pty.openpty()
    process = subprocess.Popen([CLI, *argv], stdout=subprocess.PIPE, stderr=terminal, env=env)
    seen = b""
    try:
        os.set_blocking(controller, False)

        def shown() -> bool:
            nonlocal seen
            with contextlib.suppress(BlockingIOError):
                seen += os.read(controller, 65536)
            return shows.encode() in seen and then()

        poll(shown, process)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=120)
        with contextlib.suppress(BlockingIOError, OSError):
            seen += os.read(controller, 65536)
    finally:
        os.close(terminal)
        os.close(controller)
    return process.returncode, out.decode(), seen.decode()


class HeldCall:
    """A loopback proxy in front of the embedded AWS that holds one API action until released.

    A dry run lists a whole account in one call: holding that call keeps the scan verifiably mid-way, however
    fast or loaded the machine, so Ctrl-C lands while it reads and never after it has finished.
    """

    def __init__(self, upstream: str, action: str) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.held = 0  # how many times the action was asked for (a client that timed out asks again)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        held = self

        class Forward(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if f"Action={action}".encode() in body:
                    held.held += 1
                    held.arrived.set()
                    held.release.wait(120)
                skip = {"host", "content-length", "connection"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                request = urllib.request.Request(upstream + self.path, data=body, method="POST", headers=headers)
                try:
                    with opener.open(request, timeout=60) as answer:
                        status, answer_headers, data = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as refused:
                    status, answer_headers, data = refused.code, refused.headers, refused.read()
                self.send_response(status)
                for key, value in answer_headers.items():
                    if key.lower() not in {"content-length", "connection", "transfer-encoding", "date", "server"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextlib.contextmanager
def held_call(upstream: str, action: str) -> Iterator[HeldCall]:
    proxy = HeldCall(upstream, action)
    serving = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    serving.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        proxy.server.shutdown()
        proxy.server.server_close()


def any_fixed() -> bool:
    """Whether the scan has fixed a role yet (one ListRoles call: IAM lists in no promised order)."""
    roles = boto3.client("iam", region_name="us-east-1").list_roles(MaxItems=1000)["Roles"]
    return any(json.dumps(role["AssumeRolePolicyDocument"]).count("aws:SourceAccount") for role in roles)


@pytest.fixture
def many_roles(endpoint: str) -> str:
    """Enough vulnerable roles that a scan with fixes is still going when Ctrl-C comes."""
    for index in range(120):
        create_role(f"vulnerable-{index:03d}", VULNERABLE)
    return endpoint


def test_scan_fix_stops_between_roles_with_every_fix_audited(many_roles: str) -> None:
    # Given the audit table, and a fixing scan under way (its progress line shows roles scanned)
    assert run(many_roles, "setup").returncode == 0
    status, out, shown = on_terminal(
        ["scan", "--fix"], cli_env(many_roles, **NO_CAP), "scanning account", then=any_fixed
    )
    # Then one line says how many roles were fixed and scanned, and how to continue; exit 130
    assert status == 130 and out == ""
    fixed, scanned, left = closing(shown)
    assert "`deputy-guard scan --fix` again" in left and "audited" in left
    # And exactly the roles it counts were fixed, each with an applied (and so revertable) audit record
    changed = [f"vulnerable-{i:03d}" for i in range(120) if trust(f"vulnerable-{i:03d}") != VULNERABLE]
    assert 1 <= fixed == len(changed) < 120 and scanned >= fixed
    audit = AuditTrail(aws.DynamoTable(boto3.client("dynamodb", region_name="us-east-1"), "deputy-guard-e2e"))
    iam = boto3.client("iam", region_name="us-east-1")
    for name in changed:
        [record] = audit.history(iam.get_role(RoleName=name)["Role"]["Arn"])
        assert record.status is ChangeStatus.APPLIED, name
    # And a second run carries on where the first stopped
    assert run(many_roles, "scan", "--fix", "--format", "json", **NO_CAP).returncode == 0


def test_a_dry_run_scan_stops_with_the_line_and_nothing_changed(many_roles: str) -> None:
    # Given a dry run whose account listing is on its way (held until Ctrl-C has come)
    with held_call(many_roles, "GetAccountAuthorizationDetails") as proxy:
        status, out, shown = on_terminal(["scan"], cli_env(proxy.url), "scanning account", then=proxy.arrived.is_set)
        # (and it ended without waiting out the call in flight: no timeout, so the listing was never asked again)
        assert proxy.held == 1
    # Then one line, exit 130, nothing on stdout and nothing changed
    assert status == 130 and out == ""
    fixed, _scanned, left = closing(shown)
    assert fixed == 0 and "nothing was changed" in left
    assert all(trust(f"vulnerable-{i:03d}") == VULNERABLE for i in range(0, 120, 17))


def test_check_of_a_folder_stops_on_the_input_in_hand(tmp_path: Path) -> None:
    # Given a folder of three policies and then an input that never arrives (a named pipe nobody writes; named
    # on the command line, since a walk reads regular files only)
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("a.json", "b.json", "c.json"):
        (folder / name).write_text(json.dumps(VULNERABLE))
    os.mkfifo(tmp_path / "zz.json")
    process = subprocess.Popen(
        [CLI, "check", "--account", "111122223333", str(folder), str(tmp_path / "zz.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # When Ctrl-C comes while it waits on that input
    poll(lambda: blocked_on_input(process.pid), process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    # Then the line counts the three inputs checked, and the exit status is 130
    assert process.returncode == 130 and out == b""
    fixed, scanned, left = closing(err.decode())
    assert (fixed, scanned) == (0, 3) and "changes nothing" in left


def test_check_waiting_on_stdin_stops_with_the_line(tmp_path: Path) -> None:
    process = subprocess.Popen([CLI, "check"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    poll(lambda: blocked_on_input(process.pid), process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and out == b""
    assert closing(err.decode())[:2] == (0, 0)


def test_the_demo_stops_with_one_line_and_its_servers_down() -> None:
    process = subprocess.Popen(
        [CLI, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the demo is under way: it has begun its story
    assert first
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    text = err.decode()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    [line] = [line for line in text.splitlines() if line.startswith("interrupted")]
    assert "stand-ins are stopped" in line
