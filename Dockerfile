# One image for every spikewatch process (worker, api, migrate); docker-compose.yml picks the command.
# The build stage installs the package into a virtualenv; the runtime stage copies only that
# virtualenv and runs it as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/spikewatch
WORKDIR /src
COPY pyproject.toml README.md ./
COPY spikewatch ./spikewatch
COPY schemas ./schemas
COPY worker ./worker
COPY api ./api
COPY bench ./bench
RUN /opt/spikewatch/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/spikewatch/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/spikewatch /opt/spikewatch
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin spikewatch
USER spikewatch
# The home directory is writable, so the embedded SQLite default works when DATABASE_URL is unset.
WORKDIR /home/spikewatch
# 8000: the HTTP API; 6066: the worker's web port.
EXPOSE 8000 6066
CMD ["spikewatch", "--help"]
