"""Latency of /analyze-frame through a running service: N sequential frames of one session.

Frames are consecutive frames of the webcam clip `videos/webcam_gaze_center.mp4` (480x848 JPEGs), so
no two are identical (the same bytes twice would be a frozen camera).

    make run                       # in one shell
    make bench-latency             # in another (or: python bench/frame_latency.py --url ...)

Prints median/p95 client-side latency and the service's own per-stage split, plus the resident
memory of the Ray processes on this machine (the serving app) when psutil can see them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import clip_frames, ray_memory_mib  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=os.environ.get("PROCTOR_API_KEY"), help="when auth is on")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--clip", default="webcam_gaze_center.mp4", help="a clip in the fixtures' videos/")
    opts = parser.parse_args()

    needed = opts.warmup + opts.frames
    frames = clip_frames(needed, opts.clip)
    frames = (frames * (needed // len(frames) + 1))[:needed]  # a short clip repeats (never back to back)
    headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
    with httpx.Client(base_url=opts.url, timeout=60, headers=headers) as client:
        session_id = client.post("/start-session", json={"candidate_id": "bench"}).raise_for_status().json()["session_id"]
        for frame in frames[: opts.warmup]:
            client.post("/analyze-frame", json={"session_id": session_id, "frame": frame}).raise_for_status()
        latencies, stages = [], []
        for frame in frames[opts.warmup:]:
            started = time.perf_counter()
            body = client.post("/analyze-frame", json={"session_id": session_id, "frame": frame}).raise_for_status().json()
            latencies.append((time.perf_counter() - started) * 1000)
            stages.append(body["latency_ms"])
        client.post("/end-session", json={"session_id": session_id}).raise_for_status()

    def med(key):
        return round(statistics.median(s[key] for s in stages), 1)

    report = {
        "frames": opts.frames,
        "client_ms": {
            "median": round(statistics.median(latencies), 1),
            "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 1),
            "min": round(min(latencies), 1),
        },
        "service_median_ms": {k: med(k) for k in stages[0]},
        "ray_process_rss_mib": ray_memory_mib(),
    }
    report["ray_process_rss_mib_total"] = round(sum(report["ray_process_rss_mib"].values()), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
