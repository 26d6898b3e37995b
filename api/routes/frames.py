"""Frames in: `POST /analyze-frame` (base64 JSON) and `WS /sessions/{id}/stream` (binary). Both go
through the same `pipeline.frame.FramePipeline.analyze`, limits and all."""
from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, Depends, Request, WebSocket

from api import errors
from api.auth import frame_credential
from api.schemas import AnalyzeFrameRequest, AnalyzeFrameResponse
from api.services import services_of
from api.stream import LatestFrameSlot, decode_message
from auth.tokens import bearer
from errors import ProctorError, SessionClosed
from pipeline.frame import FrameInput

router = APIRouter(tags=["frames"])


@router.post("/analyze-frame", response_model=AnalyzeFrameResponse,
             responses=errors.responses(400, 401, 403, 404, 409, 413, 422, 429, 503))
async def analyze_frame(body: AnalyzeFrameRequest, request: Request,
                        credential: str | None = Depends(frame_credential)) -> AnalyzeFrameResponse:
    """One webcam frame: what it shows, and the session's live risk after it."""
    arrival, started = time.time(), time.perf_counter()
    return await services_of(request).frames.analyze(
        FrameInput(str(body.session_id), credential, body.frame, body.timestamp, arrival, started))


@router.websocket("/sessions/{session_id}/stream")
async def stream(websocket: WebSocket, session_id: str, token: str | None = None):
    """Frames in as binary messages (8-byte big-endian float64 capture time, then the JPEG/PNG/WebP
    bytes), one JSON message out per analysed frame: the fields of /analyze-frame plus `dropped`,
    or `{"error", "status", "dropped"}` with the status HTTP would answer. Only the newest waiting
    frame is kept (api.stream). Credentials: `?token=` (the session token or an API key; browsers
    cannot set headers on a WebSocket) or the headers /analyze-frame takes."""
    frames = services_of(websocket).frames
    headers = websocket.headers
    credential = (token or headers.get("x-session-token") or headers.get("x-api-key")
                  or bearer(headers.get("authorization")))
    await websocket.accept()
    try:
        session_id = str(uuid.UUID(session_id))
        await frames.admit_stream(session_id, credential)
    except (ValueError, ProctorError) as exc:
        reason = f"session_id {session_id!r} is not a UUID" if isinstance(exc, ValueError) else str(exc)
        await websocket.close(code=1008, reason=reason[:120])
        return

    slot: LatestFrameSlot[tuple[bytes, float, float]] = LatestFrameSlot()

    async def receive() -> None:
        try:
            while True:
                message = await websocket.receive_bytes()
                slot.put((message, time.time(), time.perf_counter()))
        except Exception:  # noqa: BLE001 - any disconnect ends the stream
            slot.close()

    reader = asyncio.create_task(receive())
    try:
        while (taken := await slot.take()) is not None:
            message, arrival, started = taken.item
            try:
                capture_time, image = decode_message(message)
                result = await frames.analyze(FrameInput(session_id, credential, image, capture_time, arrival, started))
                await websocket.send_json({**result.model_dump(mode="json", by_alias=True), "dropped": taken.dropped})
            except ProctorError as exc:
                await websocket.send_json({**errors.stream_error(exc), "dropped": taken.dropped})
                if isinstance(exc, SessionClosed):
                    break  # nothing more to analyse
    finally:
        reader.cancel()
        try:
            await websocket.close()
        except Exception:  # noqa: BLE001 - already closed by the client
            pass

