"""ObjectDetector deployment: YOLO with dynamic request batching (@serve.batch)."""
from __future__ import annotations

import asyncio
import time

from ray import serve
from ray.serve import metrics

from contracts import Detections, FrameRejected
from errors import FrameError
from settings import DetectorConfig
from vision.detector import ObjectDetectorModel
from vision.frames import decode_image


@serve.deployment(name="ObjectDetector")
class ObjectDetector:
    def __init__(self, config: DetectorConfig):
        self.cfg = config
        self.model = ObjectDetectorModel(config)
        self.model.warm_up()
        # The batch size and wait are config/serve.yaml's (the decorator takes no values of its own).
        self.detect.set_max_batch_size(config.max_batch_size)
        self.detect.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
        self.m_batch = metrics.Histogram("proctor_detector_batch_size", description="Frames per YOLO call",
                                         boundaries=[1, 2, 3, 4, 6, 8, 12, 16, 32, 64])
        self.m_inference = metrics.Histogram("proctor_detector_batch_ms", description="Decode + YOLO per batch",
                                             boundaries=[10, 25, 50, 100, 150, 250, 500, 1000, 2500])

    @serve.batch
    async def detect(self, frames: list[bytes]) -> list[Detections | FrameRejected]:
        """One answer per frame, in order: a bad frame is a FrameRejected in its slot, never the batch's error."""
        started = time.perf_counter()
        results: list[Detections | FrameRejected | None] = [None] * len(frames)
        images, slots = [], []
        for i, data in enumerate(frames):
            try:
                images.append(decode_image(data))
                slots.append(i)
            except FrameError as exc:
                results[i] = FrameRejected.of(exc)
        # Off the event loop, so the replica keeps accepting requests for the next batch.
        found = await asyncio.to_thread(self.model.detect_batch, images)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        self.m_batch.observe(len(frames))
        self.m_inference.observe(elapsed_ms)
        for slot, objects in zip(slots, found):
            results[slot] = Detections(objects=tuple(objects), batch_size=len(images), latency_ms=elapsed_ms)
        return results
