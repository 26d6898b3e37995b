"""What an open session costs: start-session latency and the memory of its RiskSession actor.

    python bench/session_cost.py [--sessions 10] [--interval 1.0] [--warm N]

Starts the app itself (bench/common.py, as bench/soak.py does) and an empty Ray actor beside it (the
floor any actor costs on this Ray), opens N sessions `interval` seconds apart (0: back to back), and
measures each /start-session's latency and every Ray process's memory: RSS (what `ps` shows; it
counts the shared libraries every worker maps), USS (the process's own pages) and PSS (shared pages
split between their users: the sum over processes is the machine's real total). Then ends them all.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import common  # noqa: E402


def memory_mib(pid: int) -> dict[str, float]:
    info = psutil.Process(pid).memory_full_info()
    return {"rss": round(info.rss / 2**20, 1), "uss": round(info.uss / 2**20, 1), "pss": round(info.pss / 2**20, 1)}


def ray_processes() -> dict[int, str]:
    """pid -> title of every Ray process of this machine but this script."""
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "name"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.pid == psutil.Process().pid or ("ray" not in cmd and "gcs_server" not in cmd):
            continue
        found[proc.pid] = cmd.split()[0].split(".")[0] if cmd.startswith("ray::") else (proc.info["name"] or "?")
    return found


def totals(kind: str) -> dict[str, float]:
    out = {"rss": 0.0, "pss": 0.0}
    for pid in ray_processes():
        try:
            m = memory_mib(pid)
        except psutil.Error:
            continue
        out["rss"] += m["rss"]
        out["pss"] += m["pss"]
    return {f"{kind}_{k}_mib": round(v, 1) for k, v in out.items()}


def median_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rows), 1) for k in rows[0]} if rows else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between starts (0: back to back)")
    parser.add_argument("--warm", type=int, default=None, help="ingress.warm_session_actors (default: the config's)")
    opts = parser.parse_args()
    import ray

    url, tmp = common.start_own_app(None if opts.warm is None else {"ingress": {"warm_session_actors": opts.warm}})
    try:
        @ray.remote(num_cpus=0)
        class EmptyActor:
            def pid(self) -> int:
                import os

                return os.getpid()

        empty = EmptyActor.remote()
        empty_pid = ray.get(empty.pid.remote())
        with httpx.Client(base_url=url, timeout=120) as client:
            time.sleep(8)  # warm actors start
            before = totals("app_before_sessions")
            latencies, ids = [], []
            for i in range(opts.sessions):
                started = time.perf_counter()
                ids.append(client.post("/start-session", json={"candidate_id": f"cost-{i}"}).raise_for_status().json()["session_id"])
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(opts.interval)
            time.sleep(3)
            titles = ray_processes()
            actors = [memory_mib(pid) for pid, title in titles.items() if title == "ray::RiskSession"]
            empty_memory = memory_mib(empty_pid)
            ray.kill(empty)
            time.sleep(1)
            after = totals(f"app_with_{opts.sessions}_sessions")
            for sid in ids:
                client.post("/end-session", json={"session_id": sid}).raise_for_status()
    finally:
        common.stop_own_app(tmp)
    report = {
        "sessions": opts.sessions, "interval_s": opts.interval, "warm_session_actors": opts.warm,
        "start_session_ms": {"p50": round(statistics.median(latencies), 1),
                             "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 1),
                             "max": round(max(latencies), 1), "all": [round(v) for v in latencies]},
        "risk_session_actor_mib": {"count": len(actors), "median": median_of(actors)},
        "empty_ray_actor_mib": empty_memory,
        **before, **after,
        "command": "python bench/session_cost.py " + " ".join(sys.argv[1:]),
    }
    out = ROOT / "bench" / "results" / "session_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
