"""Containers and images for the integration tests: made here, removed by id at the end."""

import os
import re
import time
import uuid

import docker
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGES = os.path.join(os.path.dirname(__file__), "images")
# Built by scripts/base-image from Debian's packages: there is no registry to pull python:3.12-slim.
BASE_IMAGE = os.environ.get("TEST_BASE_IMAGE", "guard-base:bookworm")
# Images that have nothing of guard's, made by scripts/base-image: the bundle is copied into them.
NO_PYTHON_IMAGE = "guard-target:bookworm-nopython"  # Redis and tini, no Python
OLD_GLIBC_IMAGE = "guard-target:bullseye"  # glibc 2.31, Redis 6.0
NO_LIBC_IMAGE = "guard-target:busybox"  # a static busybox and nothing else
VALKEY_IMAGE = "guard-target:trixie-valkey"  # Debian 13's valkey-server 8.1, no Python
# The same for arm64, run here under QEMU's user-mode emulation (scripts/arm64-emulation).
ARM64 = "linux/arm64"
BASE_IMAGE_ARM64 = os.environ.get("TEST_BASE_IMAGE_ARM64", "guard-base:bookworm-arm64")
NO_PYTHON_IMAGE_ARM64 = "guard-target:bookworm-nopython-arm64"
NO_LIBC_IMAGE_ARM64 = "guard-target:busybox-arm64"  # Debian's arm64 busybox-static
RUN_ID = uuid.uuid4().hex[:8]
EXIT_REFUSED = 78


def unavailable(reason):
    """What an integration test needs is missing: a skip with the reason, but a failure in CI
    (CI=true), where scripts/test installs and starts everything."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: scripts/test must provide it)", pytrace=False)
    pytest.skip(f"{reason}; run scripts/test as root to install and start it")


class Made:
    """What this run created. Containers are removed by id after each test; images by their tag,
    unique to the run, at the end: an identical build elsewhere (the builder's cache) may share
    the image's id, and removing the tag deletes the image only when nothing else holds it."""

    def __init__(self, client):
        self.client = client
        self.containers = []
        self.tags = []
        self.layers = []  # images a build made on the way, such as a multi-stage build's first stage

    def build(self, name, path, dockerfile="Dockerfile", target=None, platform=None, **buildargs):
        """platform: "linux/arm64" for another architecture than the engine's (ARM64)."""
        tag = f"guard-test-{name}:{RUN_ID}"
        try:
            self._build(tag, path, dockerfile, target, buildargs, platform)
        except docker.errors.BuildError as e:
            pytest.fail(f"building {name} failed: {e.msg}\n{e.text[-3000:]}", pytrace=False)
        return tag

    def build_failing(self, name, path, dockerfile="Dockerfile", target=None, platform=None, **buildargs):
        """A build that must fail: its whole log. What it made before failing goes at the end."""
        tag = f"guard-test-{name}:{RUN_ID}"
        try:
            log = self._build(tag, path, dockerfile, target, buildargs, platform)
        except docker.errors.BuildError as e:
            return e.text
        pytest.fail(f"building {name} succeeded, where it must fail:\n{log[-3000:]}", pytrace=False)

    def _build(self, tag, path, dockerfile, target, buildargs, platform=None):
        """Build and tag; the log as text. Raises BuildError with the log as its text."""
        try:
            _, steps = self.client.images.build(
                path=path, dockerfile=dockerfile, target=target, buildargs=buildargs, tag=tag,
                network_mode="host", rm=True, forcerm=True, platform=platform)
            steps = list(steps)
        except docker.errors.BuildError as e:
            steps = list(e.build_log)
            self.layers += new_layers(steps)
            e.text = "".join(step.get("stream", "") + step.get("error", "") for step in steps)
            raise
        self.tags.append(tag)
        self.layers += new_layers(steps)
        return "".join(step.get("stream", "") for step in steps)

    def container(self, image, command=None, **options):
        """Create and start a container (network none unless told); removed after the test."""
        options.setdefault("network_mode", "none")
        container = self.client.containers.create(image, command, **options)
        self.containers.append(container.id)
        container.start()
        return container

    def remove_containers(self):
        while self.containers:
            try:
                self.client.containers.get(self.containers.pop()).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass

    def remove_images(self):
        while self.tags:
            try:
                self.client.images.remove(self.tags.pop())
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:  # 409: another run's image builds on it; it goes with theirs
                    raise
        while self.layers:
            layer = self.layers.pop()
            try:
                if not self.client.images.get(layer).tags:
                    self.client.images.remove(layer)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:
                    raise


def new_layers(build_log):
    """Ids of the images the legacy builder made for a build, leaving out FROM and cache hits."""
    made, instruction, cached = [], "", False
    for chunk in build_log:
        for line in chunk.get("stream", "").splitlines():
            line = line.strip()
            step = re.match(r"Step \d+/\d+ : (\w+)", line)
            if step:
                instruction, cached = step.group(1).upper(), False
            elif line == "---> Using cache":
                cached = True
            elif re.fullmatch(r"---> [0-9a-f]{12}", line) and instruction != "FROM" and not cached:
                made.append(line[5:])
    return made


def finish(container, timeout=60):
    """Wait for the container to exit; return its exit code and its whole log as text."""
    status = container.wait(timeout=timeout)["StatusCode"]
    return status, container.logs().decode(errors="replace")


def wait_for_log(container, text, timeout=30):
    """Poll the log until it holds text; fail with the log if the container exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = container.logs().decode(errors="replace")
        if text in log:
            return log
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.1)
    pytest.fail(f"[{text}] not in the log of {container.short_id} ({container.status}):\n{log}", pytrace=False)


def exec_output(container, *cmd):
    code, output = container.exec_run(list(cmd))
    return code, output.decode(errors="replace").strip()


def stop_redis_at_pid_1(container):
    """Assert Redis runs as PID 1 and answers, then docker stop it: (exit code, log, seconds the
    stop took). Redis exits 0 on SIGTERM itself; a wrapper in its place would make docker stop
    wait for its timeout and SIGKILL (137)."""
    assert exec_output(container, "cat", "/proc/1/comm") == (0, "redis-server")
    assert exec_output(container, "redis-cli", "ping") == (0, "PONG")
    started = time.monotonic()
    container.stop(timeout=10)
    stopped_in = time.monotonic() - started
    status, log = finish(container)
    return status, log, stopped_in


def wait_for_process(container, comm, timeout=30):
    """Poll until a process named comm runs in the container (sleep writes no log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, names = exec_output(container, "sh", "-c", "cat /proc/[0-9]*/comm")
        if comm in names.split():
            return
        time.sleep(0.1)
    raise AssertionError(f"no {comm} process in {container.short_id} after {timeout} s")
