"""Audio chunks in: a WAV (RIFF/WAVE) of 16 kHz mono 16-bit PCM, as base64 over HTTP or raw bytes
over the WebSocket. Pure code (no Ray, no numpy).

The header is read by hand rather than with `wave`, so every refusal names what is wrong: an
`AudioError` with its `AudioProblem`, which `api/errors.py` maps to 400 / 413 / 422. A streaming
writer's data size (0 or 0xFFFFFFFF: "unknown") is accepted and means "to the end".
"""
from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from errors import AudioError, AudioProblem

SAMPLE_RATE = 16000  # what silero-vad's 16 kHz model takes; the demo's AudioContext records at it
SAMPLE_BYTES = 2  # 16-bit signed little-endian
WAV_HEADER_BYTES = 44  # the canonical header `wav_bytes` writes
_PCM, _EXTENSIBLE = 1, 0xFFFE
_PCM_SUBFORMAT = b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
_DATA_URL = re.compile(r"^data:[\w.+-]*/?[\w.+-]*((;[^,;]*)*?),", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
FORMAT_HELP = "send a WAV of 16 kHz mono 16-bit PCM"


@dataclass(frozen=True)
class PcmChunk:
    """The samples of one chunk (16 kHz mono, int16 little-endian bytes) and its length."""

    pcm: bytes

    @property
    def samples(self) -> int:
        return len(self.pcm) // SAMPLE_BYTES

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE


def max_chunk_bytes(max_chunk_s: float) -> int:
    """The most bytes a chunk of `max_chunk_s` seconds can take, header and a few extra chunks included."""
    return int(max_chunk_s * SAMPLE_RATE * SAMPLE_BYTES) + 4096


def parse_audio_payload(audio: str, max_chunk_s: float) -> PcmChunk:
    """The `audio` field of POST /analyze-audio (base64, a data URL allowed) as PCM."""
    if not isinstance(audio, str) or not audio.strip():
        raise AudioError(f"audio is empty: {FORMAT_HELP}, base64-encoded", AudioProblem.MALFORMED)
    text = audio.strip()
    match = _DATA_URL.match(text)
    if match:
        if ";base64" not in (match.group(1) or "").lower():
            raise AudioError("audio data URL must be base64-encoded (';base64,')", AudioProblem.MALFORMED)
        text = text[match.end():]
    text = _WHITESPACE.sub("", text)
    limit = max_chunk_bytes(max_chunk_s)
    if len(text) * 3 // 4 > limit:  # before decoding: base64 inflates by 4/3
        raise AudioError(f"audio chunk is too long: over {max_chunk_s:g} s", AudioProblem.TOO_LARGE)
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioError(f"audio is not valid base64: {exc}", AudioProblem.MALFORMED) from None
    return parse_wav(data, max_chunk_s)


def parse_wav(data: bytes, max_chunk_s: float) -> PcmChunk:
    """A WAV chunk's samples, checked: RIFF/WAVE, PCM, mono, 16 kHz, 16-bit, whole samples, not empty,
    at most `max_chunk_s` seconds."""
    if not data:
        raise AudioError(f"audio chunk is empty: {FORMAT_HELP}", AudioProblem.MALFORMED)
    if len(data) > max_chunk_bytes(max_chunk_s):
        raise AudioError(f"audio chunk is too long: {len(data)} bytes is over {max_chunk_s:g} s", AudioProblem.TOO_LARGE)
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"audio is not a WAV (no RIFF/WAVE header): {FORMAT_HELP}", AudioProblem.UNSUPPORTED)
    fmt, pcm = None, None
    offset = 12
    while offset + 8 <= len(data):
        tag, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if tag == b"data":
            end = len(data) if size in _UNKNOWN_SIZES else body + size
            if end > len(data):
                raise AudioError(f"WAV data chunk is truncated: header says {size} bytes, "
                                 f"{len(data) - body} present", AudioProblem.CORRUPT)
            pcm = data[body:end]
            break
        if body + size > len(data):
            raise AudioError(f"WAV {tag!r} chunk is truncated", AudioProblem.CORRUPT)
        if tag == b"fmt ":
            fmt = data[body:body + size]
        offset = body + size + (size & 1)  # chunks are word-aligned
    if fmt is None or len(fmt) < 16:
        raise AudioError("WAV has no format chunk before its data", AudioProblem.CORRUPT)
    if pcm is None:
        raise AudioError("WAV has no data chunk", AudioProblem.CORRUPT)
    encoding, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if encoding == _EXTENSIBLE and len(fmt) >= 40 and fmt[24:40] == _PCM_SUBFORMAT:
        encoding = _PCM
    if encoding != _PCM:
        raise AudioError(f"WAV is not PCM (format tag {encoding:#x}): {FORMAT_HELP}", AudioProblem.UNSUPPORTED)
    if (channels, rate, bits) != (1, SAMPLE_RATE, 16):
        raise AudioError(f"WAV is {channels} channel(s), {rate} Hz, {bits}-bit: {FORMAT_HELP}",
                         AudioProblem.UNSUPPORTED)
    if len(pcm) % SAMPLE_BYTES:
        raise AudioError("WAV data ends in half a sample (odd byte count)", AudioProblem.CORRUPT)
    if not pcm:
        raise AudioError(f"WAV holds no samples: {FORMAT_HELP}", AudioProblem.MALFORMED)
    chunk = PcmChunk(pcm)
    if chunk.duration_s > max_chunk_s:
        raise AudioError(f"audio chunk is too long: {chunk.duration_s:.3f} s, limit {max_chunk_s:g} s",
                         AudioProblem.TOO_LARGE)
    return chunk


def wav_bytes(pcm: bytes) -> bytes:
    """16 kHz mono 16-bit PCM samples as a WAV file (the canonical 44-byte header)."""
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, _PCM, 1, SAMPLE_RATE, SAMPLE_RATE * SAMPLE_BYTES, SAMPLE_BYTES, 16)
            + b"data" + struct.pack("<I", len(pcm)) + pcm)
