"""Standard Webhooks v1 (HMAC-SHA256) signatures: secrets, and the three headers of a delivery.
Pure code (no Ray); `tests/test_webhooks.py` checks it against the reference library
(`standardwebhooks`)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """32 random bytes, shown as whsec_<base64> (the spec's form: 24-64 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret's key."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(message_id: str, timestamp: int, body: str, secrets_in_use: list[str]) -> dict[str, str]:
    """The webhook-* headers of one attempt: the same id on every retry, this attempt's time, and
    one signature per secret in use (two while a rotation overlaps), space-separated."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets_in_use),
    }
