"""What the bench scripts share: real webcam frames from the fixtures, the memory of Ray's processes,
a Proctor of the script's own on a local Ray, and the load generator (K sessions at F frames/s,
each behaving like a browser). Not a benchmark itself; `soak.py`, `load.py`, `cpu_per_frame.py`,
`session_cost.py`, `frame_latency.py`, `stage_costs.py` and `gpu_batch.py` import it."""
from __future__ import annotations

import asyncio
import base64
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


CLIP_FPS = 24  # the fixtures' webcam clips


def clip_frames(limit: int = 10_000, clip: str = "webcam_gaze_center.mp4",
                size: tuple[int, int] | None = None) -> list[str]:
    """Consecutive frames of a fixtures clip as base64 JPEGs (distinct: none looks frozen). With
    `size`, each frame is centre-cropped to that aspect ratio and resized (e.g. 640x480 webcam)."""
    import cv2

    from vision.evaluation import read_video

    fixtures = Path(os.environ.get("PROCTOR_TEST_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    frames = []
    for _, frame in read_video(fixtures / "videos" / clip, 1):
        if size is not None:
            height, width = frame.shape[:2]
            crop_h = min(height, width * size[1] // size[0])
            top = (height - crop_h) // 2
            frame = cv2.resize(frame[top:top + crop_h], size, interpolation=cv2.INTER_AREA)
        frames.append(base64.b64encode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]).decode())
        if len(frames) == limit:
            break
    if not frames:
        raise SystemExit(f"could not read {clip} from the fixtures")
    return frames


def distinct_photos() -> list[str]:
    """Every development photo as a 640x480 JPEG (centre-cropped to 4:3): consecutive frames never
    look alike, so the detector gate never skips (the worst case for it)."""
    import cv2

    fixtures = Path(os.environ.get("PROCTOR_TEST_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    frames = []
    for path in sorted((fixtures / "images").glob("*.jp*g")):
        image = cv2.imread(str(path))
        height, width = image.shape[:2]
        crop_h = min(height, width * 3 // 4)
        crop_w = min(width, crop_h * 4 // 3)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        image = cv2.resize(image[top:top + crop_h, left:left + crop_w], (640, 480), interpolation=cv2.INTER_AREA)
        frames.append(base64.b64encode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]).decode())
    return frames


def ray_memory_mib() -> dict[str, float]:
    """RSS of every Ray process on this machine, by process title (ray::ServeReplica:..., raylet...)."""
    import psutil

    memory: dict[str, float] = {}
    for proc in psutil.process_iter(["pid", "cmdline", "memory_info", "name"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if not proc.info["memory_info"] or ("ray" not in cmd and "gcs_server" not in cmd):
                continue
            if "bench/" in cmd or "pytest" in cmd:
                continue
            # Ray retitles workers with the task they run ("ray::ServeReplica:proctor:Ingress.handle_request"):
            # keep the actor part only, so a process is the same row at the start and at the end.
            title = cmd.split()[0].split(".")[0] if cmd.startswith("ray::") else (proc.info["name"] or "?")
            memory[title] = memory.get(title, 0.0) + proc.info["memory_info"].rss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return {k: round(v, 1) for k, v in sorted(memory.items())}


async def session_loop(client, frames, fps, duration, offset, records, skipped, ends):
    r = await client.post("/start-session", json={"candidate_id": f"soak-{offset}"})
    r.raise_for_status()
    session = r.json()
    token = session.get("session_token")  # the one-process baseline has no auth
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # Candidates' webcams are not in step: each session starts at its own point of the frame
    # interval (seeded, so both systems in a benchmark see the same phases).
    phases = random.Random(offset)
    await asyncio.sleep(phases.uniform(0, 1 / fps))
    # Each session streams the clip in real time from its own random point, looping: frame i shows
    # what the camera saw i / fps seconds later (a 1 frame/s stream skips 23 of the clip's 24).
    first = phases.randrange(len(frames))
    started = time.monotonic()
    tick, in_flight = 0, None

    async def send(index: int, capture_time: float):
        sent = time.monotonic()
        try:
            resp = await client.post("/analyze-frame", headers=headers, json={
                "session_id": session["session_id"], "frame": frames[index % len(frames)], "timestamp": capture_time})
            status = resp.status_code
            if status == 200 and "latency_ms" in resp.json():  # the service's own per-stage split
                STAGE_SPLITS.append(resp.json()["latency_ms"])
                FRAME_KINDS.append((sent - RUN_START, time.monotonic() - sent, resp.json()["objects_reused"],
                                    resp.json()["latency_ms"]))
        except Exception as exc:  # noqa: BLE001 - a soak counts every failure, of any kind
            status = type(exc).__name__
        records.append((sent - RUN_START, time.monotonic() - sent, status))

    while (now := time.monotonic() - started) < duration:
        if in_flight is None or in_flight.done():
            in_flight = asyncio.create_task(send(first + round(tick * CLIP_FPS / fps), now))
        else:
            skipped.append(1)
        tick += 1
        await asyncio.sleep(max(0.0, started + tick / fps - time.monotonic()))
    if in_flight is not None:
        await in_flight
    end = await client.post("/end-session", json={"session_id": session["session_id"]})
    ends.append(end.status_code)


RUN_START = 0.0
STAGE_SPLITS: list[dict[str, float]] = []
# Proctor's 200s: (sent s after start, latency s, objects reused, the service's stage split)
FRAME_KINDS: list[tuple[float, float, bool, dict[str, float]]] = []
LAST_RECORDS: list[tuple[float, float, object]] = []  # (sent s after start, latency s, status) of the last run


async def run_load(url: str, api_key: str | None, sessions: int, fps: float, duration: float,
                   warmup: float, frames: list[str] | None = None) -> dict:
    """Drive the service; `frames` (base64 JPEGs, default: a fixtures clip) are sent in turn."""
    import httpx

    global RUN_START
    STAGE_SPLITS.clear()
    FRAME_KINDS.clear()
    frames = frames or clip_frames()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    records, skipped, ends = [], [], []
    limits = httpx.Limits(max_connections=sessions * 2 + 4)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
        RUN_START = time.monotonic()
        loops = [asyncio.create_task(session_loop(client, frames, fps, duration, i, records, skipped, ends))
                 for i in range(sessions)]
        await asyncio.sleep(warmup)
        memory_start = await asyncio.to_thread(ray_memory_mib)
        # the end sample is taken while the sessions are still open, so the same processes compare
        await asyncio.sleep(max(0.0, RUN_START + duration - 1.0 - time.monotonic()))
        memory_end = await asyncio.to_thread(ray_memory_mib)
        await asyncio.gather(*loops)
    LAST_RECORDS[:] = records
    return summarize(records, skipped, ends, memory_start, memory_end,
                     {"sessions": sessions, "fps": fps, "duration_s": duration, "warmup_s": warmup, "url": url})


def summarize(records, skipped, ends, memory_start, memory_end, params) -> dict:
    statuses = Counter(str(s) for _, _, s in records)
    buckets = {}
    for sent, latency, status in records:
        if status == 200:
            buckets.setdefault(int(sent // 30) * 30, []).append(latency * 1000)

    def pct(values, q):
        values = sorted(values)
        return round(values[min(len(values) - 1, int(q * (len(values) - 1)))], 1)

    over_time = [{"from_s": start, "frames": len(v), "p50_ms": pct(v, 0.5), "p95_ms": pct(v, 0.95)}
                 for start, v in sorted(buckets.items())]
    total_start, total_end = sum(memory_start.values()), sum(memory_end.values())
    growth = {k: round(100 * (memory_end.get(k, 0) - v) / v, 1) for k, v in memory_start.items() if v > 0}
    ok = [lat for _, lat, s in records if s == 200]
    steady = [lat for sent, lat, s in records if s == 200 and sent >= params["warmup_s"]]
    return {
        "params": params,
        "requests": len(records),
        "statuses": dict(statuses),
        "server_errors_other_than_refusals": sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500 and s != "503")
        + sum(n for s, n in statuses.items() if not s.isdigit()),
        "refused_503": statuses.get("503", 0),
        "rate_limited_429": statuses.get("429", 0),
        "skipped_ticks": len(skipped),
        "ended_sessions": Counter(ends),
        "achieved_frames_per_s": round(len(ok) / params["duration_s"], 2),
        "latency_ms": {q: pct([x * 1000 for x in ok], v) if ok else None
                       for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        # Frames sent after the warm-up (sessions started, caches filled): the steady state.
        "latency_ms_steady": {q: pct([x * 1000 for x in steady], v) if steady else None
                              for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "latency_over_time": over_time,
        "stage_ms_p50": {stage: round(statistics.median(s[stage] for s in STAGE_SPLITS), 1)
                         for stage in (STAGE_SPLITS[0] if STAGE_SPLITS else {})},
        "memory_mib_start": memory_start,
        "memory_mib_end": memory_end,
        "memory_total_mib": {"start": round(total_start, 1), "end": round(total_end, 1),
                             "growth_pct": round(100 * (total_end - total_start) / total_start, 1) if total_start else None},
        "memory_growth_pct_by_process": growth,
    }


def write_generated_section(path: Path, name: str, body: str, heading: str = "") -> None:
    """Put `body` between `<!-- {name}: start -->` and `<!-- {name}: end -->` in the markdown file,
    keeping the rest of it; a file without the markers gets them at its end, under `heading`."""
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    generated = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + generated + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + (f"{heading}\n\n" if heading else "") + generated + "\n"
    path.write_text(text)


def start_own_app(overrides: dict[str, dict] | None = None):
    """A Proctor of this process's own on a local Ray: config/serve.yaml's args with `overrides`
    ({section: {key: value}}, e.g. {"detector": {"threads": 1}}) applied. Returns its URL and the
    temp dir to remove after."""
    from ray import serve

    from devtools.local_serve import free_port, start_local_serve
    from graph import compose_app
    from settings import load_args, load_deployment_options

    tmp = Path(tempfile.mkdtemp(prefix="proctor-bench-"))
    args = load_args()
    shared = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models")) / "yolov8n_coco_dequant.pt"
    if not (ROOT / args["detector"]["weights"]).exists() and shared.exists():
        args["detector"]["weights"] = str(shared)
    args["ingress"]["store_path"] = str(tmp / "sessions.sqlite3")
    port = free_port()
    for section, values in (overrides or {}).items():
        args[section].update(values)
    start_local_serve(port, args["ingress"], num_cpus=2, include_dashboard=False,
                      _temp_dir=str(tmp / "ray"), namespace="serve", log_to_driver=False)
    serve.run(compose_app(args, deployment_options=load_deployment_options()), name="proctor", route_prefix="/")
    return f"http://127.0.0.1:{port}", tmp


def stop_own_app(tmp: Path | None) -> None:
    """Stop what `start_own_app` started and remove its temp dir."""
    if tmp is None:
        return
    import shutil

    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


