"""Reliability test kit: HTTP-layer fault injection, the write guard (invariants), a recording logger.

Faults are injected where AWS would produce them: a ``before-send`` handler on the bot's own botocore
client answers with a real error response, so botocore parses it, its *standard* retry mode retries
it for real, and ``chalicelib.adapters.aws`` translates what is left. Nothing in the code under test is patched.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from chalicelib.adapters import aws
from chalicelib.domain.policy import PolicyError, parse_policy, statement_list

# Inputs tried by each fuzz test, printed at the end of the run (see conftest.pytest_terminal_summary).
FUZZ_COUNTS: Counter[str] = Counter()

_NOWHERE = "https://fault-injected.invalid/"
_QUERY_SERVICES = frozenset({"iam", "sns", "sts"})
# DynamoDB (JSON protocol) error codes and the HTTP status AWS answers them with.
_JSON_STATUS = {"ServiceUnavailable": 503, "InternalServerError": 500}


# --- fault injection --------------------------------------------------------------------------------


class _Body:
    """The ``raw`` object AWSResponse reads its content from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _headers(content_type: str) -> HTTPHeaders:
    headers = HTTPHeaders()
    headers["Content-Type"] = content_type
    return headers


def error_response(service: str, url: str, code: str, message: str = "injected fault", status: int = 0) -> AWSResponse:
    """An AWS error response as the service would send it (query XML for IAM/SNS, JSON for DynamoDB)."""
    if service in _QUERY_SERVICES:
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        ).encode()
        return AWSResponse(url, status or 400, _headers("text/xml"), _Body(body))
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
    return AWSResponse(
        url,
        status or _JSON_STATUS.get(code, 400),
        _headers("application/x-amz-json-1.0"),
        _Body(body),
    )


def request_text(request: Any) -> str:
    body = request.body
    if body is None:
        return ""
    if hasattr(body, "read"):  # a stream: read it and put it back
        data = body.read()
        body.seek(0)
        body = data
    return body.decode("utf-8") if isinstance(body, bytes) else str(body)


def query_params(request: Any) -> dict[str, str]:
    """The form parameters of a query-protocol request (IAM, SNS)."""
    return {k: v[0] for k, v in parse_qs(request_text(request)).items()}


@dataclass
class Fault:
    """One injected fault: which call, which error, how often, and on which requests."""

    service: str
    operation: str
    code: str
    status: int = 0
    times: int | None = None  # None: every matching attempt
    when: Callable[[Any], bool] | None = None
    side_effect: Callable[[Any], None] | None = None  # runs before the error is returned
    hits: int = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.when is not None and not self.when(request):
            return None
        if self.times is not None and self.hits >= self.times:
            return None
        self.hits += 1
        if self.side_effect is not None:
            self.side_effect(request)
        response = error_response(self.service, request.url, self.code, status=self.status)
        # botocore offers the request to every before-send handler: point it nowhere, so moto does not
        # carry out a request that, as far as the caller can tell, AWS refused.
        request.url = _NOWHERE
        return response


class Faults:
    """Injects faults into the clients chalicelib.adapters.aws hands the bot (cached per test)."""

    def __init__(self) -> None:
        self._handlers: list[tuple[Any, str, Callable[..., Any]]] = []

    def inject(self, service: str, operation: str, code: str, **options: Any) -> Fault:
        fault = Fault(service, operation, code, **options)
        # register_first: ahead of moto's own before-send handler, as a real endpoint would answer.
        self._register(service, f"before-send.{service}.{operation}", fault, first=True)
        return fault

    def _register(self, service: str, event: str, handler: Callable[..., Any], *, first: bool = False) -> None:
        events = aws.make_client(service).meta.events
        (events.register_first if first else events.register)(event, handler)
        self._handlers.append((events, event, handler))

    def clear(self) -> None:
        """The outage is over: remove every injected fault."""
        for events, event, handler in self._handlers:
            events.unregister(event, handler)
        self._handlers.clear()

    def meanwhile(
        self, service: str, operation: str, action: Callable[[], None], *, times: int = 1, last_moment: bool = False
    ) -> list[int]:
        """Run ``action`` (someone else's change) just before the bot's next ``times`` calls; they then proceed.

        ``last_moment`` runs it ahead of every other hook on the call, the write guard's included.
        """
        done: list[int] = []

        def hook(**_: Any) -> None:
            if len(done) < times:
                done.append(1)
                action()

        if last_moment:
            self._register(service, f"before-parameter-build.{service}.{operation}", hook, first=True)
        else:
            self._register(service, f"before-call.{service}.{operation}", hook)
        return done


def on_role(name: str) -> Callable[[Any], bool]:
    """A ``when`` predicate: the IAM request is about this role."""
    return lambda request: query_params(request).get("RoleName") == name


def dynamo_item_pk_startswith(prefix: str) -> Callable[[Any], bool]:
    """A ``when`` predicate: the DynamoDB request writes or updates an item whose pk starts with ``prefix``."""

    def matches(request: Any) -> bool:
        payload = json.loads(request_text(request) or "{}")
        key = payload.get("Item") or payload.get("Key") or {}
        pk = key.get("pk", {}).get("S", "")
        return isinstance(pk, str) and pk.startswith(prefix)

    return matches


# --- the "only narrows" relation ---------------------------------------------------------------------


def principal_pairs(statement: Mapping[str, Any]) -> set[tuple[str, str]]:
    principal = statement.get("Principal")
    if principal == "*":
        return {("*", "*")}
    if not isinstance(principal, Mapping):
        return set()
    return {
        (str(kind), json.dumps(item, sort_keys=True))
        for kind, value in principal.items()
        for item in (value if isinstance(value, list) else [value])
    }


def condition_triples(statement: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return set()
    return {
        (str(operator), str(key), json.dumps(value, sort_keys=True))
        for operator, block in condition.items()
        if isinstance(block, Mapping)
        for key, value in block.items()
    }


def _rest(statement: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in statement.items() if k not in ("Sid", "Principal", "Condition")}


def _is_allow(statement: Any) -> bool:
    effect = statement.get("Effect") if isinstance(statement, Mapping) else None
    return isinstance(effect, str) and effect.lower() == "allow"  # as the engine reads it


def _narrower(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """``new`` grants no more than ``old``: same effect, actions and the rest, fewer principals, more conditions."""
    return (
        _is_allow(old)
        and _rest(new) == _rest(old)
        and isinstance(new.get("Principal"), type(old.get("Principal")))
        and principal_pairs(new) <= principal_pairs(old)
        and condition_triples(old) <= condition_triples(new)
    )


def widening(old_document: Any, new_document: Any) -> list[str]:
    """Every way ``new`` might grant access ``old`` did not; empty when ``new`` only narrows ``old``.

    Sound but strict: each new Allow statement must be a narrowing of some old Allow statement (same
    Effect, Action/NotAction and other fields, a subset of its principals, a superset of its condition
    entries, operator, key and whole value alike); every other statement (Deny, odd Effect) must be kept
    verbatim, and top-level fields other than Statement must not change.
    """
    try:
        old, new = parse_policy(old_document), parse_policy(new_document)
    except PolicyError as exc:
        return [f"unparseable: {exc}"]
    problems: list[str] = []
    if {k: v for k, v in old.items() if k != "Statement"} != {k: v for k, v in new.items() if k != "Statement"}:
        problems.append("top-level fields changed")
    old_statements, new_statements = statement_list(old), statement_list(new)
    for index, statement in enumerate(old_statements):
        if not _is_allow(statement) and statement not in new_statements:
            problems.append(f"non-Allow statement {index} dropped or altered")
    for index, statement in enumerate(new_statements):
        if _is_allow(statement):
            if not any(_narrower(statement, candidate) for candidate in old_statements):
                problems.append(f"Allow statement {index} is not a narrowing of any original statement")
        elif statement not in old_statements:
            problems.append(f"non-Allow statement {index} is new")
    return problems


# --- the write guard --------------------------------------------------------------------------------


def audit_items(table: str, role_arn: str) -> list[dict[str, Any]]:
    """The role's change records as stored, oldest first, read with a client of the test's own."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    response = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": f"role#{role_arn}"}, ":sk": {"S": "change#"}},
        ConsistentRead=True,
    )
    items = []
    for raw in response.get("Items", []):
        item: dict[str, Any] = {k: next(iter(v.values())) for k, v in raw.items()}
        item["before"] = json.loads(item["before"])
        item["after"] = json.loads(item["after"])
        items.append(item)
    return items


@dataclass
class Write:
    """One UpdateAssumeRolePolicy the bot attempted, as the guard saw it before it left the process."""

    role: str
    kind: str | None  # the audit record's kind (fix | revert), None when no record existed
    held: Any  # the document IAM held at that moment
    sent: Any
    violations: list[str]


@dataclass
class WriteGuard:
    """Checks every UpdateAssumeRolePolicy the bot makes, before it is sent.

    * write-ahead: a ``pending`` audit record for this role whose ``after`` is exactly the document
      being sent exists already, and its ``before`` is what IAM holds right now;
    * only narrows: for a fix, the document sent is a narrowing of what IAM holds (``widening``);
      a revert legitimately restores the wider original, so it is exempt, and must be recorded instead.
    """

    table: str
    writes: list[Write] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def install(self) -> WriteGuard:
        aws.make_client("iam").meta.events.register("before-parameter-build.iam.UpdateAssumeRolePolicy", self._check)
        return self

    def _check(self, params: Mapping[str, Any], **_: Any) -> None:
        name = str(params["RoleName"])
        sent = json.loads(str(params["PolicyDocument"]))
        role = boto3.client("iam", region_name="us-east-1").get_role(RoleName=name)["Role"]
        held = parse_policy(role["AssumeRolePolicyDocument"])
        pending = [
            item
            for item in audit_items(self.table, role["Arn"])
            if item["status"] == "pending" and item["after"] == sent
        ]
        violations: list[str] = []
        kind = pending[-1]["kind"] if pending else None
        if not pending:
            violations.append("no pending audit record holds this document: the write was not recorded first")
        elif pending[-1]["before"] != held:
            violations.append("the audit record's 'before' is not what IAM holds")
        if kind != "revert":
            violations.extend(widening(held, sent))
        with self._lock:
            self.writes.append(Write(name, kind, held, sent, violations))

    @property
    def violations(self) -> list[str]:
        return [f"{w.role}: {v}" for w in self.writes for v in w.violations]

    def fixes(self) -> list[Write]:
        return [w for w in self.writes if w.kind == "fix"]

    def reverts(self) -> list[Write]:
        return [w for w in self.writes if w.kind == "revert"]


# --- logging ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    level: str
    message: str
    extra: dict[str, Any]


class RecordingLogger:
    """Keeps every line the service logs (message and structured keys), and passes it on."""

    def __init__(self, inner: Any = None) -> None:
        self.lines: list[Line] = []
        self._inner = inner

    def _log(self, level: str, msg: str, extra: Mapping[str, Any] | None) -> None:
        self.lines.append(Line(level, msg, dict(extra or {})))
        if self._inner is not None:
            getattr(self._inner, level)(msg, extra=dict(extra or {}))

    def debug(self, msg: str, *args: Any, extra: Mapping[str, Any] | None = None, **_: Any) -> None:
        self._log("debug", msg, extra)

    def info(self, msg: str, *args: Any, extra: Mapping[str, Any] | None = None, **_: Any) -> None:
        self._log("info", msg, extra)

    def warning(self, msg: str, *args: Any, extra: Mapping[str, Any] | None = None, **_: Any) -> None:
        self._log("warning", msg, extra)

    def error(self, msg: str, *args: Any, extra: Mapping[str, Any] | None = None, **_: Any) -> None:
        self._log("error", msg, extra)

    def __getattr__(self, name: str) -> Any:
        # Everything else (append_keys, remove_keys, ...) is the wrapped Powertools logger's.
        if name.startswith("_") or self._inner is None:
            raise AttributeError(name)
        return getattr(self._inner, name)

    def messages(self) -> list[str]:
        return [line.message for line in self.lines]

    def decisions(self, role: str | None = None) -> list[dict[str, Any]]:
        return [
            line.extra
            for line in self.lines
            if line.message == "decision" and (role is None or line.extra.get("role") == role)
        ]

    def with_message(self, message: str) -> list[Line]:
        return [line for line in self.lines if line.message == message]

    def text(self) -> str:
        return "\n".join(f"{line.level} {line.message} {json.dumps(line.extra, default=str)}" for line in self.lines)
