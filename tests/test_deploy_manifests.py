"""The Dockerfile and the KubeRay manifest stay in step with the code and config/serve.yaml.

No Ray cluster and no Docker daemon: the files are parsed. deploy/kuberay/rayservice.yaml is
generated (scripts/gen_rayservice.py) from config/serve.yaml plus deploy/kuberay/serve-overlay.yaml:
it must be fresh, and its serveConfigV2 must be config/serve.yaml except what the overlay changes.
"""
from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVE_YAML = ROOT / "config" / "serve.yaml"
RAYSERVICE = ROOT / "deploy" / "kuberay" / "rayservice.yaml"
OVERLAY = ROOT / "deploy" / "kuberay" / "serve-overlay.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

SECRET_ENV = {"PROCTOR_API_KEYS", "PROCTOR_TOKEN_SECRET", "PROCTOR_STORE_URL"}


def _pins() -> dict[str, str]:
    """pyproject.toml's `name==version` dependencies (extras dropped), by lower-case name."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)\s*", dep)
        if m:
            pins[m.group(1).lower()] = m.group(3)
    return pins


def _flatten(tree: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    if isinstance(tree, dict) and tree:
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, prefix + (key,)))
        return out
    return {prefix: tree}


_OVERLAY_APP = yaml.safe_load(OVERLAY.read_text())["applications"][0]
# The manifest's deliberate differences from config/serve.yaml's args (path -> value there).
K8S_ARG_OVERRIDES = _flatten(_OVERLAY_APP["args"])
# Deployments whose num_replicas the manifest replaces with an autoscaling_config (the models
# autoscale in config/serve.yaml itself).
K8S_AUTOSCALED = {d["name"] for d in _OVERLAY_APP["deployments"] if "autoscaling_config" in d}


@pytest.fixture(scope="module")
def serve_yaml() -> dict:
    return yaml.safe_load(SERVE_YAML.read_text())


@pytest.fixture(scope="module")
def rayservice() -> dict:
    docs = [d for d in yaml.safe_load_all(RAYSERVICE.read_text()) if d]
    services = [d for d in docs if d.get("kind") == "RayService"]
    assert len(services) == 1, "deploy/kuberay/rayservice.yaml holds exactly one RayService"
    return services[0]


@pytest.fixture(scope="module")
def k8s_serve(rayservice) -> dict:
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


# ---- the RayService -------------------------------------------------------------------------


def test_the_manifest_is_generated_and_fresh():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_rayservice.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert K8S_ARG_OVERRIDES == {("ingress", "session_actor_num_cpus"): 0.05}
    assert K8S_AUTOSCALED == {"Ingress"}


def test_rayservice_is_an_autoscaling_kuberay_cluster(rayservice):
    assert rayservice["apiVersion"] == "ray.io/v1"
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert cluster["rayVersion"] == _pins()["ray"], "rayVersion must be the image's Ray (pyproject's pin)"
    # The head runs no model replica or session actor.
    assert str(cluster["headGroupSpec"]["rayStartParams"]["num-cpus"]) == "0"
    workers = cluster["workerGroupSpecs"]
    assert workers, "a worker group"
    for group in workers:
        assert 1 <= group["minReplicas"] < group["maxReplicas"], group["groupName"]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def _containers(cluster: dict) -> list[dict]:
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    return [c for pod in pods for c in pod["spec"]["containers"]]


def _quantity(text: str | int | float) -> float:
    """A Kubernetes quantity (cpu or bytes) as a float: "500m" -> 0.5, "12Gi" -> 12 * 2**30."""
    text = str(text)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def test_every_ray_container_runs_the_image_with_secrets_ports_and_resources(rayservice, serve_yaml):
    cluster = rayservice["spec"]["rayClusterConfig"]
    containers = _containers(cluster)
    assert len({c["image"] for c in containers}) == 1, "head and workers run the same image"
    for c in containers:
        env = {e["name"]: e for e in c.get("env", [])}
        assert SECRET_ENV <= set(env), f"{c['name']}: {SECRET_ENV - set(env)} missing"
        for name in SECRET_ENV:  # from a Secret, never a literal in the manifest
            assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["key"] == name
        ports = {p["containerPort"] for p in c["ports"]}
        assert {serve_yaml["http_options"]["port"], 8080} <= ports
        res = c["resources"]
        assert res["requests"] == res["limits"], f"{c['name']}: requests = limits (Ray sizes itself from them)"
        assert any(m["mountPath"] == "/dev/shm" for m in c.get("volumeMounts", []))
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert 8265 in {p["containerPort"] for p in head["ports"]}


def test_a_worker_pod_fits_the_largest_replica_set(rayservice, k8s_serve):
    """One worker holds one replica of each deployment (measured: 0.9 + 0.35 + 0.16 GiB + ~0.7 GiB
    of Ray's own processes) and its sessions, whatever the autoscaler does."""
    deployments = k8s_serve["applications"][0]["deployments"]
    cpus_one_each = sum(d["ray_actor_options"]["num_cpus"] for d in deployments)
    for group in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        res = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert _quantity(res["cpu"]) >= cpus_one_each
        assert _quantity(res["memory"]) >= (0.9 + 0.35 + 0.16 + 0.7) * 2**30
        # sessions fill the CPU left over; at ~107 MiB each they must fit the pod's memory too
        per_session_cpu = K8S_ARG_OVERRIDES[("ingress", "session_actor_num_cpus")]
        assert _quantity(res["cpu"]) / per_session_cpu * 107 * 2**20 + 0.7 * 2**30 <= _quantity(res["memory"])


# ---- serveConfigV2 vs config/serve.yaml ------------------------------------------------------


def test_serve_config_v2_is_a_valid_serve_config(k8s_serve):
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(k8s_serve)


def test_serve_config_v2_has_config_serve_yaml_applications(serve_yaml, k8s_serve):
    assert k8s_serve["proxy_location"] == serve_yaml["proxy_location"]
    assert k8s_serve["http_options"]["host"] == "0.0.0.0"
    for key in set(serve_yaml["http_options"]) - {"host"}:
        assert k8s_serve["http_options"][key] == serve_yaml["http_options"][key], key
    assert [a["name"] for a in k8s_serve["applications"]] == [a["name"] for a in serve_yaml["applications"]]
    for local, k8s in zip(serve_yaml["applications"], k8s_serve["applications"]):
        for key in ("import_path", "route_prefix"):
            assert k8s[key] == local[key], key
        local_args, k8s_args = _flatten(local["args"]), _flatten(k8s["args"])
        assert set(k8s_args) == set(local_args), (
            f"args only in the manifest: {sorted(set(k8s_args) - set(local_args))}; "
            f"only in config/serve.yaml: {sorted(set(local_args) - set(k8s_args))}")
        differ = {path: (local_args[path], k8s_args[path]) for path in local_args if local_args[path] != k8s_args[path]}
        assert differ == {path: (local_args[path], value) for path, value in K8S_ARG_OVERRIDES.items()}, (
            "serveConfigV2's args differ from config/serve.yaml's beyond the intended overrides "
            "(path: (config/serve.yaml, manifest))")


def test_the_manifests_args_build_the_app_config(k8s_serve):
    from settings import AppConfig

    AppConfig(**k8s_serve["applications"][0]["args"])


def test_deployments_match_and_the_models_autoscale(serve_yaml, k8s_serve):
    local = {d["name"]: d for d in serve_yaml["applications"][0]["deployments"]}
    k8s = {d["name"]: d for d in k8s_serve["applications"][0]["deployments"]}
    assert set(k8s) == set(local)
    for name in ("FaceGaze", "ObjectDetector"):  # one config: the manifest takes config/serve.yaml's scaling
        auto = local[name]["autoscaling_config"]
        assert "num_replicas" not in local[name]
        assert 1 <= auto["min_replicas"] < auto["max_replicas"]
        assert 0 < auto["target_ongoing_requests"] < local[name]["max_ongoing_requests"]
        assert auto["upscale_delay_s"] < auto["downscale_delay_s"]
    for name, options in local.items():
        mine = dict(k8s[name])
        if name in K8S_AUTOSCALED:
            assert "autoscaling_config" in mine, f"{name} autoscales on Kubernetes"
            auto = mine.pop("autoscaling_config")
            assert "num_replicas" not in mine
            assert 1 <= auto["min_replicas"] < auto["max_replicas"]
            assert 0 < auto["target_ongoing_requests"] < options["max_ongoing_requests"]
            options = {k: v for k, v in options.items() if k != "num_replicas"}
        assert mine == options, f"{name}: deployment options differ from config/serve.yaml"


# ---- Dockerfile -------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped, like Docker."""
    out, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):  # as Docker joins lines: the backslash goes, nothing is added
            current += line.rstrip()[:-1]
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return out


def _dockerignored(path: str) -> bool:
    ignored = False
    for pattern in DOCKERIGNORE.read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
            ignored = not negate
    return ignored


def _copies() -> list[tuple[list[str], str]]:
    copies = []
    for word, args in _instructions():
        if word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            copies.append((parts[:-1], parts[-1]))
    return copies


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context():
    copies = _copies()
    assert copies
    for sources, _ in copies:
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such file in the repo"
            assert not _dockerignored(src.rstrip("/")), f"COPY {src}: excluded by .dockerignore"


def test_dockerfile_copies_every_package_pyproject_installs():
    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    wanted = [f"{m}.py" for m in setuptools.get("py-modules", [])]
    wanted += [p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    wanted += ["pyproject.toml", "config", "scripts/run_service.py"]
    copied = [src.rstrip("/") for sources, _ in _copies() for src in sources]
    for item in wanted:
        assert any(item == c or item.startswith(c + "/") for c in copied), f"the image lacks {item}"
    # and no package directory in the repo is left out of pyproject (so of the image)
    for init in ROOT.glob("*/__init__.py"):
        if init.parent.name not in ("tests", "bench"):
            assert init.parent.name in wanted, f"{init.parent.name}/ is neither in pyproject nor the image"


def test_dockerignore_keeps_local_state_and_weights_out():
    for path in (".venv", ".git", "data", "models/yolov8n.pt", "vision/__pycache__"):
        assert _dockerignored(path), path
    assert not _dockerignored("config/serve.yaml") and not _dockerignored("pyproject.toml")


def test_dockerfile_pins_match_pyproject():
    text = DOCKERFILE.read_text()
    instructions = _instructions()
    pins = _pins()
    args = dict(re.fullmatch(r"(\w+)=?(.*)", a).groups() for w, a in instructions if w == "ARG")
    assert args["TORCH_VERSION"] == pins["torch"], "Dockerfile's TORCH_VERSION vs pyproject's torch pin"
    assert args["TORCHVISION_VERSION"] == pins["torchvision"], "Dockerfile's TORCHVISION_VERSION vs pyproject"
    assert args["TORCH_INDEX_URL"].rstrip("/").endswith("/whl/cpu"), "the CPU-only torch build"
    # any other name==version in the Dockerfile agrees with pyproject too
    for name, version in re.findall(r"([A-Za-z][A-Za-z0-9_.-]*)(?:\[[^\]]*\])?==([0-9][^\s\"']*)", text):
        if name.lower() in pins:
            assert version == pins[name.lower()], f"{name}=={version} in the Dockerfile, {pins[name.lower()]} in pyproject"
    # the rest is installed from pyproject.toml itself, after it is copied in
    order = [w + " " + a for w, a in instructions]
    copy_pyproject = next(i for i, line in enumerate(order) if line.startswith("COPY") and "pyproject.toml" in line)
    install = next(i for i, line in enumerate(order) if line.startswith("RUN") and "tomllib" in line)
    assert copy_pyproject < install


def test_dockerfile_base_user_and_command():
    instructions = _instructions()
    requires = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    args = dict(re.fullmatch(r"(\w+)=?(.*)", a).groups() for w, a in instructions if w == "ARG")
    base = next(a for w, a in instructions if w == "FROM")
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    m = re.fullmatch(r"python:(3\.\d+)-slim(-\w+)?", base)
    assert m, f"an official python slim image, not {base}"
    assert f">={m.group(1)}" in requires, f"python {m.group(1)} vs requires-python {requires}"
    user = [a for w, a in instructions if w == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0"), "the image runs as a non-root user"
    cmd = [a for w, a in instructions if w == "CMD"][-1]
    assert "scripts/run_service.py" in cmd and "0.0.0.0" in cmd
    exposed = {p for w, a in instructions if w == "EXPOSE" for p in a.split()}
    assert {"8000", "8265", "8080"} <= exposed
