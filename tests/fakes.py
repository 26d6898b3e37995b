"""Fake model deployments for the serving-layer tests: the methods and typed answers of FaceGaze and
ObjectDetector, without MediaPipe or YOLO. What a frame "shows" is written into the frame itself:
`scripted_frame(faces=2, objects=["cell phone"])` is a small PNG whose text chunk the fakes read, so
a test decides exactly what the models see. Any other image is one centred face and nothing else.
A frame PIL cannot decode is a FrameRejected, as with the real models.

Bound into the real app with `graph.compose_app(..., face_gaze=FakeFaceGaze, object_detector=FakeObjectDetector)`
(the fakes here are about the serving layer: routing, limits, lifecycle, streams; never about what
a model finds, which the real-model tests cover).
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
from typing import Any

from ray import serve

from contracts import (Detection, Detections, Expression, FaceBox, FaceResult, FrameQuality, FrameRejected, GazeRatio,
                       HeadPose)
from errors import FrameError, FrameProblem

SCRIPT_KEY = "proctor-fake"
GAZE_RATIOS = {"center": (0.5, 0.45), "left": (0.3, 0.45), "right": (0.7, 0.45), "up": (0.5, 0.2), "down": (0.5, 0.7)}


def scripted_frame(faces: int = 1, persons: int | None = None, objects: tuple[str, ...] | list[str] = (),
                   gaze: str = "center", yaw: float = 0.0, delay_s: float = 0.0, seed: int = 0,
                   mouth: float = 0.02) -> bytes:
    """A 64x48 PNG telling the fakes what to report; `seed` varies the pixels (a live camera never
    sends the same picture twice: equal pixels are a frozen camera); `mouth`: the mouth opening."""
    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    script = {"faces": faces, "persons": faces if persons is None else persons, "objects": list(objects),
              "gaze": gaze, "yaw": yaw, "delay_s": delay_s, "mouth": mouth}
    info = PngInfo()
    info.add_text(SCRIPT_KEY, json.dumps(script))
    pixels = np.random.default_rng(seed).integers(60, 200, (48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_script(image_bytes: bytes) -> tuple[dict[str, Any], bytes]:
    """(the frame's script, its decoded pixels); FrameError(CORRUPT) when PIL cannot decode it."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.load()
            text = getattr(image, "text", {}) or {}
            pixels = image.tobytes()
    except Exception:  # noqa: BLE001 - as the real models: undecodable pixels
        raise FrameError("frame could not be decoded: the image data is corrupt or truncated",
                         FrameProblem.CORRUPT) from None
    script = {"faces": 1, "persons": 1, "objects": [], "gaze": "center", "yaw": 0.0, "delay_s": 0.0, "mouth": 0.02}
    if SCRIPT_KEY in text:
        script.update(json.loads(text[SCRIPT_KEY]))
    return script, pixels


class _Concurrency:
    """How many calls were in a fake at once: the limits tests read it."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.calls = 0

    def stats(self) -> dict[str, int]:
        return {"most_at_once": self.most, "calls": self.calls}

    def reset(self) -> None:
        self.most, self.calls = self.now, 0

    def __enter__(self) -> None:
        self.now, self.calls = self.now + 1, self.calls + 1
        self.most = max(self.most, self.now)

    def __exit__(self, *exc) -> None:
        self.now -= 1


@serve.deployment(name="FaceGaze")
class FakeFaceGaze:
    def __init__(self, config: Any = None):
        self.concurrency = _Concurrency()

    async def analyze(self, image_bytes: bytes) -> FaceResult | FrameRejected:
        with self.concurrency:
            try:
                script, pixels = read_script(image_bytes)
            except FrameError as exc:
                return FrameRejected.of(exc)
            await asyncio.sleep(script["delay_s"])
            faces = int(script["faces"])
            boxes = tuple(FaceBox(x=4 + 20 * i, y=8, w=16, h=16, confidence=0.9) for i in range(faces))
            quality = FrameQuality(issues=(), brightness=128.0, contrast=40.0, sharpness=100.0,
                                   digest=hashlib.blake2b(pixels, digest_size=16).hexdigest())
            if not faces:
                return FaceResult(faces=0, face_boxes=(), quality=quality, latency_ms=1.0)
            horizontal, vertical = GAZE_RATIOS[script["gaze"]]
            return FaceResult(faces=faces, face_boxes=boxes, quality=quality,
                              gaze_ratio=GazeRatio(horizontal, vertical), gaze_readable=True,
                              head_pose=HeadPose(yaw=float(script["yaw"]), pitch=0.0, roll=0.0),
                              expression=Expression(label="neutral", eye_openness=0.3,
                                                    mouth_openness=float(script["mouth"]),
                                                    smile_width=0.5, eyes_closed=False, mouth_open=False),
                              latency_ms=1.0)

    def stats(self) -> dict[str, int]:
        return self.concurrency.stats()

    def reset_stats(self) -> None:
        self.concurrency.reset()


@serve.deployment(name="ObjectDetector")
class FakeObjectDetector:
    def __init__(self, config: Any = None):
        self.concurrency = _Concurrency()

    async def detect(self, image_bytes: bytes) -> Detections | FrameRejected:
        with self.concurrency:
            try:
                script, _ = read_script(image_bytes)
            except FrameError as exc:
                return FrameRejected.of(exc)
            await asyncio.sleep(script["delay_s"])
            found = [Detection("person", 0.9, (2.0 + 20 * i, 2.0, 18.0 + 20 * i, 46.0)) for i in range(script["persons"])]
            found += [Detection(label, 0.8, (30.0, 20.0, 40.0, 30.0)) for label in script["objects"]]
            return Detections(objects=tuple(found), batch_size=1, latency_ms=1.0)

    def stats(self) -> dict[str, int]:
        return self.concurrency.stats()

    def reset_stats(self) -> None:
        self.concurrency.reset()
