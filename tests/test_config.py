"""config/serve.yaml is valid and is what the code's defaults say (so pure tests test what runs)."""
from __future__ import annotations

import pytest

from graph import AppConfig, load_args, load_deployment_options
from risk.config import RiskConfig


def test_serve_yaml_parses_into_the_app_config():
    cfg = AppConfig(**load_args())
    assert cfg.detector.weights == "models/yolov8n.pt"
    assert cfg.detector.max_batch_size >= 1 and cfg.detector.class_thresholds["cell phone"] < cfg.detector.default_threshold


def test_risk_defaults_match_the_yaml():
    assert AppConfig(**load_args()).risk == RiskConfig()


def test_deployments_fit_two_cores():
    options = load_deployment_options()
    assert set(options) == {"Ingress", "FaceGaze", "ObjectDetector"}
    cpus = sum(o["ray_actor_options"]["num_cpus"] * o.get("num_replicas", 1) for o in options.values())
    assert cpus <= 2
    detector = options["ObjectDetector"]
    assert detector["max_ongoing_requests"] > AppConfig(**load_args()).detector.max_batch_size


def test_the_session_store_is_picked_by_url(monkeypatch):
    from pydantic import ValidationError

    from deployments.ingress import IngressConfig
    from store.session_store import STORE_URL_ENV

    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    assert AppConfig(**load_args()).ingress.store_location() == "data/sessions.sqlite3"  # null: SQLite
    assert IngressConfig(store_url="postgresql://p@db/proctor").store_location() == "postgresql://p@db/proctor"
    monkeypatch.setenv(STORE_URL_ENV, "postgresql://p:secret@db2/proctor")  # the environment wins
    assert IngressConfig(store_url="postgresql://p@db/proctor").store_location() == "postgresql://p:secret@db2/proctor"
    with pytest.raises(ValidationError, match="postgresql://"):
        IngressConfig(store_url="data/other.sqlite3")
    monkeypatch.setenv(STORE_URL_ENV, "mysql://p@db/proctor")
    with pytest.raises(ValueError, match=STORE_URL_ENV):
        IngressConfig().store_location()


def test_secrets_come_from_the_environment_first(monkeypatch):
    from auth.tokens import AuthConfig

    config = AuthConfig(api_keys=["configured-key-0123456789"], token_secret="from-the-file")
    monkeypatch.delenv("PROCTOR_TOKEN_SECRET", raising=False)
    monkeypatch.delenv("PROCTOR_API_KEYS", raising=False)
    assert config.configured_token_secret() == "from-the-file"
    assert AuthConfig().configured_token_secret() is None  # the ingress then keeps one in the store
    monkeypatch.setenv("PROCTOR_TOKEN_SECRET", "from-the-environment")
    monkeypatch.setenv("PROCTOR_API_KEYS", "env-key-0123456789abcdef, second-env-key-0123456789")
    assert config.configured_token_secret() == "from-the-environment"
    assert config.all_api_keys() == ["configured-key-0123456789", "env-key-0123456789abcdef",
                                     "second-env-key-0123456789"]
