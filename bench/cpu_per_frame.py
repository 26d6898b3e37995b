"""Where each served frame's CPU time goes: the soak's load on a running service, with every
process's CPU time sampled once a second (so session actors that exit at the end still count).

    make run                                   # in one shell
    python bench/cpu_per_frame.py --sessions 5 # in another  ->  bench/results/cpu_per_frame.json

Reports CPU milliseconds per served frame for each process kind (Ray replicas, proxy, session
actors, raylet, GCS, dashboard, the load generator itself). Keep the load under saturation, so
the frames served are the frames offered. First it samples the service idle (`--idle` seconds, no
session open): each process's fixed cost (CPU ms per second with no traffic), so the loaded
window splits into what the process spends anyway and what each frame adds.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402


def kind_of(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline() or [])
    if proc.pid == os.getpid():
        return "load generator (this script)"
    if cmd.startswith("ray::"):
        name = cmd.split()[0].split(".")[0]
        return "ray::RiskSession actors" if "RiskSession" in name else name
    for needle, kind in (("raylet", "raylet"), ("gcs_server", "gcs_server"), ("dashboard", "Ray dashboard"),
                         ("log_monitor", "Ray log monitor"), ("monitor.py", "Ray monitor"),
                         ("runtime_env", "Ray runtime-env agent"), ("serve run", "serve run (driver)"),
                         ("run_service.py", "run_service.py")):
        if needle in cmd:
            return kind
    return "other"


class CpuSampler:
    """CPU seconds per process kind between start() and stop(), counting processes that start or
    exit in between (from their first sample to their last). `processes` (default: every process
    on the machine) and `kind` (default: `kind_of`) let another benchmark sample its own set."""

    def __init__(self, interval: float = 1.0, processes=psutil.process_iter, kind=None):
        self.interval = interval
        self.processes = processes
        self.kind = kind or kind_of
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, initial: bool) -> None:
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                used = times.user + times.system
                if proc.pid not in self.first:
                    # Seen at the start: count from now. Started during the run: count all of it.
                    self.first[proc.pid] = (self.kind(proc), used if initial else 0.0)
                self.last[proc.pid] = used
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            self._sample(initial=False)

    def start(self) -> "CpuSampler":
        self._sample(initial=True)
        self.thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self.stopping.set()
        self.thread.join()
        self._sample(initial=False)
        by_kind: dict[str, float] = {}
        for pid, (kind, start) in self.first.items():
            by_kind[kind] = by_kind.get(kind, 0.0) + self.last.get(pid, start) - start
        return by_kind


def measure(url: str, api_key: str | None, sessions: int, fps: float, duration: float, warmup: float,
            idle_s: float) -> dict:
    """Idle for `idle_s` (each process's fixed cost), then the load with its steady-state window."""
    idle: dict[str, float] = {}
    if idle_s > 0:
        idle_sampler = CpuSampler()
        idle_sampler.start()
        time.sleep(idle_s)
        idle = idle_sampler.stop()

    frames = common.clip_frames(clip="webcam_gaze_center_left_center.mp4", size=(640, 480))  # as bench/load.py sends
    # Measure a window in the steady state: after every session has started (starting an actor
    # costs about a second of CPU once) and before they end.
    window = (warmup, duration - 2.0)
    sampler = CpuSampler()
    timers = [threading.Timer(window[0], sampler.start), threading.Timer(window[1], lambda: cpu.update(sampler.stop()))]
    cpu: dict[str, float] = {}
    for timer in timers:
        timer.start()
    report = asyncio.run(common.run_load(url, api_key, sessions, fps, duration, warmup=2.0, frames=frames))
    wall = window[1] - window[0]
    served = sum(1 for sent, _, status in common.LAST_RECORDS if status == 200 and window[0] <= sent < window[1])
    in_window = sorted(1000 * latency for sent, latency, status in common.LAST_RECORDS
                       if status == 200 and window[0] <= sent < window[1])
    rows = {kind: round(1000 * seconds / served, 1) for kind, seconds in sorted(cpu.items(), key=lambda kv: -kv[1])
            if seconds > 0.05}

    def percentiles(rows: list[tuple[float, dict[str, float]]]) -> dict:
        ordered = sorted(1000 * latency for latency, _ in rows)
        stages = {stage: round(statistics.median(split[stage] for _, split in rows), 1)
                  for stage in (rows[0][1] if rows else {})}
        return {"frames": len(ordered), **{q: round(ordered[int(v * (len(ordered) - 1))], 1) if ordered else None
                                           for q, v in (("p50", 0.5), ("p95", 0.95))}, "stage_ms_p50": stages}

    by_kind = {label: percentiles([(lat, split) for sent, lat, reused, split in common.FRAME_KINDS
                                   if reused is want and window[0] <= sent < window[1]])
               for label, want in (("yolo_ran", False), ("objects_reused", True))}
    return {
        "machine": f"{os.cpu_count()} cores",
        "sessions": sessions, "fps": fps, "window_s": [window[0], window[1]], "frames_served_in_window": served,
        "statuses": report["statuses"], "latency_ms": report["latency_ms"], "stage_ms_p50": report["stage_ms_p50"],
        "latency_ms_in_window": {q: round(in_window[int(v * (len(in_window) - 1))], 1) if in_window else None
                                 for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "latency_ms_in_window_by_frame": by_kind,
        "cpu_cores_busy": round(sum(cpu.values()) / wall, 2),
        "cpu_ms_per_frame_total": round(1000 * sum(cpu.values()) / served, 1) if served else None,
        "cpu_ms_per_frame": rows,
        # fixed: CPU ms per second with no traffic; added: what a frame costs beyond that
        "idle_s": idle_s,
        "idle_cpu_ms_per_s": {kind: round(1000 * seconds / idle_s, 1) for kind, seconds in
                              sorted(idle.items(), key=lambda kv: -kv[1]) if seconds > 0.01} if idle_s else {},
        "idle_cpu_cores_busy": round(sum(idle.values()) / idle_s, 3) if idle_s else None,
        "added_cpu_ms_per_frame": {kind: round(1000 * (seconds - idle.get(kind, 0.0) * wall / idle_s) / served, 1)
                                   for kind, seconds in sorted(cpu.items(), key=lambda kv: -kv[1])
                                   if seconds > 0.05} if idle_s and served else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=os.environ.get("PROCTOR_API_KEY"))
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before the measured window")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds sampled with no traffic first (0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cpu_per_frame.json")
    opts = parser.parse_args()
    result = {"command": "python bench/cpu_per_frame.py " + " ".join(sys.argv[1:]),
              **measure(opts.url, opts.api_key, opts.sessions, opts.fps, opts.duration, opts.warmup, opts.idle)}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
