"""Ingress deployment: the HTTP API (FastAPI). Validates input, owns session lifecycle, fans each
frame out to FaceGaze and ObjectDetector concurrently, then hands the results to the session's
RiskSession actor.

No `from __future__ import annotations` here: FastAPI must resolve the request models at import.
"""

import asyncio
import logging
import os
import struct
import threading
import time
import uuid
from typing import Any

import ray
from fastapi import FastAPI, Header, HTTPException, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, field_validator
from ray import serve
from ray.exceptions import RayActorError
from ray.serve import metrics
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from auth.limits import FrameRateLimiter
from auth.tokens import AuthConfig, AuthError, bearer, key_matches, make_token, new_secret, verify_token
from deployments.demo_page import router as demo_router
from deployments.risk_session import find_session_actor, session_actor
from report.build import build_report
from report.html import render_report_html
from risk.config import RiskConfig
from store.session_store import POSTGRES_SCHEMES, STORE_URL_ENV, open_store, url_scheme
from vision.face_gaze import FaceGazeConfig
from vision.frames import FrameError, inspect_image_header, parse_frame_payload

logger = logging.getLogger("ray.serve")

# A session actor that crashed, or is restarting (ActorUnavailableError is a RayActorError): Ray
# brings it back, rebuilt from the store.
ACTOR_FAILURES = (RayActorError,)


class IngressConfig(BaseModel):
    """Ingress settings. Every field is set (with a comment) in config/serve.yaml."""

    store_path: str = "data/sessions.sqlite3"
    store_url: str | None = None
    max_frame_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_frame_pixels: int = Field(4096 * 4096, ge=1)
    model_timeout_s: float = Field(10.0, gt=0)
    session_actor_num_cpus: float = Field(0.0, ge=0)
    idle_timeout_s: float = Field(300.0, gt=0)
    reaper_interval_s: float = Field(10.0, gt=0)
    retention_days: float = Field(30.0, gt=0)
    ending_timeout_s: float = Field(120.0, gt=0)
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1024)
    max_fps_per_session: float = Field(10.0, gt=0)
    fps_burst: float = Field(10.0, ge=1)
    max_open_sessions: int = Field(100, ge=1)
    max_inflight_frames: int = Field(6, ge=1)
    direct_ingress: bool = False

    @field_validator("store_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and url_scheme(url) not in POSTGRES_SCHEMES:
            raise ValueError("store_url must be a postgresql:// URL (or null for SQLite at store_path)")
        return url

    def store_location(self) -> str:
        """Where the session store is: $PROCTOR_STORE_URL, else store_url, else the SQLite store_path."""
        from_env = os.environ.get(STORE_URL_ENV, "").strip()
        if from_env and url_scheme(from_env) not in POSTGRES_SCHEMES:
            raise ValueError(f"${STORE_URL_ENV} must be a postgresql:// URL")
        return from_env or self.store_url or self.store_path


# ---- API contract (DESIGN.md); extra fields are additive -------------------------------------
class StartSessionRequest(BaseModel):
    candidate_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@+-]+$", examples=["12345"],
                              description="the integrator's id for the candidate: letters, digits and . _ : @ + -")


class StartSessionResponse(BaseModel):
    session_id: str
    message: str
    timestamp: float
    session_token: str = Field(description="for the candidate's client: opens /analyze-frame for this session only")
    token_expires_at: float


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
    calibration: dict[str, Any]
    late: bool = Field(description="older than a frame already scored: answered, not scored")
    duplicate: bool = Field(description="the same frame delivered again: answered, not scored twice")
    latency_ms: dict[str, float]


class EndSessionRequest(BaseModel):
    session_id: str


class EndSessionResponse(BaseModel):
    session_id: str
    final_risk_score: int
    verdict: str
    total_violations: int
    duration_seconds: float
    status: str = Field(description="ended, or abandoned when the session went idle")
    peak_risk_score: int
    verdict_reasons: list[str]
    frames: int
    unusable_frames: int
    violations_by_type: dict[str, dict[str, float]]
    calibration: dict[str, Any]
    events: list[dict[str, Any]]
    report_url: str


app = FastAPI(
    title="Proctor",
    description="AI proctoring: per-frame face, gaze and object analysis with a live risk score. "
                "Integrator calls take `Authorization: Bearer <API key>` (or `X-API-Key`); "
                "/analyze-frame also takes the session token that /start-session returns.",
    version="0.1.0",
)


class BodySizeLimit:
    """Refuses request bodies over the limit with 413 before they are read into memory."""

    max_bytes = 6 * 1024 * 1024  # set from the config when the ingress starts

    def __init__(self, asgi_app):
        self.app = asgi_app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = BodySizeLimit.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, limit)
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge()
            return message

        try:
            return await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            return await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int) -> None:
        body = JSONResponse(status_code=413, content={"detail": f"request body over {limit} bytes"})
        await body({"type": "http"}, None, send)


class _BodyTooLarge(Exception):
    pass


app.add_middleware(BodySizeLimit)
app.include_router(demo_router)  # GET /demo: the browser demo (deployments/demo_page.py)


@app.exception_handler(AuthError)
async def _auth_error(_request: Request, exc: AuthError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(status_code=exc.status, content={"detail": str(exc)}, headers=headers)


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
                 config: dict[str, Any], risk_config: dict[str, Any], face_config: dict[str, Any],
                 auth_config: dict[str, Any]):
        self.face_gaze = face_gaze
        self.object_detector = object_detector
        self.cfg = IngressConfig(**config)
        BodySizeLimit.max_bytes = self.cfg.max_body_bytes
        self.risk_config = RiskConfig(**risk_config).model_dump()  # validate once, at deploy time
        self.face_config = FaceGazeConfig(**face_config).model_dump()
        self.store = open_store(self.cfg.store_location())
        self.store_location = self.store.target  # what each session's actor opens
        self.sessions: dict[str, Any] = {}  # session_id -> actor handle (a cache; the store is the truth)
        self.auth = AuthConfig(**auth_config)
        self.api_keys = self.auth.all_api_keys()
        # Every replica must sign with the same secret: the configured one, else one kept in the store.
        self.token_secret = self.auth.configured_token_secret() or self.store.setting("token_secret", new_secret())
        if not self.api_keys:
            logger.warning("=" * 72 + "\nPROCTOR AUTH IS OFF: no API keys configured (auth.api_keys or "
                           "$PROCTOR_API_KEYS). Anyone who can reach this port can read and write every "
                           "session. Keep it on 127.0.0.1, or configure keys.\n" + "=" * 72)
        self.rate_limiter = FrameRateLimiter(self.cfg.max_fps_per_session, self.cfg.fps_burst)
        self.inflight_frames = 0
        # Exported on Ray's Prometheus endpoint (and so the Ray dashboard's metrics view).
        self.m_frames = metrics.Counter("proctor_frames_total", description="Frames answered, by outcome",
                                        tag_keys=("outcome",))
        self.m_stage = metrics.Histogram("proctor_stage_latency_ms", description="Per-stage latency of a frame",
                                         boundaries=[5, 10, 25, 50, 100, 150, 250, 500, 1000, 2500, 5000],
                                         tag_keys=("stage",))
        self.m_events = metrics.Counter("proctor_events_opened_total", description="Risk events opened, by type",
                                        tag_keys=("type",))
        self.m_open_sessions = metrics.Gauge("proctor_open_sessions", description="Open sessions (session store)")
        self.m_open_sessions.set(self.store.open_session_count())
        self._stop = threading.Event()
        threading.Thread(target=self._reaper, name="session-reaper", daemon=True).start()

    def __del__(self):
        self._stop.set()

    # ---- the seed's API -----------------------------------------------------------------------
    @app.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/start-session", response_model=StartSessionResponse)
    async def start_session(self, body: StartSessionRequest, authorization: str | None = Header(None),
                            x_api_key: str | None = Header(None)) -> StartSessionResponse:
        self._require_integrator(authorization, x_api_key)
        if self.store.open_session_count() >= self.cfg.max_open_sessions:
            raise HTTPException(503, f"too many open sessions (limit {self.cfg.max_open_sessions}): "
                                     "end finished sessions or try again later", headers={"Retry-After": "30"})
        session_id = str(uuid.uuid4())
        now = time.time()
        self.store.create(session_id, body.candidate_id, now)
        actor = self._actor_for(session_id)
        await actor.state.remote()  # the actor is up before the client sends frames
        expires = now + self.auth.token_ttl_s
        self.m_open_sessions.set(self.store.open_session_count())
        logger.info("session %s started for candidate %s", session_id, body.candidate_id)
        return StartSessionResponse(session_id=session_id, message="Session started", timestamp=now,
                                    session_token=make_token(self.token_secret, session_id, expires),
                                    token_expires_at=expires)

    @app.post("/analyze-frame", response_model=AnalyzeFrameResponse)
    async def analyze_frame(self, body: AnalyzeFrameRequest, authorization: str | None = Header(None),
                            x_api_key: str | None = Header(None),
                            x_session_token: str | None = Header(None)) -> AnalyzeFrameResponse:
        arrival = time.time()
        started = time.perf_counter()
        session_id = _check_session_id(body.session_id)
        self._require_frame_access(session_id, authorization, x_api_key, x_session_token)
        self._open_session_actor(session_id)  # 404 / 409 before any work
        allowed, wait = self.rate_limiter.allow(session_id, time.monotonic())
        if not allowed:
            self.m_frames.inc(tags={"outcome": "rate_limited"})
            raise HTTPException(429, f"over {self.cfg.max_fps_per_session:g} frames/s for this session",
                                headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        if self.inflight_frames >= self.cfg.max_inflight_frames:
            # Refuse fast rather than queue until every caller times out.
            self.m_frames.inc(tags={"outcome": "saturated"})
            raise HTTPException(503, "detectors are saturated: frame refused, send the next one",
                                headers={"Retry-After": "1"})
        image_bytes = parse_frame_payload(body.frame, self.cfg.max_frame_bytes)
        return await self._process_frame(session_id, image_bytes, body.timestamp, arrival, started)

    @app.websocket("/sessions/{session_id}/stream")
    async def stream(self, websocket: WebSocket, session_id: str, token: str | None = None):
        """Frames in as binary messages (8-byte big-endian float64 capture time, then the JPEG/PNG/WebP
        bytes), one JSON result out per analysed frame, with the fields of /analyze-frame plus
        `dropped`: when frames arrive faster than the service analyses them, only the newest waiting
        frame is kept, so the client never builds seconds of backlog. Credentials: `?token=` (the
        session token or an API key; browsers cannot set headers on a WebSocket) or the headers."""
        await websocket.accept()
        try:
            session_id = _check_session_id(session_id)
            self._require_frame_access(session_id, websocket.headers.get("authorization"),
                                       websocket.headers.get("x-api-key"), token)
            self._open_session_actor(session_id)
        except (AuthError, HTTPException) as exc:
            detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
            await websocket.close(code=1008, reason=str(detail)[:120])
            return
        latest: list = []  # the newest frame waiting: at most one
        dropped = 0
        arrived = asyncio.Event()
        closed = False

        async def receive():
            nonlocal dropped, closed
            try:
                while True:
                    message = await websocket.receive_bytes()
                    if latest:
                        dropped += 1  # replaced before it was analysed
                    latest[:] = [(message, time.time(), time.perf_counter())]
                    arrived.set()
            except Exception:  # noqa: BLE001 - any disconnect ends the stream
                closed = True
                arrived.set()

        reader = asyncio.create_task(receive())
        try:
            while True:
                await arrived.wait()
                arrived.clear()
                if closed and not latest:
                    break
                if not latest:
                    continue
                (message, arrival, started), = latest
                latest.clear()
                reported, dropped = dropped, 0
                try:
                    if len(message) < 9:
                        raise FrameError("a stream message is 8 bytes of capture time, then the image", 400)
                    capture_time = struct.unpack(">d", message[:8])[0]
                    if len(message) - 8 > self.cfg.max_frame_bytes:
                        raise FrameError(f"frame is too large: over {self.cfg.max_frame_bytes} bytes", 413)
                    result = await self._process_frame(session_id, message[8:], capture_time, arrival, started)
                    payload = {**result.model_dump(), "dropped": reported}
                except (FrameError, HTTPException) as exc:
                    status = exc.status if isinstance(exc, FrameError) else exc.status_code
                    detail = str(exc) if isinstance(exc, FrameError) else exc.detail
                    payload = {"error": detail, "status": status, "dropped": reported}
                    if status == 409:  # the session ended: nothing more to analyse
                        await websocket.send_json(payload)
                        break
                await websocket.send_json(payload)
        finally:
            reader.cancel()
            try:
                await websocket.close()
            except Exception:  # noqa: BLE001 - already closed by the client
                pass

    @app.post("/end-session", response_model=EndSessionResponse)
    async def end_session(self, body: EndSessionRequest, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> EndSessionResponse:
        self._require_integrator(authorization, x_api_key)
        session_id = _check_session_id(body.session_id)
        self._open_session_actor(session_id)
        if not self.store.claim_for_ending(session_id, time.time()):
            self._raise_if_not_open(session_id)
            raise HTTPException(409, f"session {session_id} is being ended")
        try:
            summary = await self._finish(session_id, "ended")
        except BaseException:
            self.store.reopen(session_id)  # nothing lost: the session can be ended again
            raise
        self.rate_limiter.forget(session_id)
        self.m_open_sessions.set(self.store.open_session_count())
        logger.info("session %s ended: %s", session_id, summary["verdict"])
        return EndSessionResponse(session_id=session_id, report_url=f"/sessions/{session_id}/report.html", **summary)

    # ---- sessions and reports -----------------------------------------------------------------
    @app.get("/sessions/{session_id}")
    async def session_state(self, session_id: str, authorization: str | None = Header(None),
                            x_api_key: str | None = Header(None)) -> dict[str, Any]:
        """Live state of an open session (from its actor), or the summary of an ended one."""
        session_id, record = self._integrator_session(session_id, authorization, x_api_key)
        base = {k: record[k] for k in ("session_id", "candidate_id", "status", "started_at", "ended_at", "verdict")}
        if record["status"] == "open":
            return {**base, **(await self._call(session_id, "state"))}
        return {**base, **(record["summary"] or {})}

    @app.get("/sessions/{session_id}/report")
    async def report(self, session_id: str, authorization: str | None = Header(None),
                     x_api_key: str | None = Header(None)) -> dict[str, Any]:
        session_id, _ = self._integrator_session(session_id, authorization, x_api_key)
        return await asyncio.to_thread(build_report, self.store, session_id)

    @app.get("/sessions/{session_id}/report.html", response_class=HTMLResponse)
    async def report_html(self, session_id: str, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> HTMLResponse:
        session_id, _ = self._integrator_session(session_id, authorization, x_api_key)
        report = await asyncio.to_thread(build_report, self.store, session_id)
        return HTMLResponse(render_report_html(report))

    @app.get("/sessions/{session_id}/events/{event_id}/evidence.jpg")
    async def evidence(self, session_id: str, event_id: str, authorization: str | None = Header(None),
                       x_api_key: str | None = Header(None)) -> Response:
        session_id, _ = self._integrator_session(session_id, authorization, x_api_key)
        jpeg = self.store.evidence(session_id, event_id)
        if jpeg is None:
            raise HTTPException(404, f"no evidence for event {event_id!r} in session {session_id}")
        return Response(content=jpeg, media_type="image/jpeg")

    @app.delete("/sessions/{session_id}")
    async def delete_session(self, session_id: str, authorization: str | None = Header(None),
                             x_api_key: str | None = Header(None)) -> dict[str, Any]:
        """Remove every trace of a session: its actor, observations, events and evidence."""
        session_id, _ = self._integrator_session(session_id, authorization, x_api_key)
        self._kill_actor(session_id)
        self.store.delete(session_id)
        logger.info("session %s deleted", session_id)
        return {"session_id": session_id, "deleted": True}

    # ---- internals ----------------------------------------------------------------------------
    async def _process_frame(self, session_id: str, image_bytes: bytes, timestamp: float | None,
                             arrival: float, started: float) -> AnalyzeFrameResponse:
        """One frame through the models and the session's actor (shared by HTTP and the stream)."""
        inspect_image_header(image_bytes, self.cfg.max_frame_pixels)
        validated = time.perf_counter()

        self.inflight_frames += 1
        try:
            face, objects = await self._run_models(image_bytes)
        finally:
            self.inflight_frames -= 1
        for part in (face, objects):
            if "error" in part:
                raise FrameError(part["error"], part.get("status", 422))
        models_done = time.perf_counter()

        # If the actor dies mid-call and the frame was stored before the crash, the retry is a
        # duplicate (same capture time, same pixels) and is not scored twice.
        risk = await self._call(session_id, "observe", image_bytes, face, objects["objects"], timestamp, arrival)
        if risk.get("session_ended"):
            raise HTTPException(409, f"session {session_id} has ended")
        done = time.perf_counter()
        usable = risk["usable"]
        expression = face.get("expression")
        if expression is not None:
            expression = {**expression, "talking": risk["talking"]}
        latency_ms = {
            "validate": round((validated - started) * 1000, 2),
            "face_gaze": face.get("latency_ms", 0.0),
            "object_detector": objects.get("latency_ms", 0.0),
            "models_wall": round((models_done - validated) * 1000, 2),
            "risk": round((done - models_done) * 1000, 2),
            "total": round((done - started) * 1000, 2),
        }
        outcome = "late" if risk["late"] else "duplicate" if risk["duplicate"] else "ok" if usable else "unusable"
        self.m_frames.inc(tags={"outcome": outcome})
        for stage, ms in latency_ms.items():
            self.m_stage.observe(ms, tags={"stage": stage})
        for kind in risk["opened"]:
            self.m_events.inc(tags={"type": kind})
        return AnalyzeFrameResponse(
            session_id=session_id,
            cheating=risk["cheating"],
            risk_score=risk["risk_score"],
            attention=risk["attention"],
            gaze=(risk["calibrated_gaze"] or face["gaze"]) if usable else "unknown",
            faces=face["faces"],
            presence=("present" if face["faces"] else "absent") if usable else "unknown",
            objects=objects["objects"],
            events=risk["open_events"],
            events_opened=risk["opened"],
            events_closed=risk["closed"],
            head_pose=face.get("head_pose"),
            expression=expression,
            frame_quality={"usable": usable, "issues": risk["frame_quality_issues"],
                           **{k: v for k, v in (face.get("quality") or {}).items()
                              if k in ("brightness", "contrast", "sharpness")}},
            gaze_ratio=face.get("gaze_ratio"),
            frame_time=risk["frame_time"],
            calibration=risk["calibration"],
            late=risk["late"],
            duplicate=risk["duplicate"],
            latency_ms=latency_ms,
        )

    def _require_integrator(self, authorization: str | None, x_api_key: str | None) -> None:
        if not self.api_keys:
            return  # auth off (warned loudly at start)
        presented = x_api_key or bearer(authorization)
        if not presented:
            raise AuthError("missing API key: send Authorization: Bearer <key> or X-API-Key")
        if not key_matches(presented, self.api_keys):
            raise AuthError("invalid API key")

    def _require_frame_access(self, session_id: str, authorization: str | None, x_api_key: str | None,
                              x_session_token: str | None) -> None:
        """The integrator's API key, or the session token of this very session."""
        if not self.api_keys:
            return
        presented = x_session_token or x_api_key or bearer(authorization)
        if not presented:
            raise AuthError("missing credentials: send the session token as Authorization: Bearer <token>")
        if key_matches(presented, self.api_keys):
            return
        claims = verify_token(self.token_secret, presented)
        if claims.session_id != session_id:
            raise AuthError("this session token belongs to another session", 403)

    async def _run_models(self, image_bytes: bytes) -> tuple[dict, dict]:
        """Both models, concurrently, within `model_timeout_s`. A replica that dies mid-call (Serve
        replaces it) gets one retry while time remains; otherwise the answer names the stage."""
        deadline = time.monotonic() + self.cfg.model_timeout_s

        async def call(name: str, handle_method) -> dict:
            for attempt in (1, 2):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    return await asyncio.wait_for(handle_method.remote(image_bytes), timeout=remaining)
                except asyncio.TimeoutError:
                    break
                except BackPressureError:
                    raise HTTPException(503, f"{name} is saturated: frame refused, send the next one",
                                        headers={"Retry-After": "1"}) from None
                except RayActorError:
                    logger.warning("%s replica died mid-frame (attempt %d)", name, attempt)
                    await asyncio.sleep(0.2)
            raise HTTPException(503, f"{name} did not answer within {self.cfg.model_timeout_s:g} s",
                                headers={"Retry-After": "2"})

        return await asyncio.gather(call("face_gaze", self.face_gaze.analyze),
                                    call("object_detector", self.object_detector.detect))

    def _integrator_session(self, session_id: str, authorization: str | None,
                            x_api_key: str | None) -> tuple[str, dict[str, Any]]:
        """For the integrator's per-session calls: key checked, id valid, session known."""
        self._require_integrator(authorization, x_api_key)
        session_id = _check_session_id(session_id)
        return session_id, self._record(session_id)

    def _record(self, session_id: str) -> dict[str, Any]:
        record = self.store.get(session_id)
        if record is None:
            raise HTTPException(404, f"unknown session {session_id}")
        return record

    def _raise_if_not_open(self, session_id: str) -> None:
        record = self._record(session_id)
        if record["status"] != "open":
            self.sessions.pop(session_id, None)
            raise HTTPException(409, f"session {session_id} has ended ({record['status']})")

    def _actor_for(self, session_id: str):
        """The session's actor, created (and rebuilt from the store) if it is not running: after an
        app restart, open sessions continue where they were."""
        actor = session_actor(session_id, self.risk_config, self.face_config, self.store_location,
                              self.cfg.session_actor_num_cpus)
        self.sessions[session_id] = actor
        return actor

    def _open_session_actor(self, session_id: str):
        actor = self.sessions.get(session_id)
        if actor is not None:
            return actor
        self._raise_if_not_open(session_id)
        return self._actor_for(session_id)

    async def _call(self, session_id: str, method: str, *args, attempts: int = 4, check_open: bool = True):
        """Call the session's actor; while it is being restarted, wait and try again."""
        for attempt in range(attempts):
            actor = self.sessions.get(session_id) or self._actor_for(session_id)
            try:
                return await getattr(actor, method).remote(*args)
            except ACTOR_FAILURES as exc:
                logger.warning("session %s: actor unavailable for %s (%s), attempt %d",
                               session_id, method, type(exc).__name__, attempt + 1)
                if check_open:
                    self._raise_if_not_open(session_id)
                self.sessions.pop(session_id, None)
                await asyncio.sleep(0.25 * (attempt + 1))
        raise HTTPException(503, f"session {session_id} state is temporarily unavailable, retry")

    async def _finish(self, session_id: str, status: str) -> dict[str, Any]:
        summary = await self._call(session_id, "finish", time.time(), status, check_open=False)
        self._kill_actor(session_id)  # the summary is in the store; the actor's work is done
        return summary

    def _kill_actor(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)
        actor = find_session_actor(session_id)
        if actor is not None:
            ray.kill(actor, no_restart=True)

    def _reaper(self) -> None:
        """Ends sessions idle past `idle_timeout_s` (verdict kept, status abandoned) and deletes
        sessions ended more than `retention_days` ago. Runs in every ingress replica; the store's
        atomic claim makes sure each session is ended once."""
        while not self._stop.wait(self.cfg.reaper_interval_s):
            try:
                now = time.time()
                for session_id in self.store.idle_sessions(now - self.cfg.idle_timeout_s):
                    if self.store.claim_for_ending(session_id, time.time()):
                        actor = self.sessions.get(session_id) or self._actor_for(session_id)
                        try:
                            ray.get(actor.finish.remote(now, "abandoned"), timeout=60)
                        except Exception:  # noqa: BLE001 - leave it for the next sweep
                            self.store.reopen(session_id)
                            logger.exception("session %s: could not end the idle session", session_id)
                            continue
                        self._kill_actor(session_id)
                        logger.info("session %s abandoned after %.0f s idle", session_id, self.cfg.idle_timeout_s)
                for session_id in self.store.release_stuck_endings(now - self.cfg.ending_timeout_s):
                    logger.warning("session %s: its end was claimed but never finished; open again", session_id)
                self.m_open_sessions.set(self.store.open_session_count())
                for session_id in self.store.expired_sessions(now - self.cfg.retention_days * 86400):
                    self.store.delete(session_id)
                    logger.info("session %s deleted: past the %g-day retention", session_id, self.cfg.retention_days)
            except Exception:  # noqa: BLE001 - the reaper must outlive any one bad sweep
                logger.exception("session reaper sweep failed")
