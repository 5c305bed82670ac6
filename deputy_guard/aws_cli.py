"""What every AWS-facing subcommand shares: --profile and --region, and one-line answers for AWS failures.

Credentials come from the standard chain (environment, ``AWS_PROFILE``, SSO, instance roles); ``--profile``
and ``--region`` win over the environment, as they do for the AWS CLI. A missing profile, absent or
expired credentials, an unreachable endpoint: each is one line on stderr and exit status 2, never a
traceback (``guard``). botocore is imported only when a subcommand that talks to AWS runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from deputy_guard.exits import EXIT_ERROR

P = TypeVar("P", bound=argparse.ArgumentParser)

PROG = "deputy-guard"
# Variables that name credentials directly; an explicit --profile must not be overridden by them.
_KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# AWS's answers that mean "these credentials are no good", whatever the service.
_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "AuthFailure",
        "RequestExpired",
        "InvalidAccessKeyId",
    }
)
# botocore's exceptions for an endpoint that cannot be reached or does not answer.
_CONNECTION_ERRORS = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
    "SSLError",
)


def aws_options(parser_class: type[P], *, on_subcommand: bool) -> P:
    """A parent parser (of ``parser_class``) with --profile and --region.

    On a subcommand the defaults are suppressed, so ``deputy-guard --profile p scan`` and
    ``deputy-guard scan --profile p`` mean the same and neither overwrites the other with None.
    """
    parent = parser_class(add_help=False)
    default: Any = argparse.SUPPRESS if on_subcommand else None
    parent.add_argument(
        "--profile",
        metavar="NAME",
        default=default,
        help="the AWS profile to use (default: AWS_PROFILE, else the standard credential chain)",
    )
    parent.add_argument(
        "--region",
        metavar="REGION",
        default=default,
        help="the AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, else the profile's, else us-east-1)",
    )
    return parent


def apply_aws_options(args: argparse.Namespace, environ: Any = None) -> None:
    """Put --profile and --region where boto3 reads them (this process's environment), the flags winning."""
    env = os.environ if environ is None else environ
    profile = getattr(args, "profile", None)
    if profile:
        env["AWS_PROFILE"] = profile
        for name in (*_KEY_VARIABLES, "AWS_DEFAULT_PROFILE"):
            env.pop(name, None)
    region = getattr(args, "region", None)
    if region:
        env["AWS_REGION"] = region
        env["AWS_DEFAULT_REGION"] = region


def describe_aws_failure(exc: BaseException) -> str | None:
    """One line for an AWS failure (botocore's or the gateways' AwsError), or None when it is none of those."""
    from chalicelib.adapters.errors import AwsError

    if isinstance(exc, AwsError):
        cause = exc.__cause__
        described = describe_aws_failure(cause) if cause is not None and cause is not exc else None
        if described is not None:
            return described
        if exc.code in _CREDENTIAL_CODES:
            return f"AWS rejected the credentials ({exc.code}): {exc.message}"
        return f"AWS call failed: {exc}"
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover - botocore ships with every install
        return None
    if isinstance(exc, boto.ProfileNotFound):
        name = exc.kwargs.get("profile", "?")
        return f"AWS profile {name!r} not found (--profile or AWS_PROFILE): `aws configure list-profiles` lists them"
    if isinstance(exc, boto.NoCredentialsError):
        return (
            "no AWS credentials found: pass --profile, set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or sign in with `aws sso login`"
        )
    if isinstance(exc, boto.PartialCredentialsError):
        return f"incomplete AWS credentials: {exc}"
    if isinstance(exc, (boto.TokenRetrievalError, boto.SSOTokenLoadError, boto.UnauthorizedSSOTokenError)):
        return f"the AWS SSO session cannot be used ({type(exc).__name__}): sign in again with `aws sso login`"
    if isinstance(exc, boto.NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if type(exc).__name__ in _CONNECTION_ERRORS and isinstance(exc, boto.BotoCoreError):
        where = getattr(exc, "kwargs", {}).get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
        return f"cannot reach {where}: {exc}"
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        if code in _CREDENTIAL_CODES:
            return f"AWS rejected the credentials ({code}): {error.get('Message', '')}"
        return f"AWS call failed: {exc}"
    if isinstance(exc, boto.BotoCoreError):
        return f"AWS call failed: {exc}"
    return None


def guard(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run an AWS-facing subcommand; an AWS failure that escapes it is one line on stderr and exit 2."""
    try:
        return run(args)
    except Exception as exc:
        message = describe_aws_failure(exc)
        if message is None:
            raise
        fail(message)
        return EXIT_ERROR


def fail(message: str) -> int:
    """One line on stderr in the CLI's error form; returns the error exit status."""
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")
    return EXIT_ERROR
