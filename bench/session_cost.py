"""What an open session costs: start-session latency and the memory of its RiskSession actor.

    python bench/session_cost.py [--sessions 50]

Starts the app itself (bench/common.py, as bench/soak.py does), opens N sessions one after another, and measures the RSS
of every Ray process before and after, and each /start-session's latency; then ends them all.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50)
    opts = parser.parse_args()
    url, tmp = common.start_own_app()
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            time.sleep(5)
            before = common.ray_memory_mib()
            latencies, ids = [], []
            for i in range(opts.sessions):
                started = time.perf_counter()
                ids.append(client.post("/start-session", json={"candidate_id": f"cost-{i}"}).raise_for_status().json()["session_id"])
                latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(3)
            after = common.ray_memory_mib()
            for sid in ids:
                client.post("/end-session", json={"session_id": sid}).raise_for_status()
    finally:
        common.stop_own_app(tmp)
    actors = after.get("ray::RiskSession", 0.0)
    report = {
        "sessions": opts.sessions,
        "start_session_ms": {"p50": round(statistics.median(latencies), 1),
                             "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 1),
                             "first": round(latencies[0], 1)},
        "risk_session_actors_mib": actors,
        "mib_per_session": round(actors / opts.sessions, 1),
        "total_ray_mib_before": round(sum(before.values()), 1),
        "total_ray_mib_with_sessions": round(sum(after.values()), 1),
        "command": "python bench/session_cost.py " + " ".join(sys.argv[1:]),
    }
    out = ROOT / "bench" / "results" / "session_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
