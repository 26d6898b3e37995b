"""int8 against fp32 for the YOLO detector: every quantization recipe of `vision/quantize.py`, its
detections on the labelled development photos and its speed on this CPU.

    python bench/int8_eval.py [--rounds 8]   ->  bench/results/int8.json, docs/PERFORMANCE.md ("int8")

Per recipe: the person, phone and book rows of `make eval`'s table (one pass, the served
thresholds), the photos where it differs from fp32, and the median ms and CPU ms of one 640x480
webcam frame through the detector (letterbox, network, NMS) on 1 and 2 ONNX Runtime threads, all
models measured in interleaved rounds (this machine's speed drifts within a minute). Calibration
uses the development fixtures only (never `holdout/`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402


def photo_rows(model, photos: dict, labels: dict) -> dict:
    """The detector rows of `make eval` (vision/evaluation.py counts them the same way)."""
    persons_ok, phone, book, per_photo = 0, [0, 0], [0, 0], {}
    for name, image in photos.items():
        found = model.detect_batch([image])[0]
        label = labels[name]
        persons = sum(d.label == "person" for d in found)
        ok = persons >= label["persons_min"] and (label["persons_min"] > 0 or persons == 0)
        persons_ok += ok
        has_phone = any(d.label == "cell phone" for d in found)
        has_book = any(d.label == "book" for d in found)
        phone[0 if label["phone"] else 1] += has_phone
        book[0 if label["book"] else 1] += has_book
        per_photo[name] = {"persons": persons, "persons_ok": ok, "phone": has_phone, "book": has_book}
    return {"persons_ok": persons_ok, "phone_recall": phone[0], "phone_false": phone[1],
            "book_recall": book[0], "book_false": book[1], "photos": per_photo}


def main() -> None:
    import cv2
    import numpy as np

    from settings import AppConfig, load_args
    from vision.detector import ObjectDetectorModel, export_onnx
    from vision.quantize import DEFAULT_RECIPE, RECIPES, calibration_files, export_int8

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--recipes", nargs="*", default=sorted(RECIPES))
    opts = parser.parse_args()

    fixtures = Path(os.environ.get("PROCTOR_TEST_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    labels = json.loads((fixtures / "labels.json").read_text())
    photos = {n: cv2.imread(str(fixtures / "images" / n)) for n in sorted(labels)}
    cfg = AppConfig(**load_args()).detector
    shared = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models")) / "yolov8n_coco_dequant.pt"
    weights = ROOT / cfg.weights if (ROOT / cfg.weights).exists() else shared
    fp32 = export_onnx(weights)
    files = calibration_files(fixtures)
    onnx_files = {"fp32": fp32}
    for name in opts.recipes:
        started = time.perf_counter()
        onnx_files[name] = export_int8(fp32, files, cfg.image_size, RECIPES[name])
        print(f"{name}: {onnx_files[name].name} ({time.perf_counter() - started:.0f} s)", flush=True)

    frame = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(
        common.clip_frames(1, "webcam_gaze_center_left_center.mp4", size=(640, 480))[0]), np.uint8), cv2.IMREAD_COLOR)
    models = {}
    for name, path in onnx_files.items():
        for threads in (1, 2):
            model = ObjectDetectorModel(cfg.model_copy(update={"weights": str(weights), "threads": threads,
                                                               "split_batches": False}), onnx_model=path)
            model.warm_up()
            models[(name, threads)] = model
    samples: dict[tuple, list[tuple[float, float]]] = {k: [] for k in models}
    for _ in range(opts.rounds):
        for key, model in models.items():
            for _ in range(3):
                wall, cpu = time.perf_counter(), time.process_time()
                model.detect_batch([frame])
                samples[key].append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))

    results = {}
    for name in onnx_files:
        rows = photo_rows(models[(name, 1)], photos, labels)
        results[name] = {
            "title": "fp32" if name == "fp32" else RECIPES[name].title, "file": onnx_files[name].name, **rows,
            **{f"ms_{t}_thread": round(statistics.median(s[0] for s in samples[(name, t)]), 1) for t in (1, 2)},
            **{f"cpu_ms_{t}_thread": round(statistics.median(s[1] for s in samples[(name, t)]), 1) for t in (1, 2)},
        }
    base = results["fp32"]["photos"]
    for name, row in results.items():
        row["differs_from_fp32"] = sorted(p for p, v in row["photos"].items()
                                          if {k: v[k] for k in ("persons_ok", "phone", "book")}
                                          != {k: base[p][k] for k in ("persons_ok", "phone", "book")})
    cpu_flags = set()
    try:
        cpu_flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        pass
    report = {"command": "python bench/int8_eval.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "vnni": bool(cpu_flags & {"avx512_vnni", "avx_vnni"}), "avx512": "avx512f" in cpu_flags,
              "default_recipe": DEFAULT_RECIPE, "photos": len(photos),
              "results": {k: {f: v for f, v in r.items() if f != "photos"} for k, r in results.items()}}
    out = ROOT / "bench" / "results" / "int8.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, ROOT / "docs" / "PERFORMANCE.md")
    print(json.dumps(report, indent=2))


def write_markdown(report: dict, path: Path) -> None:
    n = report["photos"]
    isa = "AVX-512 VNNI" if report["vnni"] else ("AVX-512, no VNNI" if report["avx512"] else "AVX2, no VNNI")
    lines = [f"Produced by `{report['command']}` on {report['machine']} ({isa}). One 640x480 webcam "
             "frame through the detector (letterbox, network, NMS), median of interleaved rounds; detections on the "
             f"{n} development photos with the served thresholds.", "",
             "| model | persons ok | phones found (of 5) | false phones | books found (of 3) | false books | "
             "ms, 1 thread | ms, 2 threads | CPU ms, 2 threads | photos that differ from fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        lines.append(f"| {'fp32' if name == 'fp32' else f'int8 `{name}`: ' + r['title']} | {r['persons_ok']}/{n} | "
                     f"{r['phone_recall']} | {r['phone_false']} | {r['book_recall']} | {r['book_false']} | "
                     f"{r['ms_1_thread']} | {r['ms_2_thread']} | {r['cpu_ms_2_thread']} | "
                     f"{', '.join(r['differs_from_fp32']) or 'none'} |")
    common.write_generated_section(path, "int8", "\n".join(lines), "## int8")


if __name__ == "__main__":
    main()
