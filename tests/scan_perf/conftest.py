"""The scan's overlap, pacing and report, against moto: seeded accounts, IAM call probes, virtual pacing."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.adapters import aws
from chalicelib.service.scan import ScanReport
from tests.pacing import VirtualPacing, record_backoffs
from tests.reliability.support import error_response, query_params
from tests.world import ACCOUNT, COMPLIANT, FOREIGN, LAMBDA_ONLY, VULNERABLE, World

DOCUMENTS = {"lambda": LAMBDA_ONLY, "compliant": COMPLIANT, "vulnerable": VULNERABLE, "foreign": FOREIGN}
FLAGGED = ("vulnerable", "foreign")
_NOWHERE = "https://throttled.invalid/"


def seed(counts: dict[str, int]) -> list[str]:
    """Create roles straight in moto's IAM backend (fast enough for accounts of several pages)."""
    from moto.backends import get_backend

    backend = get_backend("iam")[ACCOUNT]["global"]
    names = []
    for kind, count in counts.items():
        text = json.dumps(DOCUMENTS[kind])
        for index in range(count):
            name = f"{kind}-{index:04d}"
            backend.create_role(name, text, "/", None, "", [{"Key": "owner", "Value": "team-a"}], None)
            names.append(name)
    return names


def rows(report: ScanReport) -> list[dict[str, Any]]:
    """The report's rows, in the order IAM listed the roles."""
    return list(report.to_dict()["results"])


@dataclass
class Probe:
    """Watches one IAM operation on the bot's client: calls in order, how many at once, optional holds."""

    operation: str
    hold: Callable[[str, int], object] | None = None  # (role or marker, call number) -> may block the call
    seen: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> Probe:
        events = aws.make_client("iam").meta.events
        events.register(f"before-parameter-build.iam.{self.operation}", self._start)
        events.register(f"after-call.iam.{self.operation}", self._end)
        events.register(f"after-call-error.iam.{self.operation}", self._end)
        return self

    def _start(self, params: dict[str, Any], **_: Any) -> None:
        key = str(params.get("RoleName") or params.get("Marker") or "")
        with self._lock:
            number = len(self.seen)
            self.seen.append(key)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        if self.hold is not None:
            self.hold(key, number)

    def _end(self, **_: Any) -> None:
        with self._lock:
            self.in_flight -= 1


class Timeline:
    """The order of the bot's IAM calls, across threads: ``("ListRoles", marker)``, ``("ListRoleTags", name)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def install(self) -> Timeline:
        aws.make_client("iam").meta.events.register("before-parameter-build.iam.*", self._record)
        return self

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, str(params.get("RoleName") or params.get("Marker") or "")))


class ThrottleFirstAttempts:
    """IAM answers ``Throttling`` (HTTP 400, as IAM sends it) to the first attempt of each request.

    Injected where IAM would produce it, on the bot's own client (``before-send``), so botocore parses a
    real error response and its retry mode does the rest. A request is keyed by action and role name or
    marker, so each one is refused exactly once, whichever thread sends it.
    """

    def __init__(self, operations: tuple[str, ...]) -> None:
        self.operations = operations
        self.refused: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def install(self) -> ThrottleFirstAttempts:
        events = aws.make_client("iam").meta.events
        for operation in self.operations:
            events.register_first(f"before-send.iam.{operation}", self._answer)
        return self

    def _answer(self, request: Any, **_: Any) -> Any:
        params = query_params(request)
        key = f"{params.get('Action')}:{params.get('RoleName') or params.get('Marker') or ''}"
        with self._lock:
            self.attempts[str(params.get("Action"))] += 1
            first = key not in self.refused
            if first:
                self.refused[key] += 1
        if not first:
            return None
        response = error_response("iam", request.url, "Throttling", "Rate exceeded")
        request.url = _NOWHERE  # moto must not carry out a request IAM refused
        return response


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries run for real, but the backoff botocore computes is recorded instead of slept."""
    return record_backoffs(monkeypatch)


@pytest.fixture
def pacing(monkeypatch: pytest.MonkeyPatch) -> VirtualPacing:
    return VirtualPacing().install(monkeypatch)


MakeWorld = Callable[..., World]
