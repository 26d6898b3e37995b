"""A morning's wave on an autoscaling Ray cluster: how Serve and the Ray autoscaler follow it.

    python bench/scale.py [--wave-sessions 10] [--wave-fps 2] [--wave-s 90] [--after-s 120]
        -> bench/results/scale.json, docs/scale.png, docs/PERFORMANCE.md ("Autoscaling")

The cluster is devtools/ray_cluster.AutoscalingCluster on this machine (the test's, with room on the
head for one replica of each deployment and worker nodes of 1 logical CPU, at most 3), the app is
config/serve.yaml deployed with `serve deploy` and its own autoscaling_config (only the downscale
delay is shortened, so the way down fits the run: `--downscale-delay-s`). The load: 2 sessions x 1
frame/s, then a step to the wave, then 1 session, each session streaming the development webcam clip
(detector gate off: YOLO on every frame, the detector's worst case). Sampled every 2 s: running
replicas per deployment and alive nodes; per 5 s window: offered and served frames/s and p95.
All nodes share this machine's cores, so what is measured is the control loop (when replicas and
nodes come and go, what a wave does to latency meanwhile), not added capacity.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402
from devtools.load_ramp import Phase, run_ramp  # noqa: E402
from devtools.local_serve import free_port, wait_healthy  # noqa: E402
from devtools.ray_cluster import AutoscalingCluster  # noqa: E402

def main() -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wave-sessions", type=int, default=10)
    parser.add_argument("--wave-fps", type=float, default=2.0)
    parser.add_argument("--wave-s", type=float, default=90.0)
    parser.add_argument("--after-s", type=float, default=120.0)
    parser.add_argument("--downscale-delay-s", type=float, default=30.0)
    parser.add_argument("--max-workers", type=int, default=3)
    opts = parser.parse_args()

    from contextlib import ExitStack

    from tests.postgres_server import create_database, postgres_server

    stack = ExitStack()
    admin_url = stack.enter_context(postgres_server())
    cluster = AutoscalingCluster(head_cpus=2, worker_cpus=1, max_workers=opts.max_workers, idle_timeout_s=20,
                                 env_extra={"RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
                                            "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"})
    try:
        store_url = create_database(admin_url, f"proctor_scale_{uuid.uuid4().hex[:8]}")
        cluster.start()
        http_port = free_port()
        config = yaml.safe_load((ROOT / "config" / "serve.yaml").read_text())
        config["proxy_location"] = "HeadOnly"
        config["http_options"]["port"] = http_port
        args = config["applications"][0]["args"]
        shared = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models"))
        if not (ROOT / args["detector"]["weights"]).exists():
            args["detector"]["weights"] = str(shared / "yolov8n_coco_dequant.pt")
        args["ingress"]["store_url"] = store_url
        args["detector_gate"]["enabled"] = False
        scaling = {}
        for deployment in config["applications"][0]["deployments"]:
            if "autoscaling_config" in deployment:
                deployment["autoscaling_config"]["downscale_delay_s"] = opts.downscale_delay_s
                scaling[deployment["name"]] = deployment["autoscaling_config"]
        config_path = cluster.tmp / "serve.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        cluster.serve_deploy(config_path)
        url = f"http://127.0.0.1:{http_port}"
        if not wait_healthy(url, timeout=300, interval=2):
            raise RuntimeError("the app did not become healthy")

        def sample() -> dict:
            return {"replicas": cluster.serve_replicas(), "nodes": len(cluster.alive_nodes())}

        phases = [Phase(20, 2, 1.0), Phase(opts.wave_s, opts.wave_sessions, opts.wave_fps), Phase(opts.after_s, 1, 0.2)]
        frames = common.clip_frames(10_000, "webcam_gaze_center_left_center.mp4", size=(640, 480))[::8]
        result = asyncio.run(run_ramp(url, {}, frames, phases, sample, sample_every_s=2))
    finally:
        cluster.stop()
        stack.close()

    step, quiet = result.phase_starts[1], result.phase_starts[2]
    first_extra = next((s["t"] for s in result.timeline if s["t"] >= step and "replicas" in s
                        and max(s["replicas"].get("ObjectDetector", 0), s["replicas"].get("FaceGaze", 0)) >= 2), None)
    first_node = next((s["t"] for s in result.timeline if s["t"] >= step and s.get("nodes", 0) >= 2), None)
    back_down = next((s["t"] for s in result.timeline if s["t"] >= quiet and s.get("nodes") == 1
                      and s.get("replicas", {}).get("ObjectDetector") == 1), None)
    lost = {sid: (summary.get("frames"), result.answered(sid)) for sid, summary in result.summaries.items()
            if summary.get("frames") != result.answered(sid)}
    statuses: dict[str, int] = {}
    for _, _, status, _ in result.records:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    report = {
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "phases": [vars(p) for p in phases], "phase_starts_s": result.phase_starts,
        "autoscaling_config": scaling,
        "step_to_first_extra_replica_s": None if first_extra is None else round(first_extra - step, 1),
        "step_to_first_extra_node_s": None if first_node is None else round(first_node - step, 1),
        "quiet_to_one_node_one_detector_s": None if back_down is None else round(back_down - quiet, 1),
        "statuses": statuses, "sessions": len(result.summaries), "sessions_with_frames_lost": lost,
        "resident_session": {"frames": result.resident_state.get("frames"),
                             "rebuilt_frames": result.resident_state.get("rebuilt_frames")},
        "windows": result.windows(5.0), "timeline": result.timeline,
    }
    (ROOT / "bench" / "results" / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, ROOT / "docs" / "scale.png")
    write_markdown(report, ROOT / "docs" / "PERFORMANCE.md")
    print(json.dumps({k: v for k, v in report.items() if k not in ("windows", "timeline")}, indent=2))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = report["windows"]
    t = [w["from_s"] for w in windows]
    fig, (top, mid, low) = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    top.plot(t, [w["offered_fps"] for w in windows], label="offered frames/s", color="tab:grey")
    top.plot(t, [w["served_fps"] for w in windows], label="served frames/s", color="tab:green")
    top.plot(t, [w["refused_fps"] for w in windows], label="refused (503) frames/s", color="tab:red", lw=0.8)
    top.legend(fontsize=8)
    mid.plot(t, [w["p95_ms"] or float("nan") for w in windows], color="tab:purple", label="p95 ms (5 s windows)")
    mid.set_yscale("log")
    mid.legend(fontsize=8)
    samples = [s for s in report["timeline"] if "replicas" in s]
    st = [s["t"] for s in samples]
    for name, color in (("ObjectDetector", "tab:red"), ("FaceGaze", "tab:blue"), ("Ingress", "tab:olive")):
        low.step(st, [s["replicas"].get(name, 0) for s in samples], where="post", color=color, label=f"{name} replicas")
    low.step(st, [s["nodes"] for s in samples], where="post", color="black", ls="--", label="nodes")
    low.legend(fontsize=8)
    low.set_xlabel("seconds")
    for ax in (top, mid, low):
        for start in report["phase_starts_s"][1:]:
            ax.axvline(start, color="black", lw=0.6, ls=":")
    fig.suptitle("A wave on an autoscaling Ray cluster (one machine, fake multi-node provider)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_markdown(report: dict, path: Path) -> None:
    wave = report["phases"][1]
    rows = [w for w in report["windows"] if w["offered_fps"] > 0]
    lines = [f"Produced by `{report['command']}` on {report['machine']}: a head and autoscaled worker "
             "nodes of 1 logical CPU on this one machine (they share its cores). Load: 2 sessions x 1 frame/s, then "
             f"{wave['sessions']} x {wave['fps']:g} from {report['phase_starts_s'][1]:.0f} s, then 1 session from "
             f"{report['phase_starts_s'][2]:.0f} s; detector gate off.", "",
             "![replicas, nodes, frames and p95 over the wave](scale.png)", "",
             f"- Load step to the first extra replica running: **{report['step_to_first_extra_replica_s']} s**; "
             f"to the first added node: {report['step_to_first_extra_node_s']} s.",
             f"- Wave's end to one node and one ObjectDetector again: {report['quiet_to_one_node_one_detector_s']} s "
             f"(downscale delay {report['autoscaling_config'].get('ObjectDetector', {}).get('downscale_delay_s')} s "
             "here, then the node's idle timeout).",
             f"- Answers: {report['statuses']}; sessions whose stored frames differ from the frames they were "
             f"answered: {len(report['sessions_with_frames_lost'])} of {report['sessions']}.",
             f"- The session open all along: {report['resident_session']['frames']} frames, "
             f"{report['resident_session']['rebuilt_frames']} replayed from the store by a rebuilt actor.", "",
             "| from s | offered fps | served fps | refused fps | p95 ms | ObjectDetector | FaceGaze | nodes |",
             "|---|---|---|---|---|---|---|---|"]
    for w in rows[::2]:
        replicas = w.get("replicas", {})
        lines.append(f"| {w['from_s']:.0f} | {w['offered_fps']} | {w['served_fps']} | {w['refused_fps']} | "
                     f"{w['p95_ms']} | {replicas.get('ObjectDetector', '')} | {replicas.get('FaceGaze', '')} | "
                     f"{w.get('nodes', '')} |")
    common.write_generated_section(path, "make scale", "\n".join(lines), "## Autoscaling (issue 14)")


if __name__ == "__main__":
    main()
