# drift_assets — `make demo` and `make test` are all a new machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
DVC_VENV := .venv-dvc
PY := $(VENV)/bin/python
# The embedded default: Dagster's SQLite instance under a project-local DAGSTER_HOME.
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export DRIFT_ASSETS_DVC := $(CURDIR)/$(DVC_VENV)/bin/dvc
# No internet here, and no telemetry anywhere.
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: demo test test-fast lint format system-deps dev alerting metrics bench bench-detection bench-detection-full clean setup cluster

setup: $(VENV)/.installed $(DVC_VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

# The app environment (Dagster, Evidently, pandas<3, ...).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,cluster]"
	touch $@

# DVC in its own environment: it pins antlr4 4.9, which breaks Dagster's asset-selection parser.
# scikit-learn/joblib match the app's so models move between the two.
$(DVC_VENV)/.installed: training/requirements.txt
	test -x $(DVC_VENV)/bin/python || $(PYTHON) -m venv $(DVC_VENV)
	$(DVC_VENV)/bin/python -m pip install --quiet -r training/requirements.txt
	touch $@
.venv-dvc: $(DVC_VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# STORY=covariate_harmful: a covariate shift the estimated AUC sees before the labels arrive.
demo: setup
	$(VENV)/bin/drift-assets demo $(if $(STORY),--story $(STORY))

# Postgres, Redis, Dask (scheduler + 2 workers), Dagster webserver + daemon and 2 Celery workers on
# 127.0.0.1 (deploy/dagster/dagster.postgres-celery.yaml); Ctrl-C stops them. State in .cluster/.
cluster: setup
	$(VENV)/bin/drift-assets cluster --dir .cluster

# The full suite: real Prometheus/Alertmanager/Pushgateway, moto's S3 server, dvc repro, Dagster's
# webserver. System packages are installed first when this is root with apt-get; otherwise the
# tests that need them are skipped, each naming the command that enables it.
test: setup system-deps
	$(PY) -m pytest

# The inner loop: unit tests only (no servers, no long simulations), under a minute.
test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy drift_assets/stats drift_assets/monitoring

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Debian packages the tests start (never as services; chromium drives the browser test). policy-rc.d keeps the packages' own
# service scripts from starting anything on install.
SYSTEM_BINARIES := prometheus promtool prometheus-alertmanager amtool prometheus-pushgateway chromium redis-server
SYSTEM_PACKAGES := prometheus prometheus-alertmanager prometheus-pushgateway chromium redis-server
system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages for:$$missing"; \
	  created=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	    chmod +x /usr/sbin/policy-rc.d; created=1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	  status=$$?; [ -n "$$created" ] && rm -f /usr/sbin/policy-rc.d; exit $$status; \
	else \
	  echo "not installed:$$missing (their tests will be skipped; enable with: sudo make system-deps)"; \
	fi

# The Dagster UI and daemon (schedules, sensors) on 127.0.0.1:3000.
# The Evidently reports are linked from the assets as URLs under DRIFT_ASSETS_REPORTS_URL: `make dev`
# serves the reports directory there (loopback only) next to the webserver, and stops it by its pid.
REPORTS_PORT ?= 8765
DEV_PORT ?= 3000
REPORTS_DIR ?= reports
export DRIFT_ASSETS_REPORTS_URL ?= http://127.0.0.1:$(REPORTS_PORT)

dev: setup
	mkdir -p $(REPORTS_DIR)
	$(PY) -m http.server $(REPORTS_PORT) --bind 127.0.0.1 --directory $(REPORTS_DIR) >/dev/null 2>&1 & pid=$$!; \
	trap "kill $$pid" EXIT; \
	echo "Evidently reports: $(DRIFT_ASSETS_REPORTS_URL)/<monitor>/html/"; \
	echo "Dagster instance: $(DAGSTER_HOME)/dagster.yaml (a copy of ./dagster.yaml, refreshed when it changes)"; \
	cd $(DAGSTER_HOME) && $(CURDIR)/$(VENV)/bin/dg dev -h 127.0.0.1 -p $(DEV_PORT) -w $(CURDIR)/workspace.yaml

metrics: setup
	$(VENV)/bin/drift-assets serve-metrics --host 127.0.0.1 --port 8000

# Prometheus + Alertmanager on loopback, scraping `make metrics` (needs Debian's prometheus packages).
alerting:
	deploy/start-local.sh

bench: setup
	$(PY) benchmarks/bench_compare.py

# Detection benchmark (false alarms, power, MDE vs Evidently and KS/chi-square) -> docs/detection.md.
# The default run (~7 CPU-minutes) is the published one; -full has 10x the windows per cell
# (~1.5 CPU-hours, two processes): for a quiet machine.
bench-detection: setup
	$(PY) benchmarks/detection/run.py

bench-detection-full: setup
	$(PY) benchmarks/detection/run.py --full --detectors ours,naive & pid=$$!; \
	$(PY) benchmarks/detection/run.py --full --detectors evidently; wait $$pid
	$(PY) benchmarks/detection/report.py --mode full

clean:
	rm -rf $(DAGSTER_HOME) data/fraud data/llm data/assets reports .retraining
