"""The elasticsearch profile in a container, around a stand-in program named elasticsearch."""

import docker
from containers import EXIT_REFUSED, finish
from hostsettings import sysctl

STARTED = "stand-in elasticsearch started"
# FileDescriptorCheck wants 65535, but dockerd here cannot give a container more than its own
# hard limit (20000; raising it needs CAP_SYS_RESOURCE, which these machines lack). Skip that
# check where the test is about another one.
OTHER_THAN_FILES = {"GUARD_SKIP": "file-descriptors"}


def run_es(made, image, *args, environment=OTHER_THAN_FILES, **options):
    return finish(made.container(image, ["elasticsearch", *args], environment=environment, **options))


def test_default_map_count_refuses_with_elasticsearchs_own_sentence(made, workloads_image):
    with sysctl("vm.max_map_count", 65530):
        status, log = run_es(made, workloads_image)
    assert status == EXIT_REFUSED, log
    assert "[1] of [5] checks failed for elasticsearch" in log
    assert ("max virtual memory areas vm.max_map_count [65530] is too low, "
            "increase to at least [262144]") in log
    assert "on the Docker host run as root: sysctl -w vm.max_map_count=262144" in log
    assert STARTED not in log


def test_raised_map_count_launches(made, workloads_image):
    with sysctl("vm.max_map_count", 262144):
        status, log = run_es(made, workloads_image, "-Ecluster.name=test")
    assert status == 0, log
    assert f"{STARTED}: -Ecluster.name=test" in log
    assert "checks failed" not in log


def test_container_open_files_limit_is_caught_with_the_ulimit_fix(made, workloads_image):
    status, log = run_es(made, workloads_image, environment={},
                         ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024)])
    assert status == EXIT_REFUSED, log
    assert "nofile.hard [1024]" in log
    assert "--ulimit nofile=65535:65535" in log
    assert "ulimits:" in log
    assert STARTED not in log


def test_container_somaxconn_is_caught_with_the_sysctl_fix(made, workloads_image):
    status, log = run_es(made, workloads_image, sysctls={"net.core.somaxconn": 128},
                         environment=dict(OTHER_THAN_FILES, GUARD_REQUIRE="net.core.somaxconn>=1024"))
    assert status == EXIT_REFUSED, log
    assert "net.core.somaxconn [128]" in log
    assert "--sysctl net.core.somaxconn=1024" in log
    assert "sysctls:" in log
