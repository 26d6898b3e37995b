"""Drives Proctor through edX's own client code, in edX's own environment (.venv-edx): a
`BaseRestProctoringProvider` subclass (proctor_backend.py) whose calls go through
edx-rest-api-client's `OAuthAPIClient` (client credentials, `Authorization: JWT`), exactly as the
LMS makes them. One JSON request per stdin line: {"call": <provider method>, "args": [...]}; one
JSON answer per stdout line: {"ok": <result>} or {"error": <exception type>, "detail": ...}.

Extra calls: `validate_review` runs a received review payload through what the LMS's review view
reads (`ReviewStatus.validate` and the comment fields `make_review` stores)."""
from __future__ import annotations

import argparse
import json
import sys

import django
from django.conf import settings


def configure() -> None:
    settings.configure(
        DEBUG=False, USE_I18N=True, LANGUAGE_CODE="en", SITE_NAME="lms.test", LMS_ROOT_URL="http://lms.test",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        DATABASES={}, SECRET_KEY="edx-driver", WEBPACK_LOADER={}, PLATFORM_NAME="Test LMS",
        PROCTORING_SETTINGS={}, PROCTORING_BACKENDS={}, OPENEDX_TELEMETRY=[])
    django.setup()


def validate_review(payload: dict) -> dict:
    """What edx_proctoring.views.BaseReviewCallback.make_review reads of a review, checked."""
    from edx_proctoring.statuses import ReviewStatus, SoftwareSecureReviewStatus

    ReviewStatus.validate(payload["status"])  # raises ProctoredExamBadReviewStatus otherwise
    stored = []
    for comment in payload.get("comments", []):
        row = {"start_time": comment.get("start", 0), "stop_time": comment.get("stop", 0),
               "duration": comment.get("duration", 0), "comment": comment["comment"], "status": comment["status"]}
        for key in ("start_time", "stop_time", "duration"):
            if not isinstance(row[key], int):  # IntegerField
                raise TypeError(f"{key} is {type(row[key]).__name__}, not int")
        if not isinstance(row["comment"], str) or not isinstance(row["status"], str) or len(row["status"]) > 255:
            raise TypeError("comment and status must be text, status at most 255 characters")
        stored.append(row)
    return {"review_status": SoftwareSecureReviewStatus.from_standard_status[payload["status"]], "comments": stored}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    args = parser.parse_args()
    configure()
    from proctor_backend import ProctorBackend

    backend = ProctorBackend(client_id=args.client_id, client_secret=args.client_secret, base_url=args.base_url)
    print(json.dumps({"ok": "ready"}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["call"] == "validate_review":
                result = validate_review(*request["args"])
            elif request["call"] == "jwt":
                result = backend.session.get_jwt_access_token()
            else:
                result = getattr(backend, request["call"])(*request.get("args", []))
            print(json.dumps({"ok": result}), flush=True)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
            print(json.dumps({"error": type(exc).__name__, "detail": str(exc)[:500]}), flush=True)


if __name__ == "__main__":
    main()
