# nginx-kpi: every target installs what it needs first (a venv in .venv, Kafka jars and a private
# PostgreSQL cluster in .stack), so each works on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NK     := $(BIN)/nginx-kpi
DEMO_LINES ?= 200000

.PHONY: install tools demo test unit lint stack-up stack-down stack-clean bench clean

$(BIN)/nginx-kpi: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/nginx-kpi  ## the venv with nginx-kpi and its pinned dependencies

# docker-compose (v1) lets the tests validate docker-compose.yml without a Docker engine.
tools:
	@if ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing docker-compose (Debian) to validate docker-compose.yml"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; \
	  else \
	    echo "docker-compose is missing and cannot be installed here: its config test will be skipped"; \
	  fi; \
	fi

stack-up: install  ## start Kafka and PostgreSQL locally (installs them when missing)
	$(NK) stack up

stack-down: install
	$(NK) stack down

stack-clean: install  ## stop and delete the local data
	$(NK) stack down --clean

demo: stack-up  ## generate a sample log, ship it to Kafka, count it into PostgreSQL, show the KPIs
	mkdir -p demo
	$(NK) generate demo/access.log --lines $(DEMO_LINES)
	$(NK) topic delete --yes
	$(NK) db reset --yes
	$(NK) topic create
	$(NK) ship demo/access.log
	$(NK) consume --until-idle
	$(NK) report

bench: stack-up  ## the side-by-side benchmark at 1M lines (BENCH_ARGS=--ten-million for 10M); see benchmarks/
	$(NK) bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

unit: install  ## unit tests only: no servers
	$(BIN)/pytest -m 'not integration'

test: install tools  ## lint, then every test, starting the local stack for the integration tests
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache .mypy_cache
