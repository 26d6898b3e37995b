"""FaceGaze deployment: MediaPipe faces, gaze, head pose and expression for one JPEG/PNG frame."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from ray import serve

from vision.face_gaze import FaceGazeAnalyzer, FaceGazeConfig
from vision.frames import FrameError, decode_image


@serve.deployment(name="FaceGaze")
class FaceGaze:
    def __init__(self, config: dict[str, Any]):
        self.analyzer = FaceGazeAnalyzer(FaceGazeConfig(**config))
        self.analyzer.analyze(np.full((480, 640, 3), 127, dtype=np.uint8))  # warm-up: load graphs now

    # A sync method: Serve runs it in a thread pool, and the analyzer serialises MediaPipe calls.
    def analyze(self, image_bytes: bytes) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            image = decode_image(image_bytes)
        except FrameError as exc:
            return {"error": str(exc), "status": exc.status}
        result = self.analyzer.analyze(image)
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return result

    def __del__(self):
        analyzer = getattr(self, "analyzer", None)
        if analyzer is not None:
            analyzer.close()
