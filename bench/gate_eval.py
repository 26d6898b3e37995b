"""What change-gated detection skips and what it keeps: each development clip, and a clip made at
run time with a real phone moved into the webcam frames (vision.evaluation.composite_phone_clip),
replayed through the face stage, the detector gate and the risk engine in one process, gated and
ungated. Prints, per clip, the share of frames YOLO ran on, the events each way, and on how many
frames the detector's hand-at-ear rule ran MediaPipe Hands and its extra looks ran (gated run).

    python bench/gate_eval.py [--fps 4] [--stale-recheck background] [--json bench/results/gate_eval.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from settings import AppConfig, load_args  # noqa: E402
from vision.evaluation import composite_phone_clip, read_video, replay_gated, same_events  # noqa: E402

CLIPS = ("webcam_gaze_center.mp4", "webcam_gaze_center_left_center.mp4")


def clips(fixtures: Path, fps: float) -> dict[str, list]:
    stride = max(1, round(24 / fps))  # the clips are 24 frames/s
    out = {clip: [f for _, f in read_video(fixtures / "videos" / clip, stride)] for clip in CLIPS}
    out["phone_composite (webcam_gaze_center.mp4 + a real phone 3-7 s)"] = composite_phone_clip(
        out[CLIPS[0]], fixtures, fps, enters_s=3.0, leaves_s=7.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=4.0, help="frames per second taken from each clip")
    parser.add_argument("--weights", default=None, help="YOLO weights (default: the test models' yolov8n)")
    parser.add_argument("--stale-recheck", choices=["inline", "background"], default=None,
                        help="detector_gate.stale_recheck for the gated run (default: config/serve.yaml's)")
    parser.add_argument("--json", type=Path, default=None)
    opts = parser.parse_args()
    from vision.detector import ObjectDetectorModel
    from vision.face_gaze import FaceGazeAnalyzer

    fixtures = Path(os.environ.get("PROCTOR_TEST_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    args = load_args()
    models = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models"))
    args["detector"]["weights"] = opts.weights or str(models / "yolov8n_coco_dequant.pt")
    if opts.stale_recheck:
        args["detector_gate"]["stale_recheck"] = opts.stale_recheck
    cfg = AppConfig(**args)
    analyzer, detector = FaceGazeAnalyzer(cfg.face_gaze), ObjectDetectorModel(cfg.detector)
    rows = []
    for name, frames in clips(fixtures, opts.fps).items():
        hands_before = detector.phone_at_ear.runs if detector.phone_at_ear else 0
        looks_before = sum(detector.looks_run.values())
        gated = replay_gated(frames, opts.fps, analyzer, detector, cfg, gated=True)
        hands = (detector.phone_at_ear.runs - hands_before) if detector.phone_at_ear else None
        looks = sum(detector.looks_run.values()) - looks_before
        ungated = replay_gated(frames, opts.fps, analyzer, detector, cfg, gated=False)
        rows.append({"clip": name, "frames": gated["frames"], "yolo_frames": gated["yolo_frames"],
                     "yolo_share": round(gated["yolo_frames"] / gated["frames"], 3),
                     "same_events": same_events(gated["events"], ungated["events"]),
                     "hand_rule_frames": hands, "extra_look_frames": looks if detector.looks else None,
                     "events_gated": gated["events"], "events_ungated": ungated["events"],
                     "decisions": {d: gated["decisions"].count(d) for d in sorted(set(gated["decisions"]))}})
    print(f"`python bench/gate_eval.py --fps {opts.fps:g}` (stale_recheck: {cfg.detector_gate.stale_recheck})\n")
    print("| clip | frames | YOLO ran | share | same events (start within 1 s) | events (gated) | why YOLO ran "
          "| MediaPipe Hands ran (hand-at-ear rule) | extra looks ran (`detector.extra_looks`) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        events = ", ".join(f"{e['type']}@{e['start']:.2f}s" for e in r["events_gated"]) or "none"
        print(f"| {r['clip']} | {r['frames']} | {r['yolo_frames']} | {r['yolo_share']:.0%} | {r['same_events']} | "
              f"{events} | {r['decisions']} | {'off' if r['hand_rule_frames'] is None else r['hand_rule_frames']} | "
              f"{'none' if r['extra_look_frames'] is None else r['extra_look_frames']} |")
    if opts.json:
        opts.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
