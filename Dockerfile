# The project image: regsweep (regcore + sweeps) with Ray, MLflow (with its basic-auth app) and the
# Postgres driver. Every service of docker-compose.yml runs it: the MLflow server (through
# docker/mlflow_entrypoint.py), the Ray head and workers, and the sweeps driver.
# .dockerignore keeps .env, local stores and virtual environments out of the build context.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/regsweep
COPY pyproject.toml README.md ./
COPY regcore ./regcore
COPY sweeps ./sweeps
COPY configs ./configs
COPY docker ./docker
RUN pip install ".[postgres]" "mlflow[auth]" \
    && useradd --create-home --uid 1000 regsweep \
    && mkdir -p /data/ray_results /data/mlartifacts /work \
    && chown -R regsweep:regsweep /data /work

USER regsweep
WORKDIR /work
CMD ["sweeps", "--help"]
