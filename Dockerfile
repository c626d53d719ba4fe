# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build -t podcast-proxy .                       uvicorn, non-root, health-checked (default)
#   docker build -t podcast-proxy:lambda --target lambda .   AWS Lambda container image
# Both are filled by infra/bundle.py, the same script that builds the Lambda zip, so the
# three deployables hold the same pinned dependencies and nothing else: the bundle stages
# keep pip and its cache out of the final images.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS sources
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY infra/bundle.py infra/
COPY app app
COPY well_known well_known

FROM sources AS service-bundle
RUN python infra/bundle.py /bundle --extras server

FROM sources AS lambda-bundle
RUN python infra/bundle.py /bundle

FROM public.ecr.aws/lambda/python:${PYTHON_VERSION} AS lambda
COPY --from=lambda-bundle /bundle ${LAMBDA_TASK_ROOT}
CMD ["app.lambda_handler.handler"]

FROM python:${PYTHON_VERSION}-slim AS service
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/srv
RUN useradd --system --no-log-init -l --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=service-bundle /bundle /srv
# The default store (STORE_URL unset): /srv/data/state.db, writable by the service; mount
# a volume here to keep keys and usage across containers.
RUN mkdir /srv/data && chown 10001 /srv/data
WORKDIR /srv
VOLUME /srv/data
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# One worker per container: scale with containers. `python -m app serve` is uvicorn with
# request heads bounded in size and time (MAX_HEADER_BYTES, HEADER_TIMEOUT) and its access
# log off (the app logs one JSON line per request).
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
