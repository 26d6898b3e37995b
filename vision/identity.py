"""Whose face is this: dlib's ResNet face descriptor (128 numbers; two faces of one person lie close).

The weights ship in the `face-recognition-models` package: its 5-point shape predictor and the
descriptor model (public domain). The 68-point predictor in the same package is never loaded (its
licence excludes commercial use), nor dlib's own face detector (slow here, and it misses faces): the
face is the one MediaPipe found (`contracts.FaceBox`), aligned by the 5 landmarks into dlib's 150-px
face chip. A face that cannot be judged (too small, too dark or bright, blurred) gives a reason
instead of a descriptor: "can't tell", never "someone else". Pure code (no Ray).
"""
from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from contracts import FaceBox, IdentitySample

CHIP_PX = 150  # dlib's aligned face chip


def _model_file(name: str) -> str:
    # The package's own __init__ imports pkg_resources, which recent setuptools dropped: find its files directly.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed (pyproject.toml pins it)")
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from face-recognition-models")
    return str(path)


@dataclass(frozen=True)
class FaceGates:
    min_face_px: float  # face box height in the frame
    min_brightness: float  # mean grey level of the aligned face
    max_brightness: float
    min_sharpness: float  # variance of the Laplacian of the aligned face


class FaceDescriber:
    """Owns dlib's shape predictor and descriptor network (not shared across threads: one lock)."""

    def __init__(self, gates: FaceGates):
        import dlib

        self.gates = gates
        self._shape = dlib.shape_predictor(_model_file("shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(_model_file("dlib_face_recognition_resnet_model_v1.dat"))
        self._lock = threading.Lock()

    def sample(self, image_bgr: np.ndarray, box: FaceBox, with_chip: bool = False) -> IdentitySample:
        import time

        import cv2
        import dlib

        started = time.perf_counter()
        if box.h < self.gates.min_face_px:
            return IdentitySample(None, f"face too small ({box.h:.0f} px high, under {self.gates.min_face_px:g})")
        height, width = image_bgr.shape[:2]
        rect = dlib.rectangle(max(0, int(box.x)), max(0, int(box.y)),
                              min(width - 1, int(box.x + box.w)), min(height - 1, int(box.y + box.h)))
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        with self._lock:
            shape = self._shape(rgb, rect)
            chip = dlib.get_face_chip(rgb, shape, size=CHIP_PX, padding=0.25)
            grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
            brightness = float(grey.mean())
            sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
            reason = None
            if brightness < self.gates.min_brightness:
                reason = f"face too dark (mean grey {brightness:.0f})"
            elif brightness > self.gates.max_brightness:
                reason = f"face too bright (mean grey {brightness:.0f})"
            elif sharpness < self.gates.min_sharpness:
                reason = f"face too blurred (sharpness {sharpness:.0f})"
            descriptor = None if reason else tuple(
                round(float(v), 5) for v in self._net.compute_face_descriptor(rgb, shape))
        jpeg = None
        if with_chip and descriptor is not None:
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(chip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        return IdentitySample(descriptor, reason, jpeg, round((time.perf_counter() - started) * 1000, 2))
