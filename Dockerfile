# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are installed with the constraints file in a builder stage;
# the runtime stage runs as a non-root user against DATABASE_URL (no embedded server in containers).

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY catalog ./catalog
COPY billing ./billing
COPY entitlements ./entitlements
COPY suggest ./suggest
COPY migrations ./migrations
RUN pip install -c constraints.txt .

FROM python:3.11-slim AS runtime
RUN groupadd --system commerce && useradd --system --gid commerce --home-dir /srv --shell /usr/sbin/nologin commerce
COPY --from=builder /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    COMMERCE_ENV=production \
    COMMERCE_HOST=0.0.0.0 \
    COMMERCE_PORT=8000 \
    COMMERCE_WORKERS=2 \
    COMMERCE_DATA_DIR=/srv/data
WORKDIR /srv
RUN mkdir -p /srv/data && chown commerce:commerce /srv/data
USER commerce
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"
# DATABASE_URL and COMMERCE_TOKEN_SECRET must be provided at run time.
CMD ["commerce", "serve"]
