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


class SecondLookConfig(BaseModel):
    """A closer look for phones: crops around each person's head and upper body, run again."""

    enabled: bool = False
    image_size: int = Field(320, ge=32)
    max_persons: int = Field(2, ge=1)
    threshold: float = Field(0.25, ge=0, le=1)
    book_overlap_iou: float = Field(0.3, ge=0, le=1)


class DetectorConfig(BaseModel):
    """Object-detector settings. Every field is set (with a comment) in config/serve.yaml."""

    weights: str = "models/yolov8n.pt"
    image_size: int = Field(640, ge=32)
    torch_threads: int = Field(2, ge=1)
    max_batch_size: int = Field(4, ge=1)
    batch_wait_timeout_s: float = Field(0.01, ge=0)
    default_threshold: float = Field(0.40, ge=0, le=1)
    class_thresholds: dict[str, float] = Field(default_factory=lambda: {"cell phone": 0.25})
    second_look: SecondLookConfig = Field(default_factory=SecondLookConfig)

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
        self._phone_id = next(i for i, n in names.items() if n == "cell phone")

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
        found = [self._postprocess(r) for r in results]
        if self.cfg.second_look.enabled:
            self._second_look(images, found)
        return found

    def _second_look(self, images: list[np.ndarray], found: list[list[dict[str, Any]]]) -> None:
        """Phones held in a hand or at an ear are small in the full frame; in a crop of the person's
        head and upper body they are several times larger. All crops of a batch go in one call."""
        look = self.cfg.second_look
        crops, owners = [], []
        for index, (image, detections) in enumerate(zip(images, found)):
            height, width = image.shape[:2]
            persons = sorted((d for d in detections if d["label"] == "person"),
                             key=lambda d: -(d["box"][2] - d["box"][0]) * (d["box"][3] - d["box"][1]))
            for person in persons[: look.max_persons]:
                x0, y0, x1, y1 = person["box"]
                bw, bh = x1 - x0, y1 - y0
                cx0, cy0 = int(max(0, x0 - 0.15 * bw)), int(max(0, y0 - 0.05 * bh))
                cx1, cy1 = int(min(width, x1 + 0.15 * bw)), int(min(height, y0 + 0.75 * bh))
                if cx1 - cx0 < 32 or cy1 - cy0 < 32:
                    continue
                crops.append(image[cy0:cy1, cx0:cx1])
                owners.append((index, cx0, cy0))
        if not crops:
            return
        results = self.model.predict(crops, imgsz=look.image_size, conf=look.threshold,
                                     classes=[self._phone_id], verbose=False)
        for (index, ox, oy), result in zip(owners, results):
            detections = found[index]
            for box, score in zip(result.boxes.xyxy.cpu().numpy(), result.boxes.conf.cpu().numpy()):
                box = [float(box[0] + ox), float(box[1] + oy), float(box[2] + ox), float(box[3] + oy)]
                # The model confuses papers and books with phones: a book in the same place wins.
                if any(d["label"] == "book" and iou(d["box"], box) > look.book_overlap_iou for d in detections):
                    continue
                same = [d for d in detections if d["label"] == "cell phone" and iou(d["box"], box) > 0.5]
                if same:
                    same[0]["confidence"] = max(same[0]["confidence"], round(float(score), 3))
                    continue
                detections.append({"label": "cell phone", "confidence": round(float(score), 3),
                                   "box": [round(v, 1) for v in box], "source": "second_look"})
            detections.sort(key=lambda d: -d["confidence"])

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


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
