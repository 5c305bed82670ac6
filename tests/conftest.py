"""Suite-wide isolation: fake AWS credentials, no real endpoint, no leaked settings or cached clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest

from chalicelib.adapters import aws

TEST_ACCOUNT = "111122223333"
_LOADER: list[Any] = []  # one botocore loader per worker: service models parsed once


def _default_session(**kwargs: Any) -> None:
    """boto3's default session (``boto3.client``), on the worker's one loader.

    moto resets boto3's default session at every mock start, and a new session parses every service model
    it uses again (about 60 ms a test). The session is made as the bot makes its own, so the data folder
    boto3 adds to the shared loader for every session is not repeated.
    """
    core = kwargs.pop("botocore_session", None)
    if core is None:
        core = botocore.session.get_session()
        if _LOADER:
            core.register_component("data_loader", _LOADER[0])
        else:
            _LOADER.append(core.get_component("data_loader"))
    boto3.DEFAULT_SESSION = aws._boto3_session(core, **kwargs)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(boto3, "setup_default_session", _default_session)
    for name in list(os.environ):
        if name.startswith(("DEPUTY_GUARD_", "AWS_", "POWERTOOLS_")) or name in ("LOG_LEVEL",):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MOTO_ACCOUNT_ID", TEST_ACCOUNT)
    # Any stray call to real AWS fails fast instead of leaving loopback: real endpoints are https, and
    # https goes to a dead loopback proxy; moto intercepts before sending, and local servers are exempt.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield
    from chalicelib.runtime import container

    container.reset()
    aws.reset_clients()


# The moto-backed account used by the enforcement, app and scan tests.
from tests.world import make_world  # noqa: E402

__all__ = ["make_world"]
