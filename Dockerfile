# The local runtime: the API on :8000 and every rule function, fed by RabbitMQ.
# The project is installed as a wheel (not in editable mode); it runs the template in /app,
# the folder it starts in, and the functions that template includes from /app/functions.

# The wheel of credit, declarations, local_runtime and infra, built apart so the image carries
# no sources.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml ./
COPY credit ./credit
COPY declarations ./declarations
COPY local_runtime ./local_runtime
COPY infra ./infra
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The dependencies, read from pyproject.toml, in a layer of their own: an edit to the sources
# reuses it; only a change to pyproject.toml installs them again.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/pyproject.toml

COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /app credit

WORKDIR /app
COPY template.yaml ./
COPY functions ./functions
USER credit

EXPOSE 8000
# The slim image has no curl: Python asks /health, which answers 503 when a dependency is down.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request\ntry:\n    urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)\nexcept Exception:\n    sys.exit(1)"]
CMD ["credit-runtime", "--template", "template.yaml", "start", "--host", "0.0.0.0", "--port", "8000", \
     "--inherit-env", "AMQP_URL,REDIS_URL,MYSQL_URL"]
