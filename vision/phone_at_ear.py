"""A phone held to the ear, from MediaPipe's bundled hand landmarks (0.10.21 `solutions.hands`).

A phone at the ear is mostly hidden by the hand and the head, so the detector often scores it under
its threshold. `PhoneAtEar.confirm` takes the detector's phone-like boxes under the threshold
(candidates, down to `detector.phone_at_ear.candidate_floor`) and keeps those whose centre lies on
a hand (MediaPipe Hands' landmarks, their box grown by a fifth) that is raised to the head: the
hand reaches into the top `head_share` of a YOLO person box it is inside. MediaPipe runs only on
frames that have a candidate. Pure code (no Ray).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from contracts import Detection


class PhoneAtEar:
    def __init__(self, head_share: float = 0.4, max_hands: int = 4):
        import mediapipe as mp

        self.head_share = head_share
        self._hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=max_hands, model_complexity=0)
        self.runs, self.run_ms = 0, 0.0  # frames MediaPipe Hands ran on, and its time on them (bench/eval)

    def confirm(self, image: np.ndarray, candidates: list[Detection], persons: list[Detection]) -> list[Detection]:
        """The candidates that lie on a hand raised to the head, as phones (source `phone_at_ear`)."""
        if not candidates or not persons:
            return []
        raised = [hand for hand in self.hands(image) if self._raised(hand, persons)]
        return [replace(c, source="phone_at_ear") for c in candidates
                if any(_inside(_centre(c.box), hand) for hand in raised)]

    def hands(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Each hand's landmark box in pixels, grown by a fifth of its size on each side."""
        import time

        import cv2

        started = time.perf_counter()
        height, width = image.shape[:2]
        found = self._hands.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).multi_hand_landmarks or ()
        self.runs += 1
        self.run_ms += (time.perf_counter() - started) * 1000
        boxes = []
        for landmarks in found:
            xs = [p.x * width for p in landmarks.landmark]
            ys = [p.y * height for p in landmarks.landmark]
            grow_x, grow_y = 0.2 * (max(xs) - min(xs)), 0.2 * (max(ys) - min(ys))
            boxes.append((min(xs) - grow_x, min(ys) - grow_y, max(xs) + grow_x, max(ys) + grow_y))
        return boxes

    def _raised(self, hand, persons: list[Detection]) -> bool:
        """The hand's centre is inside a person box and the hand reaches into its top head_share."""
        cx, cy = _centre(hand)
        return any(x0 <= cx <= x1 and y0 <= cy <= y1 and hand[1] <= y0 + self.head_share * (y1 - y0)
                   for x0, y0, x1, y1 in (p.box for p in persons))

    def close(self) -> None:
        self._hands.close()


def _centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _inside(point, box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]
