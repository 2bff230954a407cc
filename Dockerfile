# syntax=docker/dockerfile:1
# Revenue Agent System: production image (web by default; the same image runs the Celery
# worker and beat with another command). Build: `docker build -t revenue-agent-system .`

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: wheels for the production dependencies only (never requirements-dev.txt) ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler only for any dependency without a wheel for this platform; it stays in this stage.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY requirements.txt constraints.txt ./
RUN pip wheel --wheel-dir /wheels -r requirements.txt

# --- runtime: python:3.11-slim, the wheels, the code, collected static files ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=revenue_site.settings \
    PORT=8000

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app

# psycopg2-binary bundles libpq, so no system packages are needed at runtime.
COPY requirements.txt constraints.txt /tmp/
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/constraints.txt

WORKDIR /app
# Code stays owned by root: the app user can read it, not rewrite it.
COPY . .

# Static files are collected at build time (whitenoise serves them). Settings refuse to load
# without a secret key when DEBUG is off, so this one step gets a throwaway key that exists
# only in this RUN's environment: it is not an ENV, and is not in the image's config.
RUN DJANGO_SECRET_KEY=collectstatic-build-only-not-a-secret \
    python manage.py collectstatic --noinput

USER app
EXPOSE 8000

# Docker marks the container unhealthy when /health fails (503 = database unreachable).
# The Host header is the first DJANGO_ALLOWED_HOSTS entry, so the probe passes host validation.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request as u; h = os.environ.get('DJANGO_ALLOWED_HOSTS', 'localhost').split(',')[0].strip().lstrip('*.') or 'localhost'; u.urlopen(u.Request('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), headers={'Host': h}), timeout=5)"

# Shell form so $PORT expands; `exec` makes gunicorn PID 1 so `docker stop` reaches it (SIGTERM).
CMD exec gunicorn revenue_site.wsgi --bind 0.0.0.0:$PORT --workers 2 --timeout 120 --access-logfile -
