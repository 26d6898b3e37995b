"""The reviewer's views of a session: the report as JSON and as a page, and each event's evidence."""
from __future__ import annotations

import asyncio
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from api import errors
from api.auth import require_reviewer
from api.schemas import Report
from api.services import services_of
from errors import NotFound, SessionNotFound
from report.build import build_report, report_path
from report.html import render_report_html
from vision.evidence import render_overlay

router = APIRouter(tags=["reports"], dependencies=[Depends(require_reviewer)])  # reviewers read reports too


async def _report(request: Request, session_id: UUID) -> dict:
    sid = str(session_id)
    report = await asyncio.to_thread(build_report, services_of(request).store, sid, report_path(request, sid))
    if report is None:
        raise SessionNotFound(sid)
    return report


@router.get("/sessions/{session_id}/report", response_model=Report, responses=errors.responses(401, 404, 422))
async def report(session_id: UUID, request: Request) -> dict:
    return await _report(request, session_id)


@router.get("/sessions/{session_id}/report.html", response_class=HTMLResponse,
            responses=errors.responses(401, 404, 422, json_route=False))
async def report_html(session_id: UUID, request: Request) -> HTMLResponse:
    return HTMLResponse(render_report_html(await _report(request, session_id)))


@router.get("/sessions/{session_id}/events/{event_id}/audio.wav", response_class=Response,
            responses={200: {"content": {"audio/wav": {}}, "description": "the audio event's evidence clip"},
                       **errors.responses(401, 404, 422, json_route=False)})
async def audio_clip(session_id: UUID, event_id: str, request: Request) -> Response:
    """An audio event's evidence: the clip of the speech that opened it (16 kHz mono WAV)."""
    sid = str(session_id)
    store = services_of(request).store
    clip = await asyncio.to_thread(store.audio_clip, sid, event_id)
    if clip is None:
        if await asyncio.to_thread(store.get, sid) is None:
            raise SessionNotFound(sid)
        raise NotFound(f"no audio clip for event {event_id!r} in session {sid}")
    return Response(content=clip, media_type="audio/wav")


@router.get("/sessions/{session_id}/events/{event_id}/evidence.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the evidence frame"},
                       **errors.responses(401, 404, 422, json_route=False)})
async def evidence(session_id: UUID, event_id: str, request: Request) -> Response:
    sid = str(session_id)
    store = services_of(request).store
    stored = await asyncio.to_thread(store.evidence, sid, event_id)
    if stored is None:
        if await asyncio.to_thread(store.get, sid) is None:
            raise SessionNotFound(sid)
        raise NotFound(f"no evidence for event {event_id!r} in session {sid}")
    frame, overlay = stored
    jpeg = frame if overlay is None else await asyncio.to_thread(render_overlay, frame, overlay)
    return Response(content=jpeg, media_type="image/jpeg")
