"""How well the audio path hears speech and tells a second voice, measured on audio made at run time
(nothing recorded is committed or needed):

- speech: espeak-ng sentences in six voices with 1.5-3 s pauses, mixed with room noise (pink noise,
  mains hum, knocks) at several signal-to-noise ratios and at quiet levels;
- non-speech: digital silence, room noise alone at three levels, music-like tones (a two-voice
  melody, held chords, a steady 440 Hz tone, a 120 Hz buzz) and keyboard typing over room noise;
- the mouth: the development clip `webcam_gaze_center.mp4` (a person looking at the screen, mouth
  still) through the real face stage (MediaPipe) at 2 frames/s, looped, as the frames beside the audio.

Everything runs through the service's own code, without Ray: audio/vad.SpeechStream (silero-vad's
ONNX model, 0.5 s chunks as the demo sends them) and risk.engine.RiskEngine (the events). Reported:
speech recall per 32 ms window (after smoothing, and raw at p >= 0.5), the share of sentences that
opened or kept SPEECH_DETECTED / SECOND_VOICE, windows called speech in non-speech, false
SPEECH_DETECTED / SECOND_VOICE per minute of non-speech, and SECOND_VOICE's delay.

    python bench/audio_eval.py            # -> bench/results/audio_eval.json, docs/AUDIO.md (its table)
    python bench/audio_eval.py --minutes 1 --no-write   # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from audio.pcm import SAMPLE_RATE  # noqa: E402
from audio.vad import WINDOW, SileroVad, SpeechStream  # noqa: E402
from devtools import speech as synth  # noqa: E402
from risk.engine import RiskEngine  # noqa: E402
from risk.observation import Observation  # noqa: E402
from risk.voice import AudioObservation  # noqa: E402
from settings import AppConfig  # noqa: E402

CHUNK_S = 0.5
FPS = 2.0
CLIP = "webcam_gaze_center.mp4"
OUT = ROOT / "bench" / "results" / "audio_eval.json"
DOC = ROOT / "docs" / "AUDIO.md"


def clip_faces(limit_s: float):
    """The clip's frames at FPS through the real face stage: [(offset s, FaceResult)], one loop."""
    from vision.evaluation import read_video
    from vision.face_gaze import FaceGazeAnalyzer

    fixtures = Path(os.environ.get("PROCTOR_TEST_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    analyzer = FaceGazeAnalyzer(AppConfig().face_gaze)
    stride = round(synth_clip_fps(fixtures / "videos" / CLIP) / FPS)
    faces = [(index / (stride * FPS), analyzer.analyze(frame))
             for index, frame in read_video(fixtures / "videos" / CLIP, stride)]
    return faces[:int(limit_s * FPS)] or faces


def synth_clip_fps(path: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 24.0
    capture.release()
    return fps


def run(signal: np.ndarray, vad: SileroVad, faces=None, mode: str = "interview", cfg: AppConfig | None = None):
    """The signal in 0.5 s chunks (and, with `faces`, the clip's frames at 2/s beside it, looping),
    through the speech model and a fresh RiskEngine. Returns (per-window smoothed flags, raw
    probabilities, the engine)."""
    cfg = cfg or AppConfig()
    stream = SpeechStream(vad, cfg.audio)
    engine = RiskEngine(cfg.risk, 0.0, mode)
    flags, probabilities = [], []
    next_frame, frame_index = 0.0, 0
    for offset, wav in synth.chunks(signal, CHUNK_S):
        while faces is not None and next_frame <= offset:
            _, face = faces[frame_index % len(faces)]
            engine.observe(Observation.from_results(next_frame, face, [], cfg.risk.gaze),
                           face.quality.issues)
            next_frame, frame_index = next_frame + 1 / FPS, frame_index + 1
        windows = stream.windows(wav[44:], offset)
        flags.append(windows.speech)
        probabilities.append(windows.probabilities)
        blocks = [b for b in _blocks(windows, cfg.audio.block_windows)]
        engine.observe_audio(AudioObservation(offset, (len(wav) - 44) / 2 / SAMPLE_RATE, blocks))
    engine.finish(len(signal) / SAMPLE_RATE)
    return np.concatenate(flags), np.concatenate(probabilities), engine


def _blocks(windows, per_block):
    from audio.vad import blocks

    return blocks(windows, per_block)


def utterances(truth: np.ndarray, min_gap_windows: int = 20) -> list[tuple[float, float]]:
    """The sentences of a speech track: runs of audible windows merged across short gaps (s)."""
    spans, start, last = [], None, None
    for i, on in enumerate(truth):
        if on:
            if start is None or i - last > min_gap_windows:
                if start is not None:
                    spans.append((start, last + 1))
                start = i
            last = i
    if start is not None:
        spans.append((start, last + 1))
    w = WINDOW / SAMPLE_RATE
    return [(a * w, b * w) for a, b in spans]


def covered(events, kind: str, spans: list[tuple[float, float]], after_s: float = 1.0) -> float:
    """Share of the sentences during which (or within `after_s` of whose end) an event of `kind` was open."""
    hits = 0
    for start, end in spans:
        hits += any(e.type == kind and e.start <= end + after_s and (e.end is None or e.end >= start) for e in events)
    return hits / len(spans) if spans else 0.0


def per_minute(events, kind: str, seconds: float) -> float:
    return round(sum(e.type == kind for e in events) * 60 / seconds, 2)


def speech_cases(minutes: float, vad: SileroVad, faces) -> list[dict]:
    seconds = minutes * 60
    clean, truth = synth.speech_track(seconds, seed=11)
    audible = np.repeat(truth, WINDOW)
    active_rms_db = 20 * np.log10(np.sqrt(np.mean(clean[:len(audible)][audible] ** 2)))
    rows = []
    for name, speech_dbfs, noise_dbfs in (("SNR 30 dB", -20, -50), ("SNR 20 dB", -20, -40), ("SNR 10 dB", -20, -30),
                                          ("SNR 5 dB", -20, -25), ("SNR 0 dB", -20, -20),
                                          ("quiet voice (-35 dBFS), SNR 20 dB", -35, -55),
                                          ("whisper level (-45 dBFS), SNR 10 dB", -45, -55)):
        # scale so the *active* speech sits at speech_dbfs
        gain = 10 ** ((speech_dbfs - active_rms_db) / 20)
        signal = clean * gain + synth.at_dbfs(synth.room_noise(seconds, seed=21), noise_dbfs)
        flags, probabilities, interview = run(signal, vad, faces, "interview")
        _, _, exam = run(signal, vad, None, "exam")
        n = min(len(flags), len(truth))
        spans = utterances(truth[:n])
        opened = [e for e in interview.events if e.type == "SECOND_VOICE"]
        delays = [min((e.start - s for e in opened if e.start >= s - 0.5), default=None) for s, _ in spans]
        delays = [d for d in delays if d is not None and d < 6]
        rows.append({
            "case": name, "speech_dbfs": speech_dbfs, "noise_dbfs": noise_dbfs, "seconds": seconds,
            "sentences": len(spans),
            "window_recall": round(float(flags[:n][truth[:n]].mean()), 3),
            "window_recall_raw": round(float((probabilities[:n] >= 0.5)[truth[:n]].mean()), 3),
            "speech_detected_sentences": round(covered(exam.events, "SPEECH_DETECTED", spans), 3),
            "second_voice_sentences": round(covered(interview.events, "SECOND_VOICE", spans), 3),
            "second_voice_events": len(opened),
            "second_voice_delay_s_median": round(float(np.median(delays)), 2) if delays else None,
        })
    return rows


def quiet_cases(minutes: float, vad: SileroVad, faces) -> list[dict]:
    seconds = minutes * 60
    rows = []
    cases = [("digital silence", np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32))]
    cases += [(f"room noise {db} dBFS", synth.at_dbfs(synth.room_noise(seconds, seed=31 - db), db)) for db in (-50, -40, -30)]
    for kind in ("melody", "chords", "tone", "buzz", "typing"):
        for db in (-30, -20):
            cases.append((f"{kind} {db} dBFS + room noise", synth.at_dbfs(synth.music(seconds, 41, kind), db)
                          + synth.at_dbfs(synth.room_noise(seconds, seed=51), -50)))
    for name, signal in cases:
        flags, probabilities, interview = run(signal, vad, faces, "interview")
        _, _, exam = run(signal, vad, None, "exam")
        rows.append({
            "case": name, "seconds": seconds,
            "windows_called_speech": round(float(flags.mean()), 4),
            "windows_raw_over_0.5": round(float((probabilities >= 0.5).mean()), 4),
            "speech_detected_per_min": per_minute(exam.events, "SPEECH_DETECTED", seconds),
            "second_voice_per_min": per_minute(interview.events, "SECOND_VOICE", seconds),
        })
    return rows


def markdown(result: dict) -> str:
    lines = [f"Command: `{result['command']}` ({result['minutes']} min of audio per case; {result['clip_frames']} "
             f"frames of `{CLIP}` at {FPS:g}/s through the real face stage, mouth range "
             f"{result['clip_mouth_range']:.3f}; mouth state of the still clip: {result['clip_mouth_states']}).", "",
             "Speech (espeak-ng, six voices, with room noise). Recall per 32 ms window after smoothing (raw p >= 0.5); "
             "sentences during which SPEECH_DETECTED (exam mode, no frames) or SECOND_VOICE (interview mode, the still "
             "clip as the camera) was open; SECOND_VOICE's median delay from a sentence's start:", "",
             "| case | sentences | window recall (raw) | SPEECH_DETECTED | SECOND_VOICE | delay |",
             "|---|---|---|---|---|---|"]
    for r in result["speech"]:
        delay = f"{r['second_voice_delay_s_median']:.1f} s" if r["second_voice_delay_s_median"] is not None else "-"
        lines.append(f"| {r['case']} | {r['sentences']} | {r['window_recall']:.1%} ({r['window_recall_raw']:.1%}) | "
                     f"{r['speech_detected_sentences']:.0%} | {r['second_voice_sentences']:.0%} | {delay} |")
    lines += ["", "Non-speech: windows called speech (raw p >= 0.5), and false events per minute (SPEECH_DETECTED in "
              "exam mode; SECOND_VOICE in interview mode with the still clip as the camera):", "",
              "| case | windows called speech (raw) | SPEECH_DETECTED / min | SECOND_VOICE / min |", "|---|---|---|---|"]
    for r in result["non_speech"]:
        lines.append(f"| {r['case']} | {r['windows_called_speech']:.2%} ({r['windows_raw_over_0.5']:.2%}) | "
                     f"{r['speech_detected_per_min']:.2f} | {r['second_voice_per_min']:.2f} |")
    totals = result["false_alarms_total"]
    lines += ["", f"All non-speech together ({totals['minutes']:.0f} min): {totals['speech_detected']} false "
              f"SPEECH_DETECTED, {totals['second_voice']} false SECOND_VOICE."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="minutes of audio per case")
    parser.add_argument("--no-write", action="store_true", help="print only")
    opts = parser.parse_args()
    if not synth.espeak_available():
        raise SystemExit("needs espeak-ng (apt-get install espeak-ng)")
    started = time.time()
    vad = SileroVad(AppConfig().audio.vad_model)
    faces = clip_faces(60)
    mouths = [f.expression.mouth_openness for _, f in faces if f.expression]
    probe = RiskEngine(AppConfig().risk, 0.0)
    states = []
    for i, (_, face) in enumerate(faces):
        probe.observe(Observation.from_results(i / FPS, face, [], AppConfig().risk.gaze), face.quality.issues)
        states.append(probe.voice.mouth_at(i / FPS))
    result = {
        "command": "python bench/audio_eval.py " + " ".join(sys.argv[1:]),
        "minutes": opts.minutes,
        "clip_frames": len(faces),
        "clip_mouth_range": round(max(mouths) - min(mouths), 4) if mouths else None,
        "clip_mouth_states": {s: states.count(s) for s in sorted(set(states))},
        "speech": speech_cases(opts.minutes, vad, faces),
        "non_speech": quiet_cases(opts.minutes, vad, faces),
    }
    quiet = result["non_speech"]
    result["false_alarms_total"] = {
        "minutes": sum(r["seconds"] for r in quiet) / 60,
        "speech_detected": round(sum(r["speech_detected_per_min"] * r["seconds"] / 60 for r in quiet)),
        "second_voice": round(sum(r["second_voice_per_min"] * r["seconds"] / 60 for r in quiet))}
    result["wall_s"] = round(time.time() - started, 1)
    text = markdown(result)
    print(text)
    if not opts.no_write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        from common import write_generated_section

        write_generated_section(DOC, "audio_eval", text, heading="## Accuracy (bench/audio_eval.py)")
        print(f"wrote {OUT.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
