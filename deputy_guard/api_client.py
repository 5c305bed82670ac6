"""`deputy-guard api ...`: the bot's IAM-authenticated REST API from the command line, signed with SigV4.

Requests are signed by botocore's own signer (``SigV4Auth`` for the ``execute-api`` service) with the
standard credential chain (``--profile``, ``AWS_PROFILE``, SSO, environment); nothing of SigV4 is written
here. The API's URL comes from ``--url`` or ``DEPUTY_GUARD_API_URL`` (the stage URL ``chalice deploy`` prints,
for example ``https://abc123.execute-api.us-east-1.amazonaws.com/api``).

Exit status: 0 for a 2xx answer, 1 for a refusal (409: exempt, needs review, revert refused) or, for
``api scans``, a report with findings left to act on (as ``deputy-guard scan``), 2 for bad input, an unknown
role, a denied or failed request, or no answer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

from deputy_guard.aws_cli import fail
from deputy_guard.exits import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK

URL_VARIABLE: Final = "DEPUTY_GUARD_API_URL"
SIGNING_SERVICE: Final = "execute-api"
DEFAULT_REGION: Final = "us-east-1"
# API Gateway ends a request after 29 s; a little more, so its own answer (504) arrives rather than a timeout.
TIMEOUT_SECONDS: Final = 35.0
# Pages a scan follows at most (each one bounded by the bot's time budget).
MAX_PAGES: Final = 1000
FINDING_VERDICTS: Final = ("non_compliant", "needs_review")
_API_HOST: Final = re.compile(r"\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class ApiError(Exception):
    """No usable answer: no URL, no credentials, no connection (one line, exit 2)."""


def add_parser(commands: Any, aws_options: argparse.ArgumentParser) -> None:
    """Register ``api`` and its calls on the CLI's subcommands."""
    api = commands.add_parser(
        "api",
        parents=[aws_options],
        help="call the deployed bot's REST API (IAM authentication, SigV4-signed)",
        description="Call the deployed bot's REST API, signed with SigV4 from the standard AWS credential chain. "
        "Prints the JSON answer.",
        epilog="exit status: 0 answered, 1 refused (409) or, for scans, findings left to act on (as `scan`), "
        "2 bad input, unknown role, denied or no answer",
    )
    api.add_argument("--url", metavar="URL", help=f"the API's base URL (default: {URL_VARIABLE})")
    calls = api.add_subparsers(dest="api_command", metavar="CALL", required=True)

    scans = calls.add_parser("scans", help="POST /scans: scan the account (every page, unless --one-page)")
    scans.add_argument("--fix", action="store_true", help="apply fixes (default: dry run)")
    scans.add_argument("--role", action="append", metavar="NAME", help="only this role; repeat for more")
    scans.add_argument("--path-prefix", metavar="PREFIX", help="only roles under this IAM path")
    scans.add_argument("--next-token", metavar="TOKEN", help="continue a scan from a report's next_token")
    scans.add_argument("--one-page", action="store_true", help="print the first page instead of following next_token")
    _account_option(scans)

    role = calls.add_parser("role", help="GET /roles/NAME: one role's evaluation (changes nothing)")
    role.add_argument("name", metavar="NAME", help="role name")
    _account_option(role)

    remediate = calls.add_parser("remediate", help="POST /roles/NAME/remediate: fix the role now")
    remediate.add_argument("name", metavar="NAME", help="role name")
    remediate.add_argument("--dry-run", action="store_true", help="show the fix without applying it")
    _account_option(remediate)

    revert = calls.add_parser("revert", help="POST /roles/NAME/revert: restore the recorded original")
    revert.add_argument("name", metavar="NAME", help="role name")
    revert.add_argument("--force", action="store_true", help="refused by the bot's API: use `deputy-guard revert`")
    _account_option(revert)


def _account_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", metavar="ID", help="a member account of the bot's scope (default: its own)")


def run_api(args: argparse.Namespace, send: Callable[..., tuple[int, bytes]] | None = None) -> int:
    """Make the call; print the JSON answer (stdout) or one line (stderr)."""
    try:
        base = _base_url(args.url)
        method, path, query, body = _request(args)
        sender = send or signed_request
        if args.api_command == "scans" and not args.one_page:
            status, answer = _all_pages(sender, base, path, body)
        else:
            status, raw = sender(method, base + path + _query(query), body)
            answer = _json(raw)
    except ApiError as exc:
        return fail(str(exc))
    if 200 <= status < 300:
        print(json.dumps(answer, indent=2))
        if args.api_command == "scans" and isinstance(answer, dict):
            return scan_exit_code(answer)
        return EXIT_OK
    found = answer if isinstance(answer, dict) else {}
    message = found.get("Message") or found.get("message") or found.get("error")
    line = f"{method} {path} answered {status}: {message or json.dumps(answer)[:300]}"
    if status == 409:
        print(json.dumps(answer, indent=2))
        print(f"deputy-guard: refused: {line}", file=sys.stderr)
        return EXIT_FINDINGS
    fail(line)
    return EXIT_ERROR


def scan_exit_code(report: Mapping[str, Any]) -> int:
    """The exit status `deputy-guard scan` gives the same report: 2 roles not found, 1 anything needs action."""
    if report.get("missing"):
        return EXIT_ERROR
    settled = ("fixed", "exempt")
    open_findings = [
        row
        for row in report.get("results", [])
        if row.get("verdict") in FINDING_VERDICTS and row.get("action") not in settled
    ]
    return EXIT_FINDINGS if open_findings else EXIT_OK


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, str], dict[str, Any] | None]:
    """(method, path, query, JSON body) for the chosen call."""
    query = {"account": args.account} if getattr(args, "account", None) else {}
    if args.api_command == "scans":
        body: dict[str, Any] = {"dry_run": not args.fix}
        if args.role:
            body["role_names"] = args.role
        if args.path_prefix:
            body["path_prefix"] = args.path_prefix
        if args.next_token:
            body["next_token"] = args.next_token
        if args.account:
            body["account"] = args.account
        return "POST", "/scans", {}, body
    name = quote(args.name, safe="")
    if args.api_command == "role":
        return "GET", f"/roles/{name}", query, None
    if args.api_command == "remediate":
        return "POST", f"/roles/{name}/remediate", query, {"dry_run": True} if args.dry_run else {}
    return "POST", f"/roles/{name}/revert", query, {"force": True} if args.force else {}


def _all_pages(
    send: Callable[..., tuple[int, bytes]], base: str, path: str, body: dict[str, Any] | None
) -> tuple[int, Any]:
    """Follow next_token until the scan is complete; one merged report (a failed page is the answer)."""
    request = dict(body or {})
    pages: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        status, raw = send("POST", base + path, request)
        answer = _json(raw)
        if not 200 <= status < 300 or not isinstance(answer, dict):
            return status, answer
        pages.append(answer)
        if answer.get("complete", True) or not answer.get("next_token"):
            break
        request["next_token"] = answer["next_token"]
    return 200, merge_reports(pages)


def merge_reports(pages: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from a scan's pages: results and missing roles joined, counts added up."""
    merged = dict(pages[-1])
    merged["results"] = [row for page in pages for row in page.get("results", [])]
    merged["missing"] = [name for page in pages for name in page.get("missing", [])]
    for key in ("summary", "actions"):
        totals: dict[str, int] = {}
        for page in pages:
            for name, count in page.get(key, {}).items():
                totals[name] = totals.get(name, 0) + count
        merged[key] = totals
    return merged


def signed_request(method: str, url: str, body: Mapping[str, Any] | None) -> tuple[int, bytes]:
    """Send one request signed with SigV4 (botocore's signer, the standard credential chain)."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        raise ApiError(
            "no AWS credentials found: pass --profile, set AWS_PROFILE or AWS_ACCESS_KEY_ID, "
            "or sign in with `aws sso login`"
        )
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"} if data is not None else {}
    request = AWSRequest(method=method, url=url, data=data, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), SIGNING_SERVICE, signing_region(url, session)).add_auth(request)
    prepared = request.prepare()
    outgoing = urllib.request.Request(  # noqa: S310 (the URL's scheme is checked in _base_url)
        prepared.url, data=data, headers=dict(prepared.headers.items()), method=method
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError(f"cannot reach {urlsplit(url).netloc}: {reason}") from None


def signing_region(url: str, session: Any) -> str:
    """The region API Gateway checks the signature for: the URL's, else --region / the profile's, else us-east-1."""
    found = _API_HOST.search(urlsplit(url).hostname or "")
    if found:
        return found["region"]
    return str(session.get_config_variable("region") or DEFAULT_REGION)


def _base_url(flag: str | None) -> str:
    url = (flag or os.environ.get(URL_VARIABLE) or "").strip().rstrip("/")
    if not url:
        raise ApiError(f"no API URL: pass --url or set {URL_VARIABLE} (the stage URL `chalice deploy` prints)")
    if urlsplit(url).scheme not in ("https", "http") or not urlsplit(url).netloc:
        raise ApiError(f"--url / {URL_VARIABLE} must be an http(s) URL, not {url!r}")
    return url


def _query(query: Mapping[str, str]) -> str:
    return f"?{urlencode(query)}" if query else ""


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError):
        return {"message": raw.decode("utf-8", "replace")[:300]}
