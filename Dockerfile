# Two things are built here, both with guard at /opt/guard/bin/guard:
#
#   docker build --target bundle -t guard:bundle .
#       the self-contained folder /opt/guard (guard, a Python runtime, their libraries, its own
#       loader and libc) in an otherwise empty image, to copy into any Linux image:
#           COPY --from=guard:bundle /opt/guard /opt/guard
#           ENTRYPOINT ["/opt/guard/bin/guard", "--", "/usr/local/bin/docker-entrypoint.sh"]
#       for the machine it is built on; for arm64 on an amd64 one, under QEMU (README, "arm64"):
#           docker build --platform linux/arm64 --target bundle -t guard:bundle-arm64 .
#   docker build -t guard .
#       guard's own image: `docker run guard check --profile elasticsearch` is a preflight
#       check (compose/README.md); guard lives in the /opt/guard virtualenv.
#
# BASE is any Debian-like image with Python 3.9+. The default needs PyPI and Debian's mirror at
# build time; a base that already carries gcc, python3-dev, python3-cffi, python3-yaml, python3-setuptools
# and python3-wheel builds offline (the tests use a debootstrap bookworm base, as there is no
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
# cffi, PyYAML and setuptools from PyPI as usual.
RUN set -eu; \
    if python3 -c 'import cffi, yaml, setuptools, wheel' 2>/dev/null; then \
        /opt/guard/bin/pip install --no-cache-dir --no-index --no-build-isolation /src; \
    else \
        /opt/guard/bin/pip install --no-cache-dir /src; \
    fi

# The bundle (bundle/make_bundle.py): built from the interpreter guard was just installed for.
FROM build AS bundle-build
RUN set -eu; \
    mv /opt/guard /opt/guard-venv; \
    /opt/guard-venv/bin/python3 /src/bundle/make_bundle.py --prefix /opt/guard

# Then run at its final path in an empty root before it is kept: in the build image, the bundle's
# loader would take a library the folder lacks from the image's /lib and the gap would ship. Exec
# form needs no shell. Between them the commands load everything the folder carries for guard:
# the check with JSON, the C scanner (cffi), the exec, --watch as PID 1 (tempfile) and below it
# (ctypes, for the subreaper). The scanner counts a PID given, itself: one it cannot count fails
# the step, where a scan exits 0 (`--top 1` showed an empty table, and passed, when QEMU's ENOSYS
# for PROCMAP_QUERY failed every count of the arm64 folder).
FROM scratch AS bundle-check
COPY --from=bundle-build /opt/guard /opt/guard
RUN ["/opt/guard/bin/guard", "check", "--profile", "none", "--require", "nofile>=1", "--format", "json"]
RUN ["/opt/guard/bin/guard", "maps", "1"]
RUN ["/opt/guard/bin/guard", "--profile", "none", "--", "/opt/guard/bin/guard", "--watch", "--profile", "none", \
     "--", "/opt/guard/bin/guard", "--watch", "--profile", "none", "--", "/opt/guard/bin/guard", "profiles"]

FROM scratch AS bundle
COPY --from=bundle-check /opt/guard /opt/guard
ENTRYPOINT ["/opt/guard/bin/guard"]
CMD ["--help"]

FROM ${BASE}
COPY --from=build /opt/guard /opt/guard
ENV PATH=/opt/guard/bin:$PATH
RUN useradd --system --no-create-home --shell /usr/sbin/nologin guard
USER guard
ENTRYPOINT ["guard"]
CMD ["--help"]
