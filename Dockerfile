# metricsd image: `docker build -t metricsd .` (docker-compose.yml builds it too).
# Two stages: wheels are built with pip in the first, the runtime image gets only them.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY metricsd ./metricsd
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[uvloop]'

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --no-create-home metricsd
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'metricsd[uvloop]' \
    && rm -rf /wheels
USER metricsd
EXPOSE 9811
# Inside a container the daemon must listen on every interface; --config may override it.
ENV METRICSD_LISTEN=0.0.0.0:9811
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9811/healthz', timeout=2)"]
ENTRYPOINT ["metricsd"]
