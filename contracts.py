"""The typed messages that cross processes on a frame's path, declared once.

    Ingress --bytes--> FaceGaze        -> FaceResult | FrameRejected
    Ingress --bytes--> ObjectDetector  -> Detections | FrameRejected   (one per batch slot)
    Ingress --bytes, FaceResult, Detections--> RiskSession -> RiskUpdate
    Ingress --bytes, FaceBox--> FaceIdentity -> IdentitySample | FrameRejected   (when a session asks)
    Ingress --AudioChunk (speech blocks from the ingress's VAD, samples)--> RiskSession -> AudioUpdate

Frozen dataclasses: cheap to pickle through Ray handles, read by attribute (never by key), and
testable without Ray. The HTTP answer is built from these by one pure function,
`pipeline.response.frame_response`. Pure code (no Ray).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from errors import FrameError, FrameProblem


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixels of the frame as sent."""

    x: float
    y: float
    w: float
    h: float
    confidence: float


@dataclass(frozen=True)
class GazeRatio:
    """Iris position inside the eyes: horizontal 0 = image-left corner .. 1 = image-right; vertical
    0 = top lid .. 1 = bottom lid."""

    horizontal: float
    vertical: float


@dataclass(frozen=True)
class HeadPose:
    """Degrees. yaw > 0: the face points toward the image's right edge; pitch > 0: up; roll > 0:
    tilted clockwise as seen in the image."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Expression:
    """Landmark geometry of the main face (a heuristic, not an emotion classifier)."""

    label: str  # neutral | smiling | mouth_open | eyes_closed
    eye_openness: float
    mouth_openness: float
    smile_width: float
    eyes_closed: bool
    mouth_open: bool


@dataclass(frozen=True)
class FrameQuality:
    """Whether the frame can be judged, and the measures behind that."""

    issues: tuple[str, ...]  # too_dark, too_blurred, covered (frozen is decided per session)
    brightness: float
    contrast: float
    sharpness: float
    digest: str  # of the decoded pixels: equal digests are a frozen camera


@dataclass(frozen=True)
class FaceResult:
    """What the face stage saw. Gaze *direction* is not here: it depends on the session's
    calibrated baseline, so the risk engine classifies it (`risk.gaze`)."""

    faces: int
    face_boxes: tuple[FaceBox, ...]
    quality: FrameQuality
    gaze_ratio: GazeRatio | None = None
    gaze_readable: bool = False  # False: no mesh, eyes closed or blurred: the iris cannot be read
    head_pose: HeadPose | None = None
    expression: Expression | None = None
    latency_ms: float = 0.0


@dataclass(frozen=True)
class Detection:
    """One object YOLO reported, box in pixels [x0, y0, x1, y1]."""

    label: str
    confidence: float
    box: tuple[float, float, float, float]
    source: str = "yolo"  # or extra_look, second_look (a crop around a person), phone_at_ear (vision/detector.py)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": self.confidence, "box": list(self.box), "source": self.source}


@dataclass(frozen=True)
class Detections:
    """The objects of one frame, and the batch it ran in."""

    objects: tuple[Detection, ...]
    batch_size: int = 1
    latency_ms: float = 0.0


@dataclass(frozen=True)
class IdentitySample:
    """One face's descriptor (vision/identity.py), or why the face could not be read. `chip` (JPEG
    of the aligned face) only when asked for: the enrolment face a reviewer sees beside a mismatch."""
    descriptor: tuple[float, ...] | None
    reason: str | None = None
    chip: bytes | None = None
    latency_ms: float = 0.0


@dataclass(frozen=True)
class FrameRejected:
    """A model's answer for a frame it could not use: a value in its batch slot, so one bad frame
    never fails the batch. The ingress raises it as the FrameError it stands for."""

    problem: FrameProblem
    message: str

    @classmethod
    def of(cls, error: FrameError) -> "FrameRejected":
        return cls(error.problem, str(error))

    def error(self) -> FrameError:
        return FrameError(self.message, self.problem)


@dataclass(frozen=True)
class Baseline:
    """The candidate's neutral head pose and iris offsets, from the calibration window."""

    yaw: float = 0.0
    pitch: float = 0.0
    gaze_horizontal: float = 0.0  # offset from 0.5 (the centred iris)
    gaze_vertical: float = 0.0  # offset from the configured vertical centre
    frames: int = 0
    accepted: bool = False
    reason: str = "calibrating"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RiskUpdate:
    """What the session decided about one frame: everything the answer needs beyond the models'."""

    risk_score: int
    attention: int
    cheating: bool
    frame_time: float
    usable: bool  # False: covered, frozen, or too dark/blurred with no face: presence unknown
    quality_issues: tuple[str, ...]  # the face stage's, plus frozen
    gaze: str  # center|left|right|up|down|unknown, relative to the calibrated baseline
    talking: bool
    calibration: Baseline
    open_events: tuple[dict[str, Any], ...]  # risk.events.Event.to_dict(), open after this frame
    opened: tuple[str, ...] = ()  # event types opened by this frame
    closed: tuple[str, ...] = ()
    late: bool = False  # older than a frame already scored: answered, not scored
    duplicate: bool = False  # the same frame again: answered, not scored twice
    identity: dict[str, Any] | None = None  # risk.identity.IdentityTracker.to_dict()
    identity_request: str | None = None  # enrol | verify: a descriptor of this frame's face is wanted


@dataclass(frozen=True)
class SpeechBlock:
    """A few 32 ms windows of audio as silero-vad heard them (audio/vad.py): when, how long, the
    share of it that is speech (after smoothing), and the model's mean speech probability."""

    t: float  # seconds: the client's capture clock in the ingress, from the chunk's start in an AudioChunk
    duration: float
    speech: float  # 0..1
    probability: float

    def to_list(self) -> list[float]:
        """Exact (JSON keeps a float's every digit): the stored row must replay to the same events."""
        return [self.t, self.duration, self.speech, self.probability]


@dataclass(frozen=True)
class AudioChunk:
    """One audio chunk for the session's actor: its capture time, length, speech blocks (times from
    the chunk's start) and samples (16 kHz mono int16; empty when no evidence clip is kept)."""

    timestamp: float | None  # the client's capture time of the first sample, any clock (None: arrival)
    duration: float
    blocks: tuple[SpeechBlock, ...]
    pcm: bytes = b""
    position: str = "next"  # the ingress's view: next | duplicate | late (audio/vad.SpeechStream.position)


@dataclass(frozen=True)
class AudioUpdate:
    """What the session decided about one audio chunk."""

    risk_score: int
    cheating: bool
    chunk_time: float  # the chunk's start on the session's clock (server seconds)
    duration: float
    speech_seconds: float  # speech heard in this chunk
    mouth: str  # the candidate's mouth at the chunk's end: moving | still | no_face | unknown
    open_events: tuple[dict[str, Any], ...]
    opened: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()
    late: bool = False
    duplicate: bool = False
