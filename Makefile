# The only place relay's set-up lives: every target builds the venv it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/relay.conf

.PHONY: run test test-deps soak lint bench bench-quick bench-deps check-config clean docker docker-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/relay serve -c $(CONFIG)

# The cluster tests run a real redis-server (Debian's package) on a loopback port.
test-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server || { \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }; }

test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q

# The long reliability runs (tests/reliability, marker `soak`): RELAY_SOAK_SECONDS is each
# run's duration (steady load 600 s, crash test 900 s unless set); RELAY_SOAK_MESSAGES and
# RELAY_SOAK_KILLS size the crash run; RELAY_CRASH_SEED repeats one.
soak: $(STAMP) test-deps
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -q -m soak tests/reliability

lint: $(STAMP)
	$(BIN)/ruff check relay tests
	$(BIN)/ruff format --check relay tests
	$(BIN)/mypy relay
	$(BIN)/lint-imports

# Postfix and Haraka (the side-by-side rows) are installed by the bench targets only, never by
# `test`; Haraka from npm into build/bench/haraka (gitignored), never globally.
bench-deps:
	@command -v postfix >/dev/null 2>&1 || test -x /usr/sbin/postfix || { \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix; } || \
	  echo "bench: could not install Postfix; the table will say so"
	@test -x build/bench/haraka/node_modules/Haraka/bin/haraka || { \
	  command -v npm >/dev/null 2>&1 && mkdir -p build/bench/haraka && \
	  cd build/bench/haraka && npm install --no-audit --no-fund --omit=optional Haraka@3; } || \
	  echo "bench: could not install Haraka; the table will say so"

bench: $(STAMP) bench-deps
	$(BIN)/python -m tests.bench.run

bench-quick: $(STAMP) bench-deps
	$(BIN)/python -m tests.bench.run --messages 1000 --rcpt-messages 200 --queued 2000 \
	  --bindings 100 --timeout 60

# The container image relay:local (docker/Dockerfile), built from wheels made here and a
# local base image (docker/base-image.sh, debootstrap; reused once built). Where a registry
# is reachable: make docker DOCKER_BASE=python:3.11-slim
DOCKER_BASE  ?= relay-base:bookworm
DOCKER_IMAGE ?= relay:local

docker: $(STAMP)
	@case "$(DOCKER_BASE)" in relay-base:*) bash docker/base-image.sh $(DOCKER_BASE);; esac
	bash docker/wheels.sh $(BIN)/python
	docker build --quiet --network host --build-arg BASE=$(DOCKER_BASE) \
	  -f docker/Dockerfile -t $(DOCKER_IMAGE) . >/dev/null
	@docker image prune --force --filter label=org.relay.build=relay >/dev/null  # old builds
	@docker image inspect -f 'image $(DOCKER_IMAGE): {{.Size}} bytes' $(DOCKER_IMAGE)

# Installs docker.io/debootstrap if missing, starts dockerd if none runs (and stops it after),
# builds the images, runs tests/docker against containers (skipped by `make test`).
docker-test: $(STAMP)
	bash docker/engine.sh start
	status=0; \
	$(MAKE) --no-print-directory docker && \
	  RELAY_DOCKER_TESTS=1 RELAY_IMAGE=$(DOCKER_IMAGE) $(BIN)/python -m pytest -q -s tests/docker \
	  || status=$$?; \
	bash docker/engine.sh stop; exit $$status

check-config: $(STAMP)
	$(BIN)/relay config check $(CONFIG)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
