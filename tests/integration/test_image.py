"""guard's own image, built from the product Dockerfile."""

from containers import EXIT_REFUSED, finish
from hostsettings import sysctl


def test_image_runs_guard_as_a_non_root_user(made, guard_image):
    status, log = finish(made.container(guard_image, entrypoint=["id", "-u"]))
    assert (status, log.strip()) != (0, "0")
    assert status == 0, log


def test_check_in_the_image_passes_and_fails_with_the_host(made, guard_image):
    check = ["check", "--profile", "redis", "--require", "vm.overcommit_memory=1"]
    with sysctl("vm.overcommit_memory", 1):
        passed = finish(made.container(guard_image, check))
    with sysctl("vm.overcommit_memory", 0):
        refused = finish(made.container(guard_image, check))
    assert passed[0] == 0, passed[1]
    assert refused[0] == EXIT_REFUSED, refused[1]
    assert "sysctl -w vm.overcommit_memory=1" in refused[1]
    assert "on the Docker host" in refused[1]
