# The project image: regsweep (regcore + sweeps) with Ray, MLflow and the Postgres driver.
# Every service of docker-compose.yml runs it: the MLflow server, the Ray head and workers, and the
# sweeps driver.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/regsweep
COPY pyproject.toml README.md ./
COPY regcore ./regcore
COPY sweeps ./sweeps
COPY configs ./configs
RUN pip install ".[postgres]" \
    && useradd --create-home --uid 1000 regsweep \
    && mkdir -p /data/ray_results /data/mlartifacts /work \
    && chown -R regsweep:regsweep /data /work

USER regsweep
WORKDIR /work
CMD ["sweeps", "--help"]
