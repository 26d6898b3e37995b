"""FaceIdentity deployment: the face descriptor of one face in one frame (vision/identity.py).

Off the frames' path: the ingress asks only when a session's engine wants a descriptor (enrolment,
then every `risk.identity.check_every_s`; risk/identity.py) and hands the answer to the session."""
from __future__ import annotations

from ray import serve

from contracts import FaceBox, FrameRejected, IdentitySample
from errors import FrameError
from settings import IdentityConfig
from vision.frames import decode_image
from vision.identity import FaceDescriber, FaceGates


@serve.deployment(name="FaceIdentity")
class FaceIdentity:
    def __init__(self, config: IdentityConfig):
        self.describer = FaceDescriber(FaceGates(config.min_face_px, config.min_face_brightness,
                                                 config.max_face_brightness, config.min_face_sharpness))

    # A sync method: Serve runs it in a thread pool; the describer serialises dlib's calls.
    def describe(self, image_bytes: bytes, box: FaceBox, with_chip: bool = False) -> IdentitySample | FrameRejected:
        try:
            image = decode_image(image_bytes)
        except FrameError as exc:
            return FrameRejected.of(exc)
        return self.describer.sample(image, box, with_chip)
