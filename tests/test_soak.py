"""A short soak in CI (the full one is `make soak`): several sessions at a steady rate through the
running app; no server errors other than fast refusals, every session ends with a verdict."""
from __future__ import annotations

import asyncio
import importlib.util

from tests.conftest import ROOT, TEST_API_KEY, needs_fixtures, needs_models

pytestmark = [needs_fixtures, needs_models]


def test_short_soak(serve_app):
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    report = asyncio.run(common.run_load(serve_app["url"], TEST_API_KEY, sessions=4, fps=1.0, duration=20.0, warmup=4.0))
    assert report["server_errors_other_than_refusals"] == 0, report["statuses"]
    assert report["statuses"].get("200", 0) >= 20
    assert set(report["statuses"]) <= {"200", "503"}, report["statuses"]
    assert report["ended_sessions"] == {200: 4}
    assert report["memory_mib_start"] and report["memory_mib_end"]
    assert report["latency_ms"]["p95"] is not None
