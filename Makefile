# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo serve migrate test lint typecheck unit bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,embedded,tracing]'
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

## make test: install, lint, type-check and run the whole suite
test: install lint typecheck
	$(BIN)/python -m pytest -q -n auto

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
