"""`make soak`: a bounded soak on loopback. K sessions send real webcam frames at F frames/s for a set
time, then end; reports errors, p50/p95 latency over time, and the memory of every Ray process at
the start (after warm-up) and at the end. Stops by itself.

    python bench/soak.py                                  # 20 sessions x 2 frames/s x 600 s, own app
    python bench/soak.py --sessions 3 --fps 1 --duration 30
    python bench/soak.py --url http://127.0.0.1:8000 --api-key KEY   # against a running service

Each session behaves like a browser: one frame in flight at a time, a new one every 1/F s; when the
previous answer has not come back, that tick is skipped (counted), not queued. Without --url it
starts the app itself (config/serve.yaml, a temp store, the shared test weights when present) on a
Ray of its own, and stops it after.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--api-key", default=os.environ.get("PROCTOR_API_KEY"))
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--warmup", type=float, default=None, help="seconds before the start memory sample")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    opts = parser.parse_args()
    warmup = opts.warmup if opts.warmup is not None else min(60.0, opts.duration / 5)

    url, tmp = (opts.url, None) if opts.url else common.start_own_app()
    try:
        report = asyncio.run(common.run_load(url, opts.api_key, opts.sessions, opts.fps, opts.duration, warmup))
    finally:
        common.stop_own_app(tmp)
    report["command"] = "python bench/soak.py " + " ".join(sys.argv[1:])
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
