"""Object detection with ultralytics YOLO (COCO classes), with per-class thresholds.

Pure code (no Ray): `ObjectDetectorModel.detect_batch(images)` takes BGR arrays and returns, per
image, a list of detections `{"label", "confidence", "box": [x0, y0, x1, y1]}` for the classes that
matter to proctoring.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# COCO class names as YOLO reports them -> the label Proctor reports.
REPORTED_CLASSES = {
    "person": "person",
    "cell phone": "cell phone",
    "book": "book",
    "laptop": "laptop",
    "tv": "tv",
    "remote": "remote",
    "keyboard": "keyboard",
    "mouse": "mouse",
}


class DetectorConfig(BaseModel):
    """Object-detector settings. Every field is set (with a comment) in config/serve.yaml."""

    weights: str = "models/yolov8n.pt"
    image_size: int = Field(640, ge=32)
    torch_threads: int = Field(2, ge=1)
    max_batch_size: int = Field(4, ge=1)
    batch_wait_timeout_s: float = Field(0.01, ge=0)
    default_threshold: float = Field(0.40, ge=0, le=1)
    class_thresholds: dict[str, float] = Field(default_factory=lambda: {"cell phone": 0.25})

    def threshold(self, label: str) -> float:
        return self.class_thresholds.get(label, self.default_threshold)

    def weights_path(self) -> Path:
        path = Path(self.weights).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path


class ObjectDetectorModel:
    def __init__(self, cfg: DetectorConfig | None = None):
        import torch
        from ultralytics import YOLO

        self.cfg = cfg or DetectorConfig()
        path = self.cfg.weights_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"YOLO weights not found at {path}: run `make install` (fetches models/yolov8n.pt) "
                "or set detector.weights in config/serve.yaml"
            )
        # Ray and ultralytics leave torch on 1 thread; inference is ~2x faster on 2.
        torch.set_num_threads(self.cfg.torch_threads)
        self.model = YOLO(str(path), task="detect")
        names = self.model.names
        self._class_ids = [i for i, n in names.items() if n in REPORTED_CLASSES]
        self._names = names
        self._min_conf = min([self.cfg.default_threshold, *self.cfg.class_thresholds.values()])

    def warm_up(self) -> None:
        self.detect_batch([np.zeros((480, 640, 3), dtype=np.uint8)])
        # ultralytics' first predict resets torch to (cores - 1) threads; set ours again after it.
        import torch

        torch.set_num_threads(self.cfg.torch_threads)

    def detect_batch(self, images: list[np.ndarray]) -> list[list[dict[str, Any]]]:
        if not images:
            return []
        results = self.model.predict(
            images,
            imgsz=self.cfg.image_size,
            conf=self._min_conf,
            classes=self._class_ids,
            verbose=False,
        )
        return [self._postprocess(r) for r in results]

    def _postprocess(self, result) -> list[dict[str, Any]]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.cpu().numpy()
        conf = boxes.conf.cpu().numpy()
        cls = boxes.cls.cpu().numpy().astype(int)
        out = []
        for box, score, class_id in zip(xyxy, conf, cls):
            label = REPORTED_CLASSES.get(self._names[class_id])
            if label is None or score < self.cfg.threshold(label):
                continue
            out.append({
                "label": label,
                "confidence": round(float(score), 3),
                "box": [round(float(v), 1) for v in box],
            })
        out.sort(key=lambda d: -d["confidence"])
        return out
