"""The embedded default: moto's server as AWS, a local Slack webhook, and the REST API over loopback.

Everything listens on 127.0.0.1 on a free port and stops cleanly; nothing leaves the machine. Used by
``deputy-guard demo`` and by the end-to-end tests.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"


class EmbeddedAws:
    """moto's ThreadedMotoServer on a free loopback port (real HTTP; point boto3 at ``url``)."""

    def __init__(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # moto is a development/demo dependency, not a runtime one
            raise RuntimeError("the embedded AWS needs moto's server: pip install 'deputy-guard[demo]'") from exc
        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
        self.url = ""

    def start(self) -> EmbeddedAws:
        # moto's server logs every request through werkzeug; the demo's own story is what matters.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()


@dataclass
class SlackStandIn:
    """A local HTTP server that accepts Slack incoming-webhook posts and keeps what arrived.

    ``script`` lists (status, headers) answers to give in order before settling on 200, so tests can
    play 429 with Retry-After or a 500.
    """

    path: str = "/services/T0DEMO0000/B0DEMO0000/embedded-demo-webhook"
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def start(self) -> SlackStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers = stand_in._answer(self.path, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _answer(self, path: str, body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.attempts += 1
            if path != self.path:
                return 404, {}
            if self.script:
                return self.script.pop(0)
            try:
                self.received.append(json.loads(body))
            except ValueError:
                return 400, {}
            return 200, {}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class LocalApi:
    """The app's REST routes served over HTTP on loopback by Chalice's local server (in this process)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> LocalApi:
        from chalice.config import Config
        from chalice.local import ChaliceRequestHandler, create_local_server

        class QuietHandler(ChaliceRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

        # The same server `chalice local` builds (create_local_server is its public entry point); only the
        # request handler is swapped, through socketserver's documented RequestHandlerClass, to keep the
        # console quiet.
        config = Config.create(chalice_stage="demo", app_name="deputy-guard")
        warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode")
        self._server = create_local_server(self._app, config, LOOPBACK, 0)
        self._server.server.RequestHandlerClass = functools.partial(QuietHandler, app_object=self._app, config=config)
        host, port = self._server.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        # serve_forever of the wrapper prints a banner; the inner server's does not.
        self._thread = threading.Thread(target=self._server.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.server.shutdown()
            self._server.server.server_close()
