# The one runcap image: docker-compose.yml runs the migrations, the worker, the api and (with
# the fake profile) the fake provider from it, each with its own command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml ./
COPY settings/ settings/
COPY workflows/ workflows/
COPY activities/ activities/
COPY worker/ worker/
COPY api/ api/
COPY providers/ providers/
COPY caller/ caller/
COPY db/ db/
COPY fake_provider/ fake_provider/
COPY cli/ cli/
COPY telemetry/ telemetry/
# Installed for the dependencies; `python -m` then runs the source in /app, data files included.
RUN pip install . && useradd --system --uid 10001 --home-dir /app runcap

USER runcap
CMD ["python", "-m", "api"]
