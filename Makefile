# The only place relay's set-up lives: every target builds the venv it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/relay.conf

.PHONY: run test test-deps lint bench bench-quick bench-deps check-config clean

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

lint: $(STAMP)
	$(BIN)/ruff check relay tests
	$(BIN)/ruff format --check relay tests
	$(BIN)/mypy relay
	$(BIN)/lint-imports

# Postfix (the side-by-side rows) is installed by the bench targets only, never by `test`.
bench-deps:
	@command -v postfix >/dev/null 2>&1 || test -x /usr/sbin/postfix || { \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix; } || \
	  echo "bench: could not install Postfix; the table will say so"

bench: $(STAMP) bench-deps
	$(BIN)/python -m tests.bench.run

bench-quick: $(STAMP) bench-deps
	$(BIN)/python -m tests.bench.run --messages 1000 --rcpt-messages 200 --queued 2000 \
	  --bindings 100 --timeout 60

check-config: $(STAMP)
	$(BIN)/relay config check $(CONFIG)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
