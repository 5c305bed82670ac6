"""Slack interactivity I/O: the signing-secret provider and the poster of answers to a click's response_url."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.adapters.slack import NoRedirect, ParameterGetter, make_parameter_provider, value_from_parameter
from chalicelib.domain.slack_actions import response_url_allowed

# Slack wants the click answered within 3 s and the work is done first: the answer gets what is left.
RESPONSE_TIMEOUT_SECONDS = 1.5


def _secret_from_value(value: object) -> str:
    """A signing secret from a parameter or secret value: the plain string, or JSON ``{"signing_secret": ...}``."""
    return value_from_parameter(
        value,
        keys=("signing_secret",),
        unparsable="signing secret looks like JSON but does not parse",
        empty="the signing-secret parameter holds no secret",
    )


def make_signing_secret_provider(
    *,
    parameter: str | None,
    secret: str | None,
    get_parameter: ParameterGetter,
    get_secret: ParameterGetter,
    max_age: int = 300,
) -> Callable[[], str] | None:
    """The Slack signing secret, read as the webhook URL is (see ``make_webhook_url_provider``); None when unset.

    ``parameter`` (DEPUTY_GUARD_SLACK_SIGNING_SECRET_PARAMETER) wins over ``secret``
    (DEPUTY_GUARD_SLACK_SIGNING_SECRET). Powertools Parameters caches the value for ``max_age`` seconds, so a
    warm Lambda verifies a click without calling AWS; a rotated secret is picked up within that time.
    """
    return make_parameter_provider(
        parameter=parameter,
        value=secret,
        parse=_secret_from_value,
        get_parameter=get_parameter,
        get_secret=get_secret,
        max_age=max_age,
    )


class ResponsePoster:
    """POSTs a click's answer to its response_url: one attempt, a short timeout, no redirects.

    Only a URL under ``base`` (Slack's hooks host; loopback for a local stand-in) is ever contacted, so a
    signed request cannot point the bot at an internal address. Never raises: the click already acted.
    """

    def __init__(
        self,
        base: str,
        *,
        timeout: float = RESPONSE_TIMEOUT_SECONDS,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self._base = base
        self._timeout = timeout
        self._opener = opener if opener is not None else urllib.request.build_opener(NoRedirect)

    def post(self, url: str, payload: Mapping[str, Any]) -> str | None:
        """None when Slack took the answer; otherwise a short, secret-free reason."""
        if not response_url_allowed(url, self._base):
            return "response_url refused: not under the configured Slack hooks URL"
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - scheme and host checked above
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "deputy-guard"},
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read(4096)
            return None
        except urllib.error.HTTPError as err:
            try:
                return f"HTTP {err.code}"
            finally:
                err.close()
        except (OSError, http.client.HTTPException, ValueError) as err:
            # The text may carry the URL (which holds a one-time token): the kind is enough.
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            return f"connection failed ({type(reason).__name__})"
