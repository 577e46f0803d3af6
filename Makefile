# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo serve migrate test lint typecheck unit bench clean lock chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt sdk/python/pyproject.toml
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,embedded,tracing]' -e ./sdk/python
	touch $(STAMP)

install: $(STAMP)

## make demo: install, migrate, seed demo data and serve on 127.0.0.1:8000
## (card payments on the local Stripe fake, COMMERCE_STRIPE=fake, unless STRIPE_SECRET_KEY is set)
demo: install
	if [ -z "$$STRIPE_SECRET_KEY" ]; then export COMMERCE_STRIPE="$${COMMERCE_STRIPE:-fake}"; fi; $(BIN)/commerce demo

serve: install
	$(BIN)/commerce serve

migrate: install
	$(BIN)/commerce migrate

## make test: install, lint, type-check and run the whole suite (browser journeys included: Chromium is needed)
# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE): every test worker and
# every server a test starts would otherwise compile the same sources again (collection 11.9 -> 4.5 s a worker).
test: install lint typecheck chromium
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m compileall -q -j 0 app catalog entitlements billing suggest web \
	  stripe_fake sdk/python/commerce_sdk migrations bench tests
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n auto --dist worksteal

# Browser tests drive Debian's Chromium through Playwright (browser downloads are not possible here):
# install it when missing (as root), or stop at once with the command to run. They never skip.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Chromium for the browser tests (apt-get install -y chromium)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing; browser tests need it. Run: sudo apt-get update && sudo apt-get install -y chromium"; \
	    exit 1; \
	  fi; \
	fi

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .commerce-data

## make lock: the production image's hashed pins (runtime dependencies and the tracing extra, at the versions
## of constraints.txt)
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra tracing --python-version 3.11 --generate-hashes --constraint constraints.txt \
		--no-header --quiet --output-file requirements.lock
