"""Who may call what: integrator API keys and per-session candidate tokens. Pure code (no Ray).

- Integrators (the interview platform) hold API keys: several may be valid at once, for rotation.
  Keys come from `auth.api_keys` in config/serve.yaml and/or the PROCTOR_API_KEYS environment
  variable (comma-separated). Compared in constant time.
- `/start-session` returns a session token for the candidate's browser: HMAC-SHA256-signed,
  expiring, naming exactly one session. It opens `/analyze-frame` for that session and nothing else.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from pydantic import BaseModel, Field

API_KEYS_ENV = "PROCTOR_API_KEYS"
TOKEN_SECRET_ENV = "PROCTOR_TOKEN_SECRET"


class AuthConfig(BaseModel):
    """Access control. Every field is set (with a comment) in config/serve.yaml."""

    api_keys: list[str] = Field(default_factory=list)
    token_secret: str | None = None
    token_ttl_s: float = Field(4 * 3600, gt=0)
    min_key_length: int = Field(16, ge=8)

    def all_api_keys(self) -> list[str]:
        keys = list(self.api_keys)
        keys += [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",") if k.strip()]
        short = [k for k in keys if len(k) < self.min_key_length]
        if short:
            raise ValueError(f"{len(short)} API key(s) shorter than {self.min_key_length} characters")
        return keys

    def configured_token_secret(self) -> str | None:
        """$PROCTOR_TOKEN_SECRET (a secret belongs in the environment, not the config file), else
        auth.token_secret; None: the ingress keeps one in the session store."""
        return os.environ.get(TOKEN_SECRET_ENV, "").strip() or self.token_secret


class AuthError(Exception):
    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


def key_matches(presented: str | None, keys: list[str]) -> bool:
    """Constant time in the presented key, and every configured key is compared (no early exit)."""
    if not presented:
        return False
    presented_bytes = presented.encode()
    result = False
    for key in keys:
        result |= hmac.compare_digest(presented_bytes, key.encode())
    return result


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: str, session_id: str, expires_at: float) -> str:
    payload = _b64(json.dumps({"sid": session_id, "exp": round(expires_at, 3)}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


@dataclass(frozen=True)
class TokenClaims:
    session_id: str
    expires_at: float


def verify_token(secret: str, token: str, now: float | None = None) -> TokenClaims:
    """The token's claims if its signature is right and it has not expired; AuthError otherwise."""
    try:
        payload, signature = token.split(".")
        expected = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    except (ValueError, AttributeError):
        raise AuthError("malformed session token") from None
    if not hmac.compare_digest(signature, expected):
        raise AuthError("invalid session token")
    try:
        claims = json.loads(_unb64(payload))
        result = TokenClaims(str(claims["sid"]), float(claims["exp"]))
    except (ValueError, KeyError, TypeError):
        raise AuthError("malformed session token") from None
    if (now if now is not None else time.time()) >= result.expires_at:
        raise AuthError("session token has expired")
    return result


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None
