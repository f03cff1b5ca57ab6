"""The compose stacks in compose/: the Redis one runs here; all must be valid compose files."""

import contextlib
import glob
import itertools
import os
import subprocess

import pytest
from containers import BASE_IMAGE, EXIT_REFUSED, REPO, RUN_ID, exec_output, finish, wait_for_log
from hostsettings import sysctl
from pytest_docker.plugin import DockerComposeExecutor

STACK_FILES = sorted(glob.glob(os.path.join(REPO, "compose", "*", "docker-compose*.yml")))
REDIS_STACK = os.path.join(REPO, "compose", "redis", "docker-compose.yml")
OFFLINE = os.path.join(os.path.dirname(__file__), "compose-offline.yml")
_projects = itertools.count()


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: os.path.relpath(p, REPO))
def test_stack_file_is_valid_compose(client, path):
    env = dict(os.environ, OPENSEARCH_INITIAL_ADMIN_PASSWORD="not-a-real-password")
    result = subprocess.run(["docker-compose", "-f", path, "config", "-q"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def redis_stack(monkeypatch, command, setup, cleanup, guard_image, redis_image):
    """The user's Redis stack with the offline override; `up` may fail; always `down`."""
    monkeypatch.setenv("GUARD_BASE", BASE_IMAGE)
    monkeypatch.setenv("GUARD_IMAGE", guard_image)
    monkeypatch.setenv("REDIS_IMAGE", redis_image)
    project = f"guardtest{RUN_ID}{next(_projects)}"
    compose = DockerComposeExecutor(command, [REDIS_STACK, OFFLINE], project)
    try:
        up = [compose.execute(c, success_codes=range(256)).decode(errors="replace") for c in setup]
        yield project, "".join(up)
    finally:
        for c in cleanup:
            compose.execute(c)


def service_containers(client, project, service):
    labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    return client.containers.list(all=True, filters={"label": labels})


@pytest.fixture
def stack(monkeypatch, docker_compose_command, docker_setup, docker_cleanup, guard_image, redis_image):
    return lambda: redis_stack(monkeypatch, docker_compose_command, docker_setup, docker_cleanup,
                               guard_image, redis_image)


def test_failed_preflight_never_starts_redis(client, stack):
    with sysctl("vm.overcommit_memory", 0), stack() as (project, up):
        assert "exited with code 78" in up
        [preflight] = service_containers(client, project, "preflight")
        status, log = finish(preflight)
        for redis in service_containers(client, project, "redis"):
            assert redis.status == "created", "redis was started"
    assert status == EXIT_REFUSED
    assert "[1] of [3] checks failed for redis" in log
    assert "sysctl -w vm.overcommit_memory=1" in log


def test_passed_preflight_starts_redis(client, stack):
    with sysctl("vm.overcommit_memory", 1), stack() as (project, up):
        preflights = service_containers(client, project, "preflight")
        assert len(preflights) == 1, up
        assert finish(preflights[0])[0] == 0, up
        [redis] = service_containers(client, project, "redis")
        wait_for_log(redis, "Ready to accept connections")
        assert exec_output(redis, "redis-cli", "ping") == (0, "PONG")
