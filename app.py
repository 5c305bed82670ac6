"""deputy-guard: Chalice wiring only. Handlers are a few lines; the work lives in chalicelib/.

Dependencies are built lazily on first use and cached per container: Chalice sets stage environment
variables only while a handler runs, and the cold path should import as little as possible.
"""

from __future__ import annotations

import os
from typing import Any

from chalice.app import (
    BadRequestError,
    Chalice,
    ChaliceViewError,
    CloudWatchEvent,
    IAMAuthorizer,
    NotFoundError,
    Response,
    SQSEvent,
)

from chalicelib.domain.events import EVENT_NAMES
from chalicelib.runtime import handlers as runtime

# Powertools Logger owns the "deputy-guard" logger; Chalice's own handler on it would print every line twice.
app = Chalice(app_name="deputy-guard", configure_logs=False)
authorizer = IAMAuthorizer()

# CloudTrail delivers IAM's management events to EventBridge in us-east-1 only.
IAM_EVENT_PATTERN: dict[str, Any] = {
    "source": ["aws.iam"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {
        "eventSource": ["iam.amazonaws.com"],
        "eventName": list(EVENT_NAMES),
        "errorCode": [{"exists": False}],
    },
}
# Read at deploy time (chalice deploy/package imports this module); daily unless told otherwise.
SWEEP_SCHEDULE = os.environ.get("DEPUTY_GUARD_SWEEP_SCHEDULE", "rate(1 day)")
# The organization sweep's work queue (one message per account; the package points the event source at the
# stack's queue) and how many accounts are swept at once: the event source's maximum concurrency, so extra
# messages wait in the queue instead of being throttled into the dead-letter queue (docs/organizations.md).
WORK_QUEUE = "deputy-guard-work"
ACCOUNT_SWEEP_CONCURRENCY = int(os.environ.get("DEPUTY_GUARD_ACCOUNT_SWEEP_CONCURRENCY", "10"))


class LenientCloudWatchEvent(CloudWatchEvent):
    """Chalice's event class, minus the KeyError on a malformed envelope: the service validates and drops it."""

    def _extract_attributes(self, event_dict: Any) -> None:
        raw = event_dict if isinstance(event_dict, dict) else {}

        def text(key: str) -> str:
            value = raw.get(key)
            return value if isinstance(value, str) else ""

        detail = raw.get("detail")
        resources = raw.get("resources")
        self.version = text("version")
        self.account = text("account")
        self.region = text("region")
        self.detail = detail if isinstance(detail, dict) else {}
        self.detail_type = text("detail-type")
        self.source = text("source")
        self.time = text("time")
        self.event_id = text("id")
        self.resources = resources if isinstance(resources, list) else []


@app.middleware("all")
def observe(event: Any, get_response: Any) -> Any:
    """Logger keys and metrics flushing around every handler (Powertools, as Chalice middleware)."""
    return runtime.observe(event, get_response)


@app.middleware("http")
def api_gateway_only(event: Any, get_response: Any) -> Any:
    """Refuse a request API Gateway did not authenticate (a direct invoke of the function): 403, nothing run."""
    route = app.routes.get(event.context.get("resourcePath", ""), {}).get(event.method)
    refusal = runtime.unauthenticated_request(
        event.context, iam_route=getattr(route, "authorizer", None) is not None, in_lambda=_in_lambda()
    )
    if refusal is not None:
        runtime.logger().warning("request refused: not from API Gateway", extra={"reason": refusal})
        return Response(body={"Code": "Forbidden", "Message": refusal}, status_code=403)
    return get_response(event)


def _in_lambda() -> bool:
    # Lambda sets it; `chalice local` and the demo's local API (no API Gateway in front) do not.
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


@app.on_cw_event(IAM_EVENT_PATTERN, name="on_iam_event")
def on_iam_event(event: CloudWatchEvent) -> dict[str, Any]:
    return runtime.on_iam_event(event.to_dict(), event.context)


on_iam_event.event_class = LenientCloudWatchEvent


@app.schedule(SWEEP_SCHEDULE, name="sweep")
def sweep(event: Any) -> dict[str, Any]:
    return runtime.sweep(event.context)


@app.on_sqs_message(queue=WORK_QUEUE, batch_size=1, name="scan_account", maximum_concurrency=ACCOUNT_SWEEP_CONCURRENCY)
def scan_account(event: SQSEvent) -> dict[str, Any]:
    # A failed account raises: SQS delivers the message again, then moves it to the dead-letter queue.
    return runtime.scan_account([record.body for record in event], event.context)


@app.route("/scans", methods=["POST"], authorizer=authorizer)
def post_scans() -> Any:
    return _respond(lambda: runtime.post_scans(_body()))


@app.route("/roles/{role_name}", methods=["GET"], authorizer=authorizer)
def get_role(role_name: str) -> Any:
    return _respond(lambda: runtime.get_role(_role_name(role_name), _account()))


@app.route("/roles/{role_name}/remediate", methods=["POST"], authorizer=authorizer)
def remediate_role(role_name: str) -> Any:
    return _respond(lambda: runtime.remediate(_role_name(role_name), _body(), _caller(), _account()))


@app.route("/roles/{role_name}/revert", methods=["POST"], authorizer=authorizer)
def revert_role(role_name: str) -> Any:
    return _respond(lambda: runtime.revert(_role_name(role_name), _body(), _caller(), _account()))


@app.route("/slack/actions", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
def slack_actions() -> Any:
    # The one route outside IAM auth (Slack cannot sign SigV4): Slack's own v0 signature is checked first.
    from chalicelib.runtime.slack_approvals import on_slack_action

    request = app.current_request
    assert request is not None
    raw = request.raw_body or b""
    return _respond(lambda: on_slack_action(dict(request.headers), raw if isinstance(raw, bytes) else raw.encode()))


def _role_name(value: str) -> str:
    if not runtime.valid_role_name(value or ""):
        raise BadRequestError("invalid role name: 1-64 characters of letters, digits and +=,.@_-")
    return value


def _body() -> dict[str, Any]:
    request = app.current_request
    try:
        if request is None or not request.raw_body:
            return {}
        body = request.json_body
    except UnicodeEncodeError:
        raise BadRequestError("malformed body: not UTF-8 text") from None
    except (BadRequestError, RecursionError):
        # Chalice's parser reports a ValueError as a 400 but lets a RecursionError (deep nesting) become a 500.
        raise BadRequestError("malformed body: not JSON") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequestError("malformed body: expected a JSON object")
    return body


def _account() -> str | None:
    """The optional ``?account=ID`` of the role routes (default: the bot's own account)."""
    request = app.current_request
    params = request.query_params if request is not None else None
    value = params.get("account") if params else None
    return None if value is None else str(value)


def _caller() -> str | None:
    request = app.current_request
    identity = (request.context or {}).get("identity") if request is not None else None
    return identity.get("userArn") if isinstance(identity, dict) else None


def _respond(call: Any) -> Any:
    try:
        status, body = call()
    except runtime.BadInput as exc:
        raise BadRequestError(str(exc)) from None
    except runtime.UnknownRole as exc:
        raise NotFoundError(str(exc)) from None
    except runtime.Unavailable as exc:
        runtime.logger().error("request failed: AWS unavailable", extra={"error": str(exc)})
        return Response(body={"Code": "BadGateway", "Message": str(exc)}, status_code=502)
    except runtime.Misconfigured as exc:
        raise ChaliceViewError(str(exc)) from None
    return Response(body=body, status_code=status)
