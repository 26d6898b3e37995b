"""Audio made at test time for the tests and benchmarks: speech from Debian's espeak-ng (a real
synthesiser, `apt-get install espeak-ng`: scripts/install_system_deps.sh), room noise, music-like
tones, mixed at chosen levels, and cut into the WAV chunks a client sends. All 16 kHz mono float32
in -1..1 until `pcm16`. Nothing here is committed audio: every signal is generated from a seed.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np

RATE = 16000
ESPEAK = "espeak-ng"
SENTENCES = (
    "The answer to question four is the second option.",
    "Write down seventeen, then divide it by three.",
    "Psst, look at the formula on the left side of the page.",
    "I think it is photosynthesis, the light reaction.",
    "Tell them the capital is Canberra, not Sydney.",
    "Use a hash map, it makes the lookup constant time.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en+m3", "en-us+f4")


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def speech(text: str, voice: str = "en-us", words_per_minute: int = 160) -> np.ndarray:
    """espeak-ng saying `text`, resampled from its 22,050 Hz to 16 kHz, peak-normalised to 0.9."""
    from scipy.signal import resample_poly

    out = subprocess.run([ESPEAK, "-v", voice, "-s", str(words_per_minute), "--stdout", text],
                         capture_output=True, check=True, timeout=60).stdout
    with wave.open(io.BytesIO(out)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if rate != RATE:
        g = np.gcd(rate, RATE)
        samples = resample_poly(samples, RATE // g, rate // g).astype(np.float32)
    return (0.9 * samples / max(1e-6, float(np.abs(samples).max()))).astype(np.float32)


def active_mask(clean: np.ndarray, window: int = 512, floor_db: float = -40.0) -> np.ndarray:
    """Ground truth per 512-sample window of a clean (noise-free) signal: where it is audible,
    i.e. its RMS within 40 dB of the loudest window (espeak's silences are digital zeros)."""
    n = len(clean) // window
    rms = np.sqrt((clean[:n * window].reshape(n, window) ** 2).mean(axis=1) + 1e-12)
    return 20 * np.log10(rms / rms.max()) > floor_db


def room_noise(seconds: float, seed: int) -> np.ndarray:
    """A quiet room: pink noise (1/f, like fans and traffic), a 50 Hz mains hum with harmonics, and
    the odd soft knock; unit RMS (scale it with `at_dbfs`)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    noise /= noise.std()
    t = np.arange(n) / RATE
    noise += 0.3 * sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    for at in rng.uniform(0, seconds, int(seconds / 7)):  # a knock every ~7 s
        i = int(at * RATE)
        knock = rng.standard_normal(400) * np.exp(-np.arange(400) / 60) * 4
        noise[i:i + 400] += knock[:len(noise[i:i + 400])]
    return (noise / noise.std()).astype(np.float32)


def music(seconds: float, seed: int, kind: str = "melody") -> np.ndarray:
    """Non-speech sounds, unit RMS: `melody` (notes of harmonic tones with vibrato, two voices),
    `chords` (held triads changing every second), `tone` (a steady 440 Hz), `buzz` (a 120 Hz
    sawtooth-like harmonic series, what fooled webrtcvad in the notes), `typing` (keyboard clicks)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    if kind == "typing":  # keyboard clicks: 3-8 a second, each a few ms of filtered noise
        out = np.zeros(n)
        at = 0.0
        while at < seconds:
            i = int(at * RATE)
            click = rng.standard_normal(120) * np.exp(-np.arange(120) / 25) * rng.uniform(0.5, 1.5)
            out[i:i + 120] += click[:len(out[i:i + 120])]
            at += rng.uniform(0.12, 0.33)
        out += 0.01 * rng.standard_normal(n)
    elif kind == "tone":
        out = np.sin(2 * np.pi * 440 * t)
    elif kind == "buzz":
        out = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 30))
    else:
        out = np.zeros(n)
        step = 0.25 if kind == "melody" else 1.0
        scale = 220 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
        for start in np.arange(0, seconds, step):
            i0, i1 = int(start * RATE), min(n, int((start + step) * RATE))
            tt = t[i0:i1] - start
            envelope = np.minimum(1, tt / 0.02) * np.exp(-tt * (3 if kind == "melody" else 0.5))
            notes = [rng.choice(scale)] if kind == "melody" else [scale[0] * r for r in (1, 1.25, 1.5)]
            if kind == "melody":
                notes.append(notes[0] * 1.5)
            for f in notes:
                vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * tt)
                out[i0:i1] += envelope * sum(np.sin(2 * np.pi * f * k * vibrato * tt) / k ** 1.5 for k in range(1, 6))
    out = np.asarray(out, dtype=np.float64)
    return (out / out.std()).astype(np.float32)


def at_dbfs(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """The signal scaled to this RMS level (dB relative to full scale)."""
    rms = float(np.sqrt(np.mean(signal.astype(np.float64) ** 2))) or 1.0
    return (signal * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def speech_track(seconds: float, seed: int, gap_s: tuple[float, float] = (1.5, 3.0),
                 voices: tuple[str, ...] = VOICES) -> tuple[np.ndarray, np.ndarray]:
    """Sentences in turn (voices and sentences rotated by the seed) with silent gaps between, for
    `seconds`; returns (clean speech, ground-truth mask per 512-sample window)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE), dtype=np.float32)
    at, i = int(rng.uniform(*gap_s) * RATE), seed
    while at < len(out):
        said = speech(SENTENCES[i % len(SENTENCES)], voices[i % len(voices)])
        out[at:at + len(said)] = said[:len(out) - at]
        at += len(said) + int(rng.uniform(*gap_s) * RATE)
        i += 1
    return out, active_mask(out)


def pcm16(signal: np.ndarray) -> bytes:
    return (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()


def wav_file(signal: np.ndarray, rate: int = RATE) -> bytes:
    """A whole WAV file (e.g. Chromium's fake microphone)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16(signal))
    return buf.getvalue()


def chunks(signal: np.ndarray, seconds: float = 0.5) -> list[tuple[float, bytes]]:
    """The signal as a client sends it: (offset of the first sample in s, WAV chunk) every `seconds`."""
    from audio.pcm import wav_bytes

    step = int(seconds * RATE)
    return [(i / RATE, wav_bytes(pcm16(signal[i:i + step]))) for i in range(0, len(signal), step)]
