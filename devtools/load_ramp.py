"""A wave of interviews against a running Proctor: phases of N concurrent sessions, each streaming
real webcam frames at F frames/s (one in flight, like a browser), sessions joining and leaving as
N changes, while a sampler records the cluster's state (replicas, nodes) every few seconds. Used by
the autoscaling test (tests/test_autoscaling.py) and its benchmark (bench/scale.py).

Every frame is recorded (time sent, latency, status, session); every session is ended at the end
and its summary kept, so a caller can check that what was answered was stored.
"""
from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Phase:
    seconds: float
    sessions: int  # concurrent sessions during the phase (the resident ones included)
    fps: float  # frames/s each


@dataclass
class RampResult:
    records: list[tuple[float, float, int | str, str]] = field(default_factory=list)  # (t sent, s, status, session)
    timeline: list[dict[str, Any]] = field(default_factory=list)  # the sampler's readings, with "t"
    summaries: dict[str, dict] = field(default_factory=dict)  # session id -> /end-session's answer
    phase_starts: list[float] = field(default_factory=list)
    resident: str = ""  # the session open from the first phase to the end
    resident_state: dict = field(default_factory=dict)  # its GET /sessions/{id} just before it ended

    def answered(self, session_id: str) -> int:
        return sum(1 for _, _, status, sid in self.records if sid == session_id and status == 200)

    def windows(self, seconds: float = 5.0) -> list[dict[str, Any]]:
        """Per window: frames offered and served per second, p95 of the served, the last sample."""
        end = max((t for t, *_ in self.records), default=0.0)
        out = []
        start = 0.0
        while start <= end:
            rows = [r for r in self.records if start <= r[0] < start + seconds]
            served = sorted(lat * 1000 for _, lat, status, _ in rows if status == 200)
            sample = next((s for s in reversed(self.timeline) if s["t"] < start + seconds), {})
            out.append({"from_s": start, "offered_fps": round(len(rows) / seconds, 2),
                        "served_fps": round(len(served) / seconds, 2),
                        "refused_fps": round(sum(1 for r in rows if r[2] == 503) / seconds, 2),
                        "p50_ms": round(statistics.median(served), 1) if served else None,
                        "p95_ms": round(served[int(0.95 * (len(served) - 1))], 1) if served else None,
                        **{k: v for k, v in sample.items() if k != "t"}})
            start += seconds
        return out


async def run_ramp(url: str, headers: dict[str, str], frames: list[str], phases: list[Phase],
                   sample: Callable[[], dict[str, Any]] | None = None, sample_every_s: float = 2.0,
                   resident_fps: float = 0.2) -> RampResult:
    """Drive the phases. The first phase's first session is resident: it stays open to the end (at
    `resident_fps` when a phase has no room for it), so a caller can see a session live through
    scale-up and scale-down."""
    import httpx

    result = RampResult()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=max(p.sessions for p in phases) * 2 + 4)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:

        async def start_session(tag: str) -> str:
            for _ in range(60):  # the service may refuse while it is full or starting (503): retry
                r = await client.post("/start-session", json={"candidate_id": tag})
                if r.status_code == 200:
                    return r.json()["session_id"]
                await asyncio.sleep(1)
            raise RuntimeError(f"could not start a session: {r.status_code} {r.text}")

        async def stream(session_id: str, fps: Callable[[], float], offset: int, stop: asyncio.Event) -> None:
            tick = 0
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = await client.post("/analyze-frame", json={
                        "session_id": session_id, "frame": frames[(offset + tick) % len(frames)],
                        "timestamp": sent - started})
                    status: int | str = r.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                result.records.append((sent - started, time.monotonic() - sent, status, session_id))
                tick += 1
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, sent + 1 / fps() - time.monotonic()))
                except asyncio.TimeoutError:
                    pass

        async def sampler(done: asyncio.Event) -> None:
            while not done.is_set():
                if sample is not None:
                    try:
                        reading = await asyncio.to_thread(sample)
                        result.timeline.append({"t": round(time.monotonic() - started, 1), **reading})
                    except Exception as exc:  # noqa: BLE001 - a failed reading is a gap, not a failed run
                        result.timeline.append({"t": round(time.monotonic() - started, 1), "error": repr(exc)})
                try:
                    await asyncio.wait_for(done.wait(), timeout=sample_every_s)
                except asyncio.TimeoutError:
                    pass

        sampling_done = asyncio.Event()
        sampling = asyncio.create_task(sampler(sampling_done))
        current_fps = {"resident": phases[0].fps}
        resident = result.resident = await start_session("wave-resident")
        resident_stop = asyncio.Event()
        tasks = {resident: (asyncio.create_task(stream(resident, lambda: current_fps["resident"], 0, resident_stop)),
                            resident_stop)}
        others: list[str] = []
        for index, phase in enumerate(phases):
            result.phase_starts.append(round(time.monotonic() - started, 1))
            current_fps["resident"] = phase.fps if phase.sessions > 0 else resident_fps
            wanted = max(0, phase.sessions - 1)
            while len(others) > wanted:  # sessions leave: stop streaming, end them
                sid = others.pop()
                task, stop = tasks.pop(sid)
                stop.set()
                await task
                result.summaries[sid] = (await client.post("/end-session", json={"session_id": sid})).json()
            new = await asyncio.gather(*(start_session(f"wave-{index}-{i}") for i in range(wanted - len(others))))
            for i, sid in enumerate(new):
                stop = asyncio.Event()
                phase_fps = phase.fps
                tasks[sid] = (asyncio.create_task(stream(sid, lambda f=phase_fps: f, 7 * (len(others) + i + 1), stop)),
                              stop)
            others += list(new)
            await asyncio.sleep(phase.seconds)
        for sid, (task, stop) in list(tasks.items()):
            stop.set()
            await task
            if sid == resident:
                result.resident_state = (await client.get(f"/sessions/{sid}")).json()
            result.summaries[sid] = (await client.post("/end-session", json={"session_id": sid})).json()
        sampling_done.set()
        await sampling
    return result
