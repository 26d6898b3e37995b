"""ObjectDetector deployment: YOLO with dynamic request batching (@serve.batch)."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from ray import serve
from ray.serve import metrics

from vision.detector import DetectorConfig, ObjectDetectorModel
from vision.frames import FrameError, decode_image


@serve.deployment(name="ObjectDetector")
class ObjectDetector:
    def __init__(self, config: dict[str, Any]):
        self.cfg = DetectorConfig(**config)
        self.model = ObjectDetectorModel(self.cfg)
        self.model.warm_up()
        # Batch size and wait come from config/serve.yaml, not the decorator's defaults.
        self.detect.set_max_batch_size(self.cfg.max_batch_size)
        self.detect.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
        self.m_batch = metrics.Histogram("proctor_detector_batch_size", description="Frames per YOLO call",
                                         boundaries=[1, 2, 3, 4, 6, 8, 12, 16, 32, 64])
        self.m_inference = metrics.Histogram("proctor_detector_batch_ms", description="Decode + YOLO per batch",
                                             boundaries=[10, 25, 50, 100, 150, 250, 500, 1000, 2500])

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def detect(self, frames: list[bytes]) -> list[dict[str, Any]]:
        started = time.perf_counter()
        results: list[dict[str, Any]] = [{} for _ in frames]
        images, slots = [], []
        for i, data in enumerate(frames):
            try:
                images.append(decode_image(data))
                slots.append(i)
            except FrameError as exc:
                results[i] = {"error": str(exc), "status": exc.status}
        # Off the event loop, so the replica keeps accepting requests for the next batch.
        detections = await asyncio.to_thread(self.model.detect_batch, images)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        self.m_batch.observe(len(frames))
        self.m_inference.observe(elapsed_ms)
        for slot, objects in zip(slots, detections):
            results[slot] = {"objects": objects, "batch_size": len(images), "latency_ms": elapsed_ms}
        return results
