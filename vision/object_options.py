"""Options for finding the phones and books one COCO nano pass misses, measured side by side on the
labelled development photos (never `holdout/`).

Each option is a detector configuration (`detector.extra_looks`, `fusion`, `second_look`,
`phone_at_ear`, `class_thresholds`) built from the served one. `evaluate_options` runs every option on every photo, the options of one
photo one after the other and the photos in two rounds, so the machine's drift hits every option
alike, and returns per option: phone recall (a reported phone on the labelled phone's box), false
phones (photos without a phone), book recall and false books, whether the person boxes differ from
the one pass's, and the median ms per detection (per photo, and per 640x480 webcam frame).
`bench/eval_vision.py` (`make eval`) writes the table into docs/ACCURACY.md.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from contracts import Detection
from settings import DetectorConfig, ExtraLookConfig
from vision.evaluation import PHONE_BOXES, on_phone
from vision.frames import decode_image

YOLO11N = "yolo11n_coco_dequant.pt"  # the second shared COCO checkpoint (in $PROCTOR_TEST_MODELS)


@dataclass
class Option:
    name: str
    what: str  # one line for the table
    configure: Callable[[DetectorConfig, str], DetectorConfig]  # (served config, YOLO11n path) -> this option's
    results: dict[str, list[Detection]] = field(default_factory=dict)
    photo_ms: dict[str, list[float]] = field(default_factory=dict)
    webcam_ms: list[float] = field(default_factory=list)


def _looks(*looks: dict) -> Callable[[str], list[ExtraLookConfig]]:
    """Extra looks; weights "11n" names the YOLO11n checkpoint."""
    return lambda yolo11n: [ExtraLookConfig(**{**look, "weights": yolo11n if look.get("weights") == "11n"
                                               else look.get("weights")}) for look in looks]


def options() -> list[Option]:
    """Every option the issue lists, each in one fixed form (no per-photo tuning). Each starts from
    the served configuration without its extra looks, crops and hand-at-ear rule; the served
    thresholds apply unless the option is about thresholds."""
    plain = {"extra_looks": [], "second_look": {"enabled": False}, "phone_at_ear": {"enabled": False},
             "fusion": "max", "class_thresholds": {"book": 0.20}}
    v11n_544 = {"weights": "11n", "image_size": 544}
    return [
        Option("served", "config/serve.yaml as shipped", lambda cfg, _: cfg.model_copy(deep=True)),
        Option("one pass", "YOLOv8n at 544, one pass, book threshold 0.20 (before this work)", _plain(plain)),
        Option("class thresholds", "one pass, book threshold 0.10 (no book-free photo reaches 0.05)",
               _plain(plain, class_thresholds={"book": 0.10})),
        Option("11n alone", "YOLO11n at 544 instead of YOLOv8n", _plain(plain, weights=lambda p: p)),
        Option("per-class model", "YOLOv8n for persons and devices, YOLO11n at 544 for phones and books",
               _plain(plain, extra_looks=_looks({**v11n_544, "replaces_first_pass": True}))),
        Option("fused, max", "YOLOv8n + YOLO11n at 544; phones and books fused, the higher score wins",
               _plain(plain, extra_looks=_looks(v11n_544))),
        Option("fused, WBF", "YOLOv8n + YOLO11n at 544; phones and books by weighted box fusion",
               _plain(plain, extra_looks=_looks(v11n_544), fusion="wbf")),
        Option("TTA flip", "YOLOv8n at 544 and on the mirror image (phones, books; max)",
               _plain(plain, extra_looks=_looks({"image_size": 544, "flip": True}))),
        Option("TTA scale 384", "YOLOv8n at 544 and at 384 (0.7x; phones, books; max)",
               _plain(plain, extra_looks=_looks({"image_size": 384}))),
        Option("TTA scale 768", "YOLOv8n at 544 and at 768 (1.4x; phones, books; max)",
               _plain(plain, extra_looks=_looks({"image_size": 768}))),
        Option("11n at 768", "YOLOv8n at 544 + YOLO11n at 768 for phones and books (max)",
               _plain(plain, extra_looks=_looks({"weights": "11n", "image_size": 768}))),
        Option("crops v8n", "closer look: YOLOv8n at 640 on crops of the 2 largest persons' head and upper body",
               _plain(plain, second_look={"enabled": True})),
        Option("crops 11n", "the same crops, YOLO11n on them",
               _plain(plain, second_look={"enabled": True, "weights": lambda p: p})),
        Option("hand at ear", "one pass + MediaPipe Hands: a phone box of 0.05 or more on a hand raised to the head",
               _plain(plain, phone_at_ear={"enabled": True})),
        Option("served + TTA scale 384", "the served configuration + YOLOv8n at 384 (phones, books; max)",
               _served(extra_looks=_looks({"image_size": 384}))),
        Option("served, second opinion always", "the served configuration, its YOLO11n at 768 on every detection frame",
               _served(extra_looks=_looks({"weights": "11n", "image_size": 768}))),
        Option("served, no second opinion", "the served configuration without YOLO11n where the first pass is unsure",
               _served(extra_looks=lambda _: [])),
    ]


def _served(**update) -> Callable[[DetectorConfig, str], DetectorConfig]:
    return lambda cfg, yolo11n: cfg.model_copy(update={k: v(yolo11n) for k, v in update.items()}, deep=True)


def _plain(base: dict, **update) -> Callable[[DetectorConfig, str], DetectorConfig]:
    """The served configuration with `base`, then `update` (values that are callables get the YOLO11n
    path; second_look, phone_at_ear and class_thresholds merge into the served ones)."""
    def configure(cfg: DetectorConfig, yolo11n: str) -> DetectorConfig:
        merged = {**base, **update}
        if "class_thresholds" in update:
            merged["class_thresholds"] = {**base.get("class_thresholds", {}), **update["class_thresholds"]}
        values = {}
        for key, value in merged.items():
            if key in ("second_look", "phone_at_ear"):
                values[key] = getattr(cfg, key).model_copy(update={k: (v(yolo11n) if callable(v) else v)
                                                                   for k, v in value.items()})
            elif key == "class_thresholds":
                values[key] = {**cfg.class_thresholds, **value}
            else:
                values[key] = value(yolo11n) if callable(value) else value
        return cfg.model_copy(update=values, deep=True)
    return configure


def evaluate_options(fixtures: Path, served: DetectorConfig, models: Path, webcam: np.ndarray | None = None,
                     rounds: int = 2, only: list[str] | None = None) -> dict[str, Any]:
    from vision.detector import ObjectDetectorModel

    labels = json.loads((fixtures / "labels.json").read_text())
    images = {name: decode_image((fixtures / "images" / name).read_bytes()) for name in sorted(labels)}
    yolo11n = str(models / YOLO11N)
    chosen = [o for o in options() if only is None or o.name in only]
    detectors = {}
    for option in chosen:
        detectors[option.name] = ObjectDetectorModel(option.configure(served, yolo11n))
        detectors[option.name].warm_up()
    # Person boxes must stay those of the one pass (the person rows of the accuracy table).
    reference = ObjectDetectorModel(options()[1].configure(served, yolo11n))

    def run(option: Option, image: np.ndarray) -> list[Detection]:
        return detectors[option.name].detect_batch([image])[0]

    hands_runs = {}  # option -> photos on which MediaPipe Hands ran (first round)
    look_runs = {}  # option -> photos on which an extra look ran (first round)
    webcam_looks = {}  # option -> webcam-frame runs on which an extra look ran
    for round_ in range(rounds):
        for name, image in images.items():
            for option in chosen:
                ear = detectors[option.name].phone_at_ear
                runs = ear.runs if ear is not None else 0
                looked = sum(detectors[option.name].looks_run.values())
                started = time.perf_counter()
                found = run(option, image)
                option.photo_ms.setdefault(name, []).append((time.perf_counter() - started) * 1000)
                if round_ == 0:
                    option.results[name] = found
                    if ear is not None and ear.runs > runs:
                        hands_runs.setdefault(option.name, []).append(name)
                    if sum(detectors[option.name].looks_run.values()) > looked:
                        look_runs.setdefault(option.name, []).append(name)
            if webcam is not None:
                for option in chosen:
                    looked = sum(detectors[option.name].looks_run.values())
                    started = time.perf_counter()
                    run(option, webcam)
                    option.webcam_ms.append((time.perf_counter() - started) * 1000)
                    if sum(detectors[option.name].looks_run.values()) > looked:
                        webcam_looks[option.name] = webcam_looks.get(option.name, 0) + 1
    reference_persons = {name: [d.box for d in reference.detect_batch([image])[0] if d.label == "person"]
                         for name, image in images.items()}
    scored = []
    for option in chosen:
        row = _score(option, labels, reference_persons)
        ear = detectors[option.name].phone_at_ear
        row["hands_photos"] = sorted(hands_runs.get(option.name, [])) if ear is not None else None
        row["hands_ms"] = round(ear.run_ms / ear.runs, 1) if ear is not None and ear.runs else None
        row["look_photos"] = sorted(look_runs.get(option.name, [])) if detectors[option.name].looks else None
        row["look_webcam_runs"] = webcam_looks.get(option.name, 0)
        row["webcam_runs"] = len(option.webcam_ms)
        scored.append(row)
    return {"options": scored, "photos": len(images)}


def _score(option: Option, labels: dict, reference_persons: dict) -> dict[str, Any]:
    results = option.results
    phones = [n for n in labels if labels[n]["phone"]]
    books = [n for n in labels if labels[n]["book"]]

    def has(name: str, label: str) -> bool:
        return any(d.label == label for d in results[name])

    found_phones = [n for n in phones if any(d.label == "cell phone" and on_phone(d.box, PHONE_BOXES[n])
                                             for d in results[n])]
    off_phone = [n for n in phones if any(d.label == "cell phone" and not on_phone(d.box, PHONE_BOXES[n])
                                          for d in results[n])]
    return {
        "name": option.name, "what": option.what,
        "phone_recall": {"hits": len(found_phones), "total": len(phones), "photos": sorted(found_phones)},
        "phone_false": {"hits": sum(has(n, "cell phone") for n in labels if not labels[n]["phone"]),
                        "total": sum(not labels[n]["phone"] for n in labels),
                        "photos": sorted(n for n in labels if not labels[n]["phone"] and has(n, "cell phone"))},
        "phone_off_box": sorted(off_phone),
        "book_recall": {"hits": sum(has(n, "book") for n in books), "total": len(books),
                        "photos": sorted(n for n in books if has(n, "book"))},
        "book_false": {"hits": sum(has(n, "book") for n in labels if not labels[n]["book"]),
                       "total": sum(not labels[n]["book"] for n in labels),
                       "photos": sorted(n for n in labels if not labels[n]["book"] and has(n, "book"))},
        "persons_changed": sorted(n for n in labels
                                  if [d.box for d in results[n] if d.label == "person"] != reference_persons[n]),
        "ms_photo": round(statistics.median(statistics.median(v) for v in option.photo_ms.values()), 1),
        "ms_webcam": round(statistics.median(option.webcam_ms), 1) if option.webcam_ms else None,
    }
