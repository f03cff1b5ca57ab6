"""guard in front of a real redis-server (Debian's), in the derived image compose/redis/Dockerfile."""

import docker
from containers import EXIT_REFUSED, exec_output, finish, stop_redis_at_pid_1, wait_for_log
from hostsettings import sysctl

READY = "Ready to accept connections"
OVERCOMMIT_FIX = "sysctl -w vm.overcommit_memory=1"


# Redis only warns about overcommit, and so does its profile; an operator who wants it refused
# says so with a requirement of its own.
REQUIRE_OVERCOMMIT = {"GUARD_REQUIRE": "vm.overcommit_memory=1"}


def test_overcommit_off_refuses_before_redis_starts_when_required(made, guarded_redis_image):
    with sysctl("vm.overcommit_memory", 0):
        status, log = finish(made.container(guarded_redis_image, environment=REQUIRE_OVERCOMMIT))
    assert status == EXIT_REFUSED, log
    assert "[1] of [3] checks failed for redis\n" in log  # one row for overcommit, made hard by the requirement
    assert "vm.overcommit_memory is [0] but must be [1]" in log
    assert OVERCOMMIT_FIX in log
    assert "Redis is starting" not in log and READY not in log


def test_satisfied_host_execs_redis_as_pid_1_and_stop_gets_redis_exit_code(made, guarded_redis_image):
    with sysctl("vm.overcommit_memory", 1):
        container = made.container(guarded_redis_image)
        log = wait_for_log(container, READY)
        assert "checks failed" not in log
        status, log, stopped_in = stop_redis_at_pid_1(container)
    # Redis handles SIGTERM itself (saves, "ready to exit, bye bye", exit 0): docker stop did not
    # have to wait its 10 s and SIGKILL (137), because the signal reached Redis, not a wrapper.
    assert status == 0, log
    assert stopped_in < 5, log
    assert "Received SIGTERM" in log


def test_overcommit_off_starts_redis_with_guards_warning_and_redis_own(made, guarded_redis_image):
    with sysctl("vm.overcommit_memory", 0):
        container = made.container(guarded_redis_image)
        log = wait_for_log(container, READY)
        assert exec_output(container, "redis-cli", "ping") == (0, "PONG")
    assert "(warning) memory overcommit vm.overcommit_memory is [0] but should be [1]" in log
    assert OVERCOMMIT_FIX in log
    # Redis's own start-up check agrees with guard's verdict: a warning, and it runs.
    assert "WARNING Memory overcommit must be enabled" in log


def test_warn_mode_starts_redis_even_when_a_requirement_fails(made, guarded_redis_image):
    with sysctl("vm.overcommit_memory", 0):
        container = made.container(guarded_redis_image, environment={**REQUIRE_OVERCOMMIT, "GUARD_MODE": "warn"})
        log = wait_for_log(container, READY)
    assert "guard: starting redis-server anyway (warn mode)" in log


def test_container_limits_too_low_for_redis_are_caught_with_docker_fixes(made, guarded_redis_image):
    # Both are warnings for Redis (it lowers maxclients and the backlog and runs on), so it starts;
    # guard names the docker run / compose settings that fix them.
    with sysctl("vm.overcommit_memory", 1):
        container = made.container(guarded_redis_image,
                                   ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024)],
                                   sysctls={"net.core.somaxconn": 128})
        log = wait_for_log(container, READY)
    guard_log = log.split(READY)[0]
    assert "nofile.hard [1024]" in guard_log
    assert "--ulimit nofile=10032:10032" in guard_log
    assert "ulimits:" in guard_log
    assert "net.core.somaxconn [128]" in guard_log
    assert "--sysctl net.core.somaxconn=511" in guard_log
    # Redis's own warnings for the same two limits.
    assert "maxclients has been reduced" in log
    assert "somaxconn is set to the lower value of 128" in log
