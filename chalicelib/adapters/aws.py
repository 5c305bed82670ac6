"""The only module that imports boto3: client factory, credentials and thin, typed gateways.

The IAM gateway (chalicelib/adapters/iam.py) and the Security Hub one (securityhub.py) sit beside it, on
its clients and its ``_call``.

Every gateway receives its client, translates botocore errors into the small ``AwsError`` family and
returns plain data. Clients use botocore's *adaptive* retry mode (standard retries plus client-side rate
limiting), so throttling is retried with backoff, and paced, before an error reaches the service.
``AWS_ENDPOINT_URL`` (moto's server locally) is honoured by botocore itself.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError
from botocore.hooks import HierarchicalEmitter
from botocore.parsers import ResponseParserFactory

from chalicelib.adapters.credentials import CredentialCache, TemporaryCredentials
from chalicelib.adapters.errors import (
    AccessDenied,
    AwsError,
    ConditionFailed,
    LimitExceeded,
    MalformedPolicy,
    NotFound,
    Throttled,
    Unavailable,
    error_for,
)
from chalicelib.domain.events import MEMBER_SESSION_NAME
from chalicelib.domain.settings import MAX_SCAN_CONCURRENCY

__all__ = [
    "AccessDenied",
    "AwsError",
    "ConditionFailed",
    "LimitExceeded",
    "MalformedPolicy",
    "NotFound",
    "Throttled",
    "Unavailable",
]

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_organizations.client import OrganizationsClient
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sts.client import STSClient

USER_AGENT = "deputy-guard/0.1.0"
SQS_BATCH = 10  # SendMessageBatch takes at most ten messages
_MAX_ATTEMPTS = 3  # in all, the first attempt included
_client_lock = threading.RLock()
_clients: dict[tuple[str, str | None], Any] = {}
_loader: dict[str, Any] = {}  # kept across reset_clients()


def translate(operation: str, exc: ClientError | BotoCoreError) -> AwsError:
    """Map a botocore exception to the AwsError family (unknown codes stay a plain AwsError)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        return error_for(operation, code, message)
    return Unavailable(operation, type(exc).__name__, str(exc))


def make_client(service: str, region: str | None = None) -> Any:
    """A cached client with adaptive retries and deputy-guard's user agent (thread-safe)."""
    key = (service, region)
    with _client_lock:
        client = _clients.get(key)
        if client is None:
            config = _client_config()
            session = _session(service)
            client = session.client(service, region_name=region or session.region_name or "us-east-1", config=config)  # type: ignore[call-overload]
            _clients[key] = client
        return client


def _client_config() -> Config:
    """Adaptive retries and deputy-guard's user agent, for the bot's own clients and the member accounts' alike."""
    # One call, retries and backoff (under 1 s, then under 2 s) included, takes at most
    # 3 x (2 s + 5 s) + 3 s = 24 s: inside the scan budget (25 s) and API Gateway's 29 s.
    # Adaptive mode is standard mode (the same attempts, errors and backoff) plus a client-side rate
    # limiter. It costs nothing until IAM (or any service) answers Throttling; from then on every call of
    # that client waits for a token, at a rate that backs off on each throttle and recovers as calls
    # succeed. IAM's rate limits are per account and unpublished, and a dry-run scan keeps several tag reads
    # in flight, so a throttled scan is paced to what IAM accepts instead of spending its three attempts
    # in a burst. AWS advises against adaptive mode for multi-tenant clients, since one tenant's throttling
    # paces the others; here each client serves one service in one account (member_client: one per role),
    # so it paces exactly the account that throttles. A wait for a token is outside the 24 s above: the
    # scan checks its time budget while it waits for a read (chalicelib/service/scan.py).
    return Config(
        retries={"mode": "adaptive", "total_max_attempts": _MAX_ATTEMPTS},
        user_agent_extra=USER_AGENT,
        connect_timeout=2,
        read_timeout=5,
        # A dry-run scan's reads in flight plus the page it fetches ahead, each on its own connection.
        max_pool_connections=MAX_SCAN_CONCURRENCY + 2,
    )


def _session(service: str = "") -> boto3.session.Session:
    """One session per process (one more for IAM): building one loads botocore's data, which cold starts pay for."""
    key = ("__session__", _parsing(service))
    session = _clients.get(key)
    if session is None:
        session = _boto3_session(_core_session(service))
        _clients[key] = session
    return session


def _parsing(service: str) -> str | None:
    return "text-timestamps" if service == "iam" else None


def _boto3_session(core: botocore.session.Session, **kwargs: Any) -> boto3.session.Session:
    """A boto3 session on ``core`` (``kwargs`` as boto3's Session takes them); call with ``_client_lock`` held.

    boto3 appends its data folder to the loader's search path for every session it makes; the loader is
    shared by the process's sessions, so an entry already there is dropped again.
    """
    session = boto3.session.Session(botocore_session=core, **kwargs)
    paths = core.get_component("data_loader").search_paths
    if paths and paths.count(paths[-1]) > 1:
        paths.pop()  # the entry just added is already there; dropping the last one keeps the order
    return session


def _core_session(service: str = "") -> botocore.session.Session:
    """A botocore session on the process's loader and built-in handlers; for ``service`` "iam", text timestamps.

    A member account's first client pays for a new session. Most of that is registering botocore's
    built-in handlers (each checked by introspection) and parsing the service models: both are done once
    per process, and each new session starts from a copy of the handlers and shares the loader.
    """
    shared = _loader.get("handlers")
    if shared is None:
        shared = HierarchicalEmitter()
        first = botocore.session.Session(event_hooks=shared)  # registers the built-in handlers on ``shared``
        _loader.update(handlers=shared, data_loader=first.get_component("data_loader"))
    core = botocore.session.Session(event_hooks=copy.copy(shared), include_builtin_handlers=False)
    core.register_component("data_loader", _loader["data_loader"])
    if _parsing(service):
        # IAM timestamps stay text: deputy-guard reads none, and parsing them is about three quarters of the
        # client's CPU for a page of roles (bench/README.md). STS keeps its datetimes (credentials expire).
        parsers = ResponseParserFactory()
        parsers.set_parser_defaults(timestamp_parser=str)
        core.register_component("response_parser_factory", parsers)
    return core


# --- member accounts ------------------------------------------------------------

MEMBER_SESSION_SECONDS = 3600  # the most role chaining allows (the bot's own credentials are a role session)
_member_clients: dict[tuple[str, str, str | None], Any] = {}
_member_sessions: dict[tuple[str, str | None], botocore.session.Session] = {}


def _assume(role_arn: str) -> TemporaryCredentials:
    return StsGateway(make_client("sts")).assume_role(role_arn, MEMBER_SESSION_NAME, MEMBER_SESSION_SECONDS)


_member_credentials = CredentialCache(_assume)


class _MemberCredentialProvider(CredentialProvider):
    """Hands botocore credentials that refresh from the cache shortly before they expire."""

    METHOD = "deputy-guard-assume-role"
    CANONICAL_NAME = "deputy-guard-member"

    def __init__(self, role_arn: str) -> None:
        super().__init__()
        self._role_arn = role_arn

    def load(self) -> RefreshableCredentials:
        margin = int(_member_credentials.refresh_margin.total_seconds())
        return RefreshableCredentials.create_from_metadata(
            metadata=_member_credentials.get(self._role_arn).metadata(),
            refresh_using=lambda: _member_credentials.get(self._role_arn).metadata(),
            method=self.METHOD,
            advisory_timeout=margin,
            mandatory_timeout=margin // 2,
        )


def member_client(role_arn: str, service: str, region: str | None = None) -> Any:
    """A client acting in another account through ``role_arn`` (sts:AssumeRole with the bot's credentials).

    The first client for a role assumes it (raising AwsError when that is refused); credentials are cached
    per role and refreshed shortly before they expire, so a long-lived client keeps working.
    """
    key = (role_arn, service, region)
    session_key = (role_arn, _parsing(service))
    with _client_lock:
        client = _member_clients.get(key)
        if client is not None:
            return client
        session = _member_sessions.get(session_key)
    if session is None:
        # Outside the lock: assuming the role is a network call, and other accounts must not wait for it.
        core = _core_session(service)
        resolver = CredentialResolver(providers=[_MemberCredentialProvider(role_arn)])
        core.register_component("credential_provider", resolver)
        core.get_credentials()  # assume now, so that a refusal is reported here, naming the role
        with _client_lock:
            session = _member_sessions.setdefault(session_key, core)
    with _client_lock:
        client = _member_clients.get(key)
        if client is None:
            # botocore's client, as boto3's Session.client makes it, without a boto3 session per account.
            name = region or session.get_config_variable("region") or current_region()
            client = session.create_client(service, region_name=name, config=_client_config())
            _member_clients[key] = client
        return client


def reset_clients() -> None:
    """Forget cached clients (after the endpoint or credentials change, e.g. in the demo and tests)."""
    with _client_lock:
        _clients.clear()
        _providers.clear()
        _member_clients.clear()
        _member_sessions.clear()
    _member_credentials.forget()


def current_region() -> str:
    with _client_lock:
        return _session().region_name or "us-east-1"


def _call(operation: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise translate(operation, exc) from exc


class StsGateway:
    def __init__(self, client: STSClient) -> None:
        self._client = client

    def get_caller_arn(self) -> tuple[str, str]:
        """(account id, caller ARN) of the current credentials."""
        response = _call("GetCallerIdentity", self._client.get_caller_identity)
        return str(response["Account"]), str(response["Arn"])

    def assume_role(self, role_arn: str, session_name: str, duration_seconds: int) -> TemporaryCredentials:
        """Temporary credentials for ``role_arn`` (refused: AccessDenied, as when the role does not exist)."""
        response = _call(
            "AssumeRole",
            self._client.assume_role,
            RoleArn=role_arn,
            RoleSessionName=session_name,
            DurationSeconds=duration_seconds,
        )
        raw = response["Credentials"]
        return TemporaryCredentials(
            access_key_id=str(raw["AccessKeyId"]),
            secret_access_key=str(raw["SecretAccessKey"]),
            session_token=str(raw["SessionToken"]),
            expiration=raw["Expiration"],
        )


class OrganizationsGateway:
    def __init__(self, client: OrganizationsClient) -> None:
        self._client = client

    def list_active_accounts(self) -> tuple[str, ...]:
        """The ids of the organization's ACTIVE accounts (suspended and closing accounts left out), sorted."""
        accounts: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"NextToken": token} if token else {}
            response = _call("ListAccounts", self._client.list_accounts, **kwargs)
            for account in response.get("Accounts", []):
                # ``State`` replaces the deprecated ``Status``; either says ACTIVE for a working account.
                if (account.get("State") or account.get("Status")) == "ACTIVE":
                    accounts.append(str(account["Id"]))
            token = response.get("NextToken")
            if not token:
                return tuple(sorted(set(accounts)))


class SqsGateway:
    def __init__(self, client: SQSClient) -> None:
        self._client = client

    def send_messages(self, queue_url: str, bodies: Sequence[str]) -> list[tuple[int, str]]:
        """Send every body (SendMessageBatch, ten at a time); returns (index, error code) of those refused."""
        failed: list[tuple[int, str]] = []
        for start in range(0, len(bodies), SQS_BATCH):
            chunk = bodies[start : start + SQS_BATCH]
            entries = [{"Id": str(start + i), "MessageBody": body} for i, body in enumerate(chunk)]
            response = _call("SendMessageBatch", self._client.send_message_batch, QueueUrl=queue_url, Entries=entries)
            failed.extend((int(f["Id"]), str(f.get("Code", "Unknown"))) for f in response.get("Failed", []))
        return failed

    def send_message(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        """Send one message; returns its MessageId."""
        response = _call(
            "SendMessage", self._client.send_message, QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay_seconds
        )
        return str(response["MessageId"])


class SnsGateway:
    def __init__(self, client: SNSClient) -> None:
        self._client = client

    def publish_message(self, topic_arn: str, subject: str, message: str, attributes: Mapping[str, str]) -> str:
        """Publish one message with String attributes; returns the MessageId."""
        response = _call(
            "Publish",
            self._client.publish,
            TopicArn=topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
        return str(response["MessageId"])


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


class DynamoTable:
    """A single DynamoDB table keyed by ``pk`` (hash) and ``sk`` (range), both strings."""

    def __init__(self, client: DynamoDBClient, name: str) -> None:
        self._client = client
        self.name = name

    def put(
        self, item: Mapping[str, Any], *, condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": _to_item(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = _to_item(values)
        _call("PutItem", self._client.put_item, **kwargs)

    def update(
        self,
        pk: str,
        sk: str,
        changes: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the given attributes on an existing item (``None`` values are removed).

        ``condition`` (with its own ``#names`` and ``:values``, which must not start with ``#a``/``:v``) must
        also hold, atomically, or ``ConditionFailed`` is raised: what makes a Slack approval token single-use.
        """
        attribute_names = {f"#a{i}": key for i, key in enumerate(changes)}
        sets = [f"#a{i} = :v{i}" for i, (_k, v) in enumerate(changes.items()) if v is not None]
        removes = [f"#a{i}" for i, (_k, v) in enumerate(changes.items()) if v is None]
        expression = " ".join(
            part
            for part in (
                ("SET " + ", ".join(sets)) if sets else "",
                ("REMOVE " + ", ".join(removes)) if removes else "",
            )
            if part
        )
        attribute_values = {
            f":v{i}": _serializer.serialize(v) for i, (_k, v) in enumerate(changes.items()) if v is not None
        }
        attribute_names.update(names or {})
        attribute_values.update(_to_item(values or {}))
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": _to_item({"pk": pk, "sk": sk}),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": attribute_names,
            "ConditionExpression": "attribute_exists(pk)" + (f" AND ({condition})" if condition else ""),
        }
        if attribute_values:
            kwargs["ExpressionAttributeValues"] = attribute_values
        _call("UpdateItem", self._client.update_item, **kwargs)

    def delete(self, pk: str, sk: str) -> None:
        _call("DeleteItem", self._client.delete_item, TableName=self.name, Key=_to_item({"pk": pk, "sk": sk}))

    def query(
        self, pk: str, *, sk_prefix: str = "", newest_first: bool = True, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Items under one partition key, ordered by sort key."""
        condition = "pk = :pk" + (" AND begins_with(sk, :sk)" if sk_prefix else "")
        values: dict[str, Any] = {":pk": pk}
        if sk_prefix:
            values[":sk"] = sk_prefix
        response = _call(
            "Query",
            self._client.query,
            TableName=self.name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=_to_item(values),
            ScanIndexForward=not newest_first,
            Limit=limit,
            ConsistentRead=True,
        )
        return [_from_item(item) for item in response.get("Items", [])]

    def created_at(self) -> datetime:
        """When the table was created (DescribeTable): a table re-created under the same name is younger."""
        response = _call("DescribeTable", self._client.describe_table, TableName=self.name)
        return cast(datetime, response["Table"]["CreationDateTime"])

    def ensure_exists(self) -> bool:
        """Create the table (pay per request, TTL on ``expiration``) unless it exists; True if created."""
        try:
            _call("DescribeTable", self._client.describe_table, TableName=self.name)
            return False
        except NotFound:
            pass
        try:
            _call(
                "CreateTable",
                self._client.create_table,
                TableName=self.name,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except AwsError as exc:
            if exc.code == "ResourceInUseException":  # created concurrently
                return False
            raise
        self._client.get_waiter("table_exists").wait(TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        _call(
            "UpdateTimeToLive",
            self._client.update_time_to_live,
            TableName=self.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
        )
        return True


_providers: dict[str, Any] = {}


def _provider(kind: str) -> Any:
    """One Powertools Parameters provider per kind, so its ``max_age`` cache lives as long as the container."""
    # Imported here: Parameters pulls in extra modules that the cold path does not need.
    from aws_lambda_powertools.utilities import parameters

    with _client_lock:
        if kind not in _providers:
            if kind == "secretsmanager":
                _providers[kind] = parameters.SecretsProvider(boto3_client=make_client("secretsmanager"))
            else:
                _providers[kind] = parameters.SSMProvider(boto3_client=make_client("ssm"))
        return _providers[kind]


def get_parameter_value(name: str, *, max_age: int = 300, decrypt: bool = True) -> str:
    """An SSM parameter (SecureString decrypted), cached for ``max_age`` seconds."""
    return _read("ssm", name, max_age=max_age, decrypt=decrypt)


def get_secret_value(name: str, *, max_age: int = 300) -> str:
    """A Secrets Manager secret string, cached for ``max_age`` seconds."""
    return _read("secretsmanager", name, max_age=max_age)


def _read(kind: str, name: str, **kwargs: Any) -> str:
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        value = _provider(kind).get(name, **kwargs)
    except GetParameterError as exc:
        # Never quote the underlying message: keep the location, never anything that came back.
        raise AwsError("GetParameter", "GetParameterError", f"could not read {kind} parameter {name!r}") from exc
    return cast(str, value)
