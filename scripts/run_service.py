"""`make run`: serve config/serve.yaml on a local Ray that this process starts and stops.

Runs `serve run` on a copy of the config with HOST/PORT applied. Ctrl-C or SIGTERM shuts Serve
down and stops the local Ray cluster `serve run` started (its ray.init), leaving nothing behind.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.local_serve import free_port, local_ray_env  # noqa: E402
from settings import AppConfig, resolve_environment  # noqa: E402


def app_configs(config: dict) -> list[AppConfig]:
    """Each application's args, validated (a misspelled key stops here, naming it), environment applied."""
    return [resolve_environment(AppConfig(**(a.get("args") or {}))) for a in config.get("applications", [])]


def has_api_keys(config: dict) -> bool:
    return any(cfg.auth.api_keys for cfg in app_configs(config))


def direct_ingress_enabled(config: dict) -> bool:
    configs = app_configs(config)
    return bool(configs) and all(cfg.ingress.direct_ingress for cfg in configs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(ROOT / "config" / "serve.yaml"))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    opts = parser.parse_args()

    with open(opts.config) as f:
        config = yaml.safe_load(f)
    host = opts.host
    if host not in ("127.0.0.1", "localhost", "::1") and not has_api_keys(config):
        print(f"Proctor: WARNING: no API keys configured (auth.api_keys or $PROCTOR_API_KEYS): binding "
              f"127.0.0.1 instead of {host}, so nobody else can reach an unauthenticated service.", flush=True)
        host = "127.0.0.1"
    config.setdefault("http_options", {}).update(host=host, port=opts.port)
    env = dict(os.environ)
    for cfg in app_configs(config):  # one app in config/serve.yaml
        env.update(local_ray_env(cfg.ingress.model_dump(), opts.port))
    if direct_ingress_enabled(config):
        # The Ingress replica takes the service's port; Serve still starts its proxy on the head
        # node (its fallback), so that one gets a spare port nobody needs to know.
        config["http_options"]["port"] = free_port(host)
    run_dir = Path(tempfile.mkdtemp(prefix="proctor-run-"))
    effective = run_dir / "serve.yaml"
    effective.write_text(yaml.safe_dump(config, sort_keys=False))

    serve_cli = Path(sys.executable).parent / "serve"
    print(f"Proctor: serving {opts.config} at http://{host}:{opts.port} (Ctrl-C stops it)", flush=True)
    # serve run's ray.init() starts a local Ray cluster and shuts it down when serve run exits.
    # Its own session: the terminal's Ctrl-C reaches only us, and we forward exactly one SIGINT,
    # so a second signal cannot interrupt Serve's shutdown halfway.
    # SIGINT is reset to default for the child: shells start background jobs with it ignored, and
    # Python keeps an ignored SIGINT, which would leave serve run deaf to our stop signal.
    child = subprocess.Popen(
        [str(serve_cli), "run", str(effective)], cwd=ROOT, start_new_session=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        if not stopping and child.poll() is None:
            stopping = True
            print("Proctor: stopping Serve and the local Ray cluster ...", flush=True)
            child.send_signal(signal.SIGINT)  # serve run shuts Serve and Ray down on SIGINT

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = child.wait()
    print(f"Proctor: stopped (serve run exited {code})", flush=True)
    return 0 if stopping else code


if __name__ == "__main__":
    sys.exit(main())
