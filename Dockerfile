# guard's image: `docker run IMAGE check --profile elasticsearch` is a preflight check for
# images without Python (compose/README.md). guard lives in the /opt/guard virtualenv, the
# same place the derived images in compose/ install it.
#
# BASE is any Debian-like image with Python 3.9+. The default needs PyPI and Debian's mirror at
# build time; a base that already carries gcc, python3-dev, python3-cffi, python3-setuptools and
# python3-wheel builds offline (the tests use a debootstrap bookworm base, as there is no
# registry on their machines).
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
RUN set -eu; \
    if ! command -v gcc >/dev/null; then \
        apt-get update; \
        apt-get install -y --no-install-recommends gcc libc6-dev; \
        rm -rf /var/lib/apt/lists/*; \
    fi
# --system-site-packages lets a base's own cffi satisfy the build and the runtime.
RUN python3 -m venv --system-site-packages /opt/guard
COPY . /src
# The base provides the build tools: build against them with no network. Otherwise pip fetches
# cffi and setuptools from PyPI as usual.
RUN set -eu; \
    if python3 -c 'import cffi, setuptools, wheel' 2>/dev/null; then \
        /opt/guard/bin/pip install --no-cache-dir --no-index --no-build-isolation /src; \
    else \
        /opt/guard/bin/pip install --no-cache-dir /src; \
    fi

FROM ${BASE}
COPY --from=build /opt/guard /opt/guard
ENV PATH=/opt/guard/bin:$PATH
RUN useradd --system --no-create-home --shell /usr/sbin/nologin guard
USER guard
ENTRYPOINT ["guard"]
CMD ["--help"]
