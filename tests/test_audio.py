"""Audio without Ray: the WAV chunk checks, silero-vad's real ONNX model on speech made at test time
(espeak-ng) and on room noise and music-like tones, the risk rules that turn speech and the mouth
into SPEECH_DETECTED and SECOND_VOICE (explicit times), and the evidence ring."""
from __future__ import annotations

import base64
import struct

import numpy as np
import pytest

from audio.clip import AudioRing, waveform
from audio.pcm import parse_audio_payload, parse_wav, wav_bytes
from audio.vad import SileroVad, SpeechStream
from contracts import SpeechBlock
from devtools import speech as synth
from errors import AudioError, AudioProblem
from risk.engine import RiskEngine
from risk.observation import Observation
from risk.voice import AudioObservation
from settings import AudioConfig, RiskConfig

needs_espeak = pytest.mark.skipif(not synth.espeak_available(), reason=(
    "needs Debian's espeak-ng (scripts/install_system_deps.sh installs it)"))


# ---- the WAV chunk --------------------------------------------------------------------------------
def _wav(pcm: bytes, channels: int = 1, rate: int = 16000, bits: int = 16, tag: int = 1, data_size: int | None = None):
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
            + b"data" + struct.pack("<I", len(pcm) if data_size is None else data_size) + pcm)


def test_a_16k_mono_pcm_wav_is_read_exactly():
    pcm = np.arange(-800, 800, dtype="<i2").tobytes()
    chunk = parse_wav(_wav(pcm), max_chunk_s=2)
    assert chunk.pcm == pcm and chunk.samples == 1600 and chunk.duration_s == pytest.approx(0.1)
    assert parse_wav(wav_bytes(pcm), 2).pcm == pcm  # what the service writes, it reads
    assert parse_wav(_wav(pcm, data_size=0xFFFFFFFF), 2).pcm == pcm  # a streaming writer's "unknown" size
    b64 = base64.b64encode(_wav(pcm)).decode()
    assert parse_audio_payload(b64, 2).pcm == pcm
    assert parse_audio_payload("data:audio/wav;base64," + b64, 2).pcm == pcm


@pytest.mark.parametrize("data, problem, words", [
    (b"", AudioProblem.MALFORMED, "empty"),
    (b"\xff\xd8\xff\xe0 a jpeg, not audio", AudioProblem.UNSUPPORTED, "not a WAV"),
    (_wav(b"\0\0" * 100, channels=2), AudioProblem.UNSUPPORTED, r"2 channel\(s\), 16000 Hz, 16-bit"),
    (_wav(b"\0\0" * 100, rate=44100), AudioProblem.UNSUPPORTED, "44100 Hz"),
    (_wav(b"\0" * 100, bits=8), AudioProblem.UNSUPPORTED, "8-bit"),
    (_wav(b"\0\0" * 100, tag=3), AudioProblem.UNSUPPORTED, "not PCM"),
    (_wav(b"\0\0" * 100, data_size=4000), AudioProblem.CORRUPT, "truncated"),
    (_wav(b"\0" * 101), AudioProblem.CORRUPT, "half a sample"),
    (_wav(b""), AudioProblem.MALFORMED, "no samples"),
    (_wav(b"\0\0" * 40000), AudioProblem.TOO_LARGE, "too long"),
    (b"RIFF\x10\x00\x00\x00WAVEdata", AudioProblem.CORRUPT, "no format chunk"),
])
def test_bad_chunks_are_refused_naming_the_problem(data, problem, words):
    with pytest.raises(AudioError, match=words) as caught:
        parse_wav(data, max_chunk_s=2.0)
    assert caught.value.problem is problem


def test_bad_base64_audio_is_malformed():
    for text in ("", "   ", "not base64!!", "data:audio/wav,plain"):
        with pytest.raises(AudioError) as caught:
            parse_audio_payload(text, 2.0)
        assert caught.value.problem is AudioProblem.MALFORMED
    with pytest.raises(AudioError) as caught:
        parse_audio_payload("A" * 200_000, 2.0)  # refused by length before decoding
    assert caught.value.problem is AudioProblem.TOO_LARGE


# ---- the speech model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


def _stream_flags(vad: SileroVad, signal: np.ndarray, chunk_s: float = 0.5) -> np.ndarray:
    stream = SpeechStream(vad, AudioConfig())
    return np.concatenate([stream.windows(wav[44:], 100.0 + offset).speech for offset, wav in synth.chunks(signal, chunk_s)])


@needs_espeak
def test_speech_is_heard_in_room_noise_and_music_is_not(vad):
    """espeak-ng sentences at -26 dBFS over room noise at -40 dBFS, chunked as a client sends them:
    most speech windows are speech; pure room noise and music-like tones are (nearly) never."""
    clean, truth = synth.speech_track(24, seed=3)
    flags = _stream_flags(vad, synth.at_dbfs(clean, -26) + synth.at_dbfs(synth.room_noise(24, 4), -40))[:len(truth)]
    assert flags[truth].mean() >= 0.85, flags[truth].mean()
    for name, signal in (("room noise", synth.at_dbfs(synth.room_noise(20, 5), -35)),
                         ("melody", synth.at_dbfs(synth.music(20, 6, "melody"), -25)),
                         ("chords", synth.at_dbfs(synth.music(20, 7, "chords"), -25)),
                         ("buzz", synth.at_dbfs(synth.music(20, 8, "buzz"), -25))):
        assert _stream_flags(vad, signal).mean() <= 0.05, name


@needs_espeak
def test_chunk_boundaries_do_not_change_what_is_heard(vad):
    """The stream carries the model's state and the samples short of a window across chunks: cut at
    0.37 s or at 1 s, the same windows come out (the boundary is invisible)."""
    signal = synth.speech(synth.SENTENCES[0])
    a = SpeechStream(vad, AudioConfig())
    b = SpeechStream(vad, AudioConfig())
    pa = np.concatenate([a.windows(w[44:], 5.0 + t).probabilities for t, w in synth.chunks(signal, 0.37)])
    pb = np.concatenate([b.windows(w[44:], 5.0 + t).probabilities for t, w in synth.chunks(signal, 1.0)])
    n = min(len(pa), len(pb))
    assert n > 50 and np.allclose(pa[:n], pb[:n], atol=1e-4)
    assert a.position(5.0) == "late" and a.position(a.next_t) == "next" and a.position(a.next_t + 5) == "gap"


def test_a_chunk_after_a_gap_starts_the_model_afresh(vad):
    stream = SpeechStream(vad, AudioConfig())
    noise = synth.pcm16(synth.at_dbfs(synth.room_noise(1, 1), -30))
    stream.feed(noise, 0.0)
    stream.speaking = True  # as if speech had been heard
    stream.feed(noise, 5.0)  # 4 s later: a new stretch of audio
    assert not stream.speaking and stream.next_t == pytest.approx(6.0)


# ---- risk: speech and the mouth -> events -------------------------------------------------------
def _frame(t: float, mouth: float | None = 0.02, faces: int = 1, usable: bool = True) -> Observation:
    return Observation(t=t, faces=faces, gaze="center", yaw=0.0, pitch=0.0, mouth_openness=mouth if faces else None,
                       usable=usable, digest=f"d{t}")


def _chunk(t: float, speech: float, duration: float = 0.512, probability: float = 0.9) -> AudioObservation:
    blocks = [SpeechBlock(t, 0.256, speech, probability), SpeechBlock(t + 0.256, duration - 0.256, speech, probability)]
    return AudioObservation(t, duration, blocks)


def _run(engine: RiskEngine, seconds: float, speech: float, mouth=lambda t: 0.02, faces: int = 1, start: float = 0.0):
    """Frames at 2/s and audio chunks of 0.512 s, interleaved as they would arrive."""
    opened, t_audio, t_frame = [], start, start
    while t_audio < start + seconds:
        while t_frame <= t_audio:
            engine.observe(_frame(t_frame, mouth(t_frame), faces))
            t_frame += 0.5
        opened += [(t_audio, kind) for kind in engine.observe_audio(_chunk(t_audio, speech)).update.opened]
        t_audio += 0.512
    return opened


def test_speech_while_the_mouth_is_still_opens_second_voice():
    engine = RiskEngine(RiskConfig(), started_at=0.0, mode="interview")
    opened = _run(engine, 6.0, speech=1.0)
    assert [kind for _, kind in opened] == ["SECOND_VOICE"]  # interview: SPEECH_DETECTED does not count
    t, _ = opened[0]
    # second_voice_min_s (1.5 s) of speech, then open_after_s (0.5 s) and 2 blocks: ~2-2.6 s in
    assert 1.5 <= t <= 2.6, t
    event = engine.open_events()[0]
    assert event.type == "SECOND_VOICE" and event.peak_confidence == pytest.approx(0.9)


def test_speech_while_the_mouth_moves_is_the_candidate():
    engine = RiskEngine(RiskConfig(), started_at=0.0, mode="interview")
    assert _run(engine, 10.0, speech=1.0, mouth=lambda t: 0.05 if int(t * 2) % 2 else 0.3) == []


def test_speech_with_no_face_in_view_opens_second_voice_and_silence_never():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    assert _run(engine, 10.0, speech=0.0) == []  # a still face and silence: nothing
    assert [k for _, k in _run(engine, 6.0, speech=1.0, faces=0, start=10.0)] == ["SECOND_VOICE"]


def test_without_frames_the_mouth_is_unknown_and_second_voice_waits():
    engine = RiskEngine(RiskConfig(), started_at=0.0, mode="exam")
    opened = []
    for i in range(12):
        opened += engine.observe_audio(_chunk(i * 0.512, 1.0)).update.opened
    assert opened == ["SPEECH_DETECTED"]  # exam mode hears speech; whose voice, the frames must say


def test_exam_mode_counts_speech_and_the_event_closes_after_silence():
    engine = RiskEngine(RiskConfig(), started_at=0.0, mode="exam")
    opened = _run(engine, 6.0, speech=1.0, mouth=lambda t: 0.05 if int(t * 2) % 2 else 0.3)
    assert [k for _, k in opened] == ["SPEECH_DETECTED"]  # the candidate reading aloud, in an exam
    _run(engine, 12.0, speech=0.0, start=6.144)
    speech = next(e for e in engine.events if e.type == "SPEECH_DETECTED")
    assert speech.end is not None and speech.end < 6.144 + 12.0
    summary = engine.finish(20.0)
    assert summary["mode"] == "exam" and summary["violations_by_type"]["SPEECH_DETECTED"]["count"] == 1


def test_pauses_between_words_do_not_split_an_episode():
    """Speech in bursts (0.5 s on, 0.5 s off) with a still mouth: one SECOND_VOICE, not many."""
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    opened, t = [], 0.0
    for i in range(30):
        engine.observe(_frame(t))
        opened += engine.observe_audio(_chunk(t, 1.0 if i % 2 == 0 else 0.0)).update.opened
        t += 0.512
    assert opened == ["SECOND_VOICE"]


def test_late_and_duplicate_chunks_are_answered_not_scored():
    engine = RiskEngine(RiskConfig(), started_at=0.0, mode="exam")
    engine.observe_audio(_chunk(0.0, 1.0))
    engine.observe_audio(_chunk(0.512, 1.0))
    assert engine.observe_audio(_chunk(0.512, 1.0)).update.duplicate
    assert engine.observe_audio(_chunk(0.2, 1.0)).update.late
    assert engine.audio_seconds == pytest.approx(1.024)


def test_replaying_stored_audio_and_frames_rebuilds_the_same_events():
    """The session actor rebuilds from stored rows: frames and audio summaries in their order."""
    first = RiskEngine(RiskConfig(), started_at=0.0, mode="exam")
    rows, t_audio, t_frame = [], 0.0, 0.0
    while t_audio < 8.0:
        while t_frame <= t_audio:
            obs = _frame(t_frame, 0.02 if t_frame < 4 else 0.4 * (int(t_frame * 2) % 2))
            rows.append(obs.to_dict())
            first.observe(obs)
            t_frame += 0.5
        chunk = _chunk(t_audio, 1.0)
        rows.append(chunk.to_dict())
        first.observe_audio(chunk)
        t_audio += 0.512
    second = RiskEngine(RiskConfig(), started_at=0.0, mode="exam")
    for row in rows:
        if row.get("kind") == "audio":
            second.observe_audio(AudioObservation.from_dict(row))
        else:
            second.observe(Observation.from_dict(row))
    assert [e.to_dict() for e in second.events] == [e.to_dict() for e in first.events]
    assert {"SPEECH_DETECTED", "SECOND_VOICE", "TALKING"} == {e.type for e in first.events}
    assert second.score == first.score


# ---- evidence ---------------------------------------------------------------------------------------
def test_the_ring_keeps_the_newest_seconds_and_cuts_exact_clips():
    ring = AudioRing(max_s=2.0)
    second = np.full(16000, 1000, dtype="<i2").tobytes()
    ring.append(10.0, second)
    ring.append(11.0, second)
    ring.append(12.5, second)  # 0.5 s gap: filled with silence
    assert ring.start == pytest.approx(11.5) and ring.end == pytest.approx(13.5)
    start, end, pcm = ring.clip(11.0, 13.0)
    assert (start, end) == (pytest.approx(11.5), pytest.approx(13.0)) and len(pcm) == 1.5 * 32000
    samples = np.frombuffer(pcm, "<i2")
    assert samples[:8000].min() == 1000 and samples[8000:16000].max() == 0 and samples[-1] == 1000
    ring.append(100.0, second)  # a long gap starts it anew
    assert ring.start == 100.0 and ring.clip(11.0, 13.0) is None
    assert AudioRing(0).clip(0, 1) is None  # no clips kept at all
    peaks = waveform(pcm, bins=6)
    assert len(peaks) == 6 and peaks[2] == peaks[3] == 0 and peaks[0] == peaks[-1] == pytest.approx(1000 / 32768, abs=1e-3)
