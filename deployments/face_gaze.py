"""FaceGaze deployment: MediaPipe faces, iris ratios, head pose and expression for one JPEG/PNG frame."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
from ray import serve

from contracts import FaceResult, FrameRejected
from errors import FrameError
from settings import FaceGazeConfig
from vision.face_gaze import FaceGazeAnalyzer
from vision.frames import decode_image


@serve.deployment(name="FaceGaze")
class FaceGaze:
    def __init__(self, config: FaceGazeConfig):
        self.analyzer = FaceGazeAnalyzer(config)
        self.analyzer.analyze(np.full((480, 640, 3), 127, dtype=np.uint8))  # warm-up: load graphs now

    # A sync method: Serve runs it in a thread pool, and the analyzer serialises MediaPipe calls.
    def analyze(self, image_bytes: bytes) -> FaceResult | FrameRejected:
        started = time.perf_counter()
        try:
            image = decode_image(image_bytes)
        except FrameError as exc:
            return FrameRejected.of(exc)
        result = self.analyzer.analyze(image)
        return dataclasses.replace(result, latency_ms=round((time.perf_counter() - started) * 1000, 2))

    def __del__(self):
        analyzer = getattr(self, "analyzer", None)
        if analyzer is not None:
            analyzer.close()
