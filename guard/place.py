"""Where guard runs, so the fix it prints is one the user can paste where they are.

A node-level setting (vm.max_map_count, THP) is changed where the kernel is: the Linux host, the
VM of Docker Desktop, OrbStack, WSL2 or a Podman machine, or the Kubernetes node, whose provider
(GKE, EKS, AKS, OpenShift) has its own way to set and keep it. A resource limit is given by
whoever creates the container: Docker, Podman (rootless: within the user's own hard limit), the
manager of a system container (LXC, systemd-nspawn), or the Kubernetes node's runtime.

Reading is kept apart from judging: observe() gathers what a process can see (the kernel's
release, marker files, its environment, the machine's DMI names, its user namespace), each fact
None when it could not be read; decide() names the place from those facts alone, so tests feed
facts directly as well as crafted trees. Every file is read under host.proc_root(),
host.sys_root() or host.root_fs() (GUARD_PROCFS, GUARD_SYSFS, GUARD_ROOTFS). GUARD_PLACE
overrides the detection. Where no fact tells two platforms apart (Colima, Lima, Rancher Desktop
behind Docker; kind, k3d, minikube behind Kubernetes), the place is the generic one and its fix
lists them.
"""

import os

from guard import host
from guard.records import record


class Kind(record("Kind", "name kernel engine in_container")):
    """A place guard knows. kernel: where its node-level settings are changed, for messages;
    engine: who gives its containers their limits and namespaced sysctls (host, docker, podman,
    kubernetes); in_container: whether guard runs in a container there."""

    __slots__ = ()


KINDS = dict((kind.name, kind) for kind in (
    Kind("host", "this host", "host", False),
    Kind("wsl2-distro", "the WSL2 VM", "host", False),
    Kind("container", "the Docker host", "docker", True),
    Kind("wsl2", "the WSL2 VM", "docker", True),
    Kind("docker-desktop", "Docker Desktop's VM", "docker", True),
    Kind("orbstack", "OrbStack's VM", "docker", True),
    Kind("podman", "the host that runs Podman", "podman", True),
    Kind("podman-rootless", "the host that runs Podman", "podman", True),
    Kind("system-container", "the host that runs the container", "system", True),
    Kind("kubernetes", "the Kubernetes node", "kubernetes", True),
    Kind("openshift", "the Kubernetes node", "kubernetes", True),
    Kind("gke", "the Kubernetes node", "kubernetes", True),
    Kind("eks", "the Kubernetes node", "kubernetes", True),
    Kind("aks", "the Kubernetes node", "kubernetes", True),
))
PLACES = tuple(KINDS)


class Place(record("Place", "name proc_sys_writable")):
    """name: one of PLACES."""

    __slots__ = ()

    @property
    def in_container(self):
        return KINDS[self.name].in_container

    @property
    def where_the_kernel_is(self):
        return KINDS[self.name].kernel

    @property
    def engine(self):
        return KINDS[self.name].engine


# What a process can see of where it runs, each with a plain host's value as its default. A
# file's fact is its text (True for one that only has to exist), False when there is no such file,
# None when it could not be read (unknown); a variable's is its value, None when unset.
FACTS = dict([
    ("osrelease", None), ("container_variable", None), ("systemd_container", False), ("containerenv", False),
    ("dockerenv", False), ("proc_sys_read_only", False), ("init_cgroup", False), ("uid_map", False),
    ("kubernetes_service_host", None), ("service_account", False), ("service_ca", False), ("sys_vendor", False),
    ("product_name", False), ("product_version", False), ("bios_vendor", False),
])
Observed = record("Observed", FACTS, defaults=tuple(FACTS.values()))

# Files guard reads to tell places apart, under host.root_fs() (GUARD_ROOTFS).
CONTAINERENV = ("run", ".containerenv")
SYSTEMD_CONTAINER = ("run", "systemd", "container")
DOCKERENV = (".dockerenv",)
SERVICE_ACCOUNT = ("var", "run", "secrets", "kubernetes.io", "serviceaccount")
DMI_NAMES = ("sys_vendor", "product_name", "product_version", "bios_vendor")


def _read(path):
    try:
        return host.read_text(path)
    except host.Unreadable as e:
        return False if e.missing else None


def _exists(path):
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return None
    return True


def proc_sys_read_only():
    try:
        return bool(os.statvfs(os.path.join(host.proc_root(), "sys")).f_flag & os.ST_RDONLY)
    except OSError:
        return None


def observe(environ):
    """The facts of the process's own surroundings, read once. A fact only one kind of place can
    use is read only where a sign of that place is: a cloud's DMI names and OpenShift's CA under
    Kubernetes, the uid_map beside a Podman sign, the read-only /proc/sys beside /.dockerenv. The
    others keep a plain host's value."""
    proc, sys_, root = host.proc_root(), host.sys_root(), host.root_fs()
    account = os.path.join(root, *SERVICE_ACCOUNT)
    facts = Observed(
        osrelease=_read(host.sysctl_path("kernel.osrelease")),
        container_variable=environ.get("container"),
        containerenv=_read(os.path.join(root, *CONTAINERENV)),
        dockerenv=_exists(os.path.join(root, *DOCKERENV)),
        init_cgroup=_read(os.path.join(proc, "1", "cgroup")),
        kubernetes_service_host=environ.get("KUBERNETES_SERVICE_HOST") or None,
        service_account=_exists(account),
    )
    cgroup = _text(facts.init_cgroup)
    if facts.dockerenv is True:
        facts = facts._replace(proc_sys_read_only=proc_sys_read_only())
    if _in_kubernetes(facts, cgroup):
        facts = facts._replace(service_ca=_exists(os.path.join(account, "service-ca.crt")))
        if _managed(facts, cgroup):
            facts = facts._replace(**{name: _read(os.path.join(sys_, "class", "dmi", "id", name)) for name in DMI_NAMES})
    elif _podman_sign(facts, cgroup):
        facts = facts._replace(uid_map=_read(os.path.join(proc, "self", "uid_map")))
    elif not facts.container_variable:
        facts = facts._replace(systemd_container=_read(os.path.join(root, *SYSTEMD_CONTAINER)))
    return facts


def _text(fact):
    """A fact's text, "" when the file is missing or could not be read."""
    return fact if isinstance(fact, str) else ""


def _kernel(release):
    """The VM a kernel release names, if any: containers share the kernel, so they see it too."""
    release = release.lower()
    # WSL2's kernels end in -microsoft-standard-WSL2 (Docker Desktop's and Elastic's docs quote
    # 5.15.x-microsoft-standard-WSL2; microsoft/WSL#423): high. A bare "microsoft" is not enough:
    # WSL1's release ends in -Microsoft and Azure's own kernels say it too (systemd#15614), so
    # those fall to the generic place, whose fix covers them.
    if "wsl2" in release:
        return "wsl2"
    # Docker Desktop's VM runs LinuxKit's kernel, e.g. 6.10.0-linuxkit (docker/for-mac#7402):
    # high, on macOS and on Windows with the Hyper-V back end.
    if "linuxkit" in release:
        return "docker-desktop"
    # OrbStack's kernel says so, e.g. 6.5.10-orbstack (orbstack/orbstack#851): high.
    if "orbstack" in release:
        return "orbstack"
    return None


def _in_kubernetes(facts, cgroup):
    # The kubelet gives every container KUBERNETES_SERVICE_HOST (Kubernetes docs, "Service",
    # environment variables) and, unless automountServiceAccountToken is false, the service
    # account's folder: high. Pods' cgroups sit under kubepods (cgroup v1, or v2 without a
    # cgroup namespace): high where visible.
    return bool(facts.kubernetes_service_host or facts.service_account is True or "kubepods" in cgroup)


# The kubernetes Service's address in a cluster that keeps its distribution's default Service
# range: kubeadm's 10.96.0.0/12 (its ClusterConfiguration's serviceSubnet; kind, minikube and
# Docker Desktop's cluster keep it), k3s's 10.43.0.0/16 (--service-cidr; k3d and RKE2 too),
# MicroK8s' 10.152.183.0/24 (its kube-apiserver args). No managed provider's default is among
# them: EKS takes 10.100.0.0/16 or 172.20.0.0/16 (EKS API, KubernetesNetworkConfig), AKS
# 10.0.0.0/16 (az aks create --service-cidr), GKE 34.118.224.0/20 from 1.29.
LOCAL_SERVICE_HOSTS = ("10.96.0.1", "10.43.0.1", "10.152.183.1")


def _managed(facts, cgroup):
    """Whether the cluster may be a cloud's managed one, for its DMI names to tell which. Those
    names say whose VM this is, not who runs the cluster: kind, minikube, k3s on a cloud VM (a CI
    runner), Docker Desktop's cluster on Hyper-V, or a test harness that sets only the variable."""
    # The kubelet's own signs, not the variable alone, which anyone can set.
    kubelet = facts.service_account is True or "kubepods" in cgroup
    # A desktop VM's kernel (WSL2, Docker Desktop, OrbStack) runs no provider's nodes.
    return (kubelet and _kernel(_text(facts.osrelease)) is None
            and facts.kubernetes_service_host not in LOCAL_SERVICE_HOSTS)


def _kubernetes_provider(facts, cgroup):
    # OpenShift puts the service CA, service-ca.crt, into every pod's service-account folder
    # (openshift/operator-framework-operator-controller#180): medium-high; a pod without the
    # token mounted falls to the generic place.
    if facts.service_ca is True:
        return "openshift"
    # CRI-O writes /run/.containerenv (cri-o#5463) and names its cgroups crio-<id>: GKE, EKS and
    # AKS run containerd, so such a node is none of theirs.
    if isinstance(facts.containerenv, str) or "crio" in cgroup:
        return "kubernetes"
    if not _managed(facts, cgroup):
        return "kubernetes"
    # The machine's DMI names, as cAdvisor tells clouds apart (utils/cloudinfo): medium, as a
    # self-managed cluster on the same cloud's VMs matches too; the provider's fix keeps guard's
    # DaemonSet, which works there, as its alternative.
    if "google" in _text(facts.product_name).lower():  # "Google Compute Engine" (cloudinfo/gce.go)
        return "gke"
    # "Amazon EC2" on Nitro; Xen instances say "4.11.amazon" in product_version (cloudinfo/aws/aws.go)
    if any("amazon" in _text(fact).lower() for fact in (facts.sys_vendor, facts.product_version, facts.bios_vendor)):
        return "eks"
    # Azure's VMs say "Microsoft Corporation" (cloudinfo/azure.go), and so does any Hyper-V VM:
    # only together with Kubernetes is this AKS, and still medium.
    if _text(facts.sys_vendor).strip() == "Microsoft Corporation":
        return "aks"
    return "kubernetes"


def _podman_named(facts, cgroup):
    engine = _text(facts.containerenv)
    # Podman's default environment has container=podman (containers/podman pkg/env/env.go): high,
    # though an image (Fedora's and UBI's say container=oci) or -e can set another, and an image
    # made by podman commit keeps it: it counts only where Podman's own file is, /run/.containerenv
    # ("created in each container", podman-run(1)), and Docker's, /.dockerenv, is not. Its cgroups
    # are libpod-<id> (cgroup v1 or the host's cgroup namespace; measured here: libpod_parent/
    # libpod-<id>): high where visible. /run/.containerenv names the engine only in a
    # --privileged container (engine="podman-4.3.1", measured here): high.
    variable = facts.container_variable == "podman" and facts.containerenv is not False and facts.dockerenv is not True
    return variable or "libpod" in cgroup or 'engine="podman-' in engine


def _podman_sign(facts, cgroup):
    # Besides the signs that name Podman, an empty /run/.containerenv outside Kubernetes (CRI-O
    # writes it there) is Podman's or Buildah's (containers/buildah#1844): medium.
    return _podman_named(facts, cgroup) or isinstance(facts.containerenv, str)


def _podman(facts, cgroup):
    """podman, podman-rootless, or None."""
    if not _podman_sign(facts, cgroup):
        return None
    engine = _text(facts.containerenv)
    # rootless=1 in /run/.containerenv, again only when privileged: high. Otherwise a user
    # namespace that maps the container's root to another user: rootless Podman maps it to the
    # user who runs it (measured here: "0 1001 1" then "1 100000 65536"), where rootful Podman
    # keeps the identity map "0 0 4294967295": medium, as rootful Podman with --userns=auto maps
    # it too; the rootless fix only adds the user's hard limit to the rootful one.
    if "rootless=1" in engine.split() or _user_namespace(facts.uid_map):
        return "podman-rootless"
    return "podman"


def _user_namespace(uid_map):
    """Whether uid_map (user_namespaces(7)) maps uid 0 anywhere but to itself, over the whole range."""
    lines = [line.split() for line in _text(uid_map).splitlines() if line.strip()]
    return bool(lines) and lines != [["0", "0", "4294967295"]]


def _in_container(facts, cgroup):
    # The container interface of systemd (and LXC, systemd-nspawn, Podman) sets container=:
    # high. /run/.containerenv: Podman, Buildah, CRI-O: high. Docker leaves /.dockerenv, but so
    # does any machine whose root file system was made from a Docker image, so that marker counts
    # only with the read-only /proc/sys Docker gives its containers. Docker's and containerd's
    # cgroups (docker/<id>, cri-containerd-<id>), LXC's: medium, seen only on cgroup v1 or
    # without a cgroup namespace.
    return bool(facts.container_variable or isinstance(facts.containerenv, str)
                or (facts.dockerenv is True and facts.proc_sys_read_only is True)
                or any(word in cgroup for word in ("docker", "containerd", "lxc")))


# The names system containers give themselves in container= (systemd's CONTAINER_INTERFACE):
# LXC's (LXD, Incus and Proxmox VE run LXC), libvirt's LXC driver, systemd-nspawn.
SYSTEM_CONTAINERS = ("lxc", "lxc-libvirt", "systemd-nspawn")


def _system_container(facts, cgroup):
    # The manager sets container= for the container's PID 1 only; systemd there writes it to
    # /run/systemd/container (src/core/main.c, write_container_id), which every process can read:
    # high. LXC's cgroups are lxc.payload.<name> (LXC 4) or lxc/<name>: high where visible. An
    # image copied into Docker keeps either file, and Docker runs in LXC too, so Docker's
    # /.dockerenv outranks them.
    name = facts.container_variable or _text(facts.systemd_container)
    lxc = any(mark in cgroup for mark in ("/lxc.payload.", "/lxc/"))
    return (name in SYSTEM_CONTAINERS or lxc) and facts.dockerenv is not True


def decide(facts):
    """The place, one of PLACES, from what observe() found: specific only when a fact names it,
    else the generic place, whose fix lists the platforms it cannot tell apart."""
    cgroup = _text(facts.init_cgroup)
    kernel = _kernel(_text(facts.osrelease))
    if _in_kubernetes(facts, cgroup):
        return _kubernetes_provider(facts, cgroup)
    # Before the kernel: a Podman machine on Windows is a WSL2 distribution, where the fix is
    # Podman's (podman machine ssh), not Docker Desktop's.
    podman = _podman(facts, cgroup)
    if podman:
        return podman
    if _system_container(facts, cgroup):
        # OrbStack's Linux machines say lxc (systemd-detect-virt there, as users' scripts test
        # it), and root in one sets the VM's sysctls as on a host (orbstack/orbstack#1317)
        return "host" if kernel == "orbstack" else "system-container"
    if _in_container(facts, cgroup):
        return kernel or "container"
    # Not in a container: on a WSL2 kernel, a WSL2 distribution itself; in an OrbStack or
    # Docker Desktop VM, a Linux host as any other.
    return "wsl2-distro" if kernel == "wsl2" else "host"


class Detected:
    """The Place of detect(), detected when first asked: only a fix names the place, so a start
    whose checks all pass reads nothing for it."""

    __slots__ = ("_environ", "_override", "_place")

    def __init__(self, environ=None, override=None):
        self._environ, self._override, self._place = environ, override, None

    def _detected(self):
        if self._place is None:
            self._place = detect(self._environ, self._override)
        return self._place

    def __getattr__(self, name):  # each of Place's fields and properties, from the Place detected
        return getattr(self._detected(), name)


def detect(environ=None, override=None):
    environ = os.environ if environ is None else environ
    writable = os.access(host.sysctl_path("vm.max_map_count"), os.W_OK)
    if override and override != "auto":
        # A place named by the user is that place as it usually is: a container's /proc/sys is
        # read-only unless it was started privileged, which only detection can tell.
        return Place(override, writable and not KINDS[override].in_container)
    return Place(decide(observe(environ)), writable)
