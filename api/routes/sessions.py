"""Session lifecycle over HTTP: start, end, live state, delete; and /health. Each handler hands the
work to `sessions.service.SessionService`."""
from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Request

from api import errors
from api.auth import require_integrator
from api.schemas import (AudioSettings, DeleteResponse, EndSessionRequest, EndSessionResponse, Health, SessionState,
                         StartSessionRequest, StartSessionResponse)
from api.services import services_of
from errors import InvalidRequest
from report.build import report_path

router = APIRouter(tags=["sessions"])
integrator = [Depends(require_integrator)]
# OpenAPI links: what a client (and a stateful fuzzer) does next with a new session's id.
_SESSION_ID = "$response.body#/session_id"
SESSION_LINKS = {
    "AnalyzeFrame": {"operationId": "analyze_frame", "requestBody": {"session_id": _SESSION_ID}},
    "AnalyzeAudio": {"operationId": "analyze_audio", "requestBody": {"session_id": _SESSION_ID}},
    "SessionState": {"operationId": "session_state", "parameters": {"session_id": _SESSION_ID}},
    "EndSession": {"operationId": "end_session", "requestBody": {"session_id": _SESSION_ID}},
    "Report": {"operationId": "report", "parameters": {"session_id": _SESSION_ID}},
    "DeleteSession": {"operationId": "delete_session", "parameters": {"session_id": _SESSION_ID}},
}


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok")


@router.post("/start-session", response_model=StartSessionResponse, dependencies=integrator,
             responses={200: {"links": SESSION_LINKS}, **errors.responses(400, 401, 403, 413, 422, 503)})
async def start_session(body: StartSessionRequest, request: Request) -> StartSessionResponse:
    services = services_of(request)
    reference = None
    if body.reference_image is not None:
        if services.frames.identity is None:
            raise InvalidRequest("reference_image: identity is off on this service (risk.identity.enabled)")
        reference = await services.frames.identity.reference(body.reference_image)
    audio = services.config.audio
    session = await services.sessions.start(body.candidate_id, body.mode or audio.default_mode, reference)
    token, expires = services.access.session_token(session.session_id, session.started_at)
    return StartSessionResponse(session_id=session.session_id, message="Session started",
                                timestamp=session.started_at, session_token=token, token_expires_at=expires,
                                mode=session.mode, audio=AudioSettings(enabled=audio.enabled,
                                                                       max_chunk_s=audio.max_chunk_s))


@router.post("/end-session", response_model=EndSessionResponse, dependencies=integrator,
             responses=errors.responses(400, 401, 403, 404, 409, 422, 503))
async def end_session(body: EndSessionRequest, request: Request) -> EndSessionResponse:
    session_id = str(body.session_id)
    summary = await services_of(request).sessions.end(session_id)
    return EndSessionResponse(session_id=session_id, report_url=report_path(request, session_id) + ".html", **summary)


@router.get("/sessions/{session_id}", response_model=SessionState, dependencies=integrator,
            responses=errors.responses(401, 403, 404, 422, 503))
async def session_state(session_id: UUID, request: Request) -> SessionState:
    """Live state of an open session (from its actor), or the summary of an ended one."""
    return SessionState(**await services_of(request).sessions.state(str(session_id)))


@router.delete("/sessions/{session_id}", response_model=DeleteResponse, dependencies=integrator,
               responses=errors.responses(401, 403, 404, 422))
async def delete_session(session_id: UUID, request: Request) -> DeleteResponse:
    """Remove every trace of a session: its actor, observations, events and evidence."""
    await services_of(request).sessions.delete(str(session_id))
    return DeleteResponse(session_id=session_id, deleted=True)
