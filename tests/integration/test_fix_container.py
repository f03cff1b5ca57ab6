"""guard fix from the bundle image in real containers: a default one, whose /proc/sys is read-only,
and one started with --security-opt systempaths=unconfined (what a privileged DaemonSet gets that
guard fix uses: --privileged itself fails on this machine), whose writes change the host.

The host's vm.max_map_count is set and restored by tests/hostsettings.py, under its lock.
"""

import docker
from containers import EXIT_REFUSED, finish
from hostsettings import current_value, sysctl, sysctl_path

MAPS = "vm.max_map_count>=262144"
NOT_INSIDE = ("vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside "
              "a container, only on the Docker host.")
HOST_FIX = "To fix this, on the Docker host run as root: sysctl -w vm.max_map_count=262144"


def run_fix(made, bundle_image, *args, **options):
    return finish(made.container(bundle_image, ["fix", *args], **options))


def run_fix_with_a_writable_proc_sys(made, bundle_image, *args):
    """`docker run --security-opt systempaths=unconfined`: the CLI turns it into no masked and no
    read-only paths, which the engine's API takes as such (it refuses the option itself)."""
    api = made.client.api
    host_config = api.create_host_config(network_mode="none")
    host_config.update({"MaskedPaths": [], "ReadonlyPaths": []})
    created = api.create_container(bundle_image, ["fix", *args], host_config=host_config)
    made.containers.append(created["Id"])  # removed after the test, by id
    container = made.client.containers.get(created["Id"])
    container.start()
    return finish(container)


def test_default_container_cannot_write_proc_sys_and_gets_the_docker_hosts_fix(made, bundle_image):
    with sysctl("vm.max_map_count", 65530):
        status, log = run_fix(made, bundle_image, "--require", MAPS, "--require", "net.core.somaxconn>=8192",
                              "--require", "nofile.hard>=1048576",
                              ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024)])
        assert current_value(sysctl_path("vm.max_map_count")) == "65530"
    assert status == EXIT_REFUSED, log
    assert ("guard: cannot set vm.max_map_count [65530] -> [262144]: cannot write /proc/sys/vm/max_map_count: "
            "Read-only file system\n") in log
    assert f"guard:     {NOT_INSIDE}\nguard:     {HOST_FIX}\n" in log
    # its own network namespace's value: left to where the container is created
    assert "cannot set net.core.somaxconn [4096] -> [8192]: net.core.somaxconn is kept per namespace" in log
    assert "docker run --sysctl net.core.somaxconn=8192" in log
    assert "cannot set nofile.hard [1024] -> [1048576]: a resource limit is given to a process" in log
    assert "docker run --ulimit nofile=1048576:1048576" in log


def test_container_with_a_writable_proc_sys_raises_the_hosts_value(made, bundle_image):
    with sysctl("vm.max_map_count", 65530):
        status, log = run_fix_with_a_writable_proc_sys(made, bundle_image, "--require", MAPS)
        raised = current_value(sysctl_path("vm.max_map_count"))
        again, second_log = run_fix_with_a_writable_proc_sys(made, bundle_image, "--require",
                                                             "vm.max_map_count>=100000")
        kept = current_value(sysctl_path("vm.max_map_count"))
    assert status == 0, log
    assert raised == "262144" and kept == "262144"
    assert log.startswith("guard: set vm.max_map_count [65530] -> [262144]\n"), log
    assert "pass  max-map-count" in log
    assert again == 0 and "leave vm.max_map_count [262144] (already >= [100000])" in second_log


def test_a_key_that_names_no_sysctl_ends_the_container_with_2_even_with_every(made, bundle_image):
    # What the fix DaemonSet runs, misspelled: it must end and say so, not loop over a skipped check.
    status, log = run_fix(made, bundle_image, "--require", "vm.maxmapcount>=262144", "--every", "300")
    assert status == 2, log
    assert log == ("guard: --require [vm.maxmapcount>=262144]: [vm.maxmapcount] names no sysctl: /proc/sys/vm has "
                   "no maxmapcount; did you mean vm.max_map_count?\n")
