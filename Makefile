# Proctor: `make run` serves the app, `make test` runs the suite. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
# On machines without internet, ../shared/tools/offline-env.sh keeps Ray and ultralytics offline.
OFFLINE_ENV := ../shared/tools/offline-env.sh
WITH_ENV := if [ -f $(OFFLINE_ENV) ]; then source $(OFFLINE_ENV); fi;

.PHONY: install system-deps edx-client run test eval soak bench bench-latency clean

install: $(VENV)/.installed models/yolov8n.pt models/yolo11n.pt

# pip reaches the package registries by design: keep the offline network guard (a sitecustomize
# on PYTHONPATH, for Ray, ultralytics and the tests) out of the install.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	env -u PYTHONPATH $(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The detector, and its second opinion on frames it is unsure of (detector.extra_looks)
models/yolov8n.pt models/yolo11n.pt: $(VENV)/.installed
	$(WITH_ENV) $(PY) scripts/fetch_weights.py $@ --export-onnx

run: install
	$(WITH_ENV) exec $(PY) scripts/run_service.py --host $(HOST) --port $(PORT)

# Chromium + ChromeDriver and PostgreSQL, which the tests start for real (apt-get, only if missing)
system-deps:
	scripts/install_system_deps.sh

# edX's own client code (edx-proctoring, edx-rest-api-client) for tests/test_edx.py, in a venv of its
# own: it brings Django, Celery and ~50 packages the service never imports, and moves python-dateutil.
EDX_VENV ?= .venv-edx
edx-client: $(EDX_VENV)/.installed

$(EDX_VENV)/.installed: tests/edx_client/requirements.txt
	test -x $(EDX_VENV)/bin/python || python3 -m venv $(EDX_VENV)
	env -u PYTHONPATH $(EDX_VENV)/bin/python -m pip install --quiet -r tests/edx_client/requirements.txt
	touch $@

test: install system-deps edx-client
	$(WITH_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# Accuracy table on the labelled fixtures -> docs/ACCURACY.md
eval: install
	$(WITH_ENV) $(PY) bench/eval_vision.py

# Bounded soak on loopback (20 sessions x 2 frames/s x 10 min by default; SOAK_ARGS to change)
soak: install
	$(WITH_ENV) $(PY) bench/soak.py $(SOAK_ARGS)

# Proctor vs the one-process baseline, interleaved -> docs/PERFORMANCE.md (BENCH_ARGS=--quick: < 2 min)
bench: install
	$(WITH_ENV) $(PY) bench/load.py $(BENCH_ARGS)

# Median latency of /analyze-frame on a running service (make run in another shell first).
bench-latency: install
	$(WITH_ENV) $(PY) bench/frame_latency.py --url http://$(HOST):$(PORT)

clean:
	rm -rf $(VENV) $(EDX_VENV) data
