"""Signed audit records: what the bot signs, and how a record is checked before anything acts on it.

The bot signs every change record it writes with a KMS HMAC key that only its own function roles may use
for ``GenerateMac`` (chalicelib.adapters.kms). A revert, by any path, verifies the record first, so a
record somebody else wrote into the table (unsigned, signed with another key, or altered) steers nothing.
What the signature proves, and what it does not: docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

SIGNATURE_VERSION = "1"
# The fields a signature covers, as the table stores them (documents as their stored compact JSON text).
# ``status`` and ``updated_at`` change after the write and are deliberately outside it.
SIGNED_FIELDS = ("change_id", "role_arn", "role_name", "account", "kind", "before", "after", "created_at", "reverts")
_DOMAIN = b"deputy-guard audit record v" + SIGNATURE_VERSION.encode()


class MacKey(Protocol):
    """An HMAC key that never leaves its store (KMS ``GenerateMac``/``VerifyMac`` in production)."""

    @property
    def key_id(self) -> str: ...

    def generate_mac(self, message: bytes) -> bytes: ...

    def verify_mac(self, message: bytes, mac: bytes) -> bool: ...


def record_message(item: Mapping[str, Any]) -> bytes:
    """The bytes a record's signature covers: a domain label and the SHA-256 of its signed fields.

    KMS takes at most 4,096 bytes, and two trust policies may be longer, so the MAC covers their digest.
    """
    fields = {name: item.get(name) for name in SIGNED_FIELDS}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _DOMAIN + b":" + hashlib.sha256(canonical.encode("ascii")).hexdigest().encode("ascii")


class RecordSigner:
    """Signs records as they are written, and says why a stored record cannot be trusted (None: it can)."""

    def __init__(self, key: MacKey) -> None:
        self._key = key

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def sign(self, item: Mapping[str, Any]) -> dict[str, str]:
        """The signature attributes to store with ``item``."""
        mac = self._key.generate_mac(record_message(item))
        return {
            "signature": base64.b64encode(mac).decode("ascii"),
            "signature_key": self._key.key_id,
            "signature_version": SIGNATURE_VERSION,
        }

    def problem(self, item: Mapping[str, Any]) -> str | None:
        """Why ``item`` is not a record this key signed as it stands, or None when it verifies."""
        signature = item.get("signature")
        if not isinstance(signature, str) or not signature:
            return "it is unsigned"
        if item.get("signature_version") != SIGNATURE_VERSION:
            return f"its signature version {item.get('signature_version')!r} is not one deputy-guard writes"
        try:
            mac = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return "its signature is not valid base64"
        if not self._key.verify_mac(record_message(item), mac):
            return "its signature does not verify with deputy-guard's signing key (altered, or signed by another key)"
        return None
