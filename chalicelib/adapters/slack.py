"""The Slack incoming-webhook channel and the webhook URL providers."""

from __future__ import annotations

import http.client
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chalicelib.domain.models import Notice
from chalicelib.domain.render import LOOPBACK_HOSTS, NotificationError, clip_text, one_line
from chalicelib.domain.render_slack import render_slack, render_slack_digest


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a Slack webhook never redirects, and a message should not wander elsewhere."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class _Transient(Exception):
    """One attempt failed in a way worth retrying; ``retry_after`` is Slack's wait, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or not a number (HTTP dates included)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _safe_detail(raw: bytes, url: str) -> str:
    """A short, printable, secret-free excerpt of an error body (Slack answers e.g. ``invalid_payload``)."""
    # Redact before cutting, so a URL straddling the cut cannot leave half a token behind.
    text = _redact(raw.decode("utf-8", "replace"), url)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return clip_text(one_line(text), 120)


def _redact(text: str, url: str) -> str:
    """Replace the URL, its path, query and every long path segment (the webhook's ids and token)."""
    parts = urllib.parse.urlsplit(url)
    secrets = {url, parts.path, parts.query, *parts.path.split("/")}
    for secret in sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


class SlackChannel:
    """Posts Block Kit messages to a Slack incoming webhook, retrying within strict bounds.

    The webhook URL is a secret (anyone holding it can post to the channel), so it is asked of
    ``url_provider`` on every send, kept only in local variables, and never placed in an exception,
    a log line or a repr. Errors raised are ``NotificationError`` with statuses and reasons only.
    """

    def __init__(
        self,
        url_provider: Callable[[], str],
        *,
        timeout: float = 5.0,
        max_attempts: int = 4,
        max_retry_after: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        opener: urllib.request.OpenerDirector | None = None,
        name: str = "slack",
        max_total_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if timeout <= 0 or max_retry_after < 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout must be positive and waits must not be negative")
        self.name = name
        self._url_provider = url_provider
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        # Retries never outlast this budget (plus one request timeout): a handler with a fix already
        # written must not time out waiting on Slack (the API answers within 29 s, events within 60 s).
        self._max_total = max_total_seconds
        self._clock = clock
        self._opener = opener if opener is not None else urllib.request.build_opener(NoRedirect)

    def __repr__(self) -> str:
        return (
            f"SlackChannel(name={self.name!r}, timeout={self._timeout}, max_attempts={self._max_attempts},"
            f" max_retry_after={self._max_retry_after})"
        )

    def send(self, notice: Notice) -> str | None:
        """Post one role's message; raises ``NotificationError`` when Slack does not take it."""
        self._post(render_slack(notice))
        return None

    def send_digest(self, owner: str, notices: Sequence[Notice]) -> str | None:
        """Post one owner's digest; raises ``NotificationError`` when Slack does not take it."""
        self._post(render_slack_digest(owner, notices))
        return None

    def _webhook_url(self) -> str:
        try:
            url = self._url_provider()
        except Exception as exc:  # noqa: BLE001 - any provider fault; its text may hold the secret
            raise NotificationError(f"Slack webhook URL unavailable ({type(exc).__name__})") from None
        if not isinstance(url, str) or not url.strip():
            raise NotificationError("Slack webhook URL is empty")
        url = url.strip()
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            raise NotificationError("Slack webhook URL is not a valid URL") from None
        # The URL is a bearer secret: send it in clear text only to this machine (tests, the demo).
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
            return url
        raise NotificationError("Slack webhook URL must use https")

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1)))

    def _post(self, payload: Mapping[str, Any]) -> None:
        url = self._webhook_url()
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        last_reason = "not attempted"
        started = self._clock()
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._post_once(url, data)
            except _Transient as failure:
                last_reason, wait = failure.reason, failure.retry_after
            else:
                return
            if wait is not None and wait > self._max_retry_after:
                # Retrying before Slack's time risks the webhook being disabled; give up instead.
                raise NotificationError(
                    f"Slack rate limit: asked to wait {wait:g}s, more than the {self._max_retry_after:g}s allowed"
                )
            if attempt < self._max_attempts:
                pause = wait if wait is not None else self._backoff(attempt)
                if self._clock() - started + pause > self._max_total:
                    raise NotificationError(
                        f"Slack webhook failed after {attempt} attempts: {last_reason}; "
                        f"another wait would pass the {self._max_total:g}s budget"
                    )
                self._sleep(pause)
        raise NotificationError(f"Slack webhook failed after {self._max_attempts} attempts: {last_reason}")

    def _post_once(self, url: str, data: bytes) -> None:
        """One POST. Returns on 2xx; raises ``_Transient`` to retry, ``NotificationError`` to stop."""
        try:
            request = urllib.request.Request(  # noqa: S310 - scheme checked in _webhook_url
                url,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "deputy-guard"},
            )
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read(4096)  # Slack answers "ok"; never buffer an unbounded body
            return
        except urllib.error.HTTPError as err:
            # HTTPError keeps the socket open and its repr/str may carry the URL: read what we need, close.
            try:
                status = err.code
                retry_after = err.headers.get("Retry-After") if err.headers is not None else None
                detail = _safe_detail(err.read(4096), url)
            finally:
                err.close()
        except (OSError, http.client.HTTPException) as err:
            # Refused, reset, timed out, DNS, TLS, bad status line: the kind is enough, the text may hold the URL.
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            kind = type(reason).__name__ if isinstance(reason, BaseException) else type(err).__name__
            raise _Transient(f"connection failed ({kind})") from None
        except ValueError:
            # urllib/http.client put the URL into the text of these (unknown url type, InvalidURL).
            raise NotificationError("Slack webhook URL was rejected by the HTTP client") from None

        described = f"HTTP {status}" + (f" {detail}" if detail else "")
        if status == 429:
            raise _Transient(described, _parse_retry_after(retry_after))
        if 500 <= status <= 599:
            raise _Transient(described)
        raise NotificationError(f"Slack rejected the message: {described}")


ParameterGetter = Callable[..., object]


def value_from_parameter(value: object, *, keys: tuple[str, ...], unparsable: str, empty: str) -> str:
    """A string from a parameter or secret value: the plain string, or the first of ``keys`` in its JSON.

    ``unparsable`` and ``empty`` are the errors for text that looks like JSON but is not, and for no value.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(unparsable) from None
    if isinstance(value, Mapping):
        value = next((value[key] for key in keys if value.get(key)), None)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(empty)
    return value.strip()


def _webhook_from_value(value: object) -> str:
    """Read a webhook URL from a parameter or secret value: a plain URL or JSON ``{"url": ...}``."""
    return value_from_parameter(
        value,
        keys=("url", "webhook_url"),
        unparsable="webhook secret looks like JSON but does not parse",
        empty="webhook parameter holds no URL",
    )


def make_webhook_url_provider(
    *,
    parameter: str | None,
    url: str | None,
    get_parameter: ParameterGetter,
    get_secret: ParameterGetter,
    max_age: int = 300,
) -> Callable[[], str] | None:
    """Build the ``url_provider`` for ``SlackChannel`` from the two settings; None when Slack is off.

    ``parameter`` (DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER) wins over ``url`` (DEPUTY_GUARD_SLACK_WEBHOOK_URL).
    A Secrets Manager ARN is read with ``get_secret``; anything else is an SSM parameter read with
    ``get_parameter(..., decrypt=True)`` (which also serves ``/aws/reference/secretsmanager/NAME``).
    Pass Powertools' ``parameters.get_parameter``/``get_secret`` (or a provider's ``get``); their
    ``max_age`` cache means a warm Lambda does not call AWS per message.
    """
    return make_parameter_provider(
        parameter=parameter,
        value=url,
        parse=_webhook_from_value,
        get_parameter=get_parameter,
        get_secret=get_secret,
        max_age=max_age,
    )


def make_parameter_provider(
    *,
    parameter: str | None,
    value: str | None,
    parse: Callable[[object], str],
    get_parameter: ParameterGetter,
    get_secret: ParameterGetter,
    max_age: int = 300,
) -> Callable[[], str] | None:
    """A secret read on each call: from ``parameter`` (Secrets Manager ARN or SSM name) when given, else ``value``.

    The stored value goes through ``parse``; a ``value`` from the environment is used as it is. None when neither.
    """
    if parameter:
        name = parameter
        if name.startswith("arn:") and ":secretsmanager:" in name:

            def from_secret() -> str:
                return parse(get_secret(name, max_age=max_age))

            return from_secret

        def from_parameter() -> str:
            return parse(get_parameter(name, max_age=max_age, decrypt=True))

        return from_parameter
    if value:
        fixed = value

        def from_setting() -> str:
            return fixed

        return from_setting
    return None
