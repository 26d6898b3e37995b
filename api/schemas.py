"""The HTTP contract: every request and response body, nested and typed, so `/docs` documents
every field a client reads. The seed's names are kept exactly (DESIGN.md's API contract); fields
beyond them are additive. Errors have one model for every status (`api.errors.ErrorResponse`)."""
from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

Gaze = Literal["center", "left", "right", "up", "down", "unknown"]
Verdict = Literal["CLEAN", "SUSPICIOUS", "CHEATING"]
Severity = Literal["low", "medium", "high"]
Status = Literal["registered", "open", "ending", "ended", "abandoned", "error"]
AddedType = Literal["FACE_MISSING", "MULTIPLE_FACES", "EXTRA_PERSON", "LOOKING_AWAY", "HEAD_TURNED", "PHONE_DETECTED",
                    "BOOK_DETECTED", "DEVICE_DETECTED", "TALKING", "EYES_CLOSED", "LOW_QUALITY", "IDENTITY_MISMATCH",
                    "SECOND_VOICE", "SPEECH_DETECTED", "OTHER"]
WebhookEvent = Literal["session.started", "session.ended", "review.completed", "session.deleted"]
DeliveryState = Literal["pending", "delivered", "failed", "disabled"]
NO_NUL = r"^[^\x00]*$"  # free text: anything but NUL (which PostgreSQL's text cannot hold)
REVIEWER = r"^[^\x00-\x1f]+$"
MAX_OFFSET_S = 7 * 86400.0
Mode = Literal["interview", "exam"]


# ---- requests --------------------------------------------------------------------------------
class StartSessionRequest(BaseModel):
    candidate_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@+-]+$", examples=["12345"],
                              description="the integrator's id for the candidate: letters, digits and . _ : @ + -")
    reference_image: str | None = Field(None, description=(
        "optional: an ID or registration photo of the candidate (base64 JPEG, PNG or WebP, the limits of a frame), "
        "showing one face; the enrolled face is compared with it and the report says match / uncertain / no match. "
        "Only its face descriptor is kept."))
    mode: Mode | None = Field(None, description=(
        "which audio events count: interview (SECOND_VOICE only: the candidate is expected to speak) or exam "
        "(also SPEECH_DETECTED); absent: audio.default_mode"))


class AnalyzeFrameRequest(BaseModel):
    session_id: UUID = Field(description="from /start-session")
    frame: str = Field(description="base64 JPEG, PNG or WebP; a data URL prefix is allowed")
    timestamp: float | None = Field(None, description=(
        "capture time in seconds, any clock: the first one is anchored to arrival time and later ones keep "
        "their spacing; absent: arrival time"))


class AnalyzeAudioRequest(BaseModel):
    session_id: UUID = Field(description="from /start-session")
    audio: str = Field(description=(
        "base64 WAV of 16 kHz mono 16-bit PCM, at most audio.max_chunk_s seconds; a data URL prefix is allowed"))
    timestamp: float | None = Field(None, description=(
        "capture time of the chunk's first sample in seconds, on the same clock as the frames' timestamps; "
        "absent: the chunk ended as it arrived (back to back with the last one for the speech model)"))


class EndSessionRequest(BaseModel):
    session_id: UUID


# ---- parts of a frame's answer ---------------------------------------------------------------
class DetectedObject(BaseModel):
    label: str = Field(description="person, cell phone, book, laptop, tv, remote, keyboard or mouse")
    confidence: float
    box: list[float] = Field(description="[x0, y0, x1, y1] in pixels of the frame as sent")
    source: str = Field("yolo", description=(
        "What found it: yolo (the detector's pass), extra_look (another look fused in), second_look (a crop "
        "around a person), phone_at_ear (a phone-like box under the threshold on a hand raised to the head)"))


class EventOut(BaseModel):
    """An episode: a condition that persisted long enough to open, until it cleared."""

    id: str = Field(description="stable within the session, e.g. 0001-phone-detected")
    type: str = Field(description="FACE_MISSING, MULTIPLE_FACES, EXTRA_PERSON, LOOKING_AWAY, HEAD_TURNED, "
                                  "PHONE_DETECTED, BOOK_DETECTED, DEVICE_DETECTED, TALKING, EYES_CLOSED, LOW_QUALITY, "
                                  "SPEECH_DETECTED, SECOND_VOICE (audio)")
    severity: Severity
    start: float = Field(description="frame time the condition began (s)")
    end: float | None = Field(description="frame time it cleared; null while open")
    frame_count: int
    peak_confidence: float
    peak_time: float = Field(description="frame time of the strongest signal (its evidence frame)")
    last_seen: float
    duration: float = Field(description="seconds, up to the frame this answer is about while open")
    open: bool


class HeadPose(BaseModel):
    """Degrees, image coordinates: yaw > 0 points toward the image's right edge, pitch > 0 up,
    roll > 0 tilted clockwise as seen in the image."""

    yaw: float
    pitch: float
    roll: float


class GazeRatio(BaseModel):
    horizontal: float = Field(description="iris position: 0 = image-left eye corner .. 1 = image-right")
    vertical: float = Field(description="iris position: 0 = top lid .. 1 = bottom lid")


class Expression(BaseModel):
    """Landmark geometry of the main face (a heuristic, not an emotion classifier)."""

    label: Literal["neutral", "smiling", "mouth_open", "eyes_closed"]
    eye_openness: float = Field(description="lid gap / eye width: ~0.25-0.35 open, under ~0.1 closed")
    mouth_openness: float = Field(description="inner-lip gap / mouth width")
    smile_width: float = Field(description="mouth width / outer-eye-corner distance")
    eyes_closed: bool
    mouth_open: bool
    talking: bool = Field(description="mouth movement over the last frames (risk.talking_*)")


class FrameQuality(BaseModel):
    usable: bool = Field(description="false: the frame cannot be judged (presence and gaze unknown)")
    issues: list[str] = Field(description="too_dark, too_blurred, covered, frozen")
    brightness: float | None = Field(None, description="mean grey level of a 320-px copy")
    contrast: float | None = Field(None, description="grey-level standard deviation")
    sharpness: float | None = Field(None, description="variance of the Laplacian")


class Calibration(BaseModel):
    """The candidate's neutral head pose and gaze from the first seconds of usable frames."""

    yaw: float = 0.0
    pitch: float = 0.0
    gaze_horizontal: float = Field(0.0, description="iris offset from centre absorbed by the baseline")
    gaze_vertical: float = 0.0
    frames: int = 0
    accepted: bool = Field(False, description="false while calibrating, or when the baseline was not believed")
    reason: str = Field("calibrating", description="ok, calibrating, disabled, or why it was not believed")


class Identity(BaseModel):
    """Is it still the candidate who started? (risk.identity in config/serve.yaml)"""

    status: Literal["waiting", "enrolling", "enrolled", "unenrolled", "off"] = Field(description=(
        "waiting: no usable face yet; enrolling: the first seconds' faces are being taken; unenrolled: it could "
        "not enrol (see reason) and is never flagged for it; off: identity is switched off"))
    reason: str | None = Field(None, description="why unenrolled")
    distance: float | None = Field(None, description=(
        "the last check's distance to the enrolled face (dlib descriptors; lower is more alike)"))
    band: Literal["match", "uncertain", "mismatch"] | None = Field(None, description="the last check's band")
    checked_at: float | None = Field(None, description="the last check's frame time")


class ReferenceResult(BaseModel):
    result: Literal["match", "uncertain", "no match", "not compared (no enrolment)"]
    distance: float | None


class IdentitySummary(Identity):
    """The report's identity section: enrolment, checks, and the reference photo's comparison."""

    enrolled_at: float | None = None
    enrolment_descriptors: int = 0
    enrolment_spread: float | None = Field(None, description="largest distance between two enrolment faces")
    enrolment_median_distance: float | None = None
    checks: int = 0
    mismatching_checks: int = 0
    unreadable_faces: int = Field(0, description="faces asked for that failed the quality gates (can't tell)")
    reference: ReferenceResult | None = Field(None, description="only when /start-session had a reference_image")


class StageLatency(BaseModel):
    """Milliseconds spent per stage of this frame, inside the service."""

    validate_ms: float = Field(alias="validate", description="admission: size, header, session, limits")
    face_gaze: float = Field(description="the face stage, decode included (its own clock)")
    object_detector: float = Field(description="the detector's batch, decode included (its own clock)")
    models_wall: float = Field(description="both models, concurrently, as the ingress waited")
    risk: float = Field(description="the session's update and its store write")
    total: float

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class AudioLatency(BaseModel):
    """Milliseconds spent per stage of this audio chunk, inside the service."""

    validate_ms: float = Field(alias="validate", description="admission: session, limits, the WAV's header")
    vad: float = Field(description="the speech model over the chunk (silero-vad, in the ingress)")
    risk: float = Field(description="the session's update and its store write")
    total: float

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class AudioSettings(BaseModel):
    """What the candidate's client needs to know to send audio."""

    enabled: bool = Field(description="false: audio is refused (403); send frames only")
    sample_rate: int = Field(16000, description="WAV chunks must be this many Hz, mono, 16-bit PCM")
    max_chunk_s: float = Field(description="longest chunk accepted")


# ---- answers ---------------------------------------------------------------------------------
class StartSessionResponse(BaseModel):
    session_id: UUID
    message: str
    timestamp: float
    session_token: str = Field(description="for the candidate's client: opens /analyze-frame for this session only")
    token_expires_at: float
    mode: Mode = Field(description="which audio events count in this session")
    audio: AudioSettings


class AnalyzeFrameResponse(BaseModel):
    session_id: UUID
    cheating: bool = Field(description="the live score is at or above risk.cheating_threshold")
    risk_score: int = Field(ge=0, le=100)
    attention: int = Field(ge=0, le=100)
    gaze: Gaze = Field(description="relative to the calibrated baseline, image coordinates")
    faces: int = Field(description="faces the detector found (see frame_quality before reading 0 as absence)")
    presence: Literal["present", "absent", "unknown"] = Field(description="unknown when the frame cannot be judged")
    objects: list[DetectedObject]
    objects_reused: bool = Field(description=(
        "true: YOLO did not run on this frame (nothing new in the picture): `objects` are the session's last "
        "detections (detector_gate in config/serve.yaml)"))
    objects_age_s: float = Field(description="seconds since `objects` were detected (0 when YOLO ran on this frame)")
    events: list[EventOut] = Field(description="events open after this frame")
    events_opened: list[str] = Field(description="types opened by this frame")
    events_closed: list[str] = Field(description="types closed by this frame")
    head_pose: HeadPose | None
    expression: Expression | None
    frame_quality: FrameQuality
    gaze_ratio: GazeRatio | None
    frame_time: float = Field(description="this frame's time on the session's clock (server seconds)")
    calibration: Calibration
    late: bool = Field(description="older than a frame already scored: answered, not scored")
    duplicate: bool = Field(description="the same frame delivered again: answered, not scored twice")
    identity: Identity = Field(description="the session's identity as of this frame (checks run at a cadence)")
    latency_ms: StageLatency


class AnalyzeAudioResponse(BaseModel):
    session_id: UUID
    risk_score: int = Field(ge=0, le=100)
    cheating: bool
    chunk_time: float = Field(description="the chunk's first sample on the session's clock (server seconds)")
    duration_s: float
    speech: bool = Field(description="speech was heard in this chunk")
    speech_seconds: float = Field(description="how much of the chunk was speech (silero-vad, smoothed)")
    speech_probability: float = Field(description="the model's highest mean speech probability over a block of it")
    mouth: Literal["moving", "still", "no_face", "unknown"] = Field(description=(
        "the candidate's mouth at the chunk's end, from the frames: speech while still or with no face counts "
        "towards SECOND_VOICE"))
    events: list[EventOut] = Field(description="events open after this chunk (frame and audio events)")
    events_opened: list[str]
    events_closed: list[str]
    late: bool = Field(description="starts inside audio already heard: answered, not scored")
    duplicate: bool = Field(description="the same chunk again: answered, not scored twice")
    latency_ms: AudioLatency


class TypeBreakdown(BaseModel):
    count: int
    total_seconds: float
    peak_confidence: float


class EndSessionResponse(BaseModel):
    session_id: UUID
    final_risk_score: int
    verdict: Verdict
    total_violations: int = Field(description="events of scoring types (LOW_QUALITY is recorded, not scored)")
    duration_seconds: float
    status: Literal["ended", "abandoned", "error"] = Field(description="abandoned when the session went idle")
    peak_risk_score: int
    verdict_reasons: list[str]
    frames: int
    unusable_frames: int
    violations_by_type: dict[str, TypeBreakdown]
    calibration: Calibration
    identity: IdentitySummary | None = None
    events: list[EventOut]
    report_url: str


class SessionHeader(BaseModel):
    """What every view of a session starts with."""

    session_id: UUID
    candidate_id: str
    status: Status = Field(description=(
        "registered (created ahead by an exam platform; opened later), open, ending, ended, abandoned (idle), "
        "error (the exam platform reported an error)"))
    started_at: float
    ended_at: float | None
    verdict: Verdict | None
    mode: Mode = Field("interview", description="which audio events count")


class SessionState(SessionHeader):
    """An open session's live state (from its actor), or an ended one's summary."""

    risk_score: int | None = Field(None, description="open sessions")
    peak_score: int | None = Field(None, description="open sessions")
    attention: int | None = Field(None, description="open sessions")
    cheating: bool | None = Field(None, description="open sessions")
    open_events: list[EventOut] | None = Field(None, description="open sessions")
    last_frame_time: float | None = Field(None, description="open sessions")
    rebuilt_frames: int | None = Field(None, description="open sessions: frames replayed when its actor last started")
    final_risk_score: int | None = Field(None, description="ended sessions")
    peak_risk_score: int | None = Field(None, description="ended sessions")
    verdict_reasons: list[str] | None = Field(None, description="ended sessions")
    total_violations: int | None = Field(None, description="ended sessions")
    duration_seconds: float | None = Field(None, description="ended sessions")
    violations_by_type: dict[str, TypeBreakdown] | None = Field(None, description="ended sessions")
    frames: int = 0
    late_frames: int = 0
    duplicate_frames: int = 0
    unusable_frames: int = 0
    audio_seconds: float = Field(0.0, description="seconds of audio heard (scored chunks)")
    calibration: Calibration | None = None
    identity: Identity | None = None
    events: list[EventOut] = Field(default_factory=list)
    review: Review | None = Field(None, description="ended sessions: the human review")
    final_verdict: Verdict | None = Field(None, description="ended sessions: the review's outcome if any, else `verdict`")


class EventReview(BaseModel):
    """A reviewer's latest decision on an automatic event."""

    decision: Literal["confirmed", "dismissed"]
    note: str | None
    reviewer: str
    reviewed_at: float


class ReviewAction(BaseModel):
    """One entry of a review's history: every action, in order, never rewritten."""

    at: float
    reviewer: str
    action: Literal["event_reviewed", "event_added", "outcome"]
    event_id: str | None = None
    decision: Literal["confirmed", "dismissed"] | None = None
    note: str | None = None
    outcome: Verdict | None = None
    comment: str | None = None


class Review(BaseModel):
    """The human review: pending until a reviewer gives the session an outcome (which a re-review
    may change; the history keeps every action). The automatic verdict never changes."""

    status: Literal["pending", "completed"]
    outcome: Verdict | None
    comment: str | None
    reviewer: str | None = Field(description="who gave the outcome: the name they gave, or their key's fingerprint")
    reviewed_at: float | None
    history: list[ReviewAction]


class AudioEvidence(BaseModel):
    """An audio event's evidence: the span of speech that opened it, and its clip when one is kept."""

    start_offset_s: float = Field(description="the clip's (or span's) start, seconds from the session's start")
    end_offset_s: float
    clip_url: str | None = Field(description="the clip as a 16 kHz WAV; null when none is kept (evidence_max_s: 0)")
    waveform: list[float] = Field(description="the clip's peak level (0-1) over equal slices, for drawing")


class ReportEvent(EventOut):
    start_offset_s: float = Field(description="seconds from the session's start")
    end_offset_s: float | None
    evidence_url: str | None = Field(description="the evidence frame (its strongest signal, boxes drawn)")
    source: Literal["auto", "reviewer"] = Field("auto", description="found by the models, or added by a reviewer")
    note: str | None = Field(None, description="a reviewer-added event's description")
    review: EventReview | None = Field(None, description="a reviewer's decision on it; null: none yet")
    audio: AudioEvidence | None = Field(None, description="audio events: the span and clip of the speech")


class TimelinePoint(BaseModel):
    t: float
    offset_s: float
    score: float
    attention: float
    usable: bool


class Report(SessionHeader):
    """The reviewer's report: verdict and reasons, the score and attention per frame, events with evidence."""

    verdict_reasons: list[str]
    final_risk_score: float
    peak_risk_score: float
    duration_seconds: float | None
    frames: int
    unusable_frames: int
    violations_by_type: dict[str, TypeBreakdown]
    calibration: Calibration | None
    identity: IdentitySummary | None
    events: list[ReportEvent]
    timeline: list[TimelinePoint]
    review: Review
    final_verdict: Verdict | None = Field(description="the review's outcome when there is one, else `verdict`")
    audio_seconds: float = Field(0.0, description="seconds of audio received")
    speech: list[list[float]] = Field(default_factory=list, description=(
        "where speech was heard: [start, end] seconds from the session's start (from stored speech summaries; "
        "the audio itself is not stored)"))


class DeleteResponse(BaseModel):
    session_id: UUID
    deleted: bool


class Health(BaseModel):
    status: Literal["ok"]


# ---- human review ----------------------------------------------------------------------------
class ReviewerName(BaseModel):
    reviewer: str | None = Field(None, min_length=1, max_length=128, pattern=REVIEWER, description=(
        "who reviews (a name or an email: an LMS user's email is sent to edX as reviewed_by); "
        "absent: the key's fingerprint"))


class EventReviewRequest(ReviewerName):
    decision: Literal["confirmed", "dismissed"]
    note: str | None = Field(None, max_length=2000, pattern=NO_NUL)


class AddEventRequest(ReviewerName):
    type: AddedType = Field(description="an event type the models know, or OTHER")
    start_offset_s: float = Field(ge=0, le=MAX_OFFSET_S, description="seconds from the session's start")
    end_offset_s: float | None = Field(None, ge=0, le=MAX_OFFSET_S, description="absent: a moment")
    note: str = Field(min_length=1, max_length=2000, pattern=NO_NUL, description="what the reviewer saw")


class SessionReviewRequest(ReviewerName):
    outcome: Verdict
    comment: str | None = Field(None, max_length=2000, pattern=NO_NUL)


class SessionReviewResponse(BaseModel):
    session_id: UUID
    verdict: Verdict | None = Field(description="the automatic verdict (never changed by a review)")
    final_verdict: Verdict | None
    review: Review


class ReviewQueueItem(BaseModel):
    session_id: UUID
    candidate_id: str
    status: Status
    started_at: float
    ended_at: float | None
    verdict: Verdict | None
    peak_risk_score: float = Field(description="the queue's priority: highest first")
    review_outcome: Verdict | None
    reviewed_at: float | None


class ReviewQueue(BaseModel):
    items: list[ReviewQueueItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: the last page")


# ---- webhooks --------------------------------------------------------------------------------
class WebhookCreateRequest(BaseModel):
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\x00-\x20]+$", description=(
        "https:// to a public address (SECURITY.md: the SSRF guard)"))
    events: list[WebhookEvent] | None = Field(None, min_length=1, description="absent: every event type")


class WebhookEndpoint(BaseModel):
    id: str
    url: str
    events: list[WebhookEvent]
    created_at: float
    disabled: bool = Field(description="true after the receiver answered 410 Gone: no more deliveries")
    disabled_reason: str | None
    previous_secret_expires_at: float | None = Field(description="while a rotation overlaps: both secrets sign until then")


class WebhookCreated(WebhookEndpoint):
    secret: str = Field(description="whsec_...: shown once, here; verify deliveries with it (Standard Webhooks v1)")


class WebhookList(BaseModel):
    endpoints: list[WebhookEndpoint]


class WebhookRotated(BaseModel):
    id: str
    secret: str = Field(description="the new secret, shown once")
    previous_secret_expires_at: float = Field(description="the old secret also signs until then")


class WebhookDeleted(BaseModel):
    id: str
    deleted: bool


class Delivery(BaseModel):
    id: str
    message_id: str = Field(description="the webhook-id header: the same on every attempt")
    event_type: WebhookEvent
    channel: Literal["webhook", "edx"]
    endpoint_id: str | None
    url: str
    state: DeliveryState
    attempts: int
    next_attempt_at: float | None
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float


class DeliveryList(BaseModel):
    deliveries: list[Delivery]
    next_cursor: str | None
