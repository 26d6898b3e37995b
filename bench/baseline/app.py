"""The seed's one-process design, for side-by-side benchmarks: one FastAPI app under one uvicorn
process that decodes, runs face/gaze and YOLO (ultralytics' YOLO.predict on torch, as the seed
did) one after the other, and keeps each session's risk
engine in a dictionary. Same models, weights, image size and thresholds (config/serve.yaml) and the
same API as Proctor, so `bench/load.py` drives both with the same frames.

    python bench/baseline/app.py --port 8100 [--weights PATH]

Not for production: no durability, no auth, one CPU-bound process.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, HTTPException  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from api.errors import http_status  # noqa: E402
from api.schemas import StageLatency  # noqa: E402
from contracts import Detections  # noqa: E402
from errors import FrameError  # noqa: E402
from pipeline.response import frame_response  # noqa: E402
from risk.clock import FrameClock  # noqa: E402
from risk.engine import RiskEngine  # noqa: E402
from risk.observation import Observation  # noqa: E402
from settings import AppConfig, load_args  # noqa: E402
from vision.detector import ObjectDetectorModel  # noqa: E402
from vision.face_gaze import FaceGazeAnalyzer  # noqa: E402
from vision.frames import decode_image, inspect_image_header, parse_frame_payload  # noqa: E402


class Start(BaseModel):
    candidate_id: str


class Frame(BaseModel):
    session_id: str
    frame: str
    timestamp: float | None = None


class End(BaseModel):
    session_id: str


def create_app(weights: str | None = None, detector_backend: str = "ultralytics") -> FastAPI:
    """`detector_backend` ultralytics is the seed's YOLO.predict on torch; onnxruntime gives the
    baseline Proctor's own detector path, to separate what the architecture gains from the lever."""
    args = load_args()
    if weights:
        args["detector"]["weights"] = weights
    args["detector"]["backend"] = detector_backend
    if detector_backend == "ultralytics":
        # The seed's one YOLO pass: the second opinion (extra looks) needs Proctor's ONNX/torch path.
        # On the benchmark's webcam clips it never runs anyway (bench/gate_eval.py).
        args["detector"]["extra_looks"] = []
    cfg = AppConfig(**args)
    face = FaceGazeAnalyzer(cfg.face_gaze)
    detector = ObjectDetectorModel(cfg.detector)
    detector.warm_up()
    sessions: dict[str, tuple[RiskEngine, FrameClock]] = {}
    models_lock = threading.Lock()  # one frame at a time through the models, as in the seed
    app = FastAPI(title="Proctor baseline (one process)")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/start-session")
    def start(body: Start):
        session_id, now = str(uuid.uuid4()), time.time()
        sessions[session_id] = (RiskEngine(cfg.risk, now), FrameClock())
        return {"session_id": session_id, "message": "Session started", "timestamp": now}

    # A sync endpoint in uvicorn's thread pool; the models run one frame at a time.
    @app.post("/analyze-frame")
    def analyze(body: Frame):
        arrival, started = time.time(), time.perf_counter()
        if body.session_id not in sessions:
            raise HTTPException(404, "unknown session")
        try:
            data = parse_frame_payload(body.frame, cfg.ingress.max_frame_bytes)
            inspect_image_header(data, cfg.ingress.max_frame_pixels)
            image = decode_image(data)
        except FrameError as exc:
            raise HTTPException(http_status(exc), str(exc)) from None
        with models_lock:
            face_result = face.analyze(image)
            detections = Detections(tuple(detector.detect_batch([image])[0]))
            engine, clock = sessions[body.session_id]
            obs = Observation.from_results(clock.frame_time(body.timestamp, arrival), face_result, detections.objects,
                                           cfg.risk.gaze)
            update = engine.observe(obs, face_result.quality.issues).update
        total = round((time.perf_counter() - started) * 1000, 2)
        latency = StageLatency(validate=0.0, face_gaze=0.0, object_detector=0.0, models_wall=total, risk=0.0, total=total)
        return frame_response(body.session_id, face_result, detections, update, latency)

    @app.post("/end-session")
    def end(body: End):
        if body.session_id not in sessions:
            raise HTTPException(404, "unknown session")
        engine, _ = sessions.pop(body.session_id)
        return {"session_id": body.session_id, **engine.finish(time.time())}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--weights", default=os.environ.get("PROCTOR_BASELINE_WEIGHTS"))
    parser.add_argument("--detector-backend", choices=["ultralytics", "torch", "onnxruntime"], default="ultralytics")
    opts = parser.parse_args()
    uvicorn.run(create_app(opts.weights, opts.detector_backend), host="127.0.0.1", port=opts.port, log_level="warning")


if __name__ == "__main__":
    main()
