"""Fixtures of the enforcement tests: the Chalice app's test client for the REST routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chalice.test import Client

import app as app_module


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(app_module.app) as test_client:
        yield test_client
