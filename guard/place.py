"""Where guard runs, so the fix it prints is one the user can paste where they are.

A node-level setting (vm.max_map_count, THP) is changed on the Linux host, in Docker Desktop's VM
(WSL2 on Windows, LinuxKit on macOS) or on the Kubernetes node; a resource limit is given where
the container is created. GUARD_PLACE overrides the detection.
"""

import collections
import os

from guard import host

PLACES = ("host", "container", "kubernetes", "wsl2", "docker-desktop")


class Place(collections.namedtuple("Place", "name in_container proc_sys_writable")):
    """name: one of PLACES."""

    __slots__ = ()

    @property
    def where_the_kernel_is(self):
        return {
            "host": "this host",
            "container": "the Docker host",
            "kubernetes": "the Kubernetes node",
            "wsl2": "Docker Desktop's WSL2 VM",
            "docker-desktop": "Docker Desktop's VM",
        }[self.name]


# Podman leaves /run/.containerenv in every container (podman-run(1)). Docker leaves /.dockerenv,
# but so does any machine whose root file system was made from a Docker image, so that marker
# counts only together with the read-only /proc/sys that Docker gives its containers.
PODMAN_MARKER = "/run/.containerenv"
DOCKER_MARKER = "/.dockerenv"
CGROUP_WORDS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio")


def proc_sys_read_only():
    try:
        return bool(os.statvfs(os.path.join(host.proc_root(), "sys")).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _in_container(environ):
    if environ.get("container") or os.path.exists(PODMAN_MARKER):
        return True
    if os.path.exists(DOCKER_MARKER) and proc_sys_read_only():
        return True
    try:
        cgroups = host.read_text(os.path.join(host.proc_root(), "1", "cgroup"))
    except host.Unreadable:
        return False
    return any(word in cgroups for word in CGROUP_WORDS)


def _kernel_flavour():
    """Docker Desktop's kernels say so in their release string (containers share it)."""
    try:
        release = host.read_sysctl("kernel.osrelease").lower()
    except host.Unreadable:
        return None
    if "microsoft" in release or "wsl" in release:
        return "wsl2"
    if "linuxkit" in release:
        return "docker-desktop"
    return None


def detect(environ=None, override=None):
    environ = os.environ if environ is None else environ
    writable = os.access(host.sysctl_path("vm.max_map_count"), os.W_OK)
    if override and override != "auto":
        # A place named by the user is that place as it usually is: a container's /proc/sys is
        # read-only unless it was started privileged, which only detection can tell.
        return Place(override, override != "host", writable and override == "host")
    kubernetes = bool(environ.get("KUBERNETES_SERVICE_HOST"))
    in_container = kubernetes or _in_container(environ)
    flavour = _kernel_flavour()
    if kubernetes:
        name = "kubernetes"
    elif flavour:
        name = flavour
    else:
        name = "container" if in_container else "host"
    return Place(name, in_container, writable)
