"""Put YOLO weights at the path given (default models/yolov8n.pt), once.

On a connected machine ultralytics downloads the official file of that name (yolov8n.pt, or
yolo11n.pt for the optional YOLO11n look, `detector.extra_looks`). On an offline machine with the
project's shared test assets ($PROCTOR_TEST_MODELS), the real COCO weights there are linked
instead, so `make run` works without a download. With --export-onnx (what `make install`
passes) it also writes the ONNX export the detector's default backend runs (models/onnx/).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# The shared test assets' file for each official weights name.
SHARED_EQUIVALENT = {"yolov8n.pt": "yolov8n_coco_dequant.pt", "yolo11n.pt": "yolo11n_coco_dequant.pt"}


def main(target: str = "models/yolov8n.pt", *flags: str) -> int:
    status = place_weights(Path(target))
    if status == 0 and "--export-onnx" in flags:
        # The detector's default backend runs an ONNX export of these weights: make it now (about
        # 10 s, once per weights file) rather than in the first replica to start.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from vision.detector import export_onnx

        print(f"ONNX export: {export_onnx(Path(target).resolve())}")
    return status


def place_weights(dest: Path) -> int:
    if dest.is_file():
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    shared = os.environ.get("PROCTOR_TEST_MODELS")
    equivalent = SHARED_EQUIVALENT.get(dest.name, SHARED_EQUIVALENT["yolov8n.pt"])
    if shared and (Path(shared) / equivalent).is_file():
        if dest.is_symlink():
            dest.unlink()
        dest.symlink_to((Path(shared) / equivalent).resolve())
        print(f"linked {dest} -> {dest.resolve()} (offline machine: shared COCO weights)")
        return 0
    if os.environ.get("YOLO_OFFLINE") == "1":
        print(f"error: {dest} is missing and this machine is offline; copy {dest.name} there", file=sys.stderr)
        return 1
    from ultralytics.utils.downloads import attempt_download_asset

    attempt_download_asset(str(dest))  # fetches the release asset named like dest into dest
    print(f"downloaded {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
