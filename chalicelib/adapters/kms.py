"""The KMS gateway: the audit records' HMAC key (``GenerateMac``/``VerifyMac``), and creating it for `setup`.

Its client comes from ``chalicelib.adapters.aws``; errors are translated there into the ``AwsError`` family.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, cast

from chalicelib.adapters.aws import _call
from chalicelib.adapters.errors import AwsError, NotFound

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

MAC_ALGORITHM = "HMAC_SHA_256"
SIGNING_KEY_DESCRIPTION = "deputy-guard: signs the audit records (GenerateMac for the bot's own roles only)"
# The alias `deputy-guard setup` and the demo create when DEPUTY_GUARD_SIGNING_KEY names none.
DEFAULT_SIGNING_KEY_ALIAS = "alias/deputy-guard-signing"
KEY_SPEC = "HMAC_256"


class KmsMacKey:
    """One HMAC key in KMS, named by key id, key ARN or alias; the key material never leaves KMS."""

    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._client = client
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def generate_mac(self, message: bytes) -> bytes:
        response = _call(
            "GenerateMac", self._client.generate_mac, Message=message, KeyId=self._key_id, MacAlgorithm=MAC_ALGORITHM
        )
        return bytes(response["Mac"])

    def verify_mac(self, message: bytes, mac: bytes) -> bool:
        """True when ``mac`` is this key's MAC of ``message``; False for any other MAC."""
        try:
            response = _call(
                "VerifyMac",
                self._client.verify_mac,
                Message=message,
                KeyId=self._key_id,
                MacAlgorithm=MAC_ALGORITHM,
                Mac=mac,
            )
        except AwsError as exc:
            if exc.code == "KMSInvalidMacException":
                return False
            raise
        return bool(response.get("MacValid"))

    def created_at(self) -> datetime:
        """When the key was created (DescribeKey)."""
        response = _call("DescribeKey", self._client.describe_key, KeyId=self._key_id)
        return cast(datetime, response["KeyMetadata"]["CreationDate"])


def ensure_mac_key(client: KMSClient, alias: str, description: str = SIGNING_KEY_DESCRIPTION) -> bool:
    """Create an HMAC key under ``alias`` unless the alias exists; True if created (`deputy-guard setup`)."""
    try:
        _call("DescribeKey", client.describe_key, KeyId=alias)
        return False
    except NotFound:
        pass
    response = _call(
        "CreateKey",
        client.create_key,
        KeySpec=KEY_SPEC,
        KeyUsage="GENERATE_VERIFY_MAC",
        Description=description,
    )
    _call("CreateAlias", client.create_alias, AliasName=alias, TargetKeyId=response["KeyMetadata"]["KeyId"])
    return True
