"""The compose stacks in compose/: the Redis one runs here; all must be valid compose files."""

import contextlib
import glob
import itertools
import os
import subprocess

import pytest
import yaml
from containers import BASE_IMAGE, EXIT_REFUSED, REPO, RUN_ID, exec_output, finish, wait_for_log
from hostsettings import sysctl
from pytest_docker.plugin import DockerComposeExecutor

STACK_FILES = sorted(glob.glob(os.path.join(REPO, "compose", "*", "docker-compose*.yml")))
HERE = os.path.dirname(__file__)
# The user's files, each with what the tests change for these machines layered over it.
PREFLIGHT_STACK = [os.path.join(REPO, "compose", "redis", "docker-compose.yml"),
                   os.path.join(HERE, "compose-offline.yml")]
PREFIX_STACK = [os.path.join(REPO, "compose", "redis", "docker-compose.prefix.yml"),
                os.path.join(HERE, "compose-offline.prefix.yml")]
_projects = itertools.count()


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: os.path.relpath(p, REPO))
def test_stack_file_is_valid_compose(client, path):
    env = dict(os.environ, OPENSEARCH_INITIAL_ADMIN_PASSWORD="not-a-real-password")
    result = subprocess.run(["docker-compose", "-f", path, "config", "-q"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


GUARD_VARIABLES = {"GUARD_REQUIRE": "vm.max_map_count>=1", "GUARD_MODE": "warn"}


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_stack_hands_guard_the_variables_of_the_shell(client, path):
    # GUARD_REQUIRE and GUARD_MODE reach the container guard runs in (the preflight, or the
    # service with the prefix) when set where compose runs, and are empty (unset, to guard)
    # otherwise.
    for given in (GUARD_VARIABLES, {}):
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
        env.update(given, OPENSEARCH_INITIAL_ADMIN_PASSWORD="not-a-real-password")
        result = subprocess.run(["docker-compose", "-f", path, "config"], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        services = yaml.safe_load(result.stdout)["services"]
        [guarded] = [services["preflight"]] if "preflight" in services else services.values()
        environment = guarded["environment"]
        assert {k: environment.get(k) for k in GUARD_VARIABLES} == {k: given.get(k, "") for k in GUARD_VARIABLES}


@contextlib.contextmanager
def redis_stack(files, monkeypatch, command, setup, cleanup, guard_image, bundle_image, redis_image):
    """A Redis stack with the offline override: `up` may fail; `down` always runs."""
    monkeypatch.setenv("GUARD_BASE", BASE_IMAGE)
    monkeypatch.setenv("GUARD_IMAGE", guard_image)
    monkeypatch.setenv("GUARD_BUNDLE", bundle_image)
    monkeypatch.setenv("REDIS_IMAGE", redis_image)
    project = f"guardtest{RUN_ID}{next(_projects)}"
    compose = DockerComposeExecutor(command, files, project)
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
def stack(monkeypatch, docker_compose_command, docker_setup, docker_cleanup, guard_image, bundle_image,
          redis_image):
    return lambda files: redis_stack(files, monkeypatch, docker_compose_command, docker_setup,
                                     docker_cleanup, guard_image, bundle_image, redis_image)


def test_failed_preflight_never_starts_redis(client, stack):
    with sysctl("vm.overcommit_memory", 0), stack(PREFLIGHT_STACK) as (project, up):
        assert "exited with code 78" in up
        [preflight] = service_containers(client, project, "preflight")
        status, log = finish(preflight)
        # compose v1 does not even create the service's container (compose/README.md).
        assert service_containers(client, project, "redis") == [], "redis was created"
    assert status == EXIT_REFUSED
    assert "[1] of [3] checks failed for redis\n" in log  # one row for overcommit, made hard by the requirement
    assert "sysctl -w vm.overcommit_memory=1" in log


def test_passed_preflight_starts_redis(client, stack):
    with sysctl("vm.overcommit_memory", 1), stack(PREFLIGHT_STACK) as (project, up):
        preflights = service_containers(client, project, "preflight")
        assert len(preflights) == 1, up
        assert finish(preflights[0])[0] == 0, up
        [redis] = service_containers(client, project, "redis")
        wait_for_log(redis, "Ready to accept connections")
        assert exec_output(redis, "redis-cli", "ping") == (0, "PONG")


def test_prefix_stack_refuses_in_the_redis_container_and_starts_when_fixed(client, stack):
    with sysctl("vm.overcommit_memory", 0), stack(PREFIX_STACK) as (project, up):
        [redis] = service_containers(client, project, "redis")
        status, log = finish(redis)
    assert status == EXIT_REFUSED, up + log
    assert "sysctl -w vm.overcommit_memory=1" in log
    assert "Ready to accept connections" not in log
    with sysctl("vm.overcommit_memory", 1), stack(PREFIX_STACK) as (project, up):
        [redis] = service_containers(client, project, "redis")
        wait_for_log(redis, "Ready to accept connections")
        assert exec_output(redis, "cat", "/proc/1/comm") == (0, "redis-server")
