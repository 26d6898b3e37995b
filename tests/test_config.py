"""config/serve.yaml is valid, complete and strict, and equal to the models' defaults (one owner of
each default, so pure tests test what runs); the environment is applied in one place."""
from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from settings import (AppConfig, AuthConfig, IngressConfig, STORE_URL_ENV, StrictModel, load_args,
                      load_deployment_options, resolve_environment)


def _models(model: type[BaseModel]):
    """The model and every config model nested in it."""
    yield model
    for field in model.model_fields.values():
        for kind in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _models(kind)


def test_serve_yaml_parses_into_the_app_config():
    cfg = AppConfig(**load_args())
    assert cfg.detector.weights == "models/yolov8n.pt"
    assert cfg.detector.max_batch_size >= 1 and cfg.detector.class_thresholds["cell phone"] < cfg.detector.default_threshold


def test_serve_yaml_values_are_the_models_defaults():
    """No drift: what a test builds with AppConfig() is what config/serve.yaml runs."""
    assert AppConfig(**load_args()) == AppConfig()


def test_serve_yaml_sets_every_field():
    """The operator's file shows every tunable (its description: docs/CONFIG.md)."""
    def missing(model: type[BaseModel], values: dict, path: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            if name == "rules":  # partial by design: listed types override the defaults
                continue
            if name not in values:
                out.append(path + name)
            elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                out += missing(field.annotation, values[name], f"{path}{name}.")
        return out

    assert missing(AppConfig, load_args(), "") == []


def test_every_field_is_described_and_every_model_strict():
    for model in _models(AppConfig):
        assert issubclass(model, StrictModel), model.__name__
        undescribed = [name for name, field in model.model_fields.items() if not field.description]
        assert undescribed == [], f"{model.__name__}: {undescribed}"


@pytest.mark.parametrize("section, key", [("detector", "max_batch_sise"), ("risk", "calibraton"),
                                          ("ingress", "idle_timeout")])
def test_a_misspelled_key_fails_naming_it(section, key):
    args = load_args()
    args[section][key] = 8
    with pytest.raises(ValidationError, match=key):
        AppConfig(**args)


def test_a_misspelled_section_fails_naming_it():
    args = load_args()
    args["detectr"] = args.pop("detector")
    with pytest.raises(ValidationError, match="detectr"):
        AppConfig(**args)


def test_a_misspelled_key_fails_the_deploy(tmp_path):
    """`build_app`, what `serve run`/`serve deploy` call, refuses it before anything starts, and
    Serve accepts it as an application builder (one parameter) with the real args."""
    from ray.serve import Application
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from graph import build_app

    assert isinstance(call_user_app_builder_with_args_if_necessary(build_app, load_args()), Application)
    args = load_args()
    args["detector"]["max_batch_sise"] = 8
    with pytest.raises(ValidationError, match="max_batch_sise"):
        call_user_app_builder_with_args_if_necessary(build_app, args)


def test_deployments_fit_two_cores():
    options = load_deployment_options()
    assert set(options) == {"Ingress", "FaceGaze", "ObjectDetector", "FaceIdentity"}
    cpus = sum(o["ray_actor_options"]["num_cpus"] * o.get("num_replicas", 1) for o in options.values())
    assert cpus <= 2
    detector = options["ObjectDetector"]
    assert detector["max_ongoing_requests"] > AppConfig(**load_args()).detector.max_batch_size


def test_the_session_store_is_picked_by_url():
    assert AppConfig(**load_args()).ingress.store_location() == "data/sessions.sqlite3"  # null: SQLite
    assert IngressConfig(store_url="postgresql://p@db/proctor").store_location() == "postgresql://p@db/proctor"
    with pytest.raises(ValidationError, match="postgresql://"):
        IngressConfig(store_url="data/other.sqlite3")
    cfg = AppConfig(ingress={"store_url": "postgresql://p@db/proctor"})
    env = {STORE_URL_ENV: "postgresql://p:secret@db2/proctor"}  # the environment wins
    assert resolve_environment(cfg, env).ingress.store_location() == "postgresql://p:secret@db2/proctor"
    with pytest.raises(ValueError, match=STORE_URL_ENV):
        resolve_environment(AppConfig(), {STORE_URL_ENV: "mysql://p@db/proctor"})


def test_secrets_come_from_the_environment_first():
    cfg = AppConfig(auth=AuthConfig(api_keys=["configured-key-0123456789"], token_secret="from-the-file"))
    assert resolve_environment(cfg, {}).auth.token_secret == "from-the-file"
    assert resolve_environment(AppConfig(), {}).auth.token_secret is None  # the ingress keeps one in the store
    env = {"PROCTOR_TOKEN_SECRET": "from-the-environment",
           "PROCTOR_API_KEYS": "env-key-0123456789abcdef, second-env-key-0123456789"}
    resolved = resolve_environment(cfg, env)
    assert resolved.auth.token_secret == "from-the-environment"
    assert resolved.auth.api_keys == ["configured-key-0123456789", "env-key-0123456789abcdef",
                                      "second-env-key-0123456789"]
    assert cfg.auth.api_keys == ["configured-key-0123456789"]  # the config itself is left as it was
    with pytest.raises(ValueError, match="shorter than 16"):
        resolve_environment(cfg, {"PROCTOR_API_KEYS": "short"})


def test_the_environment_is_read_in_one_place():
    """Only settings.py reads the service's PROCTOR_* variables (bench/ and tests/ set them for the app;
    clients' own variables, such as the fixtures' path, are not the service's config)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readers = []
    for path in root.glob("**/*.py"):
        if {"tests", "bench", ".venv", "settings.py"} & set(path.relative_to(root).parts):
            continue
        text = path.read_text()
        if re.search(r"(environ|getenv)\W{1,8}(PROCTOR_(API_KEYS|TOKEN_SECRET|STORE_URL)\b|API_KEYS_ENV|TOKEN_SECRET_ENV|STORE_URL_ENV)", text):
            readers.append(str(path.relative_to(root)))
    assert readers == [], readers


def test_reviewer_keys_and_edx_secrets_come_from_the_environment_too():
    env = {"PROCTOR_API_KEYS": "integrator-key-0123456789", "PROCTOR_REVIEWER_KEYS": "reviewer-key-0123456789, ",
           "PROCTOR_EDX_CLIENT_SECRET": "edx-secret-0123456789", "PROCTOR_EDX_LMS_CLIENT_SECRET": "lms-secret"}
    cfg = AppConfig(edx={"enabled": True, "client_id": "lms", "lms_url": "https://lms.example.com/",
                         "lms_client_id": "proctor"})
    resolved = resolve_environment(cfg, env)
    assert resolved.auth.reviewer_keys == ["reviewer-key-0123456789"]
    assert (resolved.edx.client_secret, resolved.edx.lms_client_secret) == ("edx-secret-0123456789", "lms-secret")
    assert resolved.edx.lms_url == "https://lms.example.com"  # one form, no trailing slash
    with pytest.raises(ValueError, match="edx.client_secret, edx.lms_client_secret"):
        resolve_environment(cfg, {})
    with pytest.raises(ValueError, match="PROCTOR_EDX_CLIENT_SECRET"):
        resolve_environment(cfg, {**env, "PROCTOR_EDX_CLIENT_SECRET": "short"})
    with pytest.raises(ValueError, match="REVIEWER_KEYS"):
        resolve_environment(AppConfig(), {**env, "PROCTOR_REVIEWER_KEYS": "short"})
    with pytest.raises(ValueError, match="without them auth is off"):
        resolve_environment(AppConfig(), {"PROCTOR_REVIEWER_KEYS": "reviewer-key-0123456789"})
    with pytest.raises(ValueError, match="http"):
        AppConfig(edx={"lms_url": "ftp://lms"})
