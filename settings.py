"""Every tunable of the application: the `args:` of config/serve.yaml, one model per section.

Each field carries its default and its description here, once; config/serve.yaml sets every field
(tests/test_config.py keeps its values equal to these defaults, so pure tests test what runs) and
docs/CONFIG.md is generated from these models (`python scripts/gen_config_docs.py`). Every model
forbids unknown keys: `max_batch_sise: 8` fails at deploy time naming the key instead of running
the default. Secrets and the store URL may also come from the environment (`PROCTOR_*`):
`resolve_environment` applies them, once, where the service starts.

Pure code (no Ray).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parent
CONFIG_PATH = PROJECT_ROOT / "config" / "serve.yaml"

API_KEYS_ENV = "PROCTOR_API_KEYS"  # comma-separated integrator keys, added to auth.api_keys
TOKEN_SECRET_ENV = "PROCTOR_TOKEN_SECRET"  # overrides auth.token_secret
STORE_URL_ENV = "PROCTOR_STORE_URL"  # overrides ingress.store_url (a database URL may hold a password)
REVIEWER_KEYS_ENV = "PROCTOR_REVIEWER_KEYS"  # comma-separated reviewer keys, added to auth.reviewer_keys
EDX_CLIENT_SECRET_ENV = "PROCTOR_EDX_CLIENT_SECRET"  # overrides edx.client_secret
EDX_LMS_CLIENT_SECRET_ENV = "PROCTOR_EDX_LMS_CLIENT_SECRET"  # overrides edx.lms_client_secret
POSTGRES_SCHEMES = ("postgresql", "postgres")

EVENT_TYPES = (
    "FACE_MISSING",
    "MULTIPLE_FACES",
    "EXTRA_PERSON",
    "LOOKING_AWAY",
    "HEAD_TURNED",
    "PHONE_DETECTED",
    "BOOK_DETECTED",
    "DEVICE_DETECTED",
    "TALKING",
    "EYES_CLOSED",
    "LOW_QUALITY",
    "IDENTITY_MISMATCH",
    "SPEECH_DETECTED",  # audio (risk/voice.py): heard speech; exam mode
    "SECOND_VOICE",  # audio: speech while the candidate's mouth is still or no face is in view
)
AUDIO_EVENT_TYPES = ("SPEECH_DETECTED", "SECOND_VOICE")
SESSION_MODES = ("interview", "exam")
SessionMode = Literal["interview", "exam"]


class StrictModel(BaseModel):
    """A config section: unknown keys are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def url_scheme(location: str) -> str | None:
    """`postgresql` for `postgresql://...`; None for a plain path."""
    return location.split("://", 1)[0].lower() if "://" in location else None


# ---- ingress ---------------------------------------------------------------------------------
class IngressConfig(StrictModel):
    """The HTTP/WebSocket front: limits, timeouts and the session store."""

    store_path: str = Field("data/sessions.sqlite3", description=(
        "SQLite session store (WAL mode), used when no store_url is set; relative to the project root."))
    store_url: str | None = Field(None, description=(
        "A postgresql:// URL for a PostgreSQL session store (a cluster spanning machines); null: SQLite at "
        f"store_path. ${STORE_URL_ENV} overrides it: put a URL with a password there, not in the file."))
    max_frame_bytes: int = Field(4 * 1024 * 1024, ge=1024, description=(
        "Largest frame accepted, in bytes after base64 decoding (413 above)."))
    max_frame_pixels: int = Field(4096 * 4096, ge=1, description=(
        "Largest width x height accepted, read from the image header before decoding (413 above)."))
    model_timeout_s: float = Field(10.0, gt=0, description=(
        "A frame whose models have not answered within this many seconds gets 503 naming the stage."))
    session_call_timeout_s: float = Field(30.0, gt=0, description=(
        "A call to a session's actor (a frame's score, an end) waiting longer is retried on a fresh handle; "
        "after 4 tries it is 503."))
    session_actor_num_cpus: float = Field(0.0, ge=0, description=(
        "Logical CPUs reserved per RiskSession actor; 0 lets any number of sessions share a node."))
    warm_session_actors: int = Field(2, ge=0, description=(
        "RiskSession actors each ingress replica keeps started ahead of /start-session, under session ids made in "
        "advance: a start takes one (tens of ms) instead of starting a process (0.5-1.5 s). Each costs one idle "
        "actor's memory (bench/session_cost.py); 0: every start makes its actor."))
    warm_actor_ttl_s: float = Field(600.0, gt=0, description=(
        "A warm actor nobody claimed within this long stops itself (its replica died or was replaced); a replica "
        "hands out only warm actors younger than half of it, and replaces older ones."))
    idle_timeout_s: float = Field(300.0, gt=0, description=(
        "A session with no frame for this long is ended by the reaper, verdict kept, status abandoned."))
    reaper_interval_s: float = Field(10.0, gt=0, description=(
        "How often the reaper (one per application, by a lease in the store) looks for idle and expired sessions."))
    retention_days: float = Field(30.0, gt=0, description=(
        "Ended sessions (reports, evidence) are deleted this many days after they ended."))
    ending_timeout_s: float = Field(120.0, gt=0, description=(
        "An end-session claimed this long ago and never finished (its caller died) is released: open again."))
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1024, description=(
        "Largest HTTP request body (413 above): a 4 MiB frame in base64 plus JSON."))
    max_fps_per_session: float = Field(10.0, gt=0, description=(
        "Frames per second one session may send on average, per ingress replica, over HTTP and the "
        "WebSocket alike (429 + Retry-After above)."))
    fps_burst: float = Field(10.0, ge=1, description="Burst allowance of the per-session frame rate, in frames.")
    max_open_sessions: int = Field(100, ge=1, description="Concurrent open sessions (503 + Retry-After above).")
    max_inflight_frames: int = Field(6, ge=1, description=(
        "Frames in the models at once per ingress replica, from HTTP and WebSocket streams together; more are "
        "refused at once (503) rather than queued. Accepted frames wait about this many / throughput seconds."))
    direct_ingress: bool = Field(True, description=(
        "The local Ray that `make run` (and the tests and benchmarks) start: the Ingress replica serves HTTP on the "
        "port itself, without Serve's proxy process and hop (Ray 2.60's direct ingress; less CPU and latency per "
        "frame, docs/PERFORMANCE.md). Clusters keep Serve's proxy on every node."))
    local_ray_env: dict[str, str] = Field(default_factory=lambda: {
        "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5", "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000"}, description=(
        "Ray and Serve environment settings for the local Ray that `make run` (and the tests and benchmarks) "
        "start, read by Ray's processes when they start. On a cluster, set them on the nodes (`ray start`'s "
        "environment) instead. Each one's effect is measured in docs/PERFORMANCE.md."))

    @field_validator("store_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and url_scheme(url) not in POSTGRES_SCHEMES:
            raise ValueError("store_url must be a postgresql:// URL (or null for SQLite at store_path)")
        return url

    public_url: str | None = Field(None, description=(
        "The base URL clients reach this service at (https://proctor.example.com), for the links in webhook "
        "payloads and edX answers; null: those links are paths (/sessions/{id}/report.html)."))

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and url_scheme(url) not in ("http", "https"):
            raise ValueError("public_url must be an http(s):// URL (or null)")
        return None if url is None else url.rstrip("/")

    def store_location(self) -> str:
        """Where the session store is: store_url, else the SQLite store_path."""
        return self.store_url or self.store_path


# ---- auth ------------------------------------------------------------------------------------
class AuthConfig(StrictModel):
    """Access control: integrator API keys and the candidates' per-session tokens."""

    api_keys: list[str] = Field(default_factory=list, description=(
        f"Integrator API keys; ${API_KEYS_ENV} (comma-separated) adds more. Several may be valid at once "
        "(rotation). Empty: auth is OFF, and the service warns loudly and stays on 127.0.0.1."))
    token_secret: str | None = Field(None, description=(
        f"HMAC secret that signs session tokens; ${TOKEN_SECRET_ENV} overrides it. null: one is generated "
        "and kept in the session store, shared by every replica."))
    token_ttl_s: float = Field(4 * 3600, gt=0, description="Session tokens expire this many seconds after start.")
    min_key_length: int = Field(16, ge=8, description="Shorter API keys are refused when the service starts.")
    reviewer_keys: list[str] = Field(default_factory=list, description=(
        f"Reviewer API keys (the `reviewer` scope); ${REVIEWER_KEYS_ENV} (comma-separated) adds more. A reviewer "
        "reads reports and evidence and reviews ended sessions (GET /reviews and the review calls), nothing else. "
        "Integrator keys pass wherever a reviewer key does."))


# ---- webhooks --------------------------------------------------------------------------------
class WebhooksConfig(StrictModel):
    """Signed webhooks (Standard Webhooks v1) and the durable outbox that delivers them and the edX
    review results: one deliverer per application, by a lease in the store."""

    enabled: bool = Field(True, description=(
        "The deliverer runs (in one ingress replica at a time, by a lease). false: events still go to the outbox, "
        "undelivered until it is on again."))
    allow_loopback: bool = Field(False, description=(
        "Tests only: webhook and edX callback targets may be loopback addresses, over http too. Otherwise only "
        "https to public addresses (no private, loopback, link-local, metadata or reserved ones)."))
    timeout_s: float = Field(15.0, gt=0, le=60, description=(
        "A delivery not answered within this many seconds (connect, send and response together) has failed."))
    retry_schedule_s: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0],
        min_length=1, description=(
            "Seconds to wait after the 1st, 2nd, ... failed attempt (the first goes at once): the Standard Webhooks "
            "schedule, ~75 h in all. After the last, the delivery is failed (listed, retriable)."))
    jitter: float = Field(0.1, ge=0, le=0.5, description="Each wait is scaled by a random factor in 1 +/- this.")
    max_retry_after_s: float = Field(86400.0, gt=0, description=(
        "A receiver's Retry-After (on 429, 502, 503, 504) is honoured up to this many seconds."))
    rotation_overlap_s: float = Field(86400.0, ge=0, description=(
        "After POST /webhooks/{id}/rotate, the old secret also signs (a second v1 signature) for this long."))
    poll_interval_s: float = Field(1.0, gt=0, description="How often the deliverer looks for new events and due deliveries.")
    max_concurrent: int = Field(8, ge=1, description="Deliveries in flight at once.")
    max_endpoints_per_key: int = Field(20, ge=1, description="Endpoints one API key may register.")


# ---- Open edX --------------------------------------------------------------------------------
class EdxConfig(StrictModel):
    """Proctor as an Open edX REST proctoring provider (what edx-proctoring's `BaseRestProctoringProvider`
    calls), served under /edx."""

    enabled: bool = Field(False, description="Serve the edX provider API under /edx.")
    client_id: str | None = Field(None, description=(
        "The client id the LMS is configured with (PROCTORING_BACKENDS[<backend>]['client_id'])."))
    client_secret: str | None = Field(None, description=(
        f"Its client secret (as long as an API key at least); ${EDX_CLIENT_SECRET_ENV} overrides it: put it there, "
        "not in this file."))
    token_ttl_s: float = Field(3600.0, gt=0, description="Lifetime of the JWTs /edx/oauth2/access_token issues.")
    lms_url: str | None = Field(None, description=(
        "The LMS's base URL (https://lms.example.com): attempts must name it as lms_host, and review results go to its "
        "/api/edx_proctoring/v1/proctored_exam/attempt/{id}/reviewed with a token from its /oauth2/access_token."))
    lms_client_id: str | None = Field(None, description="Proctor's OAuth application at the LMS (client credentials).")
    lms_client_secret: str | None = Field(None, description=f"Its secret; ${EDX_LMS_CLIENT_SECRET_ENV} overrides it.")
    result_on_end: bool = Field(True, description=(
        "Send the automatic result when an attempt ends (passed, or suspicious: edX then holds it for a second "
        "review); false: only a human review's result is sent. A completed review is always sent."))
    capture_url: str | None = Field(None, description=(
        "The page that streams the learner's webcam: download_url in the attempt's answers, with session_id and a "
        "session token in its query; null: no download_url."))

    @field_validator("lms_url", "capture_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and url_scheme(url) not in ("http", "https"):
            raise ValueError("must be an http(s):// URL (or null)")
        return None if url is None else url.rstrip("/")


# ---- face and gaze ---------------------------------------------------------------------------
class QualityConfig(StrictModel):
    """Can a frame be judged? Measured on a 320-px-wide grey copy, so any camera resolution reads alike.
    A frozen frame (the same pixels as the session's previous one) needs no threshold: a live sensor
    never repeats exactly."""

    dark_brightness: float = Field(10.0, ge=0, le=255, description=(
        "Mean grey level under this is too_dark (unusable only when no face is found)."))
    covered_brightness: float = Field(40.0, ge=0, le=255, description=(
        "Darker than this and flatter than covered_contrast is a covered camera (never usable)."))
    covered_contrast: float = Field(6.0, ge=0, description="Grey-level standard deviation under which a dark frame is covered.")
    blur_sharpness: float = Field(15.0, ge=0, description=(
        "Variance of the Laplacian under this is too_blurred (gaze unknown)."))


class FaceGazeConfig(StrictModel):
    """The MediaPipe face stage: detector and mesh confidences and expression ratios."""

    detection_confidence: float = Field(0.5, ge=0, le=1, description=(
        "Minimum score of MediaPipe's full-range face detector (the face count)."))
    mesh_confidence: float = Field(0.5, ge=0, le=1, description="Minimum detection score of the face mesh (landmarks).")
    max_mesh_faces: int = Field(3, ge=1, description=(
        "Meshes computed per frame; the one on the largest detected face is used."))
    eyes_closed_ratio: float = Field(0.12, ge=0, description="Eye openness (lid gap / eye width) under this is eyes closed.")
    mouth_open_ratio: float = Field(0.35, ge=0, description="Inner-lip gap / mouth width over this is mouth open.")
    smile_width_ratio: float = Field(0.62, ge=0, description=(
        "Mouth width / outer-eye-corner distance over this is smiling."))
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Frame-quality gates.")


# ---- object detector -------------------------------------------------------------------------
class SecondLookConfig(StrictModel):
    """A closer look for phones: crops of each person's head and upper body, run again."""

    enabled: bool = Field(False, description=(
        "Off: measured in docs/ACCURACY.md, no phone the served detector misses (YOLO11n on the crops: the one the "
        "hand-at-ear rule finds), a false phone, ~3x the detector's time."))
    image_size: int = Field(640, ge=32, description="Crop input size (a crop is small, so this enlarges the phone).")
    max_persons: int = Field(2, ge=1, description="Largest persons looked at per frame.")
    threshold: float = Field(0.25, ge=0, le=1, description="Minimum phone confidence in a crop.")
    book_overlap_iou: float = Field(0.3, ge=0, le=1, description=(
        "A crop phone overlapping a first-pass book by more than this is dropped (papers read as phones)."))
    weights: str | None = Field(None, description=(
        "Weights that look at the crops; null: the detector's own (`detector.weights`)."))


class ExtraLookConfig(StrictModel):
    """One more look at every frame the detector runs on: another model, input size or the mirror image,
    for some classes. Its boxes are fused with the first pass's per class (`detector.fusion`)."""

    weights: str | None = Field(None, description=(
        "Any ultralytics-loadable weights path (project-relative); null: the detector's own (`detector.weights`)."))
    image_size: int = Field(544, ge=32, description="Input size (long side) of this look.")
    flip: bool = Field(False, description="Look at the mirror image (left-right); boxes are mirrored back.")
    classes: list[str] = Field(default_factory=lambda: ["cell phone", "book"], description=(
        "Labels this look reports (Proctor's labels, e.g. `cell phone`, `book`); persons and other classes "
        "stay the first pass's."))
    replaces_first_pass: bool = Field(False, description=(
        "For its classes, this look's boxes replace the first pass's instead of joining them (per-class model "
        "choice)."))
    when: Literal["always", "uncertain"] = Field("always", description=(
        "always: on every detection frame. uncertain: only on frames where, for one of its classes, the first "
        "pass's best box lies from `uncertain_floor` up to (not reaching) that class's threshold: a second opinion "
        "where the first pass is unsure (interview frames almost never have such a box, so it costs ~nothing there)."))
    uncertain_floor: float = Field(0.05, ge=0, le=1, description=(
        "With when: uncertain, the lowest first-pass confidence that asks for this look."))


class PhoneAtEarConfig(StrictModel):
    """A phone at the ear (vision/phone_at_ear.py): a phone-like box under the phone threshold counts when
    it lies on a hand raised to the head (MediaPipe Hands' bundled landmarks)."""

    enabled: bool = Field(True, description=(
        "Look for hands when a frame has a phone candidate: +1 phone of 5 on the development photos, no false "
        "phone, MediaPipe only on frames with a candidate (docs/ACCURACY.md)."))
    candidate_floor: float = Field(0.05, ge=0, le=1, description=(
        "Phone-like boxes from this confidence up to the phone threshold are candidates; MediaPipe Hands runs "
        "only on frames that have one."))
    head_share: float = Field(0.4, gt=0, le=1, description=(
        "A hand is raised to the head when it reaches into this top share of the person box it is inside."))


class DetectorConfig(StrictModel):
    """The YOLO object detector (COCO classes), its backend and its batching."""

    weights: str = Field("models/yolov8n.pt", description=(
        "Any ultralytics-loadable weights path; relative to the project root."))
    backend: Literal["onnxruntime", "torch", "ultralytics"] = Field("onnxruntime", description=(
        "onnxruntime: the weights exported once to models/onnx/ (dynamic shapes), 5-15% faster than torch here; "
        "torch: the same network in torch; ultralytics: YOLO.predict, the seed's path."))
    image_size: int = Field(544, ge=32, description=(
        "YOLO input size (long side): 640x480 frames run at 544x416 (rect letterbox), ~25% less work than 640 "
        "with the same accuracy table (docs/ACCURACY.md)."))
    device: str = Field("cpu", description=(
        "cuda:0 puts YOLO on a GPU (then give ObjectDetector ray_actor_options num_gpus: 1)."))
    precision: Literal["auto", "fp32", "int8"] = Field("fp32", description=(
        "onnxruntime on CPU: fp32; int8 serves the static int8 export that `python -m vision.quantize` makes from "
        "the development fixtures (30-35% less detector CPU here, even without VNNI, but on those photos it loses "
        "one person row, more than the 1 point allowed for a default); auto measures both on this CPU at start-up "
        "and serves the faster (fp32 when there is no int8 export). Both measured: docs/PERFORMANCE.md, int8."))
    threads: int = Field(2, ge=1, description="Intra-op threads per replica for ONNX Runtime / torch.")
    onnx_spinning: bool = Field(False, description=(
        "ONNX Runtime threads busy-wait between runs: lower latency alone, less throughput when cores are shared."))
    split_batches: bool = Field(True, description=(
        "A batch of 2+ frames (frames queueing) runs as `threads` single-thread ONNX Runtime runs in parallel: "
        "12-14% less CPU per frame at batch 2-4. A lone frame still gets every thread."))
    max_batch_size: int = Field(4, ge=1, description="@serve.batch: most frames per inference call.")
    batch_wait_timeout_s: float = Field(0.0, ge=0, description=(
        "@serve.batch: longest wait to fill a batch. 0: a lone frame starts at once; frames queued while a batch "
        "runs form the next one."))
    nms_iou: float = Field(0.7, ge=0, le=1, description="Non-maximum suppression overlap (ultralytics' predict default).")
    default_threshold: float = Field(0.40, ge=0, le=1, description="Minimum confidence for reported classes without their own.")
    class_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"cell phone": 0.15, "book": 0.10, "person": 0.40}, description=(
            "Minimum confidence per class, set from docs/ACCURACY.md (0 false positives on the fixtures); "
            "events still need 2 frames."))
    second_look: SecondLookConfig = Field(default_factory=SecondLookConfig, description="Phone crops, run again.")
    extra_looks: list[ExtraLookConfig] = Field(default_factory=lambda: [ExtraLookConfig(
        weights="models/yolo11n.pt", image_size=768, classes=["cell phone", "book"], when="uncertain")], description=(
        "More looks at detection frames (another model, size or the mirror image) for some classes, fused "
        "with the first pass per class. Each option is measured in docs/ACCURACY.md (`make eval`)."))
    phone_at_ear: PhoneAtEarConfig = Field(default_factory=PhoneAtEarConfig, description=(
        "Phones at the ear, from a hand raised to the head."))
    fusion: Literal["max", "wbf"] = Field("max", description=(
        "How boxes of one class from several looks combine (boxes overlapping by IoU > 0.5 are one object). "
        "max: the object takes its highest confidence (a union of the looks); wbf: "
        "weighted box fusion, every look reports down to 0.05 and the object's confidence is the sum of the "
        "looks' confidences over the number of looks, then `class_thresholds` apply."))

    def threshold(self, label: str) -> float:
        return self.class_thresholds.get(label, self.default_threshold)

    def weights_path(self) -> Path:
        path = Path(self.weights).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path


class DetectorGateConfig(StrictModel):
    """Change-gated detection (pipeline/gate.py): YOLO runs on a frame only when it can show something
    new; otherwise the session's last detections are reused and the answer says so."""

    enabled: bool = Field(True, description="false: YOLO runs on every frame.")
    thumbnail_reduction: Literal[2, 4, 8] = Field(8, description=(
        "The change test's grayscale thumbnail is decoded at 1/this of the frame (640x480 -> 80x60 at 8)."))
    pixel_threshold: int = Field(25, ge=1, le=255, description=(
        "A thumbnail pixel changed when it moved by more than this many grey levels (after removing the "
        "mean, so exposure drift is not change)."))
    changed_fraction: float = Field(0.02, ge=0, le=1, description=(
        "YOLO runs when more than this share of the thumbnail changed against the last frame YOLO saw."))
    max_detection_age_s: float = Field(3.0, gt=0, le=3.0, description=(
        "YOLO runs when the session's last detection is older than this, whatever the picture."))
    stale_recheck: Literal["inline", "background"] = Field("background", description=(
        "How a frame whose only reason to run YOLO is the age of the last detection runs it. inline: the "
        "frame waits for YOLO. background: the frame answers with the reused detections at once and YOLO "
        "runs on it off the answer's path; its result serves the next frames (one re-check per session at a "
        "time; one that finds something makes the next frame run YOLO inline)."))
    head_yaw_deg: float = Field(20.0, ge=0, description="YOLO runs when |head yaw| is beyond this (looking aside).")
    head_pitch_deg: float = Field(20.0, ge=0, description="YOLO runs when |head pitch| is beyond this (looking down).")


# ---- risk ------------------------------------------------------------------------------------
class GazeConfig(StrictModel):
    """Where the eyes point, from the iris position inside each eye (image coordinates)."""

    horizontal_margin: float = Field(0.06, ge=0, le=0.5, description=(
        "|horizontal iris ratio - 0.5| beyond this is left/right (0.5 = centred)."))
    vertical_margin: float = Field(0.12, ge=0, le=0.5, description="|vertical ratio - vertical_center| beyond this is up/down.")
    vertical_center: float = Field(0.45, ge=0, le=1, description=(
        "Vertical iris ratio when looking straight ahead (the lids hide the top of the iris)."))


class EventRule(StrictModel):
    """How one event type opens, closes, scores and weighs in the verdict."""

    open_after_s: float = Field(ge=0, description="The condition must hold this long before the event opens.")
    min_frames: int = Field(1, ge=1, description="... and be seen in at least this many frames.")
    close_after_s: float = Field(0.0, ge=0, description="The condition must be clear this long to close the event.")
    cooldown_s: float = Field(0.0, ge=0, description="A recurrence this soon after closing reopens the same event.")
    rate: float = Field(ge=0, description="Risk points per second while the event is open.")
    open_points: float = Field(0.0, ge=0, description="Risk points added once when it opens.")
    severity: Literal["low", "medium", "high"] = Field("medium", description="For the reviewer.")
    suspicious_after_s: float | None = Field(None, ge=0, description="Total open time that alone makes the verdict SUSPICIOUS.")
    cheating_after_s: float | None = Field(None, ge=0, description="Total open time that alone makes the verdict CHEATING.")


def _rule(open_after_s, min_frames, close_after_s, cooldown_s, rate, open_points, severity,
          suspicious_after_s=None, cheating_after_s=None) -> EventRule:
    return EventRule(open_after_s=open_after_s, min_frames=min_frames, close_after_s=close_after_s,
                     cooldown_s=cooldown_s, rate=rate, open_points=open_points, severity=severity,
                     suspicious_after_s=suspicious_after_s, cheating_after_s=cheating_after_s)


def default_rules() -> dict[str, EventRule]:
    return {
        "FACE_MISSING": _rule(3.0, 2, 0.5, 2.0, 4, 5, "medium", 10, 60),
        "MULTIPLE_FACES": _rule(1.0, 2, 0.5, 2.0, 10, 10, "high", 2, 10),
        "EXTRA_PERSON": _rule(1.0, 2, 0.5, 2.0, 8, 8, "high", 2, 10),
        "LOOKING_AWAY": _rule(2.0, 2, 0.5, 1.0, 4, 3, "low", 15, None),
        "HEAD_TURNED": _rule(2.0, 2, 0.5, 1.0, 3, 3, "low", 15, None),
        "PHONE_DETECTED": _rule(0.0, 2, 1.0, 3.0, 10, 15, "high", 1, 5),
        "BOOK_DETECTED": _rule(0.0, 2, 1.0, 3.0, 6, 8, "medium", 2, 20),
        "DEVICE_DETECTED": _rule(0.0, 2, 1.0, 3.0, 3, 5, "medium", 10, None),
        "TALKING": _rule(2.0, 3, 1.0, 2.0, 2, 2, "low", 30, None),
        "EYES_CLOSED": _rule(3.0, 2, 0.5, 1.0, 1, 1, "low", None, None),
        "LOW_QUALITY": _rule(2.0, 2, 0.5, 1.0, 0, 0, "low", None, None),  # recorded, never scored
        # Held open by risk.identity from sustained mismatching checks; one matching check closes it.
        "IDENTITY_MISMATCH": _rule(0.0, 1, 0.0, 30.0, 10, 20, "high", 1, 30),
        # Audio: `min_frames` counts speech blocks (audio.block_windows x 32 ms); never CHEATING alone.
        "SPEECH_DETECTED": _rule(1.0, 2, 2.0, 5.0, 1, 1, "low", 120, None),
        "SECOND_VOICE": _rule(0.5, 2, 2.0, 5.0, 3, 5, "medium", 5, None),
    }


class CalibrationConfig(StrictModel):
    """The first seconds of a session set the candidate's neutral head pose and gaze."""

    window_s: float = Field(5.0, ge=0, description="Seconds of usable one-face frames from the first one (0 disables).")
    min_frames: int = Field(3, ge=1, description="Fewer frames with a face than this: no baseline (raw thresholds).")
    max_yaw_deg: float = Field(35.0, ge=0, description="A baseline head yaw farther off than this is not believed.")
    max_pitch_deg: float = Field(30.0, ge=0, description="A baseline head pitch farther off than this is not believed.")
    max_gaze_offset: float = Field(0.12, ge=0, description=(
        "An iris offset beyond this is not believed as neutral (gaze then stays uncorrected)."))


class IdentityConfig(StrictModel):
    """Identity continuity: the candidate enrolled from the first seconds, re-verified at a cadence
    (risk/identity.py; descriptors from vision/identity.py, dlib's ResNet)."""

    enabled: bool = Field(True, description=(
        "Off: no face descriptors are computed or stored, `identity.status` is `off`, and /start-session "
        "refuses a reference_image."))
    enrol_window_s: float = Field(15.0, gt=0, description=(
        "Enrolment takes descriptors from the usable one-face frames of this many seconds from the first such "
        "frame (the calibration window's frames and a little more, so a 1 frame/s session gets several)."))
    enrol_min_descriptors: int = Field(3, ge=1, description=(
        "Fewer faces that pass the quality gates in the window than this: `unenrolled`, with the reason; never "
        "flagged for it."))
    enrol_max_descriptors: int = Field(5, ge=1, description="Descriptors kept for the enrolled identity.")
    enrol_max_spread: float = Field(0.5, gt=0, description=(
        "Enrolment descriptors farther apart than this are not one person: `unenrolled` (two people took turns)."))
    check_every_s: float = Field(10.0, gt=0, description=(
        "Re-verification cadence; also right after the face returns from FACE_MISSING and when MULTIPLE_FACES "
        "closes."))
    steady_check_every_s: float = Field(60.0, gt=0, description=(
        "The slower cadence while the face has stayed in view since the last `match`: one face on every usable "
        "frame, never gone, doubled or unreadable, never jumping (`max_face_jump`). Any break brings back "
        "`check_every_s`; a jump asks for a check at once (at most one per `check_every_s`). Set it equal to `check_every_s` to check at one pace."))
    max_face_jump: float = Field(0.6, gt=0, description=(
        "Between two frames the face's centre moving more than this many face widths, or its width changing "
        "by more than this share, is a break in continuity (someone else may be in the chair)."))
    match_max_distance: float = Field(0.45, gt=0, description=(
        "A check's distance to the nearest enrolment descriptor at or under this is `match` (docs/ACCURACY.md)."))
    mismatch_min_distance: float = Field(0.55, gt=0, description=(
        "Over this is `mismatch`; between the two, `uncertain` (counts neither way)."))
    mismatch_checks: int = Field(3, ge=1, description=(
        "IDENTITY_MISMATCH opens after this many mismatching checks in a row (a `match` resets the count)."))
    min_face_px: float = Field(80, gt=0, description="Quality gate: the face box's height in the frame, in pixels.")
    max_yaw_deg: float = Field(20, gt=0, description="Quality gate: |head yaw| at most this (a frontal face) ...")
    max_pitch_deg: float = Field(20, gt=0, description="... and |head pitch| at most this.")
    min_face_brightness: float = Field(40, ge=0, le=255, description=(
        "Quality gate: mean grey level of the aligned face at least this ..."))
    max_face_brightness: float = Field(225, ge=0, le=255, description="... and at most this.")
    min_face_sharpness: float = Field(20, ge=0, description=(
        "Quality gate: variance of the Laplacian of the aligned 150-px face at least this."))
    request_timeout_s: float = Field(20.0, gt=0, description=(
        "A descriptor asked for and not delivered within this (a busy or restarted replica) is asked again."))

    @model_validator(mode="after")
    def _bands_in_order(self) -> "IdentityConfig":
        if self.match_max_distance > self.mismatch_min_distance:
            raise ValueError("identity.match_max_distance must not exceed mismatch_min_distance")
        if self.enrol_min_descriptors > self.enrol_max_descriptors:
            raise ValueError("identity.enrol_min_descriptors must not exceed enrol_max_descriptors")
        return self


class VoiceConfig(StrictModel):
    """How heard speech becomes events (risk/voice.py). Speech is counted over a rolling window, so
    the pauses between words neither reset nor split an episode. The mouth state comes from the
    frames: still when the mouth opening moved less than `still_mouth_range` over the last frames."""

    window_s: float = Field(5.0, gt=0, description="Speech is counted over this many recent seconds of audio.")
    speech_min_s: float = Field(1.5, gt=0, description=(
        "SPEECH_DETECTED holds while the window has at least this many seconds of speech."))
    second_voice_min_s: float = Field(1.5, gt=0, description=(
        "SECOND_VOICE holds while the window has at least this many seconds of speech heard while the candidate's "
        "mouth was still or no face was in view."))
    mouth_window_s: float = Field(3.0, gt=0, description=(
        "The mouth state at a moment of speech is read from the frames of this many seconds before it."))
    mouth_min_frames: int = Field(2, ge=2, description=(
        "... at least this many frames with a face (fewer: the mouth state is unknown and the speech not counted)."))
    still_mouth_range: float = Field(0.04, ge=0, description=(
        "Mouth opening (inner-lip gap / width) moving less than this over those frames is a still mouth; a still "
        "face measures 0.001-0.005 on the development clips, speaking swings 0.1-0.4."))
    max_frame_age_s: float = Field(3.0, gt=0, description=(
        "'No face in view' needs a usable frame without a face at most this old; older frames say nothing."))
    modes: dict[str, list[str]] = Field(default_factory=lambda: {
        "interview": ["SECOND_VOICE"], "exam": ["SPEECH_DETECTED", "SECOND_VOICE"]}, description=(
        "Per session mode (/start-session `mode`): the audio events that count. Interview: the candidate is "
        "expected to speak, so only a second voice; exam: any speech too (low weight)."))
    evidence_max_s: float = Field(8.0, ge=0, le=30, description=(
        "An audio event keeps a clip of at most this many seconds ending where it opened, as its evidence (the "
        "only audio ever stored); 0: no clip, only the span's times. The session's actor holds this much of the "
        "latest audio in memory to cut it from."))
    evidence_pre_s: float = Field(1.0, ge=0, description="The clip starts this long before the speech that opened the event.")

    @model_validator(mode="after")
    def _known_modes(self) -> "VoiceConfig":
        if set(self.modes) != set(SESSION_MODES):
            raise ValueError(f"voice.modes must name exactly the modes {list(SESSION_MODES)}")
        unknown = {kind for kinds in self.modes.values() for kind in kinds} - set(AUDIO_EVENT_TYPES)
        if unknown:
            raise ValueError(f"voice.modes may name only audio events {list(AUDIO_EVENT_TYPES)}, not {sorted(unknown)}")
        return self


class RiskConfig(StrictModel):
    """The risk engine: gaze and head limits, event rules, score and verdict."""

    decay_per_s: float = Field(2.0, ge=0, description="Score points lost per second while no event is open.")
    cheating_threshold: float = Field(70, ge=0, le=100, description="`cheating` is true while the score is at or above this.")
    suspicious_peak: float = Field(30, ge=0, le=100, description="Verdict SUSPICIOUS when the session's peak score reached this.")
    cheating_peak: float = Field(70, ge=0, le=100, description="Verdict CHEATING when the session's peak score reached this.")
    attention_window_s: float = Field(10.0, gt=0, description="Attention = share of this many recent seconds spent attentive.")
    attention_floor: float = Field(50, ge=0, le=100, description="Attention under this adds a penalty ...")
    attention_penalty_per_s: float = Field(2.0, ge=0, description="... of up to this many points per second (at attention 0).")
    head_yaw_limit_deg: float = Field(30, ge=0, description="|yaw - baseline| beyond this is HEAD_TURNED.")
    head_pitch_limit_deg: float = Field(25, ge=0, description="|pitch - baseline| beyond this is HEAD_TURNED.")
    extra_person_min: int = Field(2, ge=2, description="This many YOLO persons open EXTRA_PERSON.")
    device_labels: list[str] = Field(default_factory=lambda: ["tv", "laptop", "remote"], description=(
        "Objects that open DEVICE_DETECTED."))
    max_gap_s: float = Field(5.0, gt=0, description="A longer gap between frames counts as only this long.")
    talking_window_s: float = Field(2.0, gt=0, description="Talking = mouth movement within this many seconds ...")
    talking_mouth_range: float = Field(0.15, ge=0, description="... the mouth opening (gap / width) swinging by this much ...")
    talking_min_frames: int = Field(3, ge=2, description="... over at least this many frames (one open mouth is not talking).")
    gaze: GazeConfig = Field(default_factory=GazeConfig, description="Gaze direction from the iris ratios.")
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig, description="The neutral pose and gaze.")
    identity: IdentityConfig = Field(default_factory=IdentityConfig, description="Identity continuity.")
    voice: VoiceConfig = Field(default_factory=VoiceConfig, description="Audio events from speech and the mouth.")
    rules: dict[str, EventRule] = Field(default_factory=default_rules, description=(
        "Per event type; partial rules in the YAML override only the types they name."))

    @model_validator(mode="after")
    def _complete_rules(self) -> "RiskConfig":
        unknown = set(self.rules) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types in risk.rules: {sorted(unknown)}")
        self.rules = {**default_rules(), **self.rules}
        return self


# ---- audio -----------------------------------------------------------------------------------
class AudioConfig(StrictModel):
    """Audio in (pipeline/audio.py): 16 kHz mono 16-bit PCM WAV chunks over HTTP or the WebSocket, and
    silero-vad's speech probability per 32 ms window, run in the ingress (audio/vad.py). How speech
    becomes events: risk.voice."""

    enabled: bool = Field(True, description=(
        "false: audio is refused (403) and never analysed; the demo does not ask for the microphone."))
    default_mode: SessionMode = Field("interview", description=(
        "A session's mode when /start-session names none: which audio events count (risk.voice.modes)."))
    max_chunk_s: float = Field(2.0, gt=0, le=10, description="Longest audio chunk accepted, in seconds (413 above).")
    max_audio_rate: float = Field(1.5, gt=0, description=(
        "Seconds of audio one session may send per second on average, per ingress replica (429 + Retry-After "
        "above): real time with room for a client catching up."))
    audio_burst_s: float = Field(10.0, gt=0, description="Burst allowance of that rate, in seconds of audio.")
    max_queued_chunks: int = Field(8, ge=1, description=(
        "Audio chunks a WebSocket stream holds waiting (audio is never dropped for a newer chunk, unlike frames); "
        "beyond this a chunk is refused (503)."))
    vad_model: Literal["silero_vad_16k_op15.onnx", "silero_vad.onnx"] = Field("silero_vad_16k_op15.onnx", description=(
        "The silero-vad 6.2.3 ONNX model run (shipped in its wheel): the 16 kHz-only export gives the same "
        "probabilities and was the cheaper here (bench/audio_cost.py measures it)."))
    threshold: float = Field(0.5, gt=0, lt=1, description="A 32 ms window with speech probability at or over this is speech.")
    neg_margin: float = Field(0.15, ge=0, lt=1, description=(
        "Speech ends only under threshold - this (silero's own hysteresis) ..."))
    min_silence_s: float = Field(0.25, ge=0, description="... for at least this long (the gaps between words stay speech).")
    block_windows: int = Field(8, ge=1, le=64, description=(
        "32 ms windows per speech block: the unit the risk engine steps on (8: 0.256 s)."))
    stream_gap_s: float = Field(0.1, gt=0, description=(
        "A chunk starting further than this from where the last one ended starts the speech model afresh."))

    @model_validator(mode="after")
    def _burst_holds_a_chunk(self) -> "AudioConfig":
        if self.audio_burst_s < self.max_chunk_s:
            raise ValueError("audio.audio_burst_s must be at least audio.max_chunk_s (else no chunk could pass)")
        return self


# ---- the application -------------------------------------------------------------------------
class AppConfig(StrictModel):
    """The application's `args:` block in config/serve.yaml, one field per section."""

    ingress: IngressConfig = Field(default_factory=IngressConfig, description="HTTP/WebSocket front and session store.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys and session tokens.")
    face_gaze: FaceGazeConfig = Field(default_factory=FaceGazeConfig, description="The MediaPipe face stage.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="The YOLO object detector.")
    detector_gate: DetectorGateConfig = Field(default_factory=DetectorGateConfig, description=(
        "When the ingress runs YOLO on a frame (change-gated detection)."))
    risk: RiskConfig = Field(default_factory=RiskConfig, description="The risk engine.")
    audio: AudioConfig = Field(default_factory=AudioConfig, description="Audio in and speech detection.")
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig, description=(
        "Signed webhooks and the outbox that delivers them."))
    edx: EdxConfig = Field(default_factory=EdxConfig, description="The Open edX REST proctoring provider API.")


def resolve_environment(cfg: AppConfig, environ: Mapping[str, str] | None = None) -> AppConfig:
    """The config with the `PROCTOR_*` environment applied: the one place that reads it.

    `$PROCTOR_API_KEYS` and `$PROCTOR_REVIEWER_KEYS` add keys; `$PROCTOR_TOKEN_SECRET`,
    `$PROCTOR_STORE_URL`, `$PROCTOR_EDX_CLIENT_SECRET` and `$PROCTOR_EDX_LMS_CLIENT_SECRET` override
    their fields. Called where the service runs (the Ingress replica, `make run`), so on a cluster each
    node's environment holds the secrets and they never travel in the app's arguments. Raises
    ValueError naming the variable for a key that is too short or a URL that is not PostgreSQL."""
    env = os.environ if environ is None else environ
    keys = list(cfg.auth.api_keys) + [k.strip() for k in env.get(API_KEYS_ENV, "").split(",") if k.strip()]
    reviewer_keys = list(cfg.auth.reviewer_keys) + [k.strip() for k in env.get(REVIEWER_KEYS_ENV, "").split(",")
                                                    if k.strip()]
    for found, where in ((keys, f"auth.api_keys, ${API_KEYS_ENV}"),
                         (reviewer_keys, f"auth.reviewer_keys, ${REVIEWER_KEYS_ENV}")):
        short = [k for k in found if len(k) < cfg.auth.min_key_length]
        if short:
            raise ValueError(f"{len(short)} API key(s) shorter than {cfg.auth.min_key_length} characters ({where})")
    if reviewer_keys and not keys:
        raise ValueError(f"reviewer keys need integrator keys (auth.api_keys, ${API_KEYS_ENV}): without them auth is off")
    store_url = env.get(STORE_URL_ENV, "").strip() or None
    if store_url is not None and url_scheme(store_url) not in POSTGRES_SCHEMES:
        raise ValueError(f"${STORE_URL_ENV} must be a postgresql:// URL")
    auth = cfg.auth.model_copy(update={"api_keys": keys, "reviewer_keys": reviewer_keys,
                                       "token_secret": env.get(TOKEN_SECRET_ENV, "").strip() or cfg.auth.token_secret})
    ingress = cfg.ingress.model_copy(update={"store_url": store_url or cfg.ingress.store_url})
    edx = cfg.edx.model_copy(update={
        "client_secret": env.get(EDX_CLIENT_SECRET_ENV, "").strip() or cfg.edx.client_secret,
        "lms_client_secret": env.get(EDX_LMS_CLIENT_SECRET_ENV, "").strip() or cfg.edx.lms_client_secret})
    if edx.enabled:
        missing = [f"edx.{name}" for name in ("client_id", "client_secret", "lms_url", "lms_client_id",
                                              "lms_client_secret") if not getattr(edx, name)]
        if missing:
            raise ValueError(f"edx.enabled needs {', '.join(missing)} (the secrets may come from "
                             f"${EDX_CLIENT_SECRET_ENV} and ${EDX_LMS_CLIENT_SECRET_ENV})")
        if len(edx.client_secret) < cfg.auth.min_key_length:
            raise ValueError(f"edx.client_secret is shorter than {cfg.auth.min_key_length} characters "
                             f"(${EDX_CLIENT_SECRET_ENV})")
    return cfg.model_copy(update={"auth": auth, "ingress": ingress, "edx": edx})


# ---- reading config/serve.yaml ---------------------------------------------------------------
def load_serve_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def _application(path: Path, app_name: str) -> dict[str, Any]:
    for application in load_serve_config(path)["applications"]:
        if application["name"] == app_name:
            return application
    raise KeyError(f"no application named {app_name!r} in {path}")


def load_args(path: Path = CONFIG_PATH, app_name: str = "proctor") -> dict[str, Any]:
    """The `args:` of one application in a Serve config file."""
    return _application(path, app_name).get("args", {})


def load_deployment_options(path: Path = CONFIG_PATH, app_name: str = "proctor") -> dict[str, dict[str, Any]]:
    """The `deployments:` overrides of one application, keyed by deployment name."""
    return {d["name"]: {k: v for k, v in d.items() if k != "name"}
            for d in _application(path, app_name).get("deployments", [])}
