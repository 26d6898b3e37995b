"""Faces, gaze, head pose and expression features from MediaPipe (0.10.21 `solutions` API).

Pure code (no Ray): `FaceGazeAnalyzer.analyze(image)` takes a BGR array and returns a
`contracts.FaceResult`.

- Face count comes from the full-range face detector: the face mesh misses small faces and, in
  static mode, invents a face on some non-face images.
- The main face (largest detection) gets the 478-point mesh with iris landmarks, from which we
  compute the iris ratios, head pose and expression ratios.

Conventions (all in IMAGE coordinates, as the camera sends the frame, not mirrored):
- the iris ratios are 0 at the image-left eye corner; the gaze *direction* (`left` = the irises sit
  toward the left edge of the frame) is classified by the risk engine against the session's
  calibrated baseline (`risk.gaze`), in one place.
- yaw > 0: the face points toward the image's right edge; pitch > 0: the face points up;
  roll > 0: the head tilts clockwise as seen in the image. Degrees.
"""
from __future__ import annotations

import math
import threading
import numpy as np

from contracts import Expression, FaceBox, FaceResult, GazeRatio, HeadPose
from settings import FaceGazeConfig
from vision.quality import assess

# Face-mesh landmark indices (MediaPipe canonical topology, refine_landmarks=True adds 468-477).
# "Image-left eye" is the subject's right eye.
EYE_IMAGE_LEFT = {"outer": 33, "inner": 133, "upper": 159, "lower": 145, "iris": 468}
EYE_IMAGE_RIGHT = {"outer": 263, "inner": 362, "upper": 386, "lower": 374, "iris": 473}
FOREHEAD, CHIN = 10, 152
LIP_UPPER_INNER, LIP_LOWER_INNER, MOUTH_LEFT, MOUTH_RIGHT = 13, 14, 78, 308


def _pt(landmarks: np.ndarray, index: int) -> np.ndarray:
    return landmarks[index]


def iris_ratios(landmarks: np.ndarray, eye: dict[str, int]) -> tuple[float, float]:
    """Iris position inside one eye: (horizontal 0=image-left corner..1=image-right, vertical 0=lid top..1=bottom)."""
    a, b = _pt(landmarks, eye["outer"])[:2], _pt(landmarks, eye["inner"])[:2]
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    iris = _pt(landmarks, eye["iris"])[:2]
    axis = right - left
    width = float(np.linalg.norm(axis))
    if width < 1e-6:
        return 0.5, 0.5
    horizontal = float(np.dot(iris - left, axis) / (width * width))
    upper, lower = _pt(landmarks, eye["upper"])[:2], _pt(landmarks, eye["lower"])[:2]
    height = float(lower[1] - upper[1])
    vertical = 0.5 if height < 1e-6 else float((iris[1] - upper[1]) / height)
    return horizontal, vertical


def eye_openness(landmarks: np.ndarray, eye: dict[str, int]) -> float:
    """Lid gap over eye width (an eye aspect ratio): about 0.25-0.35 open, under ~0.1 closed."""
    width = np.linalg.norm(_pt(landmarks, eye["outer"])[:2] - _pt(landmarks, eye["inner"])[:2])
    gap = np.linalg.norm(_pt(landmarks, eye["upper"])[:2] - _pt(landmarks, eye["lower"])[:2])
    return float(gap / width) if width > 1e-6 else 0.0


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width: about 0 closed, over ~0.3 clearly open."""
    width = np.linalg.norm(_pt(landmarks, MOUTH_LEFT)[:2] - _pt(landmarks, MOUTH_RIGHT)[:2])
    gap = np.linalg.norm(_pt(landmarks, LIP_UPPER_INNER)[:2] - _pt(landmarks, LIP_LOWER_INNER)[:2])
    return float(gap / width) if width > 1e-6 else 0.0


def smile_width(landmarks: np.ndarray) -> float:
    """Mouth width over the distance between the outer eye corners: wider when smiling."""
    eyes = np.linalg.norm(_pt(landmarks, EYE_IMAGE_LEFT["outer"])[:2] - _pt(landmarks, EYE_IMAGE_RIGHT["outer"])[:2])
    mouth = np.linalg.norm(_pt(landmarks, MOUTH_LEFT)[:2] - _pt(landmarks, MOUTH_RIGHT)[:2])
    return float(mouth / eyes) if eyes > 1e-6 else 0.0


def expression_label(eyes_closed: bool, mouth_open: bool, smiling: bool) -> str:
    """A coarse label from landmark geometry (a heuristic, not an emotion classifier)."""
    if eyes_closed:
        return "eyes_closed"
    if smiling:
        return "smiling"
    if mouth_open:
        return "mouth_open"
    return "neutral"


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """Yaw/pitch/roll in degrees from the mesh's 3D landmarks (pixel units), no camera model needed.

    The face's right axis runs from the image-left eye corner to the image-right one, its down axis
    from forehead to chin; their cross product is the face normal.
    """
    right = _pt(landmarks, EYE_IMAGE_RIGHT["outer"]) - _pt(landmarks, EYE_IMAGE_LEFT["outer"])
    down = _pt(landmarks, CHIN) - _pt(landmarks, FOREHEAD)
    right = right / (np.linalg.norm(right) + 1e-9)
    down = down - np.dot(down, right) * right  # orthogonalise
    down = down / (np.linalg.norm(down) + 1e-9)
    toward_camera = -np.cross(right, down)  # MediaPipe z grows away from the camera
    yaw = math.degrees(math.atan2(toward_camera[0], -toward_camera[2]))
    pitch = math.degrees(math.atan2(-toward_camera[1], -toward_camera[2]))
    roll = math.degrees(math.atan2(right[1], right[0]))
    return HeadPose(yaw=round(yaw, 1), pitch=round(pitch, 1), roll=round(roll, 1))


class FaceGazeAnalyzer:
    """Owns the MediaPipe solution objects. They are not thread-safe, so calls are serialised."""

    def __init__(self, cfg: FaceGazeConfig | None = None):
        import mediapipe as mp

        self.cfg = cfg or FaceGazeConfig()
        # model_selection=1: the full-range detector (faces up to ~5 m, smaller faces).
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.cfg.detection_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=self.cfg.max_mesh_faces,
            refine_landmarks=True,
            min_detection_confidence=self.cfg.mesh_confidence,
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._detector.close()
            self._mesh.close()

    def analyze(self, image_bgr: np.ndarray) -> FaceResult:
        import cv2

        height, width = image_bgr.shape[:2]
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        with self._lock:
            detections = self._detector.process(rgb).detections or []
            boxes = tuple(self._box(d, width, height) for d in detections)
            mesh_faces = []
            if boxes:
                result = self._mesh.process(rgb)
                mesh_faces = result.multi_face_landmarks or []

        quality = assess(image_bgr, self.cfg.quality)
        no_mesh = FaceResult(faces=len(boxes), face_boxes=boxes, quality=quality)
        if not boxes or not mesh_faces:
            return no_mesh
        main_box = max(boxes, key=lambda b: b.w * b.h)
        landmarks = self._pick_mesh(mesh_faces, main_box, width, height)
        if landmarks is None:
            return no_mesh

        ratios = [iris_ratios(landmarks, eye) for eye in (EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT)]
        horizontal = float(np.mean([r[0] for r in ratios]))
        vertical = float(np.mean([r[1] for r in ratios]))
        openness = float(np.mean([eye_openness(landmarks, e) for e in (EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT)]))
        mouth = mouth_openness(landmarks)
        width_ratio = smile_width(landmarks)
        eyes_closed = openness < self.cfg.eyes_closed_ratio
        mouth_open = mouth > self.cfg.mouth_open_ratio
        smiling = width_ratio > self.cfg.smile_width_ratio and not mouth_open
        return FaceResult(
            faces=len(boxes),
            face_boxes=boxes,
            quality=quality,
            gaze_ratio=GazeRatio(horizontal=round(horizontal, 3), vertical=round(vertical, 3)),
            # no iris to read behind closed lids or in a smear
            gaze_readable=not eyes_closed and "too_blurred" not in quality.issues,
            head_pose=head_pose(landmarks),
            expression=Expression(
                label=expression_label(eyes_closed, mouth_open, smiling),
                eye_openness=round(openness, 3),
                mouth_openness=round(mouth, 3),
                smile_width=round(width_ratio, 3),
                eyes_closed=eyes_closed,
                mouth_open=mouth_open,
            ),
        )

    @staticmethod
    def _box(detection, width: int, height: int) -> FaceBox:
        rel = detection.location_data.relative_bounding_box
        x0, y0 = max(0.0, rel.xmin) * width, max(0.0, rel.ymin) * height
        x1 = min(1.0, rel.xmin + rel.width) * width
        y1 = min(1.0, rel.ymin + rel.height) * height
        return FaceBox(x=round(x0, 1), y=round(y0, 1), w=round(x1 - x0, 1), h=round(y1 - y0, 1),
                       confidence=round(float(detection.score[0]), 3))

    @staticmethod
    def _pick_mesh(mesh_faces, box: FaceBox, width: int, height: int) -> np.ndarray | None:
        """The mesh whose centre lies closest to the main detection's centre (and inside it)."""
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        best, best_dist = None, float("inf")
        for face in mesh_faces:
            pts = np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], dtype=np.float64)
            mx, my = pts[:, 0].mean(), pts[:, 1].mean()
            dist = math.hypot(mx - cx, my - cy)
            if dist < best_dist:
                best, best_dist = pts, dist
        if best is None or best_dist > max(box.w, box.h):
            return None
        return best
