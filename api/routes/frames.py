"""Frames and audio in: `POST /analyze-frame` (base64 JSON), `POST /analyze-audio` (base64 WAV in JSON)
and `WS /sessions/{id}/stream` (binary, both). Frames go through `pipeline.frame.FramePipeline.analyze`,
audio through `pipeline.audio.AudioPipeline.analyze`, limits and all, whichever way they came."""
from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, Depends, Request, WebSocket

from api import errors
from api.auth import frame_credential
from api.schemas import AnalyzeAudioRequest, AnalyzeAudioResponse, AnalyzeFrameRequest, AnalyzeFrameResponse
from api.services import services_of
from api.stream import LatestFrameSlot, decode_message, message_kind
from auth.tokens import bearer
from errors import ProctorError, Saturated, SessionClosed
from pipeline.audio import AudioInput
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


@router.post("/analyze-audio", response_model=AnalyzeAudioResponse,
             responses=errors.responses(400, 401, 403, 404, 409, 413, 422, 429, 503))
async def analyze_audio(body: AnalyzeAudioRequest, request: Request,
                        credential: str | None = Depends(frame_credential)) -> AnalyzeAudioResponse:
    """One chunk of the candidate's microphone (a WAV of 16 kHz mono 16-bit PCM, up to
    audio.max_chunk_s): the speech heard in it, and the session's audio events after it."""
    arrival, started = time.time(), time.perf_counter()
    return await services_of(request).audio.analyze(
        AudioInput(str(body.session_id), credential, body.audio, body.timestamp, arrival, started))


@router.websocket("/sessions/{session_id}/stream")
async def stream(websocket: WebSocket, session_id: str, token: str | None = None):
    """Binary messages in: an 8-byte big-endian float64 capture time, then a frame's JPEG/PNG/WebP
    bytes or an audio chunk's WAV. One JSON message out per analysed frame (the fields of
    /analyze-frame plus `dropped`) and per audio chunk (the fields of /analyze-audio plus
    `"kind": "audio"`), or `{"error", "status", "dropped"}` (with `"kind": "audio"` for a chunk)
    with the status HTTP would answer. Only the newest waiting frame is kept (api.stream); audio
    chunks wait in order, up to audio.max_queued_chunks. Credentials: `?token=` (the session token
    or an API key; browsers cannot set headers on a WebSocket) or the headers /analyze-frame takes."""
    services = services_of(websocket)
    frames, audio = services.frames, services.audio
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
    chunks: asyncio.Queue[tuple[bytes, float, float] | None] = asyncio.Queue(services.config.audio.max_queued_chunks)
    sending = asyncio.Lock()  # one message at a time on the socket, from the frame and audio loops
    ended = asyncio.Event()

    async def send(message: dict) -> None:
        async with sending:
            await websocket.send_json(message)

    async def receive() -> None:
        try:
            while True:
                message = await websocket.receive_bytes()
                received = (message, time.time(), time.perf_counter())
                if message_kind(message) == "frame":
                    slot.put(received)
                elif chunks.full():
                    await send({**errors.stream_error(Saturated(
                        "audio chunks are arriving faster than they are analysed: chunk refused")), "kind": "audio"})
                else:
                    chunks.put_nowait(received)
        except Exception:  # noqa: BLE001 - any disconnect ends the stream
            slot.close()
            chunks.put_nowait(None) if not chunks.full() else None

    async def hear() -> None:
        while (item := await chunks.get()) is not None and not ended.is_set():
            message, arrival, started = item
            try:
                capture_time, wav = decode_message(message)
                result = await audio.analyze(AudioInput(session_id, credential, wav, capture_time, arrival, started))
                await send({**result.model_dump(mode="json", by_alias=True), "kind": "audio"})
            except ProctorError as exc:
                await send({**errors.stream_error(exc), "kind": "audio"})
                if isinstance(exc, SessionClosed):
                    slot.close()  # the frame loop ends the stream
                    break
            except Exception:  # noqa: BLE001 - the socket closed under a send: the frame loop ends it
                break

    reader = asyncio.create_task(receive())
    listener = asyncio.create_task(hear())
    try:
        while (taken := await slot.take()) is not None:
            message, arrival, started = taken.item
            try:
                capture_time, image = decode_message(message)
                result = await frames.analyze(FrameInput(session_id, credential, image, capture_time, arrival, started))
                await send({**result.model_dump(mode="json", by_alias=True), "dropped": taken.dropped})
            except ProctorError as exc:
                await send({**errors.stream_error(exc), "dropped": taken.dropped})
                if isinstance(exc, SessionClosed):
                    break  # nothing more to analyse
    finally:
        ended.set()
        reader.cancel()
        listener.cancel()
        try:
            await websocket.close()
        except Exception:  # noqa: BLE001 - already closed by the client
            pass
