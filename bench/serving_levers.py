"""The serving path's levers, A/B: each variant is the app of config/serve.yaml with some keys
changed (`ingress.local_ray_env`, `detector.threads`, ...), started on its own local Ray, measured by
`bench/cpu_per_frame.py`'s idle window and loaded window, and stopped; variants run in turn, and the
whole sequence `--repeat` times (A B A B ...: this machine's speed drifts within a minute).

    python bench/serving_levers.py --variants lean=... [--sessions 10] [--repeat 2]
        -> bench/results/serving_levers.json

A variant is NAME=JSON of {section: {key: value}}, e.g. `config={}` (config/serve.yaml as it is)
or `proxy='{"ingress": {"direct_ingress": false}}'`. Reported per run: CPU ms per served frame (every process),
each process's idle CPU ms per second, latency in the steady window.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402
from cpu_per_frame import measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", required=True, help="NAME=JSON of {section: {key: value}}")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serving_levers.json")
    opts = parser.parse_args()
    variants = {name: json.loads(spec) for name, spec in (v.split("=", 1) for v in opts.variants)}

    runs = []
    for round_index in range(opts.repeat):
        for name, overrides in variants.items():
            url, tmp = common.start_own_app(overrides)
            try:
                time.sleep(5)  # replicas settle after their warm-up
                result = measure(url, None, opts.sessions, 1.0, opts.duration, 10.0, opts.idle)
            finally:
                common.stop_own_app(tmp)
            runs.append({"variant": name, "round": round_index, "overrides": overrides, **result})
            print(json.dumps({"variant": name, "cpu_ms_per_frame": result["cpu_ms_per_frame_total"],
                              "idle_cores": result["idle_cpu_cores_busy"], "latency": result["latency_ms_in_window"],
                              "by_frame": result["latency_ms_in_window_by_frame"],
                              "statuses": result["statuses"]}), flush=True)
    summary = {name: {"cpu_ms_per_frame": [r["cpu_ms_per_frame_total"] for r in runs if r["variant"] == name],
                      "idle_cpu_cores": [r["idle_cpu_cores_busy"] for r in runs if r["variant"] == name],
                      "p95_ms_in_window": [r["latency_ms_in_window"]["p95"] for r in runs if r["variant"] == name]}
               for name in variants}
    report = {"command": "python bench/serving_levers.py " + " ".join(sys.argv[1:]), "summary": summary, "runs": runs}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
