"""Auth as FastAPI dependencies, over `auth.tokens.AccessPolicy`. Integrator calls send an API key
(`Authorization: Bearer <key>` or `X-API-Key`); frame calls also take the session token
(`Authorization: Bearer <token>` or `X-Session-Token`), checked against the session by the frame
pipeline. Declared as security schemes, so /docs shows them."""
from __future__ import annotations

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.services import services_of
from auth.tokens import Caller

bearer_scheme = HTTPBearer(auto_error=False, description="an integrator API key, or a session token for frames")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="an integrator API key")
session_token_scheme = APIKeyHeader(name="X-Session-Token", auto_error=False,
                                    description="the session token from /start-session (frames only)")


def presented(bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
              api_key: str | None = Security(api_key_scheme)) -> str | None:
    return api_key or (bearer.credentials if bearer else None)


def frame_credential(session_token: str | None = Security(session_token_scheme),
                     credential: str | None = Depends(presented)) -> str | None:
    """What a frame call presented; the pipeline checks it against the frame's session."""
    return session_token or credential


def require_integrator(request: Request, credential: str | None = Depends(presented)) -> Caller:
    return services_of(request).access.require_integrator(credential)


def require_reviewer(request: Request, credential: str | None = Depends(presented)) -> Caller:
    """The `reviewer` scope: a reviewer key or an integrator key."""
    return services_of(request).access.require_reviewer(credential)
