# Hệ thống xếp hàng một cửa: make run (demo site), make test, make bench, make lint.
# On a fresh Debian/Ubuntu machine these install what they need (venv, pip, apt).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# command:debian-package pairs that `make test` and `make run` need on the machine (a path instead
# of a command: a file the package installs, possibly a glob: Debian keeps PostgreSQL's initdb in
# /usr/lib/postgresql/{version}/bin, off PATH)
SYSTEM_DEPS := mosquitto:mosquitto mosquitto_rr:mosquitto-clients mosquitto_sub:mosquitto-clients \
               mosquitto_passwd:mosquitto openssl:openssl espeak-ng:espeak-ng chromium:chromium \
               /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core \
               zbarimg:zbar-tools pdftoppm:poppler-utils systemd-analyze:systemd \
               '/usr/lib/postgresql/*/bin/initdb:postgresql'

.PHONY: venv system-deps test run bench bench-core bench-agent bench-display bench-web bench-small chaos lint clean \
        run-province bench-province faults-province

$(VENV)/.installed: pyproject.toml
	@if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  echo "Cần Python 3.11 trở lên (Python 3.11+ required)"; exit 1; fi
	@if ! $(PYTHON) -m venv $(VENV) 2>/dev/null; then \
	  rm -rf $(VENV); echo "Cài python3-venv..."; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv python3-pip; \
	  $(PYTHON) -m venv $(VENV); fi
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  case $$cmd in /*) ls $$cmd >/dev/null 2>&1;; *) command -v $$cmd >/dev/null 2>&1;; esac || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	  echo "Cài gói hệ thống (installing Debian packages): $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

test: venv system-deps
	$(PY) -m pytest

run: venv system-deps
	$(PY) scripts/demo.py

bench: venv system-deps
	$(PY) scripts/bench.py

chaos: venv system-deps
	$(PY) scripts/chaos.py --rounds $${ROUNDS:-100}

bench-core: venv system-deps
	$(PY) scripts/bench_core_cpu.py

bench-agent: venv system-deps
	$(PY) scripts/bench_agent.py

bench-display: venv system-deps
	$(PY) scripts/bench_display.py

bench-web: venv system-deps
	$(PY) scripts/bench_web.py

# a province on this machine: central broker, 3 offices, PostgreSQL, the aggregator and its dashboard
run-province: venv system-deps
	$(PY) scripts/run_province.py

# 500 simulated offices through one central Mosquitto into the aggregator (BENCH_SECONDS, BENCH_OFFICES)
bench-province: venv system-deps
	$(PY) scripts/bench_province.py

# the province's faults with the issue's 5-minute outages (the test suite runs them for 15 s)
faults-province: venv system-deps
	QMS_FAULT_DOWN_S=$${QMS_FAULT_DOWN_S:-300} PYTHONPATH=$(CURDIR) $(PY) -m pytest -q -s tests/test_province_faults.py

# the whole office in 1 CPU core and 512 MB (a cgroup; root), a busy day compressed (docs/operations.md)
bench-small: venv system-deps
	$(PY) scripts/bench_small.py

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
