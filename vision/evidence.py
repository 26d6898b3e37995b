"""Evidence snapshots: the frame with an event's strongest signal, boxes drawn, as a small JPEG.

The session actor stores the frame as it arrived with an overlay (`evidence_overlay`: boxes and
caption, plain data); the ingress draws it when a reviewer asks (`render_overlay`). So the actor
never decodes pixels and never imports numpy or OpenCV.
"""
from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any, Sequence

from contracts import Detection, FaceBox

FACE_COLOR = (80, 200, 80)  # BGR
OBJECT_COLOR = (40, 40, 230)
PERSON_COLOR = (230, 160, 40)


def evidence_overlay(face_boxes: Sequence[FaceBox], objects: Sequence[Detection], caption: str) -> dict[str, Any]:
    return {"caption": caption, "faces": [asdict(box) for box in face_boxes],
            "objects": [asdict(det) for det in objects]}


def render_overlay(image_bytes: bytes, overlay: dict[str, Any]) -> bytes:
    """The stored frame drawn for a reviewer; with `beside` (an IDENTITY_MISMATCH's enrolled face),
    that face is shown at the frame's left, labelled."""
    beside = overlay.get("beside")
    return render_evidence(image_bytes, [FaceBox(**box) for box in overlay["faces"]],
                           [Detection(**{**det, "box": tuple(det["box"])}) for det in overlay["objects"]],
                           overlay["caption"],
                           beside=(base64.b64decode(beside["jpeg_base64"]), beside["label"]) if beside else None)


def render_evidence(image_bytes: bytes, face_boxes: Sequence[FaceBox], objects: Sequence[Detection],
                    caption: str, max_width: int = 480, beside: tuple[bytes, str] | None = None) -> bytes:
    import cv2
    import numpy as np

    from vision.frames import decode_image, encode_jpeg

    image = decode_image(image_bytes)
    for box in face_boxes:
        x0, y0 = int(box.x), int(box.y)
        x1, y1 = int(box.x + box.w), int(box.y + box.h)
        cv2.rectangle(image, (x0, y0), (x1, y1), FACE_COLOR, 2)
        cv2.putText(image, f"face {box.confidence:.2f}", (x0, max(12, y0 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, FACE_COLOR, 1, cv2.LINE_AA)
    for det in objects:
        x0, y0, x1, y1 = (int(v) for v in det.box)
        color = PERSON_COLOR if det.label == "person" else OBJECT_COLOR
        cv2.rectangle(image, (x0, y0), (x1, y1), color, 2)
        why = " (hand at ear)" if det.source == "phone_at_ear" else ""  # under the threshold: say why it counts
        cv2.putText(image, f"{det.label} {det.confidence:.2f}{why}", (x0, max(12, y0 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    height, width = image.shape[:2]
    if width > max_width:
        image = cv2.resize(image, (max_width, round(height * max_width / width)), interpolation=cv2.INTER_AREA)
    if beside is not None:
        face = decode_image(beside[0])
        side = min(image.shape[0], 200)
        face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        panel = np.zeros((image.shape[0], side + 8, 3), dtype=np.uint8)
        top = (image.shape[0] - side) // 2
        panel[top:top + side, :side] = face
        cv2.putText(panel, beside[1], (4, min(image.shape[0] - 6, top + side + 16)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    FACE_COLOR, 1, cv2.LINE_AA)
        image = np.hstack([panel, image])
    cv2.rectangle(image, (0, 0), (image.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(image, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return encode_jpeg(image, quality=80)
