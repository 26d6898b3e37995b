"""Ingress deployment: the HTTP API (FastAPI). Validates input, owns session lifecycle, fans each
frame out to FaceGaze and ObjectDetector concurrently, then hands the results to the session's
RiskSession actor.

No `from __future__ import annotations` here: FastAPI must resolve the request models at import.
"""

import asyncio
import logging
import time
import uuid
from typing import Any

import ray
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from deployments.risk_session import create_session_actor, find_session_actor
from risk.config import RiskConfig
from store.session_store import SessionStore
from vision.frames import FrameError, inspect_image_header, parse_frame_payload

logger = logging.getLogger("ray.serve")


class IngressConfig(BaseModel):
    """Ingress settings. Every field is set (with a comment) in config/serve.yaml."""

    store_path: str = "data/sessions.sqlite3"
    max_frame_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_frame_pixels: int = Field(4096 * 4096, ge=1)
    model_timeout_s: float = Field(10.0, gt=0)
    session_actor_num_cpus: float = Field(0.0, ge=0)


# ---- API contract (DESIGN.md); extra fields are additive -------------------------------------
class StartSessionRequest(BaseModel):
    candidate_id: str = Field(min_length=1, max_length=128, examples=["12345"])


class StartSessionResponse(BaseModel):
    session_id: str
    message: str
    timestamp: float


class AnalyzeFrameRequest(BaseModel):
    session_id: str
    frame: str = Field(description="base64 JPEG or PNG; a data URL prefix is allowed")
    timestamp: float | None = Field(None, description="capture time in seconds (any clock)")


class DetectedObject(BaseModel):
    label: str
    confidence: float
    box: list[float]


class AnalyzeFrameResponse(BaseModel):
    session_id: str
    cheating: bool
    risk_score: int
    attention: int
    gaze: str = Field(description="center|left|right|up|down|unknown, image coordinates")
    faces: int = Field(description="faces the detector found (see frame_quality before reading 0 as absence)")
    presence: str = Field(description="present|absent|unknown: unknown when the frame cannot be judged")
    objects: list[DetectedObject]
    events: list[dict[str, Any]] = Field(description="events open after this frame")
    events_opened: list[str]
    events_closed: list[str]
    head_pose: dict[str, float] | None
    expression: dict[str, Any] | None = Field(description="label, eye/mouth openness, talking")
    frame_quality: dict[str, Any] = Field(description="usable, issues (too_dark, too_blurred, covered, frozen)")
    gaze_ratio: dict[str, float] | None
    frame_time: float
    latency_ms: dict[str, float]


class EndSessionRequest(BaseModel):
    session_id: str


class EndSessionResponse(BaseModel):
    session_id: str
    final_risk_score: int
    verdict: str
    total_violations: int
    duration_seconds: float
    peak_risk_score: int
    frames: int
    violations_by_type: dict[str, dict[str, float]]
    events: list[dict[str, Any]]


app = FastAPI(
    title="Proctor",
    description="AI proctoring: per-frame face, gaze and object analysis with a live risk score.",
    version="0.1.0",
)


@app.exception_handler(FrameError)
async def _frame_error(_request: Request, exc: FrameError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content={"detail": str(exc)})


def _check_session_id(session_id: str) -> str:
    try:
        return str(uuid.UUID(session_id))
    except (ValueError, AttributeError, TypeError):
        raise HTTPException(422, f"session_id {session_id!r} is not a UUID") from None


@serve.deployment(name="Ingress")
@serve.ingress(app)
class Ingress:
    def __init__(self, face_gaze: DeploymentHandle, object_detector: DeploymentHandle,
                 config: dict[str, Any], risk_config: dict[str, Any]):
        self.face_gaze = face_gaze
        self.object_detector = object_detector
        self.cfg = IngressConfig(**config)
        self.risk_config = RiskConfig(**risk_config).model_dump()  # validate once, at deploy time
        self.store = SessionStore(self.cfg.store_path)
        self.sessions: dict[str, Any] = {}  # session_id -> actor handle (a cache; the actor is the truth)

    @app.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/start-session", response_model=StartSessionResponse)
    async def start_session(self, body: StartSessionRequest) -> StartSessionResponse:
        session_id = str(uuid.uuid4())
        now = time.time()
        self.store.create(session_id, body.candidate_id, now)
        actor = create_session_actor(session_id, body.candidate_id, self.risk_config, now,
                                     self.cfg.session_actor_num_cpus)
        await actor.state.remote()  # the actor is up before the client sends frames
        self.sessions[session_id] = actor
        logger.info("session %s started for candidate %s", session_id, body.candidate_id)
        return StartSessionResponse(session_id=session_id, message="Session started", timestamp=now)

    @app.post("/analyze-frame", response_model=AnalyzeFrameResponse)
    async def analyze_frame(self, body: AnalyzeFrameRequest) -> AnalyzeFrameResponse:
        arrival = time.time()
        started = time.perf_counter()
        session_id = _check_session_id(body.session_id)
        actor = self._session_actor(session_id)
        image_bytes = parse_frame_payload(body.frame, self.cfg.max_frame_bytes)
        inspect_image_header(image_bytes, self.cfg.max_frame_pixels)
        validated = time.perf_counter()

        face_call = self.face_gaze.analyze.remote(image_bytes)
        objects_call = self.object_detector.detect.remote(image_bytes)
        try:
            face, objects = await asyncio.wait_for(
                asyncio.gather(face_call, objects_call), timeout=self.cfg.model_timeout_s
            )
        except asyncio.TimeoutError:
            raise HTTPException(503, f"models did not answer within {self.cfg.model_timeout_s} s") from None
        for part in (face, objects):
            if "error" in part:
                raise FrameError(part["error"], part.get("status", 422))
        models_done = time.perf_counter()

        try:
            risk = await actor.observe.remote(face, objects["objects"], body.timestamp, arrival)
        except RayActorError:
            self.sessions.pop(session_id, None)
            self._raise_if_ended(session_id)
            raise HTTPException(503, f"session {session_id} state is unavailable") from None
        done = time.perf_counter()
        usable = risk["frame_quality"]["usable"]
        expression = face.get("expression")
        if expression is not None:
            expression = {**expression, "talking": risk["talking"]}
        return AnalyzeFrameResponse(
            session_id=session_id,
            cheating=risk["cheating"],
            risk_score=risk["risk_score"],
            attention=risk["attention"],
            gaze=face["gaze"] if usable else "unknown",
            faces=face["faces"],
            presence=("present" if face["faces"] else "absent") if usable else "unknown",
            objects=objects["objects"],
            events=risk["open_events"],
            events_opened=risk["opened"],
            events_closed=risk["closed"],
            head_pose=face.get("head_pose"),
            expression=expression,
            frame_quality=risk["frame_quality"],
            gaze_ratio=face.get("gaze_ratio"),
            frame_time=risk["frame_time"],
            latency_ms={
                "validate": round((validated - started) * 1000, 2),
                "face_gaze": face.get("latency_ms", 0.0),
                "object_detector": objects.get("latency_ms", 0.0),
                "models_wall": round((models_done - validated) * 1000, 2),
                "risk": round((done - models_done) * 1000, 2),
                "total": round((done - started) * 1000, 2),
            },
        )

    @app.post("/end-session", response_model=EndSessionResponse)
    async def end_session(self, body: EndSessionRequest) -> EndSessionResponse:
        session_id = _check_session_id(body.session_id)
        actor = self._session_actor(session_id)
        now = time.time()
        try:
            summary = await actor.finish.remote(now)
        except RayActorError:
            self.sessions.pop(session_id, None)
            self._raise_if_ended(session_id)
            raise HTTPException(503, f"session {session_id} state is unavailable") from None
        self.store.end(session_id, now, summary)  # persisted before the actor goes
        self.sessions.pop(session_id, None)
        ray.kill(actor)
        logger.info("session %s ended: %s", session_id, summary["verdict"])
        return EndSessionResponse(session_id=session_id, **summary)

    def _session_actor(self, session_id: str):
        actor = self.sessions.get(session_id)
        if actor is not None:
            return actor
        self._raise_if_ended(session_id)
        actor = find_session_actor(session_id)
        if actor is None:
            raise HTTPException(404, f"unknown session {session_id}")
        self.sessions[session_id] = actor
        return actor

    def _raise_if_ended(self, session_id: str) -> None:
        record = self.store.get(session_id)
        if record is not None and record["ended_at"] is not None:
            raise HTTPException(409, f"session {session_id} has ended")
