# The local runtime: the API on :8000 and every rule function, fed by RabbitMQ.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY credit ./credit
COPY local_runtime ./local_runtime
COPY infra ./infra
COPY functions ./functions
RUN pip install --no-cache-dir -e .
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["python", "-m", "local_runtime", "start", "--host", "0.0.0.0", "--port", "8000"]
