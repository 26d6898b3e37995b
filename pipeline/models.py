"""The two model stages, called concurrently with one deadline: FaceGaze and ObjectDetector.

A replica that dies mid-call (Serve replaces it) gets one retry while time remains; a full replica
queue is refused at once (Saturated, 503) rather than waited on; a stage that does not answer in
time is ModelTimeout naming the stage. A frame a model could not use comes back as FrameRejected
in its slot and is raised as its FrameError here.
"""
from __future__ import annotations

import asyncio
import logging
import time

from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from contracts import Detections, FaceResult, FrameRejected
from errors import ModelTimeout, Saturated

logger = logging.getLogger("ray.serve")


def _accepted(answer):
    if isinstance(answer, FrameRejected):
        raise answer.error()
    return answer


class ModelStages:
    def __init__(self, face_gaze: DeploymentHandle, object_detector: DeploymentHandle, timeout_s: float):
        self.face_gaze = face_gaze
        self.object_detector = object_detector
        self.timeout_s = timeout_s

    def deadline(self) -> float:
        return time.monotonic() + self.timeout_s

    async def run(self, image_bytes: bytes) -> tuple[FaceResult, Detections]:
        """Both stages at once."""
        deadline = self.deadline()
        face, detections = await asyncio.gather(
            self._call("face_gaze", self.face_gaze.analyze, image_bytes, deadline),
            self._call("object_detector", self.object_detector.detect, image_bytes, deadline))
        return _accepted(face), _accepted(detections)

    async def face(self, image_bytes: bytes, deadline: float) -> FaceResult:
        return _accepted(await self._call("face_gaze", self.face_gaze.analyze, image_bytes, deadline))

    async def detect(self, image_bytes: bytes, deadline: float) -> Detections:
        return _accepted(await self._call("object_detector", self.object_detector.detect, image_bytes, deadline))

    async def _call(self, stage: str, method, image_bytes: bytes, deadline: float):
        for attempt in (1, 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return await asyncio.wait_for(method.remote(image_bytes), timeout=remaining)
            except asyncio.TimeoutError:
                break
            except BackPressureError:
                raise Saturated(f"{stage} is saturated: frame refused, send the next one") from None
            except RayActorError:
                logger.warning("%s replica died mid-frame (attempt %d)", stage, attempt)
                await asyncio.sleep(0.2)
        raise ModelTimeout(f"{stage} did not answer within {self.timeout_s:g} s")
