"""The ObjectDetector's batched predict on an accelerator: frames/s and per-call p95 for batch sizes
1-64, per backend (torch; ONNX Runtime when its CUDA provider is installed). The prepared script for
a session that has a GPU machine; on CPU (`--device cpu --batches 1 2 4`) it checks itself.

    python bench/gpu_batch.py --device cuda:0        ->  bench/results/gpu_batch.json

Frames are real 640x480 webcam JPEGs from the fixtures, decoded once; every call gets distinct frames.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--backends", nargs="*", default=["torch", "onnxruntime"])
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--calls", type=int, default=30, help="timed calls per batch size")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_batch.json")
    opts = parser.parse_args()

    import torch

    from settings import AppConfig, load_args
    from vision.detector import ObjectDetectorModel
    from vision.frames import decode_image

    shared = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models")) / "yolov8n_coco_dequant.pt"
    weights = opts.weights or str(shared)
    frames = [decode_image(base64.b64decode(f))
              for f in common.clip_frames(64, "webcam_gaze_center_left_center.mp4", size=(640, 480))]
    rows, card = [], (torch.cuda.get_device_name(0) if opts.device.startswith("cuda") else "cpu")
    for backend in opts.backends:
        if backend == "onnxruntime" and opts.device.startswith("cuda"):
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                rows.append({"backend": backend, "skipped": "onnxruntime has no CUDAExecutionProvider here"})
                continue
        model = ObjectDetectorModel(AppConfig(**load_args()).detector.model_copy(
            update={"weights": weights, "backend": backend, "device": opts.device}))
        model.warm_up()
        for batch in opts.batches:
            images = [frames[i % len(frames)] for i in range(batch)]
            model.detect_batch(images)  # warm this shape
            times = []
            for call in range(opts.calls):
                images = [frames[(call * batch + i) % len(frames)] for i in range(batch)]
                if opts.device.startswith("cuda"):
                    torch.cuda.synchronize()
                started = time.perf_counter()
                model.detect_batch(images)  # returns CPU tensors: the copy back is included
                times.append(time.perf_counter() - started)
            times.sort()
            rows.append({"backend": backend, "batch": batch, "frames_per_s": round(batch / statistics.median(times), 1),
                         "p50_ms": round(1000 * statistics.median(times), 2),
                         "p95_ms": round(1000 * times[min(len(times) - 1, int(0.95 * (len(times) - 1)))], 2)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"command": "python bench/gpu_batch.py " + " ".join(sys.argv[1:]), "device": opts.device, "card": card,
              "image_size": load_args()["detector"]["image_size"], "frame": "640x480 webcam JPEG, decoded once",
              "rows": rows}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
