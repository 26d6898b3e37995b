"""One frame through the service, the same for `POST /analyze-frame` and the WebSocket stream:

    admission: credentials -> session open -> rate limit -> in-flight cap -> size and pixel checks
    -> models (FaceGaze, and ObjectDetector when the detector gate says the frame can show
       something new: concurrently when it knows before the face stage, after it on a face cue;
       otherwise the session's last detections are reused, `pipeline.gate`; a stale re-check may run
       off the answer's path, `detector_gate.stale_recheck`)
    -> session update (the session's RiskSession actor scores it and stores it)
    -> response (`pipeline.response.frame_response`)

in that order, once. Credentials come first so an unauthenticated caller learns nothing about
which sessions exist; the limits come before any decoding, so a flood costs the service nothing.
The rate limit and the in-flight cap are this ingress replica's (one bucket per session, one
counter for the replica's frames in the models).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

from api.schemas import AnalyzeFrameResponse, StageLatency
from auth.limits import FrameRateLimiter
from auth.tokens import AccessPolicy
from errors import FrameError, ModelTimeout, RateLimited, Saturated
from observability import ProctorMetrics
from pipeline.gate import DetectorGate
from pipeline.identity import IdentityChecks
from pipeline.models import ModelStages
from pipeline.response import frame_response
from sessions.service import SessionService
from settings import IngressConfig
from vision.frames import check_frame_size, inspect_image_header, parse_frame_payload

logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class FrameInput:
    session_id: str  # canonical UUID text
    credential: str | None  # an API key or the session token, as presented
    image: str | bytes  # base64 text (HTTP) or the image bytes (WebSocket)
    timestamp: float | None  # the client's capture time, any clock
    arrival: float  # server time the frame arrived (time.time())
    started: float  # time.perf_counter() at arrival, for the latency split


class FramePipeline:
    def __init__(self, cfg: IngressConfig, access: AccessPolicy, sessions: SessionService, models: ModelStages,
                 limiter: FrameRateLimiter, gate: DetectorGate, metrics: ProctorMetrics,
                 identity: IdentityChecks | None = None):
        self.cfg = cfg
        self.access = access
        self.sessions = sessions
        self.models = models
        self.limiter = limiter
        self.gate = gate
        self.metrics = metrics
        self.identity = identity  # None: identity is off
        self.inflight = 0  # frames of this replica in the models now
        self._rechecks: set[asyncio.Task] = set()  # background re-checks running (held so they are not collected)

    async def admit_stream(self, session_id: str, credential: str | None) -> None:
        """A stream's opening check (its frames are each admitted again)."""
        self.access.require_frame_access(session_id, credential)
        await self.sessions.require_open(session_id)

    async def analyze(self, frame: FrameInput) -> AnalyzeFrameResponse:
        self.access.require_frame_access(frame.session_id, frame.credential)
        await self.sessions.require_open(frame.session_id)
        allowed, wait = self.limiter.allow(frame.session_id, time.monotonic())
        if not allowed:
            self.metrics.frame("rate_limited")
            raise RateLimited(f"over {self.cfg.max_fps_per_session:g} frames/s for this session", retry_after_s=wait)
        if self.inflight >= self.cfg.max_inflight_frames:
            # Refuse fast rather than queue until every caller times out.
            self.metrics.frame("saturated")
            raise Saturated("detectors are saturated: frame refused, send the next one")
        if isinstance(frame.image, str):
            image = parse_frame_payload(frame.image, self.cfg.max_frame_bytes)
        else:
            image = check_frame_size(frame.image, self.cfg.max_frame_bytes)
        inspect_image_header(image, self.cfg.max_frame_pixels)
        validated = time.perf_counter()

        self.inflight += 1
        try:
            face, detections, objects_age = await self._models(frame.session_id, image)
        except Saturated:
            self.metrics.frame("saturated")
            raise
        finally:
            self.inflight -= 1
        models_done = time.perf_counter()

        update = await self.sessions.observe(frame.session_id, image, face, detections, frame.timestamp, frame.arrival)
        self.gate.scored(frame.session_id, face, update)
        if update.identity_request and self.identity is not None:
            self.identity.submit(frame.session_id, update.identity_request, update.frame_time, image, face)
        done = time.perf_counter()
        latency = StageLatency(
            validate=round((validated - frame.started) * 1000, 2),
            face_gaze=face.latency_ms,
            object_detector=detections.latency_ms,
            models_wall=round((models_done - validated) * 1000, 2),
            risk=round((done - models_done) * 1000, 2),
            total=round((done - frame.started) * 1000, 2),
        )
        self.metrics.frame("late" if update.late else "duplicate" if update.duplicate
                           else "ok" if update.usable else "unusable")
        self.metrics.stages(latency.model_dump(by_alias=True))
        self.metrics.events_opened(update.opened)
        return frame_response(frame.session_id, face, detections, update, latency, objects_age)

    async def _models(self, session_id: str, image: bytes):
        """(face, detections, age of the detections in s: None when YOLO ran on this frame)."""
        decision = self.gate.before_models(session_id, image)
        if decision.run:
            face, detections = await self.models.run(image)
            reason = decision.reason
        else:
            deadline = self.models.deadline()
            face = await self.models.face(image, deadline)
            reason = self.gate.after_face(session_id, face)
            if reason is None:
                self.metrics.detector_gate("reused")
                detections, age = self.gate.reused(session_id)
                if decision.recheck:
                    self.gate.recheck_started(session_id)
                    task = asyncio.create_task(self._recheck(session_id, image, decision))
                    self._rechecks.add(task)
                    task.add_done_callback(self._rechecks.discard)
                return face, replace(detections, latency_ms=0.0, batch_size=0), round(age, 3)
            detections = await self.models.detect(image, deadline)
        self.gate.detected(session_id, decision.thumbnail, detections, now=decision.at)
        self.metrics.detector_gate(reason)
        return face, detections, None

    async def _recheck(self, session_id: str, image: bytes, decision) -> None:
        """YOLO on a frame already answered (its detections were stale): the result serves the next frames."""
        try:
            detections = await self.models.detect(image, self.models.deadline())
        except (FrameError, ModelTimeout, Saturated) as exc:
            logger.info("stale re-check of session %s not done: %s", session_id, exc)
            self.gate.recheck_failed(session_id)
            return
        except Exception:
            self.gate.recheck_failed(session_id)
            raise
        self.gate.detected(session_id, decision.thumbnail, detections, now=decision.at, recheck=True)
        self.metrics.detector_gate("stale_background")
