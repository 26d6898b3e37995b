# Proctor, CPU image: `docker build -t proctor:cpu .` (see README.md, "Docker").
#
# - `docker run` serves config/serve.yaml the way `make run` does (scripts/run_service.py, which
#   starts and stops a local Ray), on 0.0.0.0:8000 in the container. Without API keys
#   (-e PROCTOR_API_KEYS=...) run_service.py binds 127.0.0.1 instead, so the published port answers
#   nothing: an unauthenticated service is never exposed.
# - The same image is the KubeRay image (deploy/kuberay/rayservice.yaml): KubeRay replaces CMD with
#   `/bin/bash -lc -- ray start ...`, so everything lives in the system Python (/usr/local/bin,
#   which a login shell's PATH keeps; a venv's bin would be dropped), `wget` is there for KubeRay's
#   probes, and the app is importable from any directory (editable install of /app, below).
#
# Build args:
#   YOLO_WEIGHTS=official (default)  download the official yolov8n.pt (ultralytics' release asset,
#                                    via scripts/fetch_weights.py) into the image
#   YOLO_WEIGHTS=https://...         download these weights instead (a mirror, your own weights)
#   YOLO_WEIGHTS=none                bake none: mount a file at /app/models/yolov8n.pt at run time
#   YOLO_WEIGHTS_SHA256=<hex>        optional: refuse the build unless the weights have this digest
#   SECOND_OPINION_WEIGHTS=official  the official yolo11n.pt for detector.extra_looks (or none, or a URL)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# libgl1 + libglib2.0-0: what opencv's cv2.abi3.so links against outside its wheel (libGL,
# libgthread/libglib; libgl1 brings libX11). mediapipe, torch and onnxruntime need only glibc and
# libstdc++. wget: KubeRay's liveness/readiness probes. tini: reaps Ray's orphaned processes under
# `docker run` (KubeRay overrides the entrypoint). Unpinned: Debian drops superseded versions from
# its mirrors, so exact pins would break rebuilds; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 wget tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_AUTOINSTALL=False \
    RAY_USAGE_STATS_ENABLED=0

WORKDIR /app

# Dependencies first (cached until pyproject.toml changes). torch/torchvision come from PyTorch's
# CPU index, at the versions pyproject.toml pins (tests/test_deploy_manifests.py keeps them equal),
# so the image carries no CUDA wheels; pyproject's `torch==` pins are then already satisfied by the
# `+cpu` builds. Everything else is installed from pyproject.toml's own pinned list.
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY pyproject.toml ./
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && python -c "import torch, sys; sys.exit(f'CUDA torch installed: {torch.__version__}' if torch.version.cuda else 0)" \
    && if pip list 2>/dev/null | grep -i '^nvidia-'; then echo 'CUDA wheels were pulled in' >&2; exit 1; fi \
    && rm /tmp/requirements.txt

# Weights (cached until fetch_weights.py or the build args change).
ARG YOLO_WEIGHTS=official
ARG YOLO_WEIGHTS_SHA256=
COPY scripts/fetch_weights.py scripts/fetch_weights.py
RUN set -eu; mkdir -p models; \
    case "${YOLO_WEIGHTS}" in \
      none) echo "no weights baked: mount them at /app/models/yolov8n.pt" ;; \
      official) python scripts/fetch_weights.py models/yolov8n.pt ;; \
      http://*|https://*) wget -q -O models/yolov8n.pt "${YOLO_WEIGHTS}" ;; \
      *) echo "YOLO_WEIGHTS must be official, none or an http(s) URL, not ${YOLO_WEIGHTS}" >&2; exit 1 ;; \
    esac; \
    if [ "${YOLO_WEIGHTS}" != none ]; then \
      test -s models/yolov8n.pt || { echo "models/yolov8n.pt was not downloaded" >&2; exit 1; }; \
      if [ -n "${YOLO_WEIGHTS_SHA256}" ]; then echo "${YOLO_WEIGHTS_SHA256}  models/yolov8n.pt" | sha256sum -c -; fi; \
    fi
# The second opinion on frames the first pass is unsure of (detector.extra_looks): YOLO11n.
ARG SECOND_OPINION_WEIGHTS=official
RUN set -eu; \
    case "${SECOND_OPINION_WEIGHTS}" in \
      none) echo "no second-opinion weights baked: mount /app/models/yolo11n.pt or set detector.extra_looks: []" ;; \
      official) python scripts/fetch_weights.py models/yolo11n.pt ;; \
      http://*|https://*) wget -q -O models/yolo11n.pt "${SECOND_OPINION_WEIGHTS}" ;; \
      *) echo "SECOND_OPINION_WEIGHTS must be official, none or an http(s) URL" >&2; exit 1 ;; \
    esac; \
    if [ "${SECOND_OPINION_WEIGHTS}" != none ]; then \
      test -s models/yolo11n.pt || { echo "models/yolo11n.pt was not downloaded" >&2; exit 1; }; fi

# The application. An editable install: the code stays in /app, so the paths the code resolves
# from its own location (data/, models/, config/) are /app's, and `graph:build_app` imports from
# any working directory (Ray workers, the Serve controller, KubeRay's `ray start`).
COPY graph.py settings.py contracts.py errors.py observability.py ./
COPY config/ config/
COPY api/ api/
COPY audio/ audio/
COPY auth/ auth/
COPY deployments/ deployments/
COPY devtools/ devtools/
COPY edx/ edx/
COPY outbox/ outbox/
COPY pipeline/ pipeline/
COPY report/ report/
COPY reviews/ reviews/
COPY risk/ risk/
COPY sessions/ sessions/
COPY store/ store/
COPY vision/ vision/
COPY scripts/ scripts/
RUN pip install --no-deps -e . \
    && python -c "import graph"

# With the ONNX Runtime detector backend, export the baked weights now rather than in every new
# container (about 10 s, and it needs a writable models/). Mounted weights are exported at start.
RUN if [ -s models/yolov8n.pt ]; then python scripts/fetch_weights.py models/yolov8n.pt --export-onnx; fi

# A non-root user (numeric, so Kubernetes' runAsNonRoot can check it) owning only what the app
# writes: data/ (the SQLite store, when no PROCTOR_STORE_URL is set) and models/ (ONNX exports).
RUN groupadd --gid 1000 proctor \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash proctor \
    && mkdir -p data models \
    && chown -R 1000:1000 data models
USER 1000:1000

# At run time nothing downloads: weights are baked or mounted, and ultralytics stays offline.
ENV YOLO_OFFLINE=1 \
    PORT=8000

# 8000 Serve (the API), 8265 Ray dashboard, 8080 Ray metrics (KubeRay's ports; under `docker run`
# the dashboard listens on the container's loopback only).
EXPOSE 8000 8265 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD ["/bin/sh", "-c", "wget -q -O /dev/null http://127.0.0.1:${PORT}/health || exit 1"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "scripts/run_service.py", "--host", "0.0.0.0"]
