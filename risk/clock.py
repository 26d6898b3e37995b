"""The frames' clock: client capture timestamps mapped onto server time.

A client's `timestamp` may come from any clock (epoch seconds, `performance.now()/1000`, video time
from 0). The first timestamped frame fixes the offset to the server's arrival time; later frames
keep the client's spacing exactly. Frames without a timestamp use arrival time.
"""
from __future__ import annotations


class FrameClock:
    def __init__(self, offset: float | None = None) -> None:
        self.offset = offset  # restored from the store when a session's actor is rebuilt

    def frame_time(self, client_timestamp: float | None, arrival: float) -> float:
        if client_timestamp is None:
            return arrival
        if self.offset is None:
            self.offset = arrival - client_timestamp
        return client_timestamp + self.offset
