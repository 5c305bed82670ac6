"""Pure: turn an EventBridge "AWS API Call via CloudTrail" event into a pointer at one role, or a skip.

The event is only a pointer: the service re-reads the role before acting, so nothing in an event can
make the bot write a document it did not compute itself from IAM's current state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.catalogue import DEFAULT_SERVICES, Entry
from chalicelib.domain.names import ASSUMED_ROLE_ARN, ROLE_ARN, ROLE_NAME, role_from_arn
from chalicelib.domain.policy import has_selected_principal

# The CloudTrail calls that can make a role need (or stop needing) a fix. TagRole and UntagRole are here because
# the deputy-guard:mode tag decides per role: removing "exempt" or setting "enforce" acts at once.
EVENT_NAMES = ("CreateRole", "UpdateAssumeRolePolicy", "PutRolePolicy", "AttachRolePolicy", "TagRole", "UntagRole")
# Events whose request carries the new trust document: a document naming no guarded service needs no AWS call.
_DOCUMENT_FIELDS = {"CreateRole": "assumeRolePolicyDocument", "UpdateAssumeRolePolicy": "policyDocument"}
MAX_DOCUMENT_CHARS = 131_072  # far above IAM's own limits; anything larger is not a real request
_NO_PRINCIPAL = "no_step_functions_principal"
MEMBER_SESSION_NAME = "deputy-guard"


@dataclass(frozen=True)
class Session:
    """The role session that made a call: its role (CloudTrail's ``sessionIssuer``) and its session name."""

    account: str
    role: str
    name: str | None  # from the assumed-role ARN; None when CloudTrail gives none

    @property
    def issuer(self) -> tuple[str, str]:
        """(account, role name) of the role the session was started from."""
        return self.account, self.role


@dataclass(frozen=True)
class RoleRef:
    """The role an event is about, and who did what to it."""

    role_name: str
    event_id: str
    event_name: str
    account: str
    region: str
    time: str
    actor: str | None
    # The role session that made the call, when a role session made it.
    session: Session | None = None


@dataclass(frozen=True)
class Skip:
    """Why an event needs no work (each reason is logged and counted)."""

    reason: str
    event_id: str | None = None
    event_name: str | None = None


def to_role_ref(
    event: Any,
    is_self: Callable[[Session], bool] | None = None,
    services: tuple[Entry, ...] = DEFAULT_SERVICES,
) -> RoleRef | Skip:
    """Read an EventBridge event into a role pointer, or say why it needs no work.

    ``services`` are the guarded services: a trust document the request carries that names none of them is
    skipped here, before any AWS call. ``is_self`` tells whether the role session that made the call is one the
    bot started; it is asked only for events that would otherwise need work, so resolving the bot's identity
    stays off the path of irrelevant events. Without it, ``own_event`` asks later, on the RoleRef.
    """
    if not isinstance(event, Mapping):
        return Skip("not_an_object")
    event_id = _text(event.get("id"))
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return Skip("no_detail", event_id)
    event_id = event_id or _text(detail.get("eventID"))
    event_name = _text(detail.get("eventName"))
    if event.get("source") != "aws.iam" or detail.get("eventSource") != "iam.amazonaws.com":
        return Skip("not_iam", event_id, event_name)
    if event_name not in EVENT_NAMES:
        return Skip("unsupported_event", event_id, event_name)
    if detail.get("errorCode") is not None:
        return Skip("failed_call", event_id, event_name)
    if event_id is None:
        return Skip("no_event_id", event_id, event_name)
    identity = detail.get("userIdentity")
    role_name = _role_name(detail)
    if role_name is None:
        return Skip("no_role_name", event_id, event_name)
    field = _DOCUMENT_FIELDS.get(event_name)
    request = detail.get("requestParameters")
    if field is not None and isinstance(request, Mapping):
        document = request.get(field)
        if (
            isinstance(document, str)
            and len(document) <= MAX_DOCUMENT_CHARS
            and not has_selected_principal(document, services)
        ):
            return Skip(_NO_PRINCIPAL if services == DEFAULT_SERVICES else "no_guarded_principal", event_id, event_name)
    session = _session(identity)
    if session is not None and is_self is not None and is_self(session):
        return Skip("own_event", event_id, event_name)
    return RoleRef(
        role_name=role_name,
        event_id=event_id,
        event_name=event_name,
        account=_text(event.get("account")) or _text(detail.get("recipientAccountId")) or "",
        region=_text(event.get("region")) or _text(detail.get("awsRegion")) or "",
        time=_text(event.get("time")) or _text(detail.get("eventTime")) or "",
        actor=_actor(identity),
        session=session,
    )


def own_event(ref: RoleRef, is_self: Callable[[Session], bool]) -> Skip | None:
    """The skip for an event a session the bot started made (an echo of its own write), else None."""
    if ref.session is not None and is_self(ref.session):
        return Skip("own_event", ref.event_id, ref.event_name)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _role_name(detail: Mapping[str, Any]) -> str | None:
    request = detail.get("requestParameters")
    if isinstance(request, Mapping):
        name = request.get("roleName")
        if isinstance(name, str) and ROLE_NAME.match(name):
            return name
        if name is not None:
            return None  # present but malformed: never guess another role
    response = detail.get("responseElements")
    if isinstance(response, Mapping) and isinstance(response.get("role"), Mapping):
        role = response["role"]
        name = role.get("roleName")
        if isinstance(name, str) and ROLE_NAME.match(name):
            return name
        arn = role.get("arn")
        match = ROLE_ARN.match(arn) if isinstance(arn, str) else None
        if match:
            return match["name"]
    return None


def _session(identity: Any) -> Session | None:
    """The role session that made the call, if the caller was one (its issuer and its session name)."""
    if not isinstance(identity, Mapping):
        return None
    context = identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, Mapping) else None
    arn = issuer.get("arn") if isinstance(issuer, Mapping) else None
    match = ROLE_ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        return None
    caller = identity.get("arn")
    session = ASSUMED_ROLE_ARN.match(caller) if isinstance(caller, str) else None
    # The session ARN must be of the same role in the same account, or its name says nothing.
    same = session is not None and (session["account"], session["name"]) == (match["account"], match["name"])
    name = caller.rsplit("/", 1)[1] if same and isinstance(caller, str) else None
    return Session(match["account"], match["name"], name or None)


def _actor(identity: Any) -> str | None:
    if not isinstance(identity, Mapping):
        return None
    for key in ("arn", "principalId", "userName", "invokedBy"):
        value = identity.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def self_role_from_arn(arn: str) -> tuple[str, str] | None:
    """(account, role name) from the bot's role ARN or its assumed-role session ARN."""
    return role_from_arn(arn)
