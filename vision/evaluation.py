"""Accuracy of the vision code on the labelled development fixtures (never `holdout/`).

`evaluate()` runs FaceGaze and the detector on every photo in `images/` and on every `stride`-th frame
of the clips in `videos/`, compares with `labels.json` and the clip descriptions in MANIFEST.md, and
returns the metrics, per-photo rows and per-stage timings. `bench/eval_vision.py` prints and writes
the table; `tests/test_accuracy.py` asserts floors on the same numbers.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from contracts import FaceResult
from risk.gaze import raw_gaze
from settings import DetectorConfig, FaceGazeConfig, GazeConfig
from vision.detector import ObjectDetectorModel
from vision.face_gaze import FaceGazeAnalyzer
from vision.frames import decode_image

# Clip descriptions (MANIFEST.md): frame windows and the gaze expected in them. The eyes turn left
# at about frame 136 and back at about 240; the windows leave a margin for the turn itself.
VIDEO_WINDOWS = {
    "webcam_gaze_center.mp4": [("all frames", 0, None, "center")],
    "webcam_gaze_center_left_center.mp4": [
        ("frames 0-120", 0, 120, "center"),
        ("frames 150-230", 150, 230, "left"),
        ("frames 260-end", 260, None, "center"),
    ],
}


def read_video(path: Path, stride: int):
    import cv2

    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # the clips carry a 90-degree rotation tag
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % stride == 0:
                yield index, frame
            index += 1
    finally:
        capture.release()


def head_is_turned(face: FaceResult, yaw_limit: float, pitch_limit: float) -> bool | None:
    pose = face.head_pose
    if pose is None:
        return None
    return abs(pose.yaw) > yaw_limit or abs(pose.pitch) > pitch_limit


def _share(hits: int, total: int) -> dict[str, Any]:
    return {"hits": hits, "total": total, "rate": round(hits / total, 3) if total else None}


def evaluate(fixtures: Path, detector_cfg: DetectorConfig, face_cfg: FaceGazeConfig | None = None,
             gaze_cfg: GazeConfig | None = None, video_stride: int = 4, yaw_limit: float = 30.0,
             pitch_limit: float = 25.0) -> dict[str, Any]:
    """Gaze is the raw direction (`risk.gaze.raw_gaze`, before any session calibration)."""
    gaze_cfg = gaze_cfg or GazeConfig()
    labels = json.loads((fixtures / "labels.json").read_text())
    analyzer = FaceGazeAnalyzer(face_cfg or FaceGazeConfig())
    plain_cfg = detector_cfg.model_copy(deep=True)
    plain_cfg.second_look.enabled = False
    look_cfg = detector_cfg.model_copy(deep=True)
    look_cfg.second_look.enabled = True
    detector = ObjectDetectorModel(plain_cfg)
    detector.warm_up()
    timings: dict[str, list[float]] = {"decode": [], "face_gaze": [], "detector": [], "detector_second_look": []}

    rows = []
    for name in sorted(labels):
        data = (fixtures / "images" / name).read_bytes()
        started = time.perf_counter()
        image = decode_image(data)
        timings["decode"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        face = analyzer.analyze(image)
        timings["face_gaze"].append((time.perf_counter() - started) * 1000)
        detector.cfg = plain_cfg
        started = time.perf_counter()
        plain = detector.detect_batch([image])[0]
        timings["detector"].append((time.perf_counter() - started) * 1000)
        detector.cfg = look_cfg
        started = time.perf_counter()
        looked = detector.detect_batch([image])[0]
        timings["detector_second_look"].append((time.perf_counter() - started) * 1000)
        rows.append({"name": name, "label": labels[name], "face": face, "plain": plain, "second_look": looked})

    metrics: dict[str, Any] = {}
    in_range = [r for r in rows if r["label"]["faces"][0] <= r["face"].faces <= r["label"]["faces"][1]]
    exact_labelled = [r for r in rows if r["label"]["faces"][0] == r["label"]["faces"][1]]
    empty = [r for r in rows if r["label"]["faces"] == [0, 0]]
    metrics["faces_within_range"] = _share(len(in_range), len(rows))
    metrics["faces_exact"] = _share(sum(r["face"].faces == r["label"]["faces"][0] for r in exact_labelled),
                                    len(exact_labelled))
    metrics["false_faces_on_empty"] = _share(sum(r["face"].faces > 0 for r in empty), len(empty))
    for tag in ("glasses", "low_light"):
        tagged = [r for r in rows if r["label"].get(tag)]
        metrics[f"faces_within_range_{tag}"] = _share(
            sum(r in in_range for r in tagged), len(tagged))

    gaze_rows = [r for r in rows if "gaze" in r["label"]]
    metrics["gaze_photos"] = _share(sum(raw_gaze(r["face"], gaze_cfg) == r["label"]["gaze"] for r in gaze_rows), len(gaze_rows))
    turned_rows = [r for r in rows if "head_turned" in r["label"]]
    metrics["head_turned_photos"] = _share(
        sum(head_is_turned(r["face"], yaw_limit, pitch_limit) == r["label"]["head_turned"] for r in turned_rows),
        len(turned_rows))

    for variant in ("plain", "second_look"):
        for label, key in (("cell phone", "phone"), ("book", "book")):
            positives = [r for r in rows if r["label"][key]]
            negatives = [r for r in rows if not r["label"][key]]
            found = lambda r: any(d.label == label for d in r[variant])  # noqa: E731
            metrics[f"{key}_recall_{variant}"] = _share(sum(map(found, positives)), len(positives))
            metrics[f"{key}_false_positive_{variant}"] = _share(sum(map(found, negatives)), len(negatives))
    persons_ok = [r for r in rows
                  if sum(d.label == "person" for d in r["plain"]) >= r["label"]["persons_min"]
                  and (r["label"]["persons_min"] > 0 or not any(d.label == "person" for d in r["plain"]))]
    metrics["person_count"] = _share(len(persons_ok), len(rows))

    videos: dict[str, Any] = {}
    for clip, windows in VIDEO_WINDOWS.items():
        frames = [(i, analyzer.analyze(f)) for i, f in read_video(fixtures / "videos" / clip, video_stride)]
        for title, start, end, expected in windows:
            chosen = [face for i, face in frames if i >= start and (end is None or i <= end)]
            videos[f"{clip} {title}: {expected}"] = _share(sum(raw_gaze(f, gaze_cfg) == expected for f in chosen), len(chosen))
        turned = [head_is_turned(face, yaw_limit, pitch_limit) for _, face in frames]
        videos[f"{clip} all frames: head not turned"] = _share(sum(t is False for t in turned), len(turned))
    metrics["video_gaze"] = videos

    analyzer.close()
    return {
        "metrics": metrics,
        "rows": rows,
        "stage_ms_median": {k: round(statistics.median(v), 1) for k, v in timings.items() if v},
        "config": {"weights": Path(detector_cfg.weights).name, "backend": detector_cfg.backend,
                   "image_size": detector_cfg.image_size,
                   "second_look_image_size": detector_cfg.second_look.image_size,
                   "video_stride": video_stride},
    }
