"""One audio chunk through the service, the same for `POST /analyze-audio` and the WebSocket stream:

    admission: audio on? -> credentials -> session open -> the WAV's format and length
    -> the per-session audio rate (seconds of audio per second)
    -> speech model (silero-vad, here in the ingress: audio/vad.py; one stream state per session)
    -> session update (the session's RiskSession actor steps the audio events, stores the summary)
    -> response

Why the speech model runs here and not in a deployment of its own: it costs ~6 ms of CPU per
second of audio (bench/audio_cost.py), less than one more Ray call per chunk would add on each
side, and a stream's model state wants to stay where its chunks arrive. It runs in a worker thread
(ONNX Runtime releases the GIL), one chunk of a session at a time. With several ingress replicas a
session's HTTP chunks may reach another replica, whose state starts cold: a few windows of lower
probability, no error.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from api.schemas import AnalyzeAudioResponse, AudioLatency, EventOut
from audio.pcm import PcmChunk, parse_audio_payload, parse_wav
from audio.vad import SileroVad, SpeechStream
from auth.limits import FrameRateLimiter
from auth.tokens import AccessPolicy
from contracts import AudioChunk
from errors import AudioDisabled, RateLimited
from observability import ProctorMetrics
from sessions.service import SessionService
from settings import AudioConfig


@dataclass(frozen=True)
class AudioInput:
    session_id: str  # canonical UUID text
    credential: str | None
    audio: str | bytes  # base64 WAV (HTTP) or the WAV bytes (WebSocket)
    timestamp: float | None  # the client's capture time of the first sample, any clock
    arrival: float
    started: float  # time.perf_counter() at arrival


class _Stream:
    def __init__(self, speech: SpeechStream):
        self.speech = speech
        self.lock = asyncio.Lock()  # one chunk of a session at a time through its model state


class AudioPipeline:
    def __init__(self, cfg: AudioConfig, access: AccessPolicy, sessions: SessionService, limiter: FrameRateLimiter,
                 metrics: ProctorMetrics, keep_samples: bool, max_sessions: int):
        self.cfg = cfg
        self.access = access
        self.sessions = sessions
        self.limiter = limiter  # seconds of audio per session
        self.metrics = metrics
        self.keep_samples = keep_samples  # the session's actor cuts evidence clips (risk.voice.evidence_max_s > 0)
        self.max_sessions = max_sessions
        self.vad = SileroVad(cfg.vad_model) if cfg.enabled else None
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    def forget(self, session_id: str) -> None:
        self._streams.pop(session_id, None)
        self.limiter.forget(session_id)

    def _stream(self, session_id: str) -> _Stream:
        stream = self._streams.get(session_id)
        if stream is None:
            if len(self._streams) >= self.max_sessions:
                self._streams.popitem(last=False)  # bounded memory: the least recently heard
            stream = self._streams[session_id] = _Stream(SpeechStream(self.vad, self.cfg))
        self._streams.move_to_end(session_id)
        return stream

    async def admit(self, session_id: str, credential: str | None) -> None:
        """Audio is on, the caller may send for this session, and it is open."""
        if not self.cfg.enabled:
            raise AudioDisabled("audio is off in this deployment (audio.enabled: false): send frames only")
        self.access.require_frame_access(session_id, credential)
        await self.sessions.require_open(session_id)

    async def analyze(self, chunk: AudioInput) -> AnalyzeAudioResponse:
        await self.admit(chunk.session_id, chunk.credential)
        pcm: PcmChunk = (parse_audio_payload(chunk.audio, self.cfg.max_chunk_s) if isinstance(chunk.audio, str)
                         else parse_wav(chunk.audio, self.cfg.max_chunk_s))
        allowed, wait = self.limiter.allow(chunk.session_id, time.monotonic(), cost=pcm.duration_s)
        if not allowed:
            self.metrics.audio("refused", pcm.duration_s)
            raise RateLimited(f"over {self.cfg.max_audio_rate:g} s of audio per second for this session",
                              retry_after_s=wait)
        validated = time.perf_counter()

        stream = self._stream(chunk.session_id)
        async with stream.lock:
            # Without capture times the chunks are taken as back to back.
            t = chunk.timestamp if chunk.timestamp is not None else (stream.speech.next_t or 0.0)
            position = stream.speech.position(t) if chunk.timestamp is not None else "next"
            blocks = [] if position in ("late", "duplicate") else await asyncio.to_thread(stream.speech.feed, pcm.pcm, t)
        heard = time.perf_counter()

        update = await self.sessions.observe_audio(chunk.session_id, AudioChunk(
            timestamp=chunk.timestamp, duration=pcm.duration_s,
            blocks=tuple(replace(b, t=b.t - t) for b in blocks),
            pcm=pcm.pcm if self.keep_samples else b"", position=position), chunk.arrival)
        done = time.perf_counter()
        self.metrics.audio("late" if update.late else "duplicate" if update.duplicate
                           else "speech" if update.speech_seconds > 0 else "silence", pcm.duration_s)
        self.metrics.events_opened(update.opened)
        return AnalyzeAudioResponse(
            session_id=chunk.session_id,
            risk_score=update.risk_score,
            cheating=update.cheating,
            chunk_time=update.chunk_time,
            duration_s=update.duration,
            speech=update.speech_seconds > 0,
            speech_seconds=update.speech_seconds,
            speech_probability=round(max((b.probability for b in blocks), default=0.0), 3),
            mouth=update.mouth,
            events=[EventOut(**e) for e in update.open_events],
            events_opened=list(update.opened),
            events_closed=list(update.closed),
            late=update.late,
            duplicate=update.duplicate,
            latency_ms=AudioLatency(validate=round((validated - chunk.started) * 1000, 2),
                                    vad=round((heard - validated) * 1000, 2),
                                    risk=round((done - heard) * 1000, 2),
                                    total=round((done - chunk.started) * 1000, 2)),
        )
