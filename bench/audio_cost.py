"""What audio costs: CPU per second of audio, and whether frames stay as fast with audio on.

1. The speech model alone (audio/vad.py, in this process): CPU ms per second of audio for one
   stream, and for 10 streams fed at once from worker threads as the ingress does.
2. The running app (a Proctor of this script's own on a local Ray, config/serve.yaml, real models):
   10 sessions, each streaming webcam frames at 1/s (bench/load.py's clip) over HTTP, in phases:
   frames only, then frames plus each session's microphone (WAV chunks of espeak-ng speech and room
   noise, in real time, over POST /analyze-audio; one phase per `--chunk-s`, 0.5 s and 1 s by
   default), then frames only again. CPU of every process
   of this Ray (sampled each second, by kind: Ingress, session actors, ...) and the frames' latency
   in each phase. CPU per second of audio = (CPU with audio - CPU without, the mean of the two
   frames-only phases) / seconds of audio served.

    python bench/audio_cost.py      # -> bench/results/audio_cost.json, docs/AUDIO.md (its table)

On the 2-core development machine other work shares the cores: compare the phases of one run.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402
from audio.vad import SileroVad, SpeechStream  # noqa: E402
from cpu_per_frame import CpuSampler  # noqa: E402
from devtools import speech as synth  # noqa: E402
from settings import AppConfig  # noqa: E402

OUT = ROOT / "bench" / "results" / "audio_cost.json"
DOC = ROOT / "docs" / "AUDIO.md"
MODEL_CHUNK_S = 0.5  # the speech model alone is fed 0.5 s chunks


def microphone(seconds: float, chunk_s: float) -> list[bytes]:
    """A candidate's microphone: speech about half the time, over room noise; WAV chunks of chunk_s."""
    clean, _ = synth.speech_track(seconds, seed=5)
    signal = synth.at_dbfs(clean, -26) + synth.at_dbfs(synth.room_noise(seconds, 6), -50)
    return [wav for _, wav in synth.chunks(signal, chunk_s)]


def model_cost(chunks: list[bytes], streams: int) -> dict:
    """CPU per second of audio of the speech model: `streams` streams fed at once from threads."""
    vad = SileroVad(AppConfig().audio.vad_model)
    cfg = AppConfig().audio
    SpeechStream(vad, cfg).feed(chunks[0][44:], 0.0)  # warm-up
    per_stream = [SpeechStream(vad, cfg) for _ in range(streams)]
    audio_s = len(chunks) * MODEL_CHUNK_S * streams
    started, cpu0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(streams) as pool:
        for i, wav in enumerate(chunks):
            list(pool.map(lambda s: s.feed(wav[44:], i * MODEL_CHUNK_S), per_stream))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - started
    return {"streams": streams, "audio_s": audio_s, "cpu_ms_per_audio_s": round(1000 * cpu / audio_s, 2),
            "wall_ms_per_chunk": round(1000 * wall / len(chunks), 2)}


def own_processes() -> list[psutil.Process]:
    """This script and everything it started (its Ray: GCS, raylet, replicas, session actors)."""
    me = psutil.Process()
    return [me] + me.children(recursive=True)


def kind_of(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline() or [])
    except psutil.Error:
        return "?"
    if proc.pid == os.getpid():
        return "load generator (this script)"
    if cmd.startswith("ray::"):
        name = cmd.split()[0].split(".")[0]
        return "ray::RiskSession actors" if "RiskSession" in name else name
    for needle, kind in (("raylet", "raylet"), ("gcs_server", "gcs_server"), ("dashboard", "Ray dashboard")):
        if needle in cmd:
            return kind
    return "other Ray processes"


async def phase(url: str, sessions: int, seconds: float, frames: list[str], chunks: list[bytes] | None,
                chunk_s: float = 0.0) -> dict:
    """`sessions` sessions for `seconds`: frames at 1/s each, and audio in real time (chunks of chunk_s s)
    when `chunks`."""
    import httpx

    frame_ms, audio_ms, statuses = [], [], {}
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=4 * sessions)) as c:
        started = [(await c.post("/start-session", json={"candidate_id": f"audio-cost-{i}"})).json()
                   for i in range(sessions)]
        t0 = time.monotonic()

        async def frames_of(i: int, session: dict) -> None:
            rng = random.Random(i)
            lag = rng.uniform(0, 1)  # each session keeps its own phase in the second, as cameras do
            await asyncio.sleep(lag)
            tick, first = 0, rng.randrange(len(frames))
            headers = {"Authorization": f"Bearer {session['session_token']}"}
            while (now := time.monotonic() - t0) < seconds:
                sent = time.monotonic()
                r = await c.post("/analyze-frame", headers=headers, json={
                    "session_id": session["session_id"], "frame": frames[(first + tick * 24) % len(frames)],
                    "timestamp": now})
                statuses[f"frame {r.status_code}"] = statuses.get(f"frame {r.status_code}", 0) + 1
                if r.status_code == 200:
                    frame_ms.append(1000 * (time.monotonic() - sent))
                tick += 1
                await asyncio.sleep(max(0.0, t0 + lag + tick + rng.uniform(0, 0.05) - time.monotonic()))

        async def audio_of(i: int, session: dict) -> None:
            headers = {"Authorization": f"Bearer {session['session_token']}"}
            offset, k = random.Random(100 + i).uniform(0, chunk_s), i * 7
            while (due := offset + (k - i * 7 + 1) * chunk_s) < seconds:
                await asyncio.sleep(max(0.0, t0 + due - time.monotonic()))  # a chunk is sent once recorded
                sent = time.monotonic()
                r = await c.post("/analyze-audio", headers=headers, json={
                    "session_id": session["session_id"], "timestamp": due - chunk_s,
                    "audio": base64.b64encode(chunks[k % len(chunks)]).decode()})
                statuses[f"audio {r.status_code}"] = statuses.get(f"audio {r.status_code}", 0) + 1
                if r.status_code == 200:
                    audio_ms.append(1000 * (time.monotonic() - sent))
                k += 1

        tasks = [frames_of(i, s) for i, s in enumerate(started)]
        if chunks:
            tasks += [audio_of(i, s) for i, s in enumerate(started)]
        await asyncio.gather(*tasks)
        for s in started:
            await c.post("/end-session", json={"session_id": s["session_id"]})

    def pct(values, q):
        values = sorted(values)
        return round(values[int(q * (len(values) - 1))], 1) if values else None

    return {"frames_served": len(frame_ms), "frame_ms": {"p50": pct(frame_ms, 0.5), "p95": pct(frame_ms, 0.95)},
            "audio_s_served": len(audio_ms) * chunk_s, "audio_ms": {"p50": pct(audio_ms, 0.5), "p95": pct(audio_ms, 0.95)},
            "statuses": statuses}


def measure_app(sessions: int, seconds: float, chunk_sizes: list[float]) -> dict:
    url, tmp = common.start_own_app()
    try:
        frames = common.clip_frames(clip="webcam_gaze_center_left_center.mp4", size=(640, 480))
        microphones = {size: microphone(60, size) for size in chunk_sizes}
        asyncio.run(phase(url, 2, 10, frames, microphones[chunk_sizes[0]], chunk_sizes[0]))  # warm-up
        rows = {}
        plan = [("frames", None)] + [(f"frames+audio {size:g} s chunks", size) for size in chunk_sizes] + [
            ("frames again", None)]
        for name, size in plan:
            sampler = CpuSampler(processes=own_processes, kind=kind_of).start()
            result = asyncio.run(phase(url, sessions, seconds, frames, microphones.get(size), size or 0.0))
            cpu = sampler.stop()
            rows[name] = {**result, "cpu_s_by_kind": {k: round(v, 2) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])},
                          "cpu_cores_busy": round(sum(cpu.values()) / seconds, 3)}
            print(name, json.dumps(rows[name]), flush=True)
    finally:
        common.stop_own_app(tmp)
    base = {k: (rows["frames"]["cpu_s_by_kind"].get(k, 0) + rows["frames again"]["cpu_s_by_kind"].get(k, 0)) / 2
            for k in set(rows["frames"]["cpu_s_by_kind"]) | set(rows["frames again"]["cpu_s_by_kind"])}
    added_by_size = {}
    for size in chunk_sizes:
        row = rows[f"frames+audio {size:g} s chunks"]
        audio_s = row["audio_s_served"]
        added = {k: round(1000 * (v - base.get(k, 0)) / audio_s, 1) for k, v in row["cpu_s_by_kind"].items()} if audio_s else {}
        added_by_size[f"{size:g}"] = {"by_kind": dict(sorted(added.items(), key=lambda kv: -kv[1])),
                                      "total": round(sum(added.values()), 1) if added else None}
    return {"sessions": sessions, "seconds_per_phase": seconds, "phases": rows,
            "added_cpu_ms_per_audio_s_by_chunk_s": added_by_size}


def markdown(result: dict) -> str:
    model = result["model"]
    lines = [f"Command: `{result['command']}` ({result['machine']}).", "",
             "The speech model alone (silero-vad's `" + AppConfig().audio.vad_model + f"`, {MODEL_CHUNK_S:g} s chunks):", "",
             "| streams at once | CPU per second of audio | wall per chunk (all streams) |", "|---|---|---|"]
    for row in model:
        lines.append(f"| {row['streams']} | {row['cpu_ms_per_audio_s']:.1f} ms | {row['wall_ms_per_chunk']:.1f} ms |")
    app = result.get("app")
    if app:
        phases = app["phases"]
        lines += ["", f"The running app, {app['sessions']} sessions x 1 frame/s, {app['seconds_per_phase']:.0f} s per phase "
                  "(audio: each session's microphone in real time, over HTTP, in chunks of the size the phase names):", "",
                  "| phase | frames served | frame p50 / p95 | audio chunks p50 / p95 | CPU cores busy |", "|---|---|---|---|---|"]
        for name, row in phases.items():
            audio = (f"{row['audio_ms']['p50']} / {row['audio_ms']['p95']} ms" if row["audio_s_served"] else "-")
            lines.append(f"| {name} | {row['frames_served']} | {row['frame_ms']['p50']} / {row['frame_ms']['p95']} ms | "
                         f"{audio} | {row['cpu_cores_busy']:.2f} |")
        lines.append("")
        for size, added in app["added_cpu_ms_per_audio_s_by_chunk_s"].items():
            per_kind = ", ".join(f"{k} {v:+.1f}" for k, v in added["by_kind"].items() if abs(v) >= 0.5)
            lines.append(f"Added CPU per second of audio in {size} s chunks, all processes: **{added['total']} ms** "
                         f"({per_kind}; ms per audio second, against the mean of the two frames-only phases).")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0, help="per phase of the running app")
    parser.add_argument("--model-only", action="store_true", help="skip the running app")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--chunk-s", type=float, nargs="+", default=[0.5, 1.0],
                        help="chunk sizes the app is measured with, one phase each")
    opts = parser.parse_args()
    chunks = microphone(60, MODEL_CHUNK_S)
    result = {"command": "python bench/audio_cost.py " + " ".join(sys.argv[1:]),
              "machine": f"{os.cpu_count()} cores",
              "model": [model_cost(chunks, n) for n in (1, opts.sessions)]}
    print(json.dumps(result["model"]), flush=True)
    if not opts.model_only:
        result["app"] = measure_app(opts.sessions, opts.seconds, opts.chunk_s)
    text = markdown(result)
    print(text)
    if not opts.no_write:
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        common.write_generated_section(DOC, "audio_cost", text, heading="## Cost (bench/audio_cost.py)")
        print(f"wrote {OUT.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
