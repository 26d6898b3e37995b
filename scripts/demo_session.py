"""Drive one realistic session against a running service and print where its report is.

    make run                                   # in one shell
    python scripts/demo_session.py             # in another

Streams the webcam clip `webcam_gaze_center_left_center.mp4` at 5 frames/s with capture timestamps
(as fast as the service answers), then a few seconds with a second face in view, then ends the
session. The report shows the LOOKING_AWAY episode, MULTIPLE_FACES/EXTRA_PERSON and the verdict.
"""
from __future__ import annotations

import argparse
import base64
import os
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("PROCTOR_TEST_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def jpeg_b64(image: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=os.environ.get("PROCTOR_API_KEY"), help="when auth is on")
    parser.add_argument("--fps", type=float, default=5.0)
    opts = parser.parse_args()

    headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
    with httpx.Client(base_url=opts.url, timeout=60, headers=headers) as client:
        session_id = client.post("/start-session", json={"candidate_id": "demo"}).raise_for_status().json()["session_id"]
        capture = cv2.VideoCapture(str(FIXTURES / "videos" / "webcam_gaze_center_left_center.mp4"))
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        step, index, t = round(24 / opts.fps), 0, 0.0
        started = time.monotonic()

        def at_capture_time(t: float) -> None:
            """Send as a webcam would: in real time (faster meets the per-session rate limit, 429)."""
            time.sleep(max(0.0, started + t - time.monotonic()))

        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                t = index / 24
                at_capture_time(t)
                body = client.post("/analyze-frame", json={"session_id": session_id, "frame": jpeg_b64(frame),
                                                           "timestamp": t}).raise_for_status().json()
                print(f"t={t:5.1f}s faces={body['faces']} gaze={body['gaze']:7s} risk={body['risk_score']:3d} "
                      f"attention={body['attention']:3d} events={[e['type'] for e in body['events']]}")
            index += 1
        two = cv2.imread(str(FIXTURES / "images" / "two_faces_obama_biden.jpg"))
        rng = np.random.default_rng(0)
        for i in range(15):  # 3 s with someone else in view
            t += 1 / opts.fps
            at_capture_time(t)
            noisy = np.clip(two.astype(np.int16) + rng.integers(-2, 3, two.shape), 0, 255).astype(np.uint8)
            body = client.post("/analyze-frame", json={"session_id": session_id, "frame": jpeg_b64(noisy),
                                                       "timestamp": t}).raise_for_status().json()
        print(f"t={t:5.1f}s faces={body['faces']} risk={body['risk_score']} events={[e['type'] for e in body['events']]}")
        summary = client.post("/end-session", json={"session_id": session_id}).raise_for_status().json()
        print(f"verdict {summary['verdict']}: {summary['verdict_reasons']}")
        print(f"report: {opts.url}{summary['report_url']}")


if __name__ == "__main__":
    main()
