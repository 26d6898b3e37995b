"""The WebSocket stream's wire format and its newest-frame slot (pure asyncio, no Ray).

A client message is binary: an 8-byte big-endian float64 capture time, then either the JPEG/PNG/WebP
bytes of a frame or a WAV (RIFF/WAVE: 16 kHz mono 16-bit PCM) audio chunk, told apart by their own
magic bytes (`message_kind`; a WebP is RIFF/WEBP). The stream keeps only the newest frame waiting:
when frames arrive faster than the service analyses them, a newer one replaces the waiting one
(counted as dropped and reported with the next answer), so a client never builds seconds of
backlog. Audio is never replaced (every chunk carries speech): chunks wait in order, a few at most.
"""
from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Generic, TypeVar

from errors import FrameError, FrameProblem

CAPTURE_TIME = struct.Struct(">d")
T = TypeVar("T")


def encode_message(capture_time: float, image: bytes) -> bytes:
    """A client's frame message (what demo.js sends)."""
    return CAPTURE_TIME.pack(capture_time) + image


def message_kind(message: bytes) -> str:
    """"audio" for a WAV after the capture time, else "frame" (a bad message fails as a frame)."""
    body = message[CAPTURE_TIME.size:]
    return "audio" if body[:4] == b"RIFF" and body[8:12] == b"WAVE" else "frame"


def decode_message(message: bytes) -> tuple[float, bytes]:
    """(capture time, image bytes); FrameError(MALFORMED) for a message too short to hold both."""
    if len(message) <= CAPTURE_TIME.size:
        raise FrameError("a stream message is 8 bytes of capture time, then the image", FrameProblem.MALFORMED)
    (capture_time,) = CAPTURE_TIME.unpack_from(message)
    return capture_time, message[CAPTURE_TIME.size:]


@dataclass(frozen=True)
class Taken(Generic[T]):
    item: T
    dropped: int  # frames replaced before this one was taken


class LatestFrameSlot(Generic[T]):
    """Holds at most one item: `put` replaces what is waiting; `take` waits for the next one and
    returns None once the slot is closed and empty."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._has_item = False
        self._dropped = 0
        self._closed = False
        self._changed = asyncio.Event()

    def put(self, item: T) -> None:
        if self._has_item:
            self._dropped += 1  # replaced before it was analysed
        self._item, self._has_item = item, True
        self._changed.set()

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def take(self) -> Taken[T] | None:
        while not self._has_item:
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        taken = Taken(self._item, self._dropped)
        self._item, self._has_item, self._dropped = None, False, 0
        return taken
