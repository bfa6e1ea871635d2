# The nginx-kpi image: the `nginx-kpi` command (the KPI consumer of docker-compose.yml), installed from this
# source tree with pip exactly as `make install` does (`pip install .`: the dependencies pinned in
# pyproject.toml), without the editable mode and the dev extra. Two stages: pip runs in the first, the
# second gets only the virtualenv and runs as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11.15-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/nginx-kpi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
# src/nginx_kpi/parsers.conf is a symbolic link to this file; with its target in place the wheel carries
# the real content (checked below), so the installed package does not depend on this tree.
COPY deploy/fluent-bit/parsers.conf deploy/fluent-bit/parsers.conf
RUN /opt/nginx-kpi/bin/pip install . \
    && cd / && rm -rf /src \
    && /opt/nginx-kpi/bin/python -c "from nginx_kpi.parse import load_parser; load_parser()" \
    && /opt/nginx-kpi/bin/nginx-kpi --help >/dev/null

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 nginx-kpi \
    && useradd --system --uid 10001 --gid nginx-kpi --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin nginx-kpi
COPY --from=build /opt/nginx-kpi /opt/nginx-kpi
ENV PATH=/opt/nginx-kpi/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["nginx-kpi"]
CMD ["consume"]
