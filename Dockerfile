# The operator image: slim Python, runtime dependencies only, non-root, nothing writable needed.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY couchestor ./couchestor
COPY k8s_schemas ./k8s_schemas
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["couchestor"]
CMD ["run"]
