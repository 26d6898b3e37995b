"""Identity checks around the frame path (risk/identity.py decides when, vision/identity.py reads a face).

- `submit`: after a frame is scored, if its session's engine asked for a descriptor of this frame's
  face, one FaceIdentity call runs in the background (the frame's answer does not wait for it) and
  its result goes to the session, which scores it with its next frame. A lost result (a replica
  restarting) only means the engine asks again after `request_timeout_s`.
- `reference`: a reference photo at /start-session: the same size and format checks as a frame,
  exactly one face, and a face the descriptor can read; else a 4xx naming the problem.
"""
from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from contracts import FaceBox, FaceResult, FrameRejected, IdentitySample
from errors import FrameError, InvalidRequest
from pipeline.models import ModelStages
from sessions.service import SessionService
from settings import IngressConfig
from vision.frames import inspect_image_header, parse_frame_payload

logger = logging.getLogger("ray.serve")


def main_face(face: FaceResult) -> FaceBox | None:
    return max(face.face_boxes, key=lambda b: b.w * b.h) if face.face_boxes else None


class IdentityChecks:
    def __init__(self, handle, models: ModelStages, sessions: SessionService, cfg: IngressConfig):
        self.handle = handle  # the FaceIdentity deployment
        self.models = models
        self.sessions = sessions
        self.cfg = cfg
        self._running: set[asyncio.Task] = set()

    def submit(self, session_id: str, kind: str, t: float, image: bytes, face: FaceResult) -> None:
        box = main_face(face)
        if box is None:
            return
        task = asyncio.get_running_loop().create_task(self._check(session_id, kind, t, image, box))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _check(self, session_id: str, kind: str, t: float, image: bytes, box: FaceBox) -> None:
        try:
            sample = await asyncio.wait_for(self.handle.describe.remote(image, box, kind == "enrol"),
                                            timeout=self.cfg.model_timeout_s)
            result: dict[str, Any] = {"t": t, "kind": kind, "descriptor": None, "reason": None}
            if isinstance(sample, FrameRejected):
                result["reason"] = sample.message
            else:
                result["descriptor"] = list(sample.descriptor) if sample.descriptor is not None else None
                result["reason"] = sample.reason
                if sample.chip is not None:
                    result["chip_base64"] = base64.b64encode(sample.chip).decode()
            await self.sessions.identity_result(session_id, result)
        except Exception as exc:  # noqa: BLE001 - a lost check is asked for again; the frame was answered
            logger.warning("identity check for session %s not delivered: %r", session_id, exc)

    async def reference(self, payload: str) -> list[float]:
        """The descriptor of the reference photo's one face."""
        try:
            image = parse_frame_payload(payload, self.cfg.max_frame_bytes)
            inspect_image_header(image, self.cfg.max_frame_pixels)
        except FrameError as exc:
            raise FrameError(f"reference_image: {exc}", exc.problem) from None
        face = await self.models.face(image, self.models.deadline())
        if face.faces != 1:
            raise InvalidRequest("reference_image shows no face" if face.faces == 0 else
                                 f"reference_image shows {face.faces} faces: it must show the candidate alone")
        sample = await asyncio.wait_for(self.handle.describe.remote(image, main_face(face), False),
                                        timeout=self.cfg.model_timeout_s)
        if isinstance(sample, FrameRejected):
            raise FrameError(f"reference_image: {sample.message}", sample.problem)
        if not isinstance(sample, IdentitySample) or sample.descriptor is None:
            raise InvalidRequest(f"reference_image: the face cannot be read: {sample.reason}")
        return list(sample.descriptor)
