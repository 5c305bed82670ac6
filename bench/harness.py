"""Shared pieces of the benchmarks: a slow loopback AWS, call counters, fake credentials, statistics.

Nothing here talks to anything but 127.0.0.1 or moto in-process; every benchmark points boto3 at one of
them with fake credentials and an empty config file, so no real account can be reached.
"""

from __future__ import annotations

import io
import logging
import os
import platform
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"


# --- the machine ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures depend on: cores available to this process, CPU, Python, and when."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": cores,
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def versions(*names: str) -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# --- statistics -------------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Median, p95, min and max of durations given in seconds, in milliseconds."""
    return {
        "median_ms": round(statistics.median(seconds) * 1000, 3),
        "p95_ms": round(percentile(seconds, 95) * 1000, 3),
        "min_ms": round(min(seconds) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
    }


# --- fake AWS environment ---------------------------------------------------------------------------

# Fake credentials, us-east-1, and no profile or config file: nothing a benchmark runs can reach real AWS.
FAKE_AWS_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def vulnerable_trust() -> dict[str, Any]:
    """A Step Functions trust policy with neither confused-deputy condition."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def compliant_trust(account: str) -> dict[str, Any]:
    """AWS's own protected example, for ``account``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "states.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:states:us-east-1:{account}:stateMachine:*"},
                },
            }
        ],
    }


def use_fake_aws(endpoint: str | None) -> None:
    """Fake credentials, us-east-1, no profile or config file; ``endpoint`` (loopback) or none for moto in-process."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "DEPUTY_GUARD_")):
            del os.environ[key]
    os.environ.update(FAKE_AWS_ENV)
    if endpoint is not None:
        if not endpoint.startswith(f"http://{LOOPBACK}:"):
            raise ValueError(f"benchmarks only talk to loopback, not {endpoint}")
        os.environ["AWS_ENDPOINT_URL"] = endpoint


class CallCounter:
    """AWS API calls by ``service:Action``, counted by botocore's ``before-call`` hook on each client.

    ``before-call`` fires once per API call (retries happen below it), which is what "calls" means here;
    the latency server counts HTTP requests separately.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self._attached: set[int] = set()

    def attach(self, client: Any) -> Any:
        if id(client) not in self._attached:
            client.meta.events.register("before-call.*.*", self._count, unique_id=f"bench-counter-{id(self)}")
            self._attached.add(id(client))
        return client

    def _count(self, event_name: str, **_kwargs: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.calls.items()))


def count_project_clients(counter: CallCounter, services: Iterable[str] = ("iam", "dynamodb", "sns", "sts")) -> None:
    """Attach ``counter`` to the cached clients that ``chalicelib.adapters.aws.make_client`` hands out."""
    from chalicelib.adapters import aws

    for service in services:
        counter.attach(aws.make_client(service))


# --- a loopback AWS with a fixed latency per request -----------------------------------------------


class _Delayed:
    """WSGI middleware: every request waits ``latency`` seconds, is counted, then goes to moto."""

    def __init__(self, app: Any, latency: float) -> None:
        self._app = app
        self.latency = latency
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        key = _request_key(environ)
        with self._lock:
            self.requests[key] += 1
        if self.latency:
            time.sleep(self.latency)
        return self._app(environ, start_response)


def _request_key(environ: dict[str, Any]) -> str:
    """``service:Action`` of a signed AWS request (JSON protocols name it in X-Amz-Target, query ones in the form)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    service = "?"
    if "Credential=" in authorization:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            service = scope[3]
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
    return f"{service}:{action}"


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with persistent connections in front of a WSGI app, as AWS endpoints serve botocore.

    werkzeug's development server answers every request with ``Connection: close``, so each call would
    pay a new TCP connection (and a new server thread), which a client talking to AWS does not.
    """

    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle connection's thread ends after this
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]  # type: ignore[index,str-unpack]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, encoding="latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length) if length else "",
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = value
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
            started[:] = [status, headers]
            return lambda _data: None

        result = self.server.app(environ, start_response)  # type: ignore[attr-defined]
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        code, _, reason = started[0].partition(" ")
        self.send_response(int(code), reason)
        for name, value in started[1]:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve


class _KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver listens with a backlog of 5: a scan that opens its readers' connections together (16
    # per account, several accounts at once) overflows it, and each dropped SYN costs the client a 1 s
    # retransmission (or its 2 s connect timeout), which an AWS endpoint does not charge.
    request_queue_size = 1024

    def __init__(self, app: Any) -> None:
        super().__init__((LOOPBACK, 0), _KeepAliveHandler)
        self.app = app


class LatencyAws:
    """moto's server app on a free 127.0.0.1 port, every request delayed by ``latency`` seconds.

    The delay sits in front of moto in the server thread that handles the connection (each connection gets
    its own thread), so every AWS request pays it exactly once and concurrent requests overlap as they
    would against AWS. werkzeug's server (the default) closes every connection after one request;
    ``keep_alive=True`` serves HTTP/1.1 persistent connections instead, as AWS endpoints do.
    """

    def __init__(self, latency: float, *, keep_alive: bool = False) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._middleware = _Delayed(DomainDispatcherApplication(create_backend_app), latency)
        self._server: Any = (
            _KeepAliveServer(self._middleware)
            if keep_alive
            else make_server(LOOPBACK, 0, self._middleware, threaded=True, request_handler=MotoRequestHandler)
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def latency(self) -> float:
        return self._middleware.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._middleware.latency = value

    def requests(self) -> dict[str, int]:
        with self._middleware._lock:
            return dict(sorted(self._middleware.requests.items()))

    def reset_requests(self) -> None:
        with self._middleware._lock:
            self._middleware.requests.clear()

    def start(self) -> LatencyAws:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# --- output -----------------------------------------------------------------------------------------


class LineSink(io.TextIOBase):
    """A write-only stream that keeps only a line count: log formatting is paid, the terminal stays quiet."""

    def __init__(self) -> None:
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


@contextmanager
def quiet() -> Iterator[LineSink]:
    """Send stdout and stderr (the service's structured logs) to a LineSink for the duration."""
    sink = LineSink()
    with redirect_stdout(sink), redirect_stderr(sink):
        yield sink


def calls_text(calls: Mapping[str, int]) -> str:
    """``iam:GetRole 1, dynamodb:PutItem 2`` or ``none``."""
    return ", ".join(f"{key} {count:,}" for key, count in calls.items()) or "none"
