"""Where guard runs: a crafted tree per platform (GUARD_PROCFS, GUARD_SYSFS, GUARD_ROOTFS) and the
environment a process sees there give that place and its fix. Facts fed to place.decide() cover
what a tree cannot hold (a read-only /proc/sys). Ambiguous surroundings give the generic place,
whose fix lists the platforms it cannot tell apart, never a wrong specific one.

The Podman facts (cgroup, uid_map, /run/.containerenv) are the ones measured in real rootful and
rootless containers here (tests/integration/test_podman.py runs them).
"""

import ast
import json
import os
import resource
import subprocess
import sys

import pytest
from guard import place
from support import crafted_files, crafted_proc, crafted_sys, run_guard, text

SERVICE_ACCOUNT = "var/run/secrets/kubernetes.io/serviceaccount"
WSL2_RELEASE = "5.15.153.1-microsoft-standard-WSL2"
IDENTITY_MAP = "         0          0 4294967295\n"
ROOTLESS_MAP = "         0       1001          1\n         1     100000      65536\n"  # rootless Podman, measured
DOCKER_CGROUP = "12:memory:/docker/0123abcd\n11:pids:/docker/0123abcd\n"
PODMAN_CGROUP = "9:name=systemd:/libpod_parent/libpod-a1f0ceb8\n8:pids:/libpod_parent/libpod-a1f0ceb8\n"
CRIO_CGROUP = "0::/kubepods.slice/kubepods-besteffort.slice/crio-5f0e.scope\n"
KUBERNETES = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}  # kubeadm's default, as kind and minikube keep it


def service_host(address):
    """The kubernetes Service's address, as the kubelet gives every container."""
    return {"KUBERNETES_SERVICE_HOST": address}


# Each provider's default Service address: GKE from 1.29, EKS, AKS, OpenShift.
GKE, EKS, AKS, OPENSHIFT = (service_host(a) for a in ("34.118.224.1", "10.100.0.1", "10.0.0.1", "172.30.0.1"))
AZURE_VM = {"sys_vendor": "Microsoft Corporation\n", "product_name": "Virtual Machine\n"}
TOKEN = {f"{SERVICE_ACCOUNT}/token": "x", f"{SERVICE_ACCOUNT}/namespace": "search"}


class Where:
    """What a process sees of one platform: kernel release, PID 1's cgroup, its uid_map, files of
    its root file system, DMI names, variables."""

    def __init__(self, osrelease="6.1.0-18-amd64", cgroup="0::/\n", uid_map=IDENTITY_MAP, root=None, dmi=None,
                 environ=None):
        self.osrelease, self.cgroup, self.uid_map = osrelease, cgroup, uid_map
        self.root, self.dmi, self.environ = root or {}, dmi or {}, environ or {}

    def craft(self, tmp_path):
        """The GUARD_* roots of a tree holding it, a host at the kernel's default map count."""
        proc = crafted_proc(tmp_path / "proc", {"vm.max_map_count": 65530}, osrelease=self.osrelease)
        crafted_files(proc, {"1/cgroup": self.cgroup, "self/uid_map": self.uid_map})
        return {"GUARD_PROCFS": proc, "GUARD_SYSFS": crafted_sys(tmp_path / "sys", dmi=self.dmi),
                "GUARD_ROOTFS": crafted_files(tmp_path / "root", self.root)}


# A fix that no other place prints, for vm.max_map_count >= 262144 and nofile.hard >= 65535.
PLATFORMS = {
    "host": (Where(), "To fix this, run as root: sysctl -w vm.max_map_count=262144",
             "ulimit -n 65535 (as root: only root raises a hard limit)"),
    "wsl2-distro": (Where(osrelease=WSL2_RELEASE),
                    "To fix this, run as root (every WSL2 distribution shares this kernel): "
                    "sysctl -w vm.max_map_count=262144", "ulimit -n 65535"),
    "container": (Where(cgroup=DOCKER_CGROUP), "  Colima: colima ssh -- sudo sysctl -w vm.max_map_count=262144",
                  "LimitNOFILE=65535 for dockerd (systemctl edit docker;"),
    "wsl2": (Where(osrelease=WSL2_RELEASE, cgroup=DOCKER_CGROUP),
             'wsl -d docker-desktop -u root sh -c "sysctl -w vm.max_map_count=262144"',
             "docker run --ulimit nofile=65535:65535"),
    "docker-desktop": (Where(osrelease="6.10.0-linuxkit", cgroup=DOCKER_CGROUP),
                       "docker run --rm --privileged --pid=host alpine nsenter -t 1",
                       "docker run --ulimit nofile=65535:65535"),
    "orbstack": (Where(osrelease="6.5.10-orbstack-00110-gbcfe04c86d2f", cgroup=DOCKER_CGROUP),
                 "from a privileged container: docker run --rm --privileged alpine sysctl -w vm.max_map_count=262144",
                 "docker run --ulimit nofile=65535:65535"),
    "podman": (Where(cgroup=PODMAN_CGROUP, root={"run/.containerenv": ""}, environ={"container": "podman"}),
               "To fix this, on the host that runs Podman run as root: sysctl -w vm.max_map_count=262144",
               "podman run --ulimit nofile=65535:65535"),
    "podman-rootless": (Where(uid_map=ROOTLESS_MAP, root={"run/.containerenv": ""}, environ={"container": "podman"}),
                        "run as root (rootless Podman cannot change it: it takes root on that host)",
                        "Rootless Podman cannot give a container more than the hard limit of the user who runs it"),
    "system-container": (Where(environ={"container": "lxc"}),
                         "To fix this, on the host that runs the container (LXC, LXD, Incus, Proxmox VE, systemd-nspawn) "
                         "run as root: sysctl -w vm.max_map_count=262144", "lxc.prlimit.nofile = 65535 in its config"),
    "kubernetes": (Where(environ=KUBERNETES), "On a local cluster whose nodes are containers (kind, k3d",
                   "Kubernetes has no pod field for resource limits"),
    "openshift": (Where(cgroup=CRIO_CGROUP, root={"run/.containerenv": "", **TOKEN,
                                                  f"{SERVICE_ACCOUNT}/service-ca.crt": "-----BEGIN"},
                        environ=OPENSHIFT), "include=openshift-node",
                  "Kubernetes has no pod field for resource limits"),
    "gke": (Where(root=TOKEN, dmi={"sys_vendor": "Google\n", "product_name": "Google Compute Engine\n"},
                  environ=GKE), "gcloud container node-pools update POOL --cluster CLUSTER",
            "Kubernetes has no pod field for resource limits"),
    "eks": (Where(root=TOKEN, dmi={"sys_vendor": "Amazon EC2\n", "product_name": "m5.large\n",
                                   "bios_vendor": "Amazon EC2\n"}, environ=EKS), "apiclient set --json",
            "[settings.oci-defaults.resource-limits.max-open-files]"),
    "aks": (Where(root=TOKEN, dmi=AZURE_VM, environ=AKS), "az aks nodepool add",
            "Kubernetes has no pod field for resource limits"),
}


def detected(tmp_path, monkeypatch, where):
    for name, value in where.craft(tmp_path).items():
        monkeypatch.setenv(name, value)
    return place.detect(environ=where.environ)


def test_every_place_guard_knows_is_covered_here():
    assert set(PLATFORMS) == set(place.PLACES)


@pytest.mark.parametrize("name", PLATFORMS)
def test_each_platform_is_recognised_from_what_a_process_there_sees(tmp_path, monkeypatch, name):
    found = detected(tmp_path, monkeypatch, PLATFORMS[name][0])
    assert found.name == name
    assert found.in_container == (name not in ("host", "wsl2-distro"))


INF = resource.RLIM_INFINITY
LIMITS = {"nofile": (1024, 1024), "nproc": (8192, 8192), "as": (INF, INF), "fsize": (INF, INF)}


@pytest.mark.parametrize("name", PLATFORMS)
def test_each_platform_gets_its_own_fix_from_the_installed_guard(tmp_path, name):
    where, maps_fix, files_fix = PLATFORMS[name]
    done = run_guard("check", "--profile", "elasticsearch", "--format", "json",
                     env={**where.craft(tmp_path), **where.environ}, limits=LIMITS)
    assert done.returncode == 78, text(done)
    report = json.loads(done.stdout)
    fixes = {check["name"]: check["fix"] for check in report["checks"]}
    assert report["place"] == name
    assert maps_fix in fixes["max-map-count"]
    assert files_fix in fixes["file-descriptors"]
    others = [other for other in PLATFORMS if other != name and PLATFORMS[other][1] != maps_fix]
    assert not [other for other in others if PLATFORMS[other][1] in fixes["max-map-count"]]


# What no fact tells apart, and what only looks like a platform: the generic place.
AMBIGUOUS = {
    # Any Hyper-V or Azure VM says Microsoft Corporation; without Kubernetes it is no AKS node.
    "hyper-v-vm": (Where(dmi={"sys_vendor": "Microsoft Corporation\n"}), "host"),
    "container-on-hyper-v": (Where(cgroup=DOCKER_CGROUP, dmi={"sys_vendor": "Microsoft Corporation\n"}), "container"),
    "vm-on-gce-without-kubernetes": (Where(dmi={"product_name": "Google Compute Engine\n"}), "host"),
    # "microsoft" without WSL2: Azure's kernels, WSL1
    "azure-kernel-container": (Where(osrelease="5.15.0-1057-microsoft-azure", cgroup=DOCKER_CGROUP), "container"),
    "azure-kernel-host": (Where(osrelease="6.6.0-1001-Microsoft"), "host"),
    "wsl1": (Where(osrelease="4.4.0-19041-Microsoft"), "host"),
    # CRI-O writes /run/.containerenv too: under Kubernetes it is no Podman, and no EKS (containerd)
    "cri-o-on-ec2": (Where(cgroup=CRIO_CGROUP, root={"run/.containerenv": ""}, dmi={"sys_vendor": "Amazon EC2\n"},
                           environ=KUBERNETES), "kubernetes"),
    # a pod without its token mounted shows no service CA: not called OpenShift
    "pod-without-service-account": (Where(root={"run/.containerenv": ""}, environ=KUBERNETES), "kubernetes"),
    # Fedora's and UBI's images say container=oci: under Docker that is no Podman
    "oci-image-under-docker": (Where(cgroup=DOCKER_CGROUP, environ={"container": "oci"}), "container"),
    # podman commit keeps container=podman in the image's environment; Podman writes
    # /run/.containerenv in every container, Docker /.dockerenv: run elsewhere, it is no Podman
    "podman-committed-image-under-docker": (Where(root={".dockerenv": ""}, environ={"container": "podman"}),
                                            "container"),
    "podman-committed-image-under-nerdctl": (Where(environ={"container": "podman"}), "container"),
    # rootless Docker and userns-remap map root elsewhere too: no Podman without a Podman fact
    "docker-in-a-user-namespace": (Where(cgroup=DOCKER_CGROUP, uid_map=ROOTLESS_MAP), "container"),
    # kind and minikube nodes are containers of a Docker host: only Kubernetes is seen
    "kind-node": (Where(cgroup=DOCKER_CGROUP, environ=KUBERNETES), "kubernetes"),
    # A cloud's DMI names say whose VM it is, not who runs the cluster. Only a variable, as a test
    # harness on a CI runner sets it: no kubelet sign, no provider.
    "harness-variable-on-ec2": (Where(dmi={"sys_vendor": "Amazon EC2\n"}, environ=EKS), "kubernetes"),
    # kind, minikube, k3s, MicroK8s on a cloud VM (a CI runner on Azure) keep their default Service range
    "kind-on-a-ci-runner-on-azure": (Where(osrelease="6.8.0-1017-azure", root=TOKEN, dmi=AZURE_VM,
                                           environ=KUBERNETES), "kubernetes"),
    "minikube-on-gce": (Where(root=TOKEN, dmi={"product_name": "Google Compute Engine\n"}, environ=KUBERNETES),
                        "kubernetes"),
    "k3s-on-ec2": (Where(root=TOKEN, dmi={"sys_vendor": "Amazon EC2\n"}, environ=service_host("10.43.0.1")),
                   "kubernetes"),
    "microk8s-on-ec2": (Where(root=TOKEN, dmi={"sys_vendor": "Amazon EC2\n"},
                              environ=service_host("10.152.183.1")), "kubernetes"),
    # Docker Desktop's or Rancher Desktop's cluster on Hyper-V says Microsoft Corporation: its kernel is no AKS node's
    "desktop-cluster-on-hyper-v": (Where(osrelease="6.10.14-linuxkit", root=TOKEN, dmi=AZURE_VM, environ=AKS),
                                   "kubernetes"),
    "desktop-cluster-on-wsl2": (Where(osrelease=WSL2_RELEASE, root=TOKEN, dmi=AZURE_VM, environ=AKS), "kubernetes"),
    # LXC and systemd-nspawn name themselves to the container's PID 1, whose systemd writes the name
    # to /run/systemd/container for every process: no Docker, and on WSL2 no Docker Desktop either
    "lxc-with-systemd": (Where(root={"run/systemd/container": "lxc\n"}), "system-container"),
    "systemd-nspawn": (Where(root={"run/systemd/container": "systemd-nspawn\n"}), "system-container"),
    # LXC's cgroups, seen on cgroup v1 or without a cgroup namespace
    "lxc-cgroup": (Where(cgroup="12:memory:/lxc.payload.web\n11:pids:/lxc.payload.web\n"), "system-container"),
    "old-lxc-cgroup": (Where(cgroup="12:memory:/lxc/web\n"), "system-container"),
    # Docker in an LXC container: its containers' limits are Docker's
    "docker-in-lxc": (Where(cgroup="12:memory:/lxc.payload.web/docker/0123abcd\n", root={".dockerenv": ""}),
                      "container"),
    "lxc-on-wsl2": (Where(osrelease=WSL2_RELEASE, environ={"container": "lxc"}), "system-container"),
    # Ubuntu's Docker images long wrote "docker" there; an LXC root file system imported into
    # Docker keeps "lxc", and Docker's /.dockerenv says where it runs
    "ubuntu-image-under-docker": (Where(cgroup=DOCKER_CGROUP, root={"run/systemd/container": "docker\n"}), "container"),
    "lxc-root-file-system-under-docker": (Where(root={"run/systemd/container": "lxc\n", ".dockerenv": ""},
                                                environ={"container": "lxc"}), "container"),
    # an OrbStack machine says lxc too, and root there sets the VM's sysctls as on a host
    "orbstack-machine": (Where(osrelease="6.5.10-orbstack-00110-gbcfe04c86d2f",
                               root={"run/systemd/container": "lxc\n"}), "host"),
    # an old WSL2 kernel (4.19.x-microsoft-standard) says no WSL2: the generic list covers it
    "old-wsl2-kernel-container": (Where(osrelease="4.19.128-microsoft-standard", cgroup=DOCKER_CGROUP), "container"),
}


@pytest.mark.parametrize("case", AMBIGUOUS)
def test_ambiguous_surroundings_give_the_generic_place_not_a_wrong_specific_one(tmp_path, monkeypatch, case):
    where, expected = AMBIGUOUS[case]
    assert detected(tmp_path, monkeypatch, where).name == expected


@pytest.mark.parametrize("facts, expected", [
    (place.Observed(dockerenv=True, proc_sys_read_only=True), "container"),
    # an image made into a machine's root file system keeps /.dockerenv, not Docker's read-only /proc/sys
    (place.Observed(dockerenv=True, proc_sys_read_only=False), "host"),
    (place.Observed(dockerenv=True, proc_sys_read_only=None), "host"),
    (place.Observed(osrelease="6.5.10-orbstack", dockerenv=True, proc_sys_read_only=True), "orbstack"),
    # guard in an OrbStack or Docker Desktop VM itself is on a Linux host
    (place.Observed(osrelease="6.5.10-orbstack"), "host"),
    # privileged Podman names itself, rootless or not (measured: engine="podman-4.3.1", rootless=0/1)
    (place.Observed(containerenv='engine="podman-4.3.1"\nname="x"\nrootless=0\n'), "podman"),
    (place.Observed(containerenv='engine="podman-4.3.1"\nname="x"\nrootless=1\n'), "podman-rootless"),
    # a Podman machine on Windows runs in WSL2: Podman's fix, not Docker Desktop's
    (place.Observed(osrelease=WSL2_RELEASE, container_variable="podman", containerenv=""), "podman"),
    (place.Observed(kubernetes_service_host="10.0.0.1", service_ca=True), "openshift"),
    (place.Observed(service_account=True, product_version="4.11.amazon"), "eks"),
    (place.Observed(init_cgroup="11:memory:/kubepods/burstable/pod1/abc\n"), "kubernetes"),
    # nothing could be read: no fact, no specific place
    (place.Observed(*[None] * len(place.FACTS)), "host"),
], ids=["dockerenv-read-only-proc-sys", "dockerenv-alone", "dockerenv-proc-sys-unknown", "orbstack-container",
        "orbstack-machine", "podman-privileged", "podman-privileged-rootless", "podman-machine-windows",
        "openshift", "eks-xen", "kubepods-cgroup", "all-unknown"])
def test_the_place_is_decided_from_the_facts_alone(facts, expected):
    assert place.decide(facts) == expected


def test_a_fifo_or_a_folder_where_a_marker_file_should_be_is_never_opened_and_tells_nothing(tmp_path, monkeypatch):
    where = Where(root={"run": None})
    roots = where.craft(tmp_path)
    os.mkfifo(os.path.join(roots["GUARD_ROOTFS"], "run", ".containerenv"))
    init_cgroup = os.path.join(roots["GUARD_PROCFS"], "1", "cgroup")
    os.remove(init_cgroup)
    os.mkdir(init_cgroup)
    for name, value in roots.items():
        monkeypatch.setenv(name, value)
    facts = place.observe({})
    assert facts.containerenv is None  # unknown: not read, and no sign of Podman
    assert facts.init_cgroup is None  # unknown, not an empty cgroup nor a missing file
    assert place.decide(facts) == "host"


def test_observe_reads_every_fact_under_the_roots_it_is_given(tmp_path, monkeypatch):
    where = PLATFORMS["openshift"][0]
    for name, value in where.craft(tmp_path).items():
        monkeypatch.setenv(name, value)
    facts = place.observe(where.environ)
    assert facts.osrelease == "6.1.0-18-amd64" and facts.init_cgroup == CRIO_CGROUP.strip()
    assert (facts.containerenv, facts.dockerenv, facts.service_account, facts.service_ca) == ("", False, True, True)
    assert facts.sys_vendor is False
    assert facts.kubernetes_service_host == "172.30.0.1" and facts.container_variable is None


def test_kubernetes_is_recognised_from_its_service_variable_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {}))
    found = place.detect(environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert (found.name, found.in_container) == ("kubernetes", True)


@pytest.mark.parametrize("name", place.PLACES)
def test_guard_place_accepts_every_place(tmp_path, name):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 65530}), "GUARD_PLACE": name}
    done = run_guard("check", "--require", "vm.max_map_count>=262144", "--format", "json", env=env)
    assert done.returncode == 78, text(done)
    assert json.loads(done.stdout)["place"] == name


def test_place_override_wins_and_is_that_place_as_it_usually_is():
    assert place.detect(environ={}, override="wsl2").name == "wsl2"
    assert place.detect(environ={}, override="host").in_container is False
    assert place.detect(environ={}, override="wsl2-distro").in_container is False
    assert place.detect(environ={}, override="podman-rootless").proc_sys_writable is False


def test_place_records_whether_proc_sys_is_writable(tmp_path, monkeypatch):
    root = crafted_proc(tmp_path, {"vm.max_map_count": 65530})
    monkeypatch.setenv("GUARD_PROCFS", root)
    assert place.detect(environ={}).proc_sys_writable is True  # a crafted tree the test owns
    monkeypatch.setenv("GUARD_PROCFS", str(tmp_path / "none"))
    assert place.detect(environ={}).proc_sys_writable is False


# guard in a child, recording every file it opens (the "open" audit event: open() and os.open()).
OPENS = """
import sys
opened = []
sys.addaudithook(lambda event, args: event == "open" and opened.append(str(args[0])))
from guard import cli
code = cli.main(sys.argv[1:])
sys.stderr.write("\\nOPENED " + repr(opened) + "\\n")
sys.exit(code)
"""


def opened_by_guard(tmp_path, *args, platform="openshift"):
    where = PLATFORMS[platform][0]
    env = {**os.environ, **where.craft(tmp_path), **where.environ}
    done = subprocess.run([sys.executable, "-c", OPENS, *args], env=env, capture_output=True, timeout=30, cwd="/")
    return done.returncode, ast.literal_eval(text(done).rsplit("\nOPENED ", 1)[1])


def test_a_start_whose_checks_pass_reads_nothing_to_name_the_place(tmp_path):
    # guard's start-up is paid on every start: the place only serves the fixes it prints
    code, opened = opened_by_guard(tmp_path, "check", "--require", "vm.max_map_count>=1")
    assert code == 0
    assert not [path for path in opened if path.endswith(("/cgroup", "/uid_map", "service-ca.crt"))]
    code, opened = opened_by_guard(tmp_path, "check", "--require", "vm.max_map_count>=262144")
    assert code == 78
    assert [path for path in opened if path.endswith("/1/cgroup")]


@pytest.mark.parametrize("platform, reads", [
    ("container", []), ("podman", ["/uid_map"]), ("podman-rootless", ["/uid_map"]),
    ("gke", ["/sys_vendor", "/product_name"]),  # the DMI names its tree has
    ("openshift", []),
])
def test_a_fact_only_one_kind_of_place_can_use_is_read_only_there(tmp_path, platform, reads):
    # a cloud's DMI names tell providers apart only under Kubernetes; the uid_map tells rootless
    # Podman from rootful only beside a Podman sign
    code, opened = opened_by_guard(tmp_path, "check", "--require", "vm.max_map_count>=262144", platform=platform)
    assert code == 78
    names = ("/uid_map", "/sys_vendor", "/product_name", "/product_version", "/bios_vendor")
    assert sorted(name for name in names for path in opened if path.endswith(name)) == sorted(reads)
