"""An organization on the embedded AWS: seeding it, AssumeRole as AWS answers it, and SQS delivering to Lambda.

* ``StrictAssumeRole``: a WSGI layer in front of moto's server that refuses sts:AssumeRole, as AWS does,
  when the role does not exist or its trust policy names neither the caller's account nor ``*``. moto
  itself hands out credentials for any role ARN, which would hide the failure the organization sweep must
  survive (an account without the member role).
* ``seed_organization``: moto's Organizations API creates member accounts, each with its
  ``OrganizationAccountAccessRole`` trusting the management account; assuming that role gives credentials
  that act in the member account (moto maps an access key to the account whose IAM issued it), which is
  how the member role and the demo's roles are created there.
* ``SqsEventSource``: what Lambda's SQS event source mapping does for ``scan_account``: receive at most
  ``batch_size`` messages, at most ``max_concurrency`` invocations at once, delete a message its
  invocation handled, and hand a failed one back to the queue, so that after the queue's maxReceiveCount
  SQS itself moves it to the dead-letter queue. Lambda leaves a failed message invisible until its
  visibility timeout ends; the stand-in makes it visible again at once (``ChangeMessageVisibility`` 0),
  so the queue's timeout can be long enough that a slow invocation is never delivered twice, and a
  retry still costs no waiting.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from chalicelib.domain.names import ROLE_ARN
from chalicelib.domain.scope import DEFAULT_MEMBER_ROLE

ORG_ACCESS_ROLE = "OrganizationAccountAccessRole"
REGION = "us-east-1"


# --- sts:AssumeRole as AWS answers it -----------------------------------------------------------------


class StrictAssumeRole:
    """WSGI middleware: sts:AssumeRole is refused (AccessDenied) unless the role exists and trusts the caller."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.requests = 0  # every request seen (tests prove that some paths make no AWS call)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            self.requests += 1
        if environ.get("REQUEST_METHOD") == "POST" and "/sts/" in environ.get("HTTP_AUTHORIZATION", ""):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
            form = parse_qs(body.decode("utf-8", "replace"))
            if form.get("Action") == ["AssumeRole"]:
                refusal = assume_role_refusal(form.get("RoleArn", [""])[0], _access_key(environ))
                if refusal is not None:
                    return _access_denied(refusal, start_response)
        return self._app(environ, start_response)


def _access_key(environ: dict[str, Any]) -> str:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" not in authorization:
        return ""
    return str(authorization.split("Credential=", 1)[1].split("/", 1)[0])


def assume_role_refusal(role_arn: str, access_key: str) -> str | None:
    """Why AWS would refuse this AssumeRole (None: it would not), judged on moto's own IAM data."""
    from moto.iam.models import get_account_id_from, iam_backends

    caller = get_account_id_from(access_key)
    denied = f"User: arn:aws:sts::{caller}:caller is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    match = ROLE_ARN.match(role_arn)
    if match is None:
        return denied
    roles = [r for r in iam_backends[match["account"]]["global"].roles.values() if r.name == match["name"]]
    if not roles:
        return denied
    try:
        document = json.loads(roles[0].assume_role_policy_document)
    except (TypeError, ValueError):
        return denied
    return None if _trusts(document, caller) else denied


def _trusts(document: Any, caller: str) -> bool:
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in _listed(actions)):
            continue
        principal = statement.get("Principal")
        if principal == "*":
            return True
        aws = _listed(principal.get("AWS", [])) if isinstance(principal, dict) else []
        if any(p == "*" or p == caller or f":{caller}:" in p for p in aws):
            return True
    return False


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if value else []


def _access_denied(message: str, start_response: Callable[..., Any]) -> list[bytes]:
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>AccessDenied</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
    start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


# --- an organization ----------------------------------------------------------------------------------


@dataclass
class Organization:
    """The seeded organization: the management account (where the bot runs here) and its members."""

    management: str
    members: list[str] = field(default_factory=list)
    without_member_role: list[str] = field(default_factory=list)

    @property
    def accounts(self) -> list[str]:
        return [self.management, *self.members]


def member_trust(central_account: str) -> dict[str, Any]:
    """The member role's trust policy here: the central account (real installs name the bot's role ARNs)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{central_account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def seed_organization(
    members: int,
    *,
    broken: Iterable[int] = (),
    member_role: str = DEFAULT_MEMBER_ROLE,
    name_prefix: str = "member",
) -> Organization:
    """Create an organization with ``members`` member accounts; those at the ``broken`` indexes get no member role."""
    import boto3

    organizations = boto3.client("organizations", region_name=REGION)
    organizations.create_organization(FeatureSet="ALL")
    management = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    org = Organization(management)
    skip = set(broken)
    for index in range(members):
        created = organizations.create_account(
            AccountName=f"{name_prefix}-{index:02d}", Email=f"{name_prefix}-{index:02d}@example.com"
        )
        account = created["CreateAccountStatus"]["AccountId"]
        org.members.append(account)
        if index in skip:
            org.without_member_role.append(account)
            continue
        member_iam(account).create_role(
            RoleName=member_role,
            AssumeRolePolicyDocument=json.dumps(member_trust(management)),
            Description="deputy-guard's member role (seeded by the embedded organization)",
        )
    return org


def member_iam(account: str) -> Any:
    """An IAM client acting in ``account`` as the organization's administrator (OrganizationAccountAccessRole)."""
    return member_client(account, "iam")


def member_client(account: str, service: str) -> Any:
    import boto3

    make: Any = boto3.client

    sts = boto3.client("sts", region_name=REGION)
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{ORG_ACCESS_ROLE}", RoleSessionName="organization-admin"
    )["Credentials"]
    return make(
        service,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def create_work_queues(name: str, *, visibility_seconds: int, max_receives: int) -> tuple[str, str]:
    """The work queue and its dead-letter queue (redrive after ``max_receives``); returns both URLs."""
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})
    queue = sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": str(visibility_seconds), "RedrivePolicy": redrive}
    )["QueueUrl"]
    return queue, dlq


# --- Lambda's SQS event source mapping ------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One invocation of the handler with one message."""

    message_id: str
    body: str
    receive_count: int
    ok: bool
    error: str | None = None
    result: Any = None


class SqsEventSource:
    """Delivers a queue's messages to a handler as Lambda's event source mapping does (batch size 1)."""

    def __init__(
        self,
        queue_url: str,
        invoke: Callable[[dict[str, Any]], Any],
        *,
        max_concurrency: int = 2,
        region: str = REGION,
    ) -> None:
        import boto3

        self._sqs = boto3.client("sqs", region_name=region)
        self._queue_url = queue_url
        self._invoke = invoke
        self._max_concurrency = max_concurrency
        self._region = region
        self._arn = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.peak_concurrency = 0
        self._running = 0

    def drain(self, *, timeout: float = 60.0) -> list[Delivery]:
        """Deliver until the queue holds nothing, visible or in flight (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="sqs-event-source") as pool:
            inflight: list[Future[None]] = []
            while time.monotonic() < deadline:
                inflight = [f for f in inflight if not f.done()]
                if len(inflight) < self._max_concurrency:
                    messages = self._sqs.receive_message(
                        QueueUrl=self._queue_url,
                        MaxNumberOfMessages=1,
                        AttributeNames=["All"],
                        WaitTimeSeconds=0,
                    ).get("Messages", [])
                    if messages:
                        inflight.append(pool.submit(self._deliver, dict(messages[0])))
                        continue
                if not inflight and self._empty():
                    break
                time.sleep(0.05)
            for future in inflight:
                future.result()
        return list(self.deliveries)

    def _empty(self) -> bool:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        waiting = int(attributes["ApproximateNumberOfMessages"])
        return waiting + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0

    def _deliver(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._running += 1
            self.peak_concurrency = max(self.peak_concurrency, self._running)
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            result = self._invoke(self.event([message]))
        except Exception as exc:  # noqa: BLE001 (Lambda reports any error the same way: the message stays)
            delivery = Delivery(message["MessageId"], message["Body"], count, False, f"{type(exc).__name__}: {exc}")
            self._sqs.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
            delivery = Delivery(message["MessageId"], message["Body"], count, True, result=result)
        with self._lock:
            self._running -= 1
            self.deliveries.append(delivery)

    def event(self, messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda hands a function for these messages."""
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self._arn,
                    "awsRegion": self._region,
                }
                for m in messages
            ]
        }


def dead_letters(dlq_url: str) -> list[dict[str, Any]]:
    """The bodies waiting in a dead-letter queue (received, not deleted)."""
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        if not batch:
            return found
        found.extend(json.loads(m["Body"]) for m in batch)
