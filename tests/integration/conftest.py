"""Real containers on a real Docker engine, with guard installed in them as users install it.

Without an engine the tests skip with the reason, except in CI (CI=true), where they fail:
scripts/test installs and starts everything they need. Every container and image a run makes
is removed by id at the end; host settings go through tests/hostsettings.py.
"""

import os

import pytest

docker = pytest.importorskip("docker")

from containers import (ARM64, BASE_IMAGE, BASE_IMAGE_ARM64, IMAGES, NO_LIBC_IMAGE, NO_LIBC_IMAGE_ARM64,  # noqa: E402,I001
                        NO_PYTHON_IMAGE, NO_PYTHON_IMAGE_ARM64, OLD_GLIBC_IMAGE, REPO, VALKEY_IMAGE, Made, finish,
                        unavailable)


def pytest_collection_modifyitems(items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def client():
    try:
        c = docker.from_env(timeout=120)
        c.ping()
    except Exception as e:  # the SDK raises several types for "no engine"; all mean the same here
        unavailable(f"no Docker engine answers: {e}")
    for image in (BASE_IMAGE, NO_PYTHON_IMAGE, OLD_GLIBC_IMAGE, NO_LIBC_IMAGE, VALKEY_IMAGE,
                  BASE_IMAGE_ARM64, NO_PYTHON_IMAGE_ARM64, NO_LIBC_IMAGE_ARM64):
        try:
            c.images.get(image)
        except docker.errors.ImageNotFound:
            unavailable(f"base image {image} is missing (scripts/base-image builds it)")
    yield c
    c.close()


@pytest.fixture(scope="session")
def made(client):
    m = Made(client)
    try:
        yield m
    finally:
        m.remove_containers()
        m.remove_images()


@pytest.fixture(autouse=True)
def _remove_containers_after_each_test(request):
    yield
    if "made" in request.fixturenames:
        request.getfixturevalue("made").remove_containers()


@pytest.fixture(scope="session")
def guard_image(made):
    """The product Dockerfile, built as the README says, from the local base."""
    return made.build("guard", REPO, BASE=BASE_IMAGE)


@pytest.fixture(scope="session")
def bundle_image(made):
    """The bundle, built as the README says: docker build --target bundle, from the local base."""
    return made.build("bundle", REPO, target="bundle", BASE=BASE_IMAGE)


@pytest.fixture(scope="session")
def arm64_runs(made):
    """arm64 programs run in containers here: QEMU's handler is registered with the F flag."""
    try:
        status, log = finish(made.container(NO_LIBC_IMAGE_ARM64, ["uname", "-m"]))
    except docker.errors.APIError as e:  # exec format error, at start
        status, log = None, str(e)
    finally:
        made.remove_containers()
    if (status, log.strip()) != (0, "aarch64"):
        unavailable(f"arm64 programs do not run in containers here ({log.strip()}): scripts/test "
                     "registers QEMU's binfmt handler while it runs (scripts/arm64-emulation hold PID)")


@pytest.fixture(scope="session")
def bundle_image_arm64(made, arm64_runs):
    """The arm64 bundle, built here under emulation as the README says: docker build --platform
    linux/arm64 --target bundle, from the local arm64 Debian base. Its FROM scratch stage runs
    the folder (emulated) before it is kept."""
    return made.build("bundle-arm64", REPO, target="bundle", platform=ARM64, BASE=BASE_IMAGE_ARM64)


@pytest.fixture(scope="session")
def redis_image(made):
    """Stands in for the redis:7 image, with no Python: Debian's redis-server behind
    docker-entrypoint.sh."""
    return made.build("redis", os.path.join(IMAGES, "redis"), TARGET_IMAGE=NO_PYTHON_IMAGE)


def vendor_image(made, name):
    """A stand-in for a vendor's image (tests/integration/images/vendors/NAME), with no Python."""
    return made.build(f"vendor-{name}", os.path.join(IMAGES, "vendors", name), TARGET_IMAGE=NO_PYTHON_IMAGE)


def guarded(made, name, bundle_image, **buildargs):
    """compose/NAME/Dockerfile built over its stand-in: the documented way to put guard in front
    of an image's entrypoint, by copying the bundle in."""
    return made.build(f"{name}-guarded", os.path.join(REPO, "compose", name), GUARD_BUNDLE=bundle_image,
                      **buildargs)


@pytest.fixture(scope="session")
def stand_in_images(made, redis_image):
    """The image each compose/NAME/Dockerfile builds on, by NAME."""
    vendors = {name: vendor_image(made, name) for name in ("elasticsearch", "opensearch", "kafka")}
    return {"redis": redis_image, **vendors}


@pytest.fixture(scope="session")
def guarded_redis_image(made, bundle_image, redis_image):
    return guarded(made, "redis", bundle_image, REDIS_IMAGE=redis_image)


@pytest.fixture(scope="session")
def guarded_elasticsearch_image(made, bundle_image):
    return guarded(made, "elasticsearch", bundle_image, ELASTICSEARCH_IMAGE=vendor_image(made, "elasticsearch"))


@pytest.fixture(scope="session")
def guarded_opensearch_image(made, bundle_image):
    return guarded(made, "opensearch", bundle_image, OPENSEARCH_IMAGE=vendor_image(made, "opensearch"))


@pytest.fixture(scope="session")
def guarded_kafka_image(made, bundle_image):
    return guarded(made, "kafka", bundle_image, KAFKA_IMAGE=vendor_image(made, "kafka"))


@pytest.fixture(scope="session")
def workloads_image(made, guard_image):
    """guard's image with the elasticsearch and kafka-server-start.sh stand-ins."""
    return made.build("workloads", os.path.join(IMAGES, "workloads"), GUARD_IMAGE=guard_image)


# pytest-docker with compose v1 (ENVIRONMENT.md): the v1 command, and `up` without --wait (v2 only).
@pytest.fixture(scope="session")
def docker_compose_command():
    return "docker-compose"


@pytest.fixture(scope="session")
def docker_setup():
    # The session fixtures built the images (no --build: a rebuild would re-tag them).
    return ["up -d"]


@pytest.fixture(scope="session")
def docker_cleanup():
    return ["down -v --rmi local"]
