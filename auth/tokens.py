"""Who may call what: integrator API keys and per-session candidate tokens. Pure code (no Ray).

- Integrators (the interview platform) hold API keys: several may be valid at once, for rotation.
  Keys come from `auth.api_keys` in config/serve.yaml and/or the PROCTOR_API_KEYS environment
  variable (comma-separated; `settings.resolve_environment`). Compared in constant time.
- Reviewers hold reviewer keys (`auth.reviewer_keys`, PROCTOR_REVIEWER_KEYS): the `reviewer` scope
  reads reports and evidence and reviews ended sessions, nothing else. Integrator keys pass too.
- `/start-session` returns a session token for the candidate's browser: HMAC-SHA256-signed,
  expiring, naming exactly one session. It opens `/analyze-frame` for that session and nothing else.
- `AccessPolicy` decides who may call what; `api/auth.py` applies it as FastAPI dependencies.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from errors import Forbidden, Unauthenticated


def key_matches(presented: str | None, keys: list[str]) -> bool:
    """Constant time in the presented key, and every configured key is compared (no early exit)."""
    if not presented:
        return False
    presented_bytes = presented.encode()
    result = False
    for key in keys:
        result |= hmac.compare_digest(presented_bytes, key.encode())
    return result


def key_fingerprint(key: str) -> str:
    """A key's stable, non-secret name (who registered a webhook, who reviewed): a hash prefix."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Caller:
    """Who called: their scope and their key's fingerprint ("anonymous" with auth off)."""

    scope: str  # integrator | reviewer
    key_id: str


ANONYMOUS = Caller("integrator", "anonymous")


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
    """The token's claims if its signature is right and it has not expired; Unauthenticated otherwise."""
    try:
        payload, signature = token.split(".")
        expected = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    except (ValueError, AttributeError):
        raise Unauthenticated("malformed session token") from None
    if not hmac.compare_digest(signature, expected):
        raise Unauthenticated("invalid session token")
    try:
        claims = json.loads(_unb64(payload))
        result = TokenClaims(str(claims["sid"]), float(claims["exp"]))
    except (ValueError, KeyError, TypeError):
        raise Unauthenticated("malformed session token") from None
    if (now if now is not None else time.time()) >= result.expires_at:
        raise Unauthenticated("session token has expired")
    return result


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


class AccessPolicy:
    """Who may call what. Integrator calls need an API key; frame calls take the key or the session
    token of that very session. With no keys configured, auth is off (the service warns loudly)."""

    def __init__(self, api_keys: list[str], token_secret: str, token_ttl_s: float,
                 reviewer_keys: list[str] | tuple[str, ...] = ()):
        self.api_keys = list(api_keys)
        self.reviewer_keys = list(reviewer_keys)
        self.token_secret = token_secret
        self.token_ttl_s = token_ttl_s

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys)

    def require_integrator(self, presented: str | None) -> Caller:
        if not self.enabled:
            return ANONYMOUS
        if not presented:
            raise Unauthenticated("missing API key: send Authorization: Bearer <key> or X-API-Key")
        if not key_matches(presented, self.api_keys):
            if key_matches(presented, self.reviewer_keys):
                raise Forbidden("a reviewer key cannot make this call: it needs an integrator key")
            raise Unauthenticated("invalid API key")
        return Caller("integrator", key_fingerprint(presented))

    def require_reviewer(self, presented: str | None) -> Caller:
        """A reviewer key, or an integrator key (which may do all a reviewer does)."""
        if not self.enabled:
            return ANONYMOUS
        if not presented:
            raise Unauthenticated("missing API key: send Authorization: Bearer <key> or X-API-Key")
        integrator, reviewer = key_matches(presented, self.api_keys), key_matches(presented, self.reviewer_keys)
        if not (integrator or reviewer):
            raise Unauthenticated("invalid API key")
        return Caller("integrator" if integrator else "reviewer", key_fingerprint(presented))

    def require_frame_access(self, session_id: str, presented: str | None, now: float | None = None) -> None:
        """The integrator's API key, or the (unexpired) session token of this very session."""
        if not self.enabled:
            return
        if not presented:
            raise Unauthenticated("missing credentials: send the session token as Authorization: Bearer <token>")
        if key_matches(presented, self.api_keys):
            return
        if verify_token(self.token_secret, presented, now).session_id != session_id:
            raise Forbidden("this session token belongs to another session")

    def session_token(self, session_id: str, now: float) -> tuple[str, float]:
        """A token for the candidate's client, and when it expires."""
        expires = now + self.token_ttl_s
        return make_token(self.token_secret, session_id, expires), expires
