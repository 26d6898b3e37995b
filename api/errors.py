"""The one table from domain errors to HTTP statuses, the one error body every status answers
with, and the handlers that apply both (HTTP responses and WebSocket error messages alike)."""
from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from errors import (AudioError, AudioProblem, Conflict, FrameError, FrameProblem, Forbidden, InvalidRequest,
                    ModelTimeout, NotFound, ProctorError, RateLimited, Saturated, SessionClosed, SessionStillOpen,
                    SessionUnavailable, TooManySessions, Unauthenticated)

STATUS: dict[type[ProctorError], int] = {
    InvalidRequest: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    SessionClosed: 409,
    SessionStillOpen: 409,
    Conflict: 409,
    RateLimited: 429,
    TooManySessions: 503,
    SessionUnavailable: 503,
    Saturated: 503,
    ModelTimeout: 503,
}
FRAME_STATUS: dict[FrameProblem, int] = {
    FrameProblem.MALFORMED: 400,
    FrameProblem.TOO_LARGE: 413,
    FrameProblem.NOT_AN_IMAGE: 422,
    FrameProblem.CORRUPT: 422,
}
AUDIO_STATUS: dict[AudioProblem, int] = {
    AudioProblem.MALFORMED: 400,
    AudioProblem.TOO_LARGE: 413,
    AudioProblem.UNSUPPORTED: 422,
    AudioProblem.CORRUPT: 422,
}


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error, whatever its status: `detail` says what is wrong in words."""

    detail: str
    errors: list[ValidationIssue] | None = Field(None, description="422 from request validation: each field's problem")


def http_status(error: ProctorError) -> int:
    if isinstance(error, FrameError):
        return FRAME_STATUS[error.problem]
    if isinstance(error, AudioError):
        return AUDIO_STATUS[error.problem]
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    raise KeyError(f"no HTTP status for {type(error).__name__}")


def retry_after(error: ProctorError) -> int | None:
    """Whole seconds to wait before trying again (Retry-After's unit), at least 1; None: do not wait."""
    return None if error.retry_after_s is None else max(1, math.ceil(error.retry_after_s))


def error_headers(error: ProctorError) -> dict[str, str]:
    headers = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(retry_after(error))
    return headers


def stream_error(error: ProctorError) -> dict[str, Any]:
    """A WebSocket stream's answer to a frame it refused: the HTTP status and message it would get."""
    message: dict[str, Any] = {"error": str(error), "status": http_status(error)}
    if error.retry_after_s is not None:
        message["retry_after"] = retry_after(error)  # as HTTP's Retry-After header
    return message


# Descriptions for the OpenAPI `responses` of each operation.
MEANING = {
    400: "malformed body (not JSON), frame or audio chunk (not base64, empty)",
    401: "no, a wrong or an expired API key or session token",
    403: "another session's token, a reviewer key where an integrator key is needed, or audio sent while audio is off (audio.enabled: false)",
    404: "unknown session, event, webhook endpoint or delivery",
    409: "the session has ended or is being ended; or (reviews) has not ended yet; or a limit or state forbids it",
    413: "body, frame, pixel count or audio chunk length over its limit",
    422: "invalid field, not a JPEG/PNG/WebP image or corrupt image data, or audio that is not a 16 kHz mono 16-bit PCM WAV",
    429: "over the per-session frame or audio rate (Retry-After)",
    503: "the service is full or a model did not answer (Retry-After)",
}


def responses(*statuses: int, json_route: bool = True) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for these error statuses, each with ErrorResponse as JSON. A route whose
    success is not JSON (a page, an image) names the JSON body itself: FastAPI would otherwise
    document its errors under the route's own media type."""
    if json_route:
        return {status: {"model": ErrorResponse, "description": MEANING[status]} for status in statuses}
    json_error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    return {status: {"content": json_error, "description": MEANING[status]} for status in statuses}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (a 405's Allow header must list them all, not
    only those of the first route whose path matched)."""
    from starlette.routing import Match

    methods = set()
    for route in request.app.router.routes:
        for method in getattr(route, "methods", None) or ():
            if route.matches({**request.scope, "method": method})[0] == Match.FULL:
                methods.add(method)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProctorError)
    async def _domain(_request: Request, exc: ProctorError) -> JSONResponse:
        return JSONResponse(status_code=http_status(exc), content={"detail": str(exc)}, headers=error_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [{"loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
                   "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, i['loc']))}: {i['msg']}" for i in issues) or "invalid request"
        return JSONResponse(status_code=422, content={"detail": detail, "errors": issues})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc.detail)}, headers=headers or None)
