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
# How often a server's loop checks for shutdown: stop() returns within this (socketserver's default, 0.5 s,
# made every stop of the demo and of a test wait half a second).
POLL_SECONDS = 0.02


class EmbeddedAws:
    """moto's server application on a free loopback port (real HTTP; point boto3 at ``url``).

    The same application and request handler as moto's ThreadedMotoServer, behind one correction: moto's
    sts:AssumeRole hands out credentials for any role ARN, while AWS refuses a role that does not exist or
    does not trust the caller's account, and the organization demo and tests rely on that refusal
    (deputy_guard.embedded_org.StrictAssumeRole). ``strict_assume_role=False`` serves moto unchanged.
    """

    def __init__(self, *, strict_assume_role: bool = True) -> None:
        try:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        except ImportError as exc:  # moto is a development/demo dependency, not a runtime one
            raise RuntimeError("the embedded AWS needs moto's server: pip install 'deputy-guard[demo]'") from exc
        from deputy_guard.embedded_org import StrictAssumeRole

        app: Any = DomainDispatcherApplication(create_backend_app)
        self._app = StrictAssumeRole(app) if strict_assume_role else app
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> EmbeddedAws:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        # moto's server logs every request through werkzeug; the demo's own story is what matters.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server(LOOPBACK, 0, self._app, threaded=True, request_handler=MotoRequestHandler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        self._thread.start()
        return self

    @property
    def requests(self) -> int:
        """Requests served so far (counted only with strict_assume_role, the default)."""
        return int(getattr(self._app, "requests", 0))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class SlackStandIn:
    """A local HTTP server that accepts Slack incoming-webhook posts and keeps what arrived.

    ``script`` lists (status, headers) answers to give in order before settling on 200, so tests can
    play 429 with Retry-After or a 500. Posts to a click's ``response_url`` (under ``response_prefix``,
    as Slack's are under ``https://hooks.slack.com/actions/``) are kept in ``responses``.
    """

    path: str = "/services/T0DEMO0000/B0DEMO0000/embedded-demo-webhook"
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    response_prefix: str = "/actions/"
    responses: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    @property
    def response_base(self) -> str:
        """Where this stand-in's response URLs live (DEPUTY_GUARD_SLACK_RESPONSE_URL_BASE for the bot)."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.response_prefix}"

    def response_url(self, name: str = "T0DEMO0000/1000000001/embedded-demo-response") -> str:
        """A response_url like the one Slack puts in each click (one per interaction)."""
        return self.response_base + name

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
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        self._thread.start()
        return self

    def _answer(self, path: str, body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            if path.startswith(self.response_prefix):
                try:
                    self.responses.append({"path": path, **json.loads(body)})
                except ValueError:
                    return 400, {}
                return 200, {}
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
        self._app_class: type | None = None
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
        # create_local_server re-classes the app object; stop() puts its class back, so the app can be served
        # again in the same process (tests start one local API after another).
        self._app_class = type(self._app)
        self._server = create_local_server(self._app, config, LOOPBACK, 0)
        self._server.server.RequestHandlerClass = functools.partial(QuietHandler, app_object=self._app, config=config)
        host, port = self._server.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        # serve_forever of the wrapper prints a banner; the inner server's does not.
        self._thread = threading.Thread(target=self._server.server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.server.shutdown()
            self._server.server.server_close()
        if self._app_class is not None:
            self._app.__class__ = self._app_class
            self._app_class = None
