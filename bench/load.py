"""`make bench`: Proctor (Ray Serve graph) against the one-process baseline, same frames, same load,
same machine, interleaved: for each number of concurrent sessions K, the baseline runs, then Proctor.

Each session streams a real webcam clip (640x480 JPEGs cut from the fixtures' clip) at F frames/s in
real time from its own random point, looping, one frame in flight at a time, like a browser. Records p50/p95/p99 latency, achieved frames/s, errors,
and CPU and memory of each system's serving processes. Writes JSON, a plot, and docs/PERFORMANCE.md.

    python bench/load.py                 # K = 1 2 4 6 8 10, 40 s each
    python bench/load.py --quick         # K = 1 4 10, 15 s each (under 2 minutes after start-up)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402
from devtools.local_serve import free_port, wait_healthy  # noqa: E402

BUDGET_MS = 150.0


def webcam_frames(limit: int = 10_000) -> list[str]:
    """640x480 JPEGs: every frame of the clip (15 s), its 480x848 frames centre-cropped to 4:3 and resized."""
    return common.clip_frames(limit, "webcam_gaze_center_left_center.mp4", size=(640, 480))


def require_healthy(url: str, timeout: float = 180) -> None:
    if not wait_healthy(url, timeout):
        raise RuntimeError(f"{url} did not become healthy")


def ray_pids() -> list[int]:
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if cmd.startswith("ray::") or "raylet" in cmd or "gcs_server" in cmd:
            pids.append(proc.info["pid"])
    return pids


def usage(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds so far, RSS MiB) summed over the processes (and their children)."""
    cpu = rss = 0.0
    seen = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                times = p.cpu_times()
                cpu += times.user + times.system
                rss += p.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
    return cpu, rss


async def measure(url: str, api_key: str | None, pids_fn, sessions: int, fps: float, duration: float,
                  frames: list[str]) -> dict:
    cpu_before, _ = usage(pids_fn())
    started = time.monotonic()
    # Latency counts frames sent after the warm-up (every session started, its first frames
    # answered); the whole run's figures are kept beside them (`*_all_ms`).
    report = await common.run_load(url, api_key, sessions, fps, duration, warmup=min(10.0, duration / 3),
                                   frames=frames)  # the same frames for both systems
    wall = time.monotonic() - started
    cpu_after, rss = usage(pids_fn())
    return {
        "sessions": sessions,
        "p50_ms": report["latency_ms_steady"]["p50"], "p95_ms": report["latency_ms_steady"]["p95"],
        "p99_ms": report["latency_ms_steady"]["p99"],
        "p50_all_ms": report["latency_ms"]["p50"], "p95_all_ms": report["latency_ms"]["p95"],
        "achieved_fps": report["achieved_frames_per_s"], "offered_fps": sessions * fps,
        "statuses": report["statuses"], "skipped_ticks": report["skipped_ticks"],
        "stage_ms_p50": report["stage_ms_p50"],
        "cpu_cores_used": round((cpu_after - cpu_before) / wall, 2), "rss_mib": round(rss, 1),
    }


def max_sessions_under_budget(rows: list[dict]) -> int:
    best = 0
    for row in sorted(rows, key=lambda r: r["sessions"]):
        served_all = row["achieved_fps"] >= 0.9 * row["offered_fps"]
        if row["p95_ms"] is not None and row["p95_ms"] < BUDGET_MS and served_all:
            best = row["sessions"]
        else:
            break
    return best


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for system, style, color in (("baseline", "--", "tab:grey"), ("proctor", "-", "tab:red")):
        rows = results[system]
        ks = [r["sessions"] for r in rows]
        for q, marker, alpha in (("p50_ms", "o", 1.0), ("p95_ms", "s", 0.75), ("p99_ms", "^", 0.5)):
            ax.plot(ks, [r[q] for r in rows], style, marker=marker, color=color, alpha=alpha, label=f"{system} {q[:-3]}")
    ax.axhline(BUDGET_MS, color="black", lw=1, ls=":", label=f"{BUDGET_MS:.0f} ms budget")
    ax.set_xlabel("concurrent sessions (1 frame/s each)")
    ax.set_ylabel("latency, ms (log)")
    ax.set_yscale("log")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("/analyze-frame latency: Ray Serve graph vs one process")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_markdown(results: dict, command: str, path: Path) -> None:
    """Rewrite the generated part of docs/PERFORMANCE.md (between the markers); keep the rest."""
    backend = results.get("baseline_detector_backend", "ultralytics")
    lines = [f"Produced by `{command}` on {platform.machine()}, {os.cpu_count()} cores, "
             f"{round(psutil.virtual_memory().total / 2**30)} GiB; no GPU. Both systems run the same models "
             "(config/serve.yaml: YOLOv8n at its image size, MediaPipe) on the same frames (640x480 webcam JPEGs), "
             f"interleaved per load level. The baseline's detector: `{backend}`"
             + (" (the seed's YOLO.predict on torch)." if backend == "ultralytics" else " (Proctor's own detector path)."),
             "", "![latency vs sessions](performance.png)", "",
             "Latency: frames sent after the warm-up (the first third of each level, at most 10 s: sessions start, "
             "caches fill); p95 over the whole level beside it.", "",
             "| system | sessions | offered fps | achieved fps | p50 ms | p95 ms | p99 ms | p95 ms, whole level | "
             "CPU cores | RSS MiB | statuses |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k_index in range(len(results["proctor"])):
        for system in ("baseline", "proctor"):
            r = results[system][k_index]
            lines.append(f"| {system} | {r['sessions']} | {r['offered_fps']:g} | {r['achieved_fps']} | {r['p50_ms']} | "
                         f"{r['p95_ms']} | {r['p99_ms']} | {r['p95_all_ms']} | {r['cpu_cores_used']} | {r['rss_mib']} | "
                         f"{r['statuses']} |")
    lines += ["", f"Most sessions at 1 frame/s with p95 under {BUDGET_MS:.0f} ms (and all frames served): "
              f"baseline {results['max_sessions']['baseline']}, Proctor {results['max_sessions']['proctor']}."]
    common.write_generated_section(path, "make bench", "\n".join(lines), "# Performance")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sessions", type=int, nargs="*", default=None)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--baseline-backend", choices=["ultralytics", "torch", "onnxruntime"], default="ultralytics",
                        help="the baseline's detector: ultralytics is the seed's YOLO.predict on torch")
    parser.add_argument("--proxy", action="store_true",
                        help="serve Proctor through Serve's proxy (ingress.direct_ingress off)")
    parser.add_argument("--no-gate", action="store_true", help="Proctor with detector_gate off (YOLO on every frame)")
    parser.add_argument("--distinct-photos", action="store_true",
                        help="every frame a different photo (the detector gate's worst case: it never skips)")
    opts = parser.parse_args()
    levels = opts.sessions or ([1, 4, 10] if opts.quick else [1, 2, 4, 6, 8, 10])
    duration = opts.duration or (15.0 if opts.quick else 40.0)
    frames = common.distinct_photos() if opts.distinct_photos else webcam_frames()

    shared = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models")) / "yolov8n_coco_dequant.pt"
    weights = str(shared) if shared.exists() and not (ROOT / "models" / "yolov8n.pt").exists() else None
    base_port = free_port()
    baseline = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline" / "app.py"), "--port", str(base_port),
                                 "--detector-backend", opts.baseline_backend]
                                + (["--weights", weights] if weights else []))
    overrides = {"ingress": {"direct_ingress": False}} if opts.proxy else {}
    if opts.no_gate:
        overrides["detector_gate"] = {"enabled": False}
    proctor_url, tmp = common.start_own_app(overrides)
    try:
        base_url = f"http://127.0.0.1:{base_port}"
        require_healthy(base_url)
        require_healthy(proctor_url)
        results = {"baseline": [], "proctor": []}
        for k in levels:  # interleaved: the two systems share the machine's noise
            results["baseline"].append(asyncio.run(measure(base_url, None, lambda: [baseline.pid], k, opts.fps, duration, frames)))
            results["proctor"].append(asyncio.run(measure(proctor_url, None, ray_pids, k, opts.fps, duration, frames)))
            print(json.dumps({"sessions": k, "baseline": results["baseline"][-1], "proctor": results["proctor"][-1]}), flush=True)
    finally:
        baseline.terminate()
        baseline.wait(timeout=30)
        common.stop_own_app(tmp)
    results["baseline_detector_backend"] = opts.baseline_backend
    results["proctor_direct_ingress"] = not opts.proxy
    results["max_sessions"] = {s: max_sessions_under_budget(results[s]) for s in ("baseline", "proctor")}
    command = "python bench/load.py " + " ".join(sys.argv[1:])
    results["command"] = command
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    side = [name for name, on in (("proxy", opts.proxy), ("no_gate", opts.no_gate),
                                  ("distinct_photos", opts.distinct_photos)) if on]
    if side:  # side measurements: their own files, the docs untouched
        (out / f"load_{'_'.join(side)}.json").write_text(json.dumps(results, indent=2))
    elif opts.baseline_backend != "ultralytics":
        (out / f"load_baseline_{opts.baseline_backend}.json").write_text(json.dumps(results, indent=2))
    else:
        (out / "load.json").write_text(json.dumps(results, indent=2))
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        plot(results, docs / "performance.png")
        write_markdown(results, command, docs / "PERFORMANCE.md")
    print(json.dumps(results["max_sessions"]))


if __name__ == "__main__":
    main()
