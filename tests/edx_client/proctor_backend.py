"""The LMS side of the integration: the ~15-line backend an Open edX install adds to use Proctor
(README, "Open edX"). In a real install it is a pip package whose setup registers
`entry_points={"openedx.proctoring": ["proctor = proctor_backend:ProctorBackend"]}` and the LMS sets
`PROCTORING_BACKENDS = {"proctor": {"client_id": ..., "client_secret": ..., "base_url": ...}}`."""
from edx_proctoring.backends.rest import BaseRestProctoringProvider


class ProctorBackend(BaseRestProctoringProvider):
    verbose_name = "Proctor"
    npm_module = None  # no desktop worker: the learner's webcam page is the attempt's download_url
    base_url = "https://proctor.example.com/edx"  # Proctor's public URL + /edx

    def __init__(self, client_id=None, client_secret=None, base_url=None, **kwargs):
        if base_url:
            self.base_url = base_url.rstrip("/")
        super().__init__(client_id=client_id, client_secret=client_secret, **kwargs)
