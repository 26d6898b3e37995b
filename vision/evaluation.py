"""Accuracy of the vision code on the labelled development fixtures (never `holdout/`).

`evaluate()` runs FaceGaze and the detector on every photo in `images/` and on every `stride`-th frame
of the clips in `videos/`, compares with `labels.json` and the clip descriptions in MANIFEST.md, and
returns the metrics, per-photo rows and per-stage timings. `bench/eval_vision.py` prints and writes
the table; `tests/test_accuracy.py` asserts floors on the same numbers.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

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


# Where the phone is on the development photos that show one (x0, y0, x1, y1 in the photo's pixels,
# placed by eye; labels.json says only whether a phone is visible). A reported phone counts as found
# when its centre lies in this box grown by a quarter of its size on each side, so a box on a cup
# or a hand beside the phone does not count.
PHONE_BOXES = {
    "coco_desk_phone_laptop_cat.jpg": (516, 259, 640, 474),
    "coco_phone_held_looking_down.jpg": (295, 143, 373, 280),
    "coco_phone_call_crowd.jpg": (266, 264, 300, 305),
    "coco_phone_call_profile.jpg": (289, 286, 313, 315),
    "coco_phone_on_laptop.jpg": (335, 110, 540, 205),
}


def on_phone(box, phone_box) -> bool:
    """The box's centre lies on the phone (its box grown by a quarter on each side)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    grow_x, grow_y = (phone_box[2] - phone_box[0]) / 4, (phone_box[3] - phone_box[1]) / 4
    return phone_box[0] - grow_x <= cx <= phone_box[2] + grow_x and phone_box[1] - grow_y <= cy <= phone_box[3] + grow_y


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


def has(row: dict, label: str) -> bool:
    """The detector reported `label` on this photo."""
    return any(d.label == label for d in row["objects"])


def found(row: dict, label: str) -> bool:
    """A labelled object found: for phones, a reported phone on the phone (PHONE_BOXES)."""
    if label == "cell phone":
        return any(d.label == label and on_phone(d.box, PHONE_BOXES[row["name"]]) for d in row["objects"])
    return has(row, label)


def _share(hits: int, total: int) -> dict[str, Any]:
    return {"hits": hits, "total": total, "rate": round(hits / total, 3) if total else None}


def evaluate(fixtures: Path, detector_cfg: DetectorConfig, face_cfg: FaceGazeConfig | None = None,
             gaze_cfg: GazeConfig | None = None, video_stride: int = 4, yaw_limit: float = 30.0,
             pitch_limit: float = 25.0) -> dict[str, Any]:
    """Gaze is the raw direction (`risk.gaze.raw_gaze`, before any session calibration)."""
    gaze_cfg = gaze_cfg or GazeConfig()
    labels = json.loads((fixtures / "labels.json").read_text())
    analyzer = FaceGazeAnalyzer(face_cfg or FaceGazeConfig())
    detector = ObjectDetectorModel(detector_cfg)
    detector.warm_up()
    timings: dict[str, list[float]] = {"decode": [], "face_gaze": [], "detector": []}

    rows = []
    for name in sorted(labels):
        data = (fixtures / "images" / name).read_bytes()
        started = time.perf_counter()
        image = decode_image(data)
        timings["decode"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        face = analyzer.analyze(image)
        timings["face_gaze"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        objects = detector.detect_batch([image])[0]
        timings["detector"].append((time.perf_counter() - started) * 1000)
        rows.append({"name": name, "label": labels[name], "face": face, "objects": objects})

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

    for label, key in (("cell phone", "phone"), ("book", "book")):
        positives = [r for r in rows if r["label"][key]]
        negatives = [r for r in rows if not r["label"][key]]
        metrics[f"{key}_recall"] = _share(sum(found(r, label) for r in positives), len(positives))
        metrics[f"{key}_false_positive"] = _share(sum(has(r, label) for r in negatives), len(negatives))
    persons_ok = [r for r in rows
                  if sum(d.label == "person" for d in r["objects"]) >= r["label"]["persons_min"]
                  and (r["label"]["persons_min"] > 0 or not has(r, "person"))]
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
                   "precision": detector.precision, "startup_ms": detector.startup_ms,
                   "image_size": detector_cfg.image_size, "video_stride": video_stride},
    }


# A real phone (with the fingers holding it) cut from a development photo, in its pixels.
PHONE_PHOTO, PHONE_BOX = "coco_phone_held_looking_down.jpg", (240, 100, 420, 330)


def composite_phone_clip(frames: list[np.ndarray], fixtures: Path, fps: float, enters_s: float, leaves_s: float,
                         width_frac: float = 0.3) -> list[np.ndarray]:
    """The webcam frames with a real phone moved in from the right edge at `enters_s`, held still
    beside the face, and taken out again from `leaves_s` (0.5 s each way): a test clip made at test
    time from fixtures. Frames are copied; the originals are untouched."""
    import cv2

    photo = cv2.imread(str(fixtures / "images" / PHONE_PHOTO))
    x0, y0, x1, y1 = PHONE_BOX
    out = []
    for i, frame in enumerate(frames):
        frame = frame.copy()
        h, w = frame.shape[:2]
        pw = int(w * width_frac)
        phone = cv2.resize(photo[y0:y1, x0:x1], (pw, int(pw * (y1 - y0) / (x1 - x0))), interpolation=cv2.INTER_AREA)
        t = i / fps
        rest_x, travel = int(w * 0.68), 0.5
        if enters_s <= t < leaves_s + travel:
            progress = min(1.0, (t - enters_s) / travel) if t < leaves_s else max(0.0, 1 - (t - leaves_s) / travel)
            x = int(w - progress * (w - rest_x))
            y = int(h * 0.45)
            visible = frame[y:y + phone.shape[0], x:min(w, x + pw)]
            visible[:] = phone[:visible.shape[0], :visible.shape[1]]
        out.append(frame)
    return out


def replay_gated(frames: list[np.ndarray], fps: float, analyzer, detector: ObjectDetectorModel, app_cfg,
                 gated: bool) -> dict[str, Any]:
    """A clip through the frame path's decisions in one process: the face stage on every frame,
    YOLO where the detector gate (pipeline/gate.py) asks for it (every frame when `gated` is
    False), the risk engine on the result. Returns the events opened ({type, start}), the frames
    YOLO ran on, and each frame's gate decision. Frame times are i / fps from 0."""
    import cv2

    from contracts import Detections
    from pipeline.gate import DetectorGate
    from risk.engine import RiskEngine
    from risk.observation import Observation

    gate = DetectorGate(app_cfg.detector_gate.model_copy(update={"enabled": gated}), max_sessions=1)
    engine = RiskEngine(app_cfg.risk, 0.0)
    sid, opened, decisions = "clip", [], []
    for i, frame in enumerate(frames):
        t = i / fps
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)  # what the models decode
        face = analyzer.analyze(image)
        decision = gate.before_models(sid, jpeg, now=t)
        reason = decision.reason if decision.run else gate.after_face(sid, face)
        recheck = reason is None and decision.recheck
        if reason is None:
            detections, _ = gate.reused(sid, now=t)
            decisions.append("stale_background" if recheck else "reused")
        else:
            detections = Detections(objects=tuple(detector.detect_batch([image])[0]), batch_size=1, latency_ms=0.0)
            gate.detected(sid, decision.thumbnail, detections, now=t)
            decisions.append(reason)
        outcome = engine.observe(Observation.from_results(t, face, detections.objects, app_cfg.risk.gaze),
                                 face.quality.issues)
        gate.scored(sid, face, outcome.update)
        if recheck:  # YOLO off the answer's path: its result serves the next frames
            rechecked = Detections(objects=tuple(detector.detect_batch([image])[0]), batch_size=1, latency_ms=0.0)
            gate.detected(sid, decision.thumbnail, rechecked, now=t)
        opened += [{"type": e.type, "start": e.start} for e in engine.events if e.id in outcome.opened_ids]
    ran = sum(1 for d in decisions if d != "reused")
    return {"events": opened, "frames": len(frames), "yolo_frames": ran, "decisions": decisions}


def same_events(gated: list[dict], ungated: list[dict], tolerance_s: float = 1.0) -> bool:
    """The same event types opened, in the same order, each starting within tolerance_s."""
    return len(gated) == len(ungated) and all(
        g["type"] == u["type"] and abs(g["start"] - u["start"]) <= tolerance_s for g, u in zip(gated, ungated))


# ---- identity ---------------------------------------------------------------------------------
# Who is in which development photo (MANIFEST.md): the webcam clips and photos show one person (the
# repository author recording himself); three photos show Barack Obama. Every other one-face photo
# is a person of its own. Photos with several faces are left out (which face is whose is not labelled).
IDENTITY_GROUPS = {
    "webcam candidate": ["webcam_single_face_center.jpg", "webcam_gaze_eyes_left.jpg", "webcam_lowlight_synthetic.jpg"],
    "obama": ["single_face_obama_portrait.jpg", "single_face_near_left_edge.jpg",
              "single_face_speaking_slight_turn.jpg"],
}
IDENTITY_CLIPS = {"webcam candidate": ["webcam_gaze_center.mp4", "webcam_gaze_center_left_center.mp4"]}


def evaluate_identity(fixtures: Path, identity_cfg, face_cfg: FaceGazeConfig | None = None,
                      clip_stride: int = 24) -> dict[str, Any]:
    """Every same-person and different-person pair of readable faces in the development fixtures
    (photos labelled with one face; every `clip_stride`th clip frame), the distance between their
    descriptors, and what the configured bands make of them: FRR (same person called `mismatch`),
    FAR (different people called `match`), and the share `uncertain`. Faces that fail the quality
    gates are counted, not paired."""
    import itertools

    import cv2

    from vision.identity import FaceDescriber, FaceGates

    labels = json.loads((fixtures / "labels.json").read_text())
    analyzer = FaceGazeAnalyzer(face_cfg or FaceGazeConfig())
    describer = FaceDescriber(FaceGates(identity_cfg.min_face_px, identity_cfg.min_face_brightness,
                                        identity_cfg.max_face_brightness, identity_cfg.min_face_sharpness))
    person_of = {name: person for person, names in IDENTITY_GROUPS.items() for name in names}
    items = [(person_of.get(name, name), name, labels[name], cv2.imread(str(fixtures / "images" / name)))
             for name in sorted(labels) if labels[name]["faces"] == [1, 1]]
    for person, clips in IDENTITY_CLIPS.items():
        for clip in clips:
            items += [(person, f"{clip} frame {i}", {}, frame) for i, frame in read_video(fixtures / "videos" / clip,
                                                                                         clip_stride)]
    samples, unreadable, ms = [], [], []
    for person, name, label, image in items:
        face = analyzer.analyze(image)
        if face.faces != 1:
            unreadable.append((name, f"{face.faces} faces found"))
            continue
        sample = describer.sample(image, face.face_boxes[0])
        ms.append(sample.latency_ms)
        if sample.descriptor is None:
            unreadable.append((name, sample.reason))
        else:
            samples.append((person, name, label, sample.descriptor))
    analyzer.close()

    def band(d: float) -> str:
        if d <= identity_cfg.match_max_distance:
            return "match"
        return "mismatch" if d > identity_cfg.mismatch_min_distance else "uncertain"

    pairs = [(a[0] == b[0], math.dist(a[3], b[3]), a, b) for a, b in itertools.combinations(samples, 2)]

    def rows(selected: list) -> dict[str, Any]:
        same = sorted(d for s, d, _, _ in selected if s)
        diff = sorted(d for s, d, _, _ in selected if not s)
        return {
            "same_pairs": len(same), "different_pairs": len(diff),
            "same_distance": [round(same[0], 3), round(statistics.median(same), 3), round(same[-1], 3)] if same else None,
            "different_distance": [round(diff[0], 3), round(statistics.median(diff), 3), round(diff[-1], 3)] if diff
            else None,
            "frr": _share(sum(band(d) == "mismatch" for d in same), len(same)),
            "far": _share(sum(band(d) == "match" for d in diff), len(diff)),
            "same_uncertain": _share(sum(band(d) == "uncertain" for d in same), len(same)),
            "different_uncertain": _share(sum(band(d) == "uncertain" for d in diff), len(diff)),
        }

    def involving(tag: str) -> list:
        return [p for p in pairs if p[2][2].get(tag) or p[3][2].get(tag)]

    return {
        "all": rows(pairs), "low_light": rows(involving("low_light")), "glasses": rows(involving("glasses")),
        "readable": len(samples), "unreadable": unreadable,
        "people": len({s[0] for s in samples}),
        "ms_per_descriptor_median": round(statistics.median(ms), 1) if ms else None,
        "bands": {"match_max_distance": identity_cfg.match_max_distance,
                  "mismatch_min_distance": identity_cfg.mismatch_min_distance},
        "closest_different": [(a[1], b[1], round(d, 3)) for s, d, a, b in sorted(pairs, key=lambda p: p[1])
                              if not s][:3],
        "farthest_same": [(a[1], b[1], round(d, 3)) for s, d, a, b in sorted(pairs, key=lambda p: -p[1]) if s][:3],
    }
