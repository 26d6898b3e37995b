"""Per-stage cost of one 640x480 webcam frame, without serving: JPEG decode, face/gaze (MediaPipe)
and YOLO per backend, precision (ONNX Runtime fp32 / static int8), thread count, batch splitting and
batch size (time and CPU time per frame).
From these, the ceiling: frames/s this machine could reach if its CPU did nothing but decoding and
model inference.

    python bench/stage_costs.py [--repeats 30] [--rounds 8]   ->  bench/results/stage_costs.json
    python bench/stage_costs.py --backends onnxruntime --image-sizes 544 --precisions fp32 int8

Run it on a quiet machine: every number is a median over `repeats` calls on real clip frames.
"""
from __future__ import annotations

import argparse
import base64
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


def median_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="calls per decode / face-gaze median")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds over every detector setting")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--backends", nargs="*", default=["ultralytics", "torch", "onnxruntime"])
    parser.add_argument("--image-sizes", type=int, nargs="*", default=[640, 544])
    parser.add_argument("--precisions", nargs="*", default=["fp32"],
                        help="onnxruntime: fp32 and/or int8 (the export `python -m vision.quantize` makes)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stage_costs.json")
    opts = parser.parse_args()

    from settings import AppConfig, load_args
    from vision.detector import ObjectDetectorModel
    from vision.face_gaze import FaceGazeAnalyzer
    from vision.frames import decode_image

    shared = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models")) / "yolov8n_coco_dequant.pt"
    weights = opts.weights or (str(ROOT / "models" / "yolov8n.pt") if (ROOT / "models" / "yolov8n.pt").exists() else str(shared))
    cfg = AppConfig(**load_args())
    jpegs = [base64.b64decode(f) for f in common.clip_frames(16, "webcam_gaze_center_left_center.mp4", size=(640, 480))]
    images = [decode_image(j) for j in jpegs]
    cursor = {"i": 0}

    def next_index() -> int:
        cursor["i"] = (cursor["i"] + 1) % len(images)
        return cursor["i"]

    stages: dict[str, float] = {}
    stages["decode"] = median_ms(lambda: decode_image(jpegs[next_index()]), opts.repeats)
    face = FaceGazeAnalyzer(cfg.face_gaze)
    stages["face_gaze"] = median_ms(lambda: face.analyze(images[next_index()]), opts.repeats)
    face.close()

    # Every (backend, threads) model is loaded first, then measured in interleaved rounds: this
    # machine's speed drifts by 20-30% over a minute, and interleaving spreads that over all rows.
    import torch

    models = {}
    for backend in opts.backends:
        for precision in (opts.precisions if backend == "onnxruntime" else ["fp32"]):
            for threads in (1, 2):
                for size in opts.image_sizes:
                    # split: a batch runs as single-thread runs in parallel (ONNX Runtime on 2+ threads only)
                    for split in ((False, True) if backend == "onnxruntime" and threads > 1 else (False,)):
                        model = ObjectDetectorModel(cfg.detector.model_copy(update={
                            "weights": weights, "image_size": size, "backend": backend, "threads": threads,
                            "split_batches": split, "precision": precision}))
                        model.warm_up()
                        models[(f"{backend}-{precision}" if backend == "onnxruntime" else backend,
                                threads, size, split)] = model
    samples: dict[tuple, list[tuple[float, float]]] = {}
    for _ in range(opts.rounds):
        for (backend, threads, size, split), model in models.items():
            torch.set_num_threads(threads)  # torch's count is per process; ONNX Runtime's per session
            for batch in (1, 2, 4):
                for _ in range(max(1, 4 // batch)):
                    frames = [images[next_index()] for _ in range(batch)]
                    started, cpu_started = time.perf_counter(), time.process_time()
                    model.detect_batch(frames)
                    samples.setdefault((backend, threads, size, split, batch), []).append(
                        ((time.perf_counter() - started) * 1000, (time.process_time() - cpu_started) * 1000))
    detector_rows = []
    for (backend, threads, size, split, batch), times in samples.items():
        ms = round(statistics.median(t for t, _ in times), 1)
        cpu_ms = statistics.median(c for _, c in times)
        detector_rows.append({"backend": backend, "threads": threads, "split_batches": split, "image_size": size,
                              "batch": batch, "ms_per_call": ms, "ms_per_frame": round(ms / batch, 1),
                              "cpu_ms_per_frame": round(cpu_ms / batch, 1), "calls": len(times)})
        print(json.dumps(detector_rows[-1]), flush=True)

    cores = os.cpu_count() or 1
    served = cfg.detector  # the ceiling for the configured detector (backend, input size)
    best_one_thread = min(r["ms_per_frame"] for r in detector_rows if r["threads"] == 1
                          and r["backend"].startswith(served.backend) and r["image_size"] == served.image_size)
    # One frame's CPU time when each stage runs on one core: two decodes (face and detector each
    # decode the JPEG), face/gaze, YOLO. All cores busy with nothing else -> the ceiling.
    core_ms = 2 * stages["decode"] + stages["face_gaze"] + best_one_thread
    result = {
        "command": "python bench/stage_costs.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {cores} cores, {platform.processor() or 'cpu'}",
        "weights": Path(weights).name, "frame": "640x480 JPEG (webcam_gaze_center_left_center.mp4)",
        "stages_ms": stages, "detector": detector_rows,
        "ceiling": {"core_ms_per_frame": round(core_ms, 1), "cores": cores,
                    "frames_per_s_per_core": round(1000 / core_ms, 2),
                    "frames_per_s": round(cores * 1000 / core_ms, 2)},
    }
    out = opts.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"stages_ms": stages, "ceiling": result["ceiling"]}, indent=2))


if __name__ == "__main__":
    main()
