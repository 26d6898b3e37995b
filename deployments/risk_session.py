"""RiskSession: one named, detached Ray actor per interview session, holding its risk state.

A thin shell over the pure `risk.engine.RiskEngine`. Every frame's observation summary, every event
change and each event's evidence snapshot is written to the session store, in one transaction,
before `observe` returns. When the actor crashes, Ray restarts it (`max_restarts`) and the
constructor replays the stored observations through a fresh engine: the same score, the same
events, the same event ids. `sessions.directory` is its only caller.

A warm actor is started before its session exists (`warm_ttl_s` set), under the session id the
session will get: it loads the session on its first call. It imports no numpy, OpenCV or model
code (evidence is drawn when served), so it costs little more than an empty Ray worker.

Audio chunks come as speech blocks (the ingress ran the speech model) with their samples: the
actor keeps the newest `risk.voice.evidence_max_s` seconds of samples in memory only
(`audio.clip.AudioRing`), and stores a clip from it only when an audio event opens.
"""
from __future__ import annotations

import threading
import time

import ray

from audio.clip import AudioRing
from audio.pcm import wav_bytes
from contracts import AudioChunk, AudioUpdate, Detection, Detections, FaceResult, RiskUpdate, SpeechBlock
from errors import SessionClosed
from outbox.events import session_ended
from risk.clock import FrameClock
from risk.engine import FrameOutcome, RiskEngine
from risk.observation import Observation
from risk.voice import AudioObservation, is_audio_row
from sessions.status import SessionStatus
from settings import RiskConfig
from store import open_store
from vision.evidence import evidence_overlay

NAMESPACE = "proctor"

# A frame that may become an event's evidence: (time, JPEG, face result, detections).
Candidate = tuple[float, bytes, FaceResult, tuple[Detection, ...]]


def actor_name(session_id: str) -> str:
    return f"risk-session-{session_id}"


@ray.remote(max_restarts=-1, max_task_retries=0)
class RiskSession:
    def __init__(self, session_id: str, risk_config: RiskConfig, store_location: str,
                 warm_ttl_s: float | None = None):
        self.session_id = session_id
        self.cfg = risk_config
        self.store = open_store(store_location)  # an SQLite path or a postgresql:// URL
        self.engine: RiskEngine | None = None
        if warm_ttl_s is None or self.store.get(session_id) is not None:
            self._rebuild()
        else:
            # Unclaimed after warm_ttl_s: the replica that made it is gone, or replaced it. Leave.
            timer = threading.Timer(warm_ttl_s, self._leave_if_unclaimed)
            timer.daemon = True
            timer.start()

    def warm(self) -> bool:
        """Started (the caller waits on this before handing the actor out)."""
        return True

    def _leave_if_unclaimed(self) -> None:
        if self.engine is None and self.store.get(self.session_id) is None:
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def _loaded(self) -> RiskEngine:
        if self.engine is None:
            self._rebuild()  # a warm actor's first call: its session has been created since
        return self.engine

    def _rebuild(self) -> None:
        """The session's state from the store: after a crash, an app restart, or a released end."""
        record = self.store.get(self.session_id)
        if record is None:
            raise ValueError(f"session {self.session_id} is not in the store")
        self.candidate_id = record["candidate_id"]
        self.engine = RiskEngine(self.cfg, record["started_at"], record["mode"], record.get("reference"))
        self.clock = FrameClock(record["clock_offset"])
        self.pending_best: dict[str, Candidate] = {}  # type -> best frame of a pending episode
        # Face descriptors delivered since the last frame; they go into the next frame's observation.
        self.pending_identity: list[dict] = []
        self.enrolment_face: str | None = None  # base64 JPEG of an enrolment face (memory only), for evidence
        # Memory only, never stored whole; lost with the actor (a rebuilt one cuts clips from new audio).
        voice = self.cfg.voice
        self.audio_ring = AudioRing(voice.evidence_max_s + voice.evidence_pre_s if voice.evidence_max_s else 0.0)
        rows = self.store.observations(self.session_id)
        for row in rows:
            if is_audio_row(row["observation"]):
                self.engine.observe_audio(AudioObservation.from_dict(row["observation"]))
            else:
                self.engine.observe(Observation.from_dict(row["observation"]))
        self.seq = rows[-1]["seq"] if rows else 0
        self.rebuilt_frames = len(rows)
        self.finished = not record["status"].live  # rebuilt after the end: read-only

    def observe(self, image_bytes: bytes, face: FaceResult, detections: Detections,
                client_timestamp: float | None, arrival: float) -> RiskUpdate:
        # A frame still in the models when end-session ran arrives after the verdict: refused, so
        # the report never holds a frame the verdict did not see. Calls run one at a time here.
        self._loaded()
        if self.finished:
            raise SessionClosed(f"session {self.session_id} has ended")
        had_offset = self.clock.offset is not None
        t = self.clock.frame_time(client_timestamp, arrival)
        new_offset = self.clock.offset if not had_offset else None
        obs = Observation.from_results(t, face, detections.objects, self.cfg.gaze)
        obs.identity, self.pending_identity = self.pending_identity, []
        stored = obs.to_dict()  # the engine's input, before it marks frozen frames: replay needs it
        outcome = self.engine.observe(obs, face.quality.issues)
        if outcome.update.duplicate:
            self.pending_identity = obs.identity + self.pending_identity  # not stored: the next frame carries them
            return outcome.update  # already recorded when it first arrived

        self.seq += 1
        changed = {e["id"]: e for e in outcome.update.open_events}
        for event in self.engine.events:
            if event.id in outcome.closed_ids:
                changed[event.id] = event.to_dict()  # closed by this frame
        evidence = self._evidence((t, image_bytes, face, detections.objects), outcome)
        self.store.record_frame(self.session_id, self.seq, t, self.engine.score, outcome.update.attention, stored,
                                list(changed.values()), evidence, seen_at=time.time(), clock_offset=new_offset)
        return outcome.update

    def observe_audio(self, chunk: AudioChunk, arrival: float) -> AudioUpdate:
        """Step the audio events over one chunk's speech blocks; store the chunk's summary (never its
        samples) and, for each audio event it opened, the event's clip."""
        self._loaded()
        if self.finished:
            raise SessionClosed(f"session {self.session_id} has ended")
        had_offset = self.clock.offset is not None
        # Without a capture time the chunk ended as it arrived.
        t = self.clock.frame_time(chunk.timestamp, arrival - chunk.duration if chunk.timestamp is None else arrival)
        new_offset = self.clock.offset if not had_offset else None
        obs = AudioObservation(t, chunk.duration, [SpeechBlock(t + b.t, b.duration, b.speech, b.probability)
                                                   for b in chunk.blocks])
        outcome = self.engine.observe_audio(obs)
        update = outcome.update
        if update.late or update.duplicate:
            return update
        if chunk.pcm:
            self.audio_ring.append(t, chunk.pcm)
        self.seq += 1
        changed = {e["id"]: e for e in update.open_events}
        for event in self.engine.events:
            if event.id in outcome.closed_ids:
                changed[event.id] = event.to_dict()
        clips = []
        for event_id, speech_start in (outcome.span_starts or {}).items():
            start = speech_start - self.cfg.voice.evidence_pre_s
            clip = self.audio_ring.clip(max(start, obs.end - self.cfg.voice.evidence_max_s), obs.end)
            if clip is None:  # no clip kept (evidence_max_s: 0, or no samples sent): the span's times alone
                clips.append((event_id, speech_start, obs.end, None))
            else:
                clips.append((event_id, clip[0], clip[1], wav_bytes(clip[2])))
        self.store.record_frame(self.session_id, self.seq, t, self.engine.score, self.engine.attention.value(t),
                                obs.to_dict(), list(changed.values()), [], seen_at=time.time(),
                                clock_offset=new_offset, audio_evidence=clips)
        return update

    def _evidence(self, frame: Candidate, outcome: FrameOutcome) -> list[tuple[str, float, float, bytes, dict]]:
        """The frame with each event's strongest signal and the boxes to draw on it (drawn when
        served: no pixels here). Frames before an event opened are kept in memory (one per type)
        until it opens or the condition clears."""
        t = frame[0]
        out = []
        open_by_type = {e.type: e for e in self.engine.open_events()}
        for kind in outcome.peaks:
            if kind not in open_by_type:
                self.pending_best[kind] = frame
        for kind, event in open_by_type.items():
            if event.peak_time == t:
                best = frame
            elif event.id in outcome.opened_ids and kind in self.pending_best \
                    and self.pending_best[kind][0] == event.peak_time:
                best = self.pending_best[kind]
            else:
                continue
            caption = f"{kind} {event.peak_confidence:.2f} at {time.strftime('%H:%M:%S', time.gmtime(best[0]))} UTC"
            overlay = evidence_overlay(best[2].face_boxes, best[3], caption)
            if kind == "IDENTITY_MISMATCH" and self.enrolment_face:
                overlay["beside"] = {"label": "enrolled face", "jpeg_base64": self.enrolment_face}
            out.append((event.id, best[0], event.peak_confidence, best[1], overlay))
        for kind in list(self.pending_best):
            if kind in open_by_type or self.engine.pending_since(kind) is None:
                del self.pending_best[kind]  # opened (evidence saved) or the condition cleared
        return out

    def identity_result(self, result: dict) -> None:
        """A face descriptor the engine asked for (risk.identity), from the FaceIdentity deployment:
        it is scored with, and stored in, the session's next frame. An enrolment face's image is
        kept in memory only, for the evidence of a later mismatch."""
        self._loaded()
        chip = result.pop("chip_base64", None)
        if chip and result.get("kind") == "enrol" and self.enrolment_face is None:
            self.enrolment_face = chip
        self.pending_identity.append(result)

    def state(self) -> dict:
        return {**self._loaded().state(), "rebuilt_frames": self.rebuilt_frames}

    def finish(self, now: float, status: SessionStatus) -> dict:
        """The verdict and summary, stored with the session's end and its session.ended event in one
        transaction. Called only by the session service, after it claimed the end (status ENDING)."""
        self._loaded()
        if self.finished:
            raise SessionClosed(f"session {self.session_id} has ended")
        summary = self.engine.finish(now)
        summary["status"] = status.value
        if not self.store.finish(self.session_id, status, now, summary, summary["events"],
                                 outbox=[session_ended(self.session_id, self.candidate_id, summary)]):
            self._rebuild()  # the claim was released meanwhile: the engine goes back to what is stored
            raise SessionClosed(f"session {self.session_id} is not being ended")
        self.finished = True
        return summary


def session_actor(session_id: str, risk_config: RiskConfig, store_location: str, num_cpus: float,
                  warm_ttl_s: float | None = None):
    """The session's actor: the running one, or a new one rebuilt from the store (with `warm_ttl_s`:
    a warm one, for a session not created yet). Blocking (a GCS lookup, maybe a creation): call it
    off the event loop."""
    return RiskSession.options(
        name=actor_name(session_id),
        namespace=NAMESPACE,
        lifetime="detached",  # outlives the ingress replica that made it
        get_if_exists=True,  # several ingress replicas may race to (re)create it
        num_cpus=num_cpus,
        # No per-call task events to the GCS (Serve turns them off for its own actors, ray#42076):
        # a frame is one call here, so they cost GCS and actor CPU on every frame.
        enable_task_events=False,
    ).remote(session_id, risk_config, store_location, warm_ttl_s)


def find_session_actor(session_id: str):
    try:
        return ray.get_actor(actor_name(session_id), namespace=NAMESPACE)
    except ValueError:
        return None
