"""The WebSocket stream's codec and newest-frame slot (api/stream.py): pure, no Ray, no models."""
from __future__ import annotations

import asyncio

import pytest

from api.stream import CAPTURE_TIME, LatestFrameSlot, decode_message, encode_message
from errors import FrameError, FrameProblem


def test_a_message_round_trips_capture_time_and_image():
    image = b"\xff\xd8\xff\xe0jpeg bytes"
    message = encode_message(1701234567.125, image)
    assert len(message) == CAPTURE_TIME.size + len(image) and CAPTURE_TIME.size == 8
    assert message[:8] == bytes.fromhex("41d959b1e1c80000")  # big-endian float64, as demo.js writes it
    assert decode_message(message) == (1701234567.125, image)


@pytest.mark.parametrize("message", [b"", b"\x00" * 7, b"\x00" * 8])
def test_a_message_without_an_image_is_malformed(message):
    with pytest.raises(FrameError) as caught:
        decode_message(message)
    assert caught.value.problem is FrameProblem.MALFORMED


def test_the_slot_keeps_only_the_newest_frame_and_counts_the_rest():
    async def scenario():
        slot: LatestFrameSlot[int] = LatestFrameSlot()
        for item in (1, 2, 3):
            slot.put(item)
        first = await slot.take()
        slot.put(4)
        second = await slot.take()
        return first, second

    first, second = asyncio.run(scenario())
    assert (first.item, first.dropped) == (3, 2)  # 1 and 2 were replaced before anyone took them
    assert (second.item, second.dropped) == (4, 0)  # the count restarts after each take


def test_take_waits_for_a_frame_and_ends_when_closed():
    async def scenario():
        slot: LatestFrameSlot[str] = LatestFrameSlot()
        waiter = asyncio.create_task(slot.take())
        await asyncio.sleep(0.01)
        assert not waiter.done()  # nothing yet: it waits rather than returning empty
        slot.put("frame")
        got = await asyncio.wait_for(waiter, 1)
        slot.put("last")
        slot.close()
        last = await slot.take()  # a frame put before close is still delivered
        end = await asyncio.wait_for(slot.take(), 1)
        return got, last, end

    got, last, end = asyncio.run(scenario())
    assert got.item == "frame" and last.item == "last" and end is None
