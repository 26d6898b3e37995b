"""OAuth2 client credentials for the LMS: /edx/oauth2/access_token issues an HS256 JWT, which every
later call sends as `Authorization: JWT <token>` (edx-rest-api-client's `OAuthAPIClient`). The
signing key is derived from the service's token secret, so every replica checks every token.
Pure code (no Ray)."""
from __future__ import annotations

import hashlib
import hmac
import time
import uuid

import jwt

from auth.tokens import key_matches
from errors import InvalidRequest, Unauthenticated

ISSUER = "proctor"


class EdxTokens:
    def __init__(self, client_id: str, client_secret: str, token_secret: str, ttl_s: float):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = hmac.new(token_secret.encode(), b"edx-access-token", hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def issue(self, form: dict[str, str], now: float | None = None) -> dict:
        """The token answer for a client-credentials request; Unauthenticated for wrong credentials."""
        if form.get("grant_type") != "client_credentials":
            raise InvalidRequest("grant_type: only client_credentials is supported")
        if form.get("token_type", "jwt").lower() != "jwt":
            raise InvalidRequest("token_type: only jwt is issued")
        client_ok = key_matches(form.get("client_id"), [self.client_id])
        secret_ok = key_matches(form.get("client_secret"), [self.client_secret])
        if not (client_ok and secret_ok):
            raise Unauthenticated("invalid client credentials")
        now = time.time() if now is None else now
        claims = {"iss": ISSUER, "sub": self.client_id, "aud": self.client_id, "iat": int(now),
                  "exp": int(now + self.ttl_s), "jti": uuid.uuid4().hex, "scope": "proctoring"}
        return {"access_token": jwt.encode(claims, self.key, algorithm="HS256"), "token_type": "JWT",
                "expires_in": int(self.ttl_s), "scope": "proctoring"}

    def verify(self, authorization: str | None) -> None:
        """`Authorization: JWT <token>` with a token this service issued and that has not expired."""
        if not authorization:
            raise Unauthenticated("missing token: send Authorization: JWT <token from /edx/oauth2/access_token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.upper() != "JWT" or not token.strip():
            raise Unauthenticated("send the token as Authorization: JWT <token>")
        try:
            jwt.decode(token.strip(), self.key, algorithms=["HS256"], audience=self.client_id, issuer=ISSUER,
                       options={"require": ["exp", "iat", "aud", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token") from None
