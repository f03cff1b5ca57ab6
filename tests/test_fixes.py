import configparser
import itertools
import json
import shlex
import textwrap
import tomllib

import pytest
import yaml

from guard import fix as guard_fix
from guard import place
from guard.checks import Requirement, parse_spec
from guard.fixes import fix
from guard.host import UNLIMITED


def at(name, proc_sys_writable=False):
    """The place as detection gives it."""
    return place.Place(name, proc_sys_writable)


MAPS = Requirement("vm.max_map_count", ">=", 262144)
FILES = Requirement("nofile.hard", ">=", 65535)
THP = Requirement("transparent_hugepage", "!=", "always")
HOST = at("host", True)
CONTAINER = at("container")
KUBERNETES = at("kubernetes")
WSL2 = at("wsl2")
DESKTOP = at("docker-desktop")


def test_host_fix_is_sysctl_now_and_a_persistent_line():
    text = fix(MAPS, HOST, "elasticsearch")
    assert text.startswith("To fix this, run as root: sysctl -w vm.max_map_count=262144")
    assert "echo 'vm.max_map_count=262144' >> /etc/sysctl.d/zz-guard-elasticsearch.conf" in text
    assert "container" not in text


def test_container_fix_says_plainly_it_cannot_be_set_inside():
    text = fix(MAPS, CONTAINER)
    assert "cannot be set from inside a container" in text
    assert "on the Docker host run as root: sysctl -w vm.max_map_count=262144" in text


def test_wsl2_fix_uses_the_docker_desktop_distribution_and_wslconfig():
    text = fix(MAPS, WSL2)
    assert 'wsl -d docker-desktop -u root sh -c "sysctl -w vm.max_map_count=262144"' in text
    assert "[wsl2]" in text and 'kernelCommandLine = "sysctl.vm.max_map_count=262144"' in text


def test_docker_desktop_fix_reaches_the_vm_from_a_privileged_container():
    text = fix(MAPS, DESKTOP)
    assert "docker run --rm --privileged --pid=host" in text and "sysctl -w vm.max_map_count=262144" in text


def test_kubernetes_fix_is_the_raise_only_daemonset_of_deploy_kubernetes_fix_or_the_node_image():
    text = fix(MAPS, KUBERNETES, "kafka")
    assert text.splitlines() == [
        "vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside a "
        "container, only on the Kubernetes node.",
        "To fix this, raise it on every node with guard fix's DaemonSet, which never lowers a value set higher: "
        "in a clone of guard's repository, with --require vm.max_map_count>=262144 in the args of "
        "deploy/kubernetes/fix/daemonset.yaml, run: kubectl apply -k deploy/kubernetes/fix",
        "or set it in the node image: echo 'vm.max_map_count=262144' >> /etc/sysctl.d/zz-guard-kafka.conf",
        "On GKE Autopilot, which admits no privileged pod: Google's allow-listed DaemonSet sets vm.max_map_count "
        "to [262144]; from GKE 1.32.1-gke.1729000 a custom ComputeClass's spec.priorityDefaults sets it instead.",
        "On EKS Fargate it cannot be raised: Fargate runs no privileged pod and no DaemonSet.",
        "On a local cluster whose nodes are containers (kind, k3d, minikube's docker driver), set it on the Docker "
        "host or its VM as for a container: sysctl -w vm.max_map_count=262144; in a minikube VM: "
        "minikube ssh 'sudo sysctl -w vm.max_map_count=262144'",
    ]
    assert "initContainers" not in text and "privileged: true" not in text  # no blind privileged write in the pod


def test_kubernetes_fix_says_when_autopilots_daemonset_sets_less_than_needed():
    text = fix(Requirement("vm.max_map_count", ">=", 400000), KUBERNETES, "kafka")
    assert "--require vm.max_map_count>=400000 in the args" in text
    assert "sets vm.max_map_count to [262144], less than the [400000] needed here" in text


def test_kubernetes_fix_of_a_check_another_covers_names_the_stricter_value_in_the_daemonsets_args():
    # Elasticsearch 8.16 and later: the bootstrap check's 262144 and the docs' 1048576 share one fix,
    # which sets 1048576; a DaemonSet given 262144 would leave the second check failing.
    text = fix(MAPS._replace(fix_value=1048576), KUBERNETES, "elasticsearch")
    assert "--require vm.max_map_count>=1048576 in the args" in text
    assert "echo 'vm.max_map_count=1048576' >> /etc/sysctl.d/zz-guard-elasticsearch.conf" in text


@pytest.mark.parametrize("spec, does, image", [
    ("vm.overcommit_memory=1", "set it to [1] on every node with guard fix's DaemonSet",
     "echo 'vm.overcommit_memory=1' >> /etc/sysctl.d/zz-guard-redis.conf"),
    ("transparent_hugepage!=always", "set it to [madvise] on every node with guard fix's DaemonSet",
     "add transparent_hugepage=madvise to the kernel command line"),
])
def test_kubernetes_fix_of_a_value_named_sets_it_from_the_daemonset(spec, does, image):
    text = fix(parse_spec(spec), KUBERNETES, "redis")
    assert f"To fix this, {does}: in a clone of guard's repository, with --require {spec} " in text
    assert f"or set it in the node image: {image}" in text
    assert "Autopilot" not in text  # its allow-listed DaemonSet sets vm.max_map_count only


def test_rlimit_fix_in_a_container_names_ulimit_and_compose():
    text = fix(Requirement("nofile.hard", ">=", 65535), CONTAINER)
    assert "docker run --ulimit nofile=65535:65535" in text
    assert "ulimits:\n      nofile:\n        soft: 65535\n        hard: 65535" in text


def test_unlimited_rlimit_fix_uses_minus_one_for_docker():
    assert "--ulimit memlock=-1:-1" in fix(Requirement("memlock", ">=", UNLIMITED), CONTAINER)


def test_address_space_cannot_be_set_with_docker_ulimit():
    text = fix(Requirement("as", ">=", UNLIMITED), CONTAINER)
    assert "--ulimit as" not in text and "cannot set it" in text


def test_rlimit_fix_on_a_host_names_ulimit_systemd_and_limits_conf():
    text = fix(Requirement("nofile", ">=", 65535), HOST)
    assert "ulimit -n 65535" in text and "LimitNOFILE=65535" in text and "limits.conf" in text


@pytest.mark.parametrize("key, who", [
    ("nofile", "(as root, or up to the hard limit)"),
    ("nofile.hard", "(as root: only root raises a hard limit)"),
])
def test_rlimit_fix_on_a_host_says_who_may_raise_it(key, who):
    assert who in fix(Requirement(key, ">=", 65535), HOST)


def test_namespaced_sysctl_fix_in_a_container_is_docker_sysctl():
    text = fix(Requirement("net.core.somaxconn", ">=", 1024), CONTAINER)
    assert "docker run --sysctl net.core.somaxconn=1024" in text
    assert "sysctls:\n      net.core.somaxconn: 1024" in text


def test_namespaced_sysctl_in_kubernetes_needs_the_unsafe_allowance():
    text = fix(Requirement("net.core.somaxconn", ">=", 1024), KUBERNETES)
    assert "--allowed-unsafe-sysctls=net.core.somaxconn" in text


def test_thp_fix_writes_madvise_and_carries_the_program_hint():
    req = Requirement("transparent_hugepage", "!=", "always", hint="Or set disable-thp yes.")
    text = fix(req, HOST)
    assert "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled" in text
    assert text.endswith("Or set disable-thp yes.")


def test_without_a_profile_the_sysctl_d_file_is_guards():
    assert ">> /etc/sysctl.d/zz-guard.conf" in fix(MAPS, HOST, "none")
    assert fix(MAPS, HOST).endswith(">> /etc/sysctl.d/zz-guard.conf")


def test_not_equal_on_a_sysctl_asks_for_another_value():
    assert "other than [2]" in fix(parse_spec("vm.overcommit_memory!=2"), HOST)


def test_container_that_can_write_proc_sys_is_told_it_changes_the_host():
    text = fix(MAPS, place.Place("container", True))
    assert "This container can write /proc/sys" in text and "cannot be set" not in text
    assert "on the Docker host run as root: sysctl -w vm.max_map_count=262144" in text


@pytest.mark.parametrize("spec, where", [("core<=0", HOST), ("as<=1048576", CONTAINER), ("core<=0", KUBERNETES)],
                         ids=["host", "container-engine", "kubernetes"])
def test_fix_for_a_limit_that_is_too_high_says_lower_it(spec, where):
    text = fix(parse_spec(spec), where)
    assert text.startswith("To fix this, lower ") and "raise" not in text


def test_fix_for_a_limit_that_is_too_low_says_raise_it():
    assert fix(parse_spec("nofile>=65535"), HOST).startswith("To fix this, raise it ")


# --- the fix where the user really is (guard/platforms.py) ---


def test_generic_container_fix_lists_the_vms_docker_may_run_in_and_says_it_is_lost_on_their_restart():
    assert fix(MAPS, CONTAINER, "elasticsearch").splitlines() == [
        "vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside a "
        "container, only on the Docker host.",
        "To fix this, on the Docker host run as root: sysctl -w vm.max_map_count=262144",
        "and keep it across reboots: echo 'vm.max_map_count=262144' >> /etc/sysctl.d/zz-guard-elasticsearch.conf",
        "If your Docker host is a VM, set it in the VM instead; it is lost when the VM restarts:",
        "  Colima: colima ssh -- sudo sysctl -w vm.max_map_count=262144",
        "  Rancher Desktop: rdctl shell sudo sysctl -w vm.max_map_count=262144",
        "  Lima: limactl shell INSTANCE sudo sysctl -w vm.max_map_count=262144",
        "  any VM that runs Docker: docker run --rm --privileged alpine sysctl -w vm.max_map_count=262144",
    ]


def test_podman_fixes_are_podmans_own_and_the_rootless_one_names_the_users_hard_limit():
    assert fix(MAPS, at("podman"), "elasticsearch").splitlines() == [
        "vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside a "
        "container, only on the host that runs Podman.",
        "To fix this, on the host that runs Podman run as root: sysctl -w vm.max_map_count=262144",
        "and keep it across reboots: echo 'vm.max_map_count=262144' >> /etc/sysctl.d/zz-guard-elasticsearch.conf",
        "On a Podman machine (macOS, Windows): podman machine ssh 'sudo sysctl -w vm.max_map_count=262144' "
        "(run it again after the machine restarts: keeping it there is not documented)",
    ]
    assert fix(FILES, at("podman-rootless")).splitlines() == [
        "To fix this, start the container with: podman run --ulimit nofile=65535:65535 ...",
        "or for every container, in containers.conf ([containers]): default_ulimits = [\"nofile=65535:65535\"]",
        "Rootless Podman cannot give a container more than the hard limit of the user who runs it (ulimit -Hn): "
        "raise that user's first, as root on the host: 'USER hard nofile 65535' in /etc/security/limits.conf, "
        "then log in again.",
    ]
    assert "Rootless" not in fix(FILES, at("podman"))
    assert "rootless Podman cannot change it" in fix(MAPS, at("podman-rootless"))
    assert "'USER hard memlock unlimited'" in fix(Requirement("memlock", ">=", UNLIMITED), at("podman-rootless"))
    assert "Rootless" not in fix(parse_spec("core<=0"), at("podman-rootless"))  # anyone may lower a limit


def test_a_limit_podman_ulimit_cannot_set_goes_through_podmans_own():
    text = fix(Requirement("as", ">=", UNLIMITED), at("podman"))
    assert "--ulimit as" not in text and "podman run --ulimit host" in text and "ulimit -v" in text


def test_docker_is_told_how_to_raise_its_daemons_limit_on_a_linux_docker_host_only():
    line = ("If Docker refuses it (error setting rlimit ...: operation not permitted), raise the daemon's own limit: "
            "LimitNOFILE=65535 for dockerd (systemctl edit docker; rootless Docker: systemctl --user edit docker, "
            "within the user's own hard limit), then restart it.")
    assert fix(FILES, CONTAINER).splitlines()[-1] == line
    assert "LimitMEMLOCK=infinity for dockerd" in fix(Requirement("memlock", ">=", UNLIMITED), CONTAINER)
    assert "dockerd" not in fix(FILES, DESKTOP) and "dockerd" not in fix(FILES, at("orbstack"))
    assert "dockerd" not in fix(parse_spec("core<=0"), CONTAINER)


@pytest.mark.parametrize("where, command", [
    ("container", 'colima ssh -- sudo sh -c "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"'),
    ("container", 'docker run --rm --privileged alpine sh -c "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"'),
    ("orbstack", 'docker run --rm --privileged alpine sh -c "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"'),
    ("podman", "podman machine ssh 'sudo sh -c \"echo madvise > /sys/kernel/mm/transparent_hugepage/enabled\"'"),
    ("kubernetes", "minikube ssh 'sudo sh -c \"echo madvise > /sys/kernel/mm/transparent_hugepage/enabled\"'"),
])
def test_thp_in_a_vm_is_written_by_a_root_shell_there_not_by_the_callers(where, command):
    printed = fix(THP, at(where))
    assert command in printed
    line = next(line for line in printed.splitlines() if command in line)
    # the words a shell makes of guard's line from the command on, up to the end of the line or
    # the "(" or ";" that ends the command there
    lexer = shlex.shlex(line[line.index(command):], posix=True, punctuation_chars=True)
    words = list(itertools.takewhile(lambda word: word not in ("(", ";"), lexer))
    assert words == shlex.split(command)  # the command ends where the user's shell ends it
    # what ssh hands the VM's shell is one word: sudo runs the shell, the shell the redirect
    if words[-1].startswith("sudo "):
        assert shlex.split(words[-1]) == ["sudo", "sh", "-c", "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"]


def test_wsl2_distribution_is_a_host_whose_kernel_is_kept_in_wslconfig():
    assert fix(MAPS, at("wsl2-distro"), "opensearch").splitlines() == [
        "To fix this, run as root (every WSL2 distribution shares this kernel): sysctl -w vm.max_map_count=262144",
        "and keep it across restarts in %USERPROFILE%\\.wslconfig (read when WSL starts: wsl --shutdown applies it):",
        "  [wsl2]",
        "  kernelCommandLine = \"sysctl.vm.max_map_count=262144\"",
    ]
    assert 'kernelCommandLine = "transparent_hugepage=madvise"' in fix(THP, at("wsl2-distro"))
    # guard fix writes a namespaced sysctl there, as on any host: it is not in a container
    assert guard_fix.unsettable(parse_spec("net.core.somaxconn>=1024"), at("wsl2-distro")) is None
    assert guard_fix.unsettable(parse_spec("net.core.somaxconn>=1024"), at("podman")) is not None


def test_wsl2_container_fix_leads_with_docker_desktop_then_the_engines_own_distribution():
    lines = fix(MAPS, WSL2).splitlines()
    assert lines[1] == 'To fix this, in Windows PowerShell run: wsl -d docker-desktop -u root sh -c "sysctl -w vm.max_map_count=262144"'
    assert lines[-1] == ("Without Docker Desktop, in the WSL2 distribution that runs the engine: sudo sysctl -w "
                         "vm.max_map_count=262144 (Rancher Desktop: rdctl shell sudo sysctl -w vm.max_map_count=262144)")


def test_orbstack_fix_is_a_privileged_container_and_says_keeping_it_is_not_documented():
    assert fix(MAPS, at("orbstack")).splitlines()[1:] == [
        "To fix this, change it in OrbStack's VM from a privileged container: docker run --rm --privileged alpine "
        "sysctl -w vm.max_map_count=262144",
        "OrbStack documents no way to keep it: run it again after OrbStack restarts.",
    ]


def test_a_system_containers_fix_is_its_managers_own():
    assert fix(MAPS, at("system-container"), "elasticsearch").splitlines() == [
        "vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside a "
        "container, only on the host that runs the container.",
        "To fix this, on the host that runs the container (LXC, LXD, Incus, Proxmox VE, systemd-nspawn) run as root: "
        "sysctl -w vm.max_map_count=262144",
        "and keep it across reboots: echo 'vm.max_map_count=262144' >> /etc/sysctl.d/zz-guard-elasticsearch.conf",
    ]
    assert fix(Requirement("memlock", ">=", UNLIMITED), at("system-container")).splitlines() == [
        "To fix this, raise it where the container is started:",
        "  LXC: lxc.prlimit.memlock = unlimited in its config (Proxmox VE: lxc.prlimit.memlock: unlimited in "
        "/etc/pve/lxc/ID.conf)",
        "  LXD, Incus: lxc config set NAME limits.kernel.memlock=unlimited (incus config set ...)",
        "  systemd-nspawn: --rlimit=RLIMIT_MEMLOCK=infinity, or LimitMEMLOCK=infinity in [Exec] of its .nspawn file",
    ]
    somaxconn = fix(Requirement("net.core.somaxconn", ">=", 1024), at("system-container"))
    assert "lxc.sysctl.net.core.somaxconn = 1024 in its config" in somaxconn
    assert "docker" not in somaxconn and "Docker" not in fix(MAPS, at("system-container"))


def test_namespaced_sysctl_fix_under_podman_is_podman_sysctl():
    assert "podman run --sysctl net.core.somaxconn=1024" in fix(Requirement("net.core.somaxconn", ">=", 1024),
                                                                at("podman"))


def test_gke_fix_is_the_node_pools_system_configuration_and_autopilots_compute_class():
    assert fix(MAPS._replace(fix_value=1048576), at("gke"), "elasticsearch").splitlines() == [
        "vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside a "
        "container, only on the Kubernetes node.",
        "To fix this on GKE Standard, set it in the node pool's system configuration, a file FILE holding:",
        "  linuxConfig:",
        "    sysctl:",
        "      vm.max_map_count: '1048576'",
        "then run: gcloud container node-pools update POOL --cluster CLUSTER --location LOCATION "
        "--system-config-from-file=FILE (create, for a new pool)",
        "or raise it on every node with guard fix's DaemonSet, which never lowers a value set higher: in a clone of "
        "guard's repository, with --require vm.max_map_count>=1048576 in the args of "
        "deploy/kubernetes/fix/daemonset.yaml, run: kubectl apply -k deploy/kubernetes/fix",
        "On GKE Autopilot, which admits no privileged pod: from 1.32.1-gke.1729000, a custom ComputeClass whose "
        "spec.priorityDefaults is {nodeSystemConfig: {linuxNodeConfig: {sysctls: {vm.max_map_count: 1048576}}}}, "
        "chosen by the pods' nodeSelector cloud.google.com/compute-class: NAME; before, Google's allow-listed "
        "DaemonSet, which sets [262144], less than the [1048576] needed here.",
        "Where it cannot be raised, start Elasticsearch without memory-mapping: node.store.allow_mmap: false in "
        "elasticsearch.yml (this check then no longer applies), at a cost: indices are read with niofs instead of "
        "hybridfs, so searches are slower; for production the docs advise raising it instead.",
    ]


def test_gke_snippets_parse_as_the_yaml_gke_reads():
    lines = fix(MAPS, at("gke"), "elasticsearch").splitlines()
    start = lines.index("  linuxConfig:")
    assert yaml.safe_load("\n".join(lines[start:start + 3])) == {"linuxConfig": {"sysctl": {"vm.max_map_count": "262144"}}}
    # the gcloud command is words a shell keeps as they are, its placeholders in capitals
    command = lines[start + 3].split("then run: ", 1)[1].split(" (", 1)[0]
    assert shlex.split(command) == ["gcloud", "container", "node-pools", "update", "POOL", "--cluster", "CLUSTER",
                                    "--location", "LOCATION", "--system-config-from-file=FILE"]
    autopilot = next(line for line in lines if line.startswith("On GKE Autopilot"))
    flow = autopilot.split("spec.priorityDefaults is ", 1)[1].split("}}}}", 1)[0] + "}}}}"
    assert yaml.safe_load(flow) == {"nodeSystemConfig": {"linuxNodeConfig": {"sysctls": {"vm.max_map_count": 262144}}}}


def test_eks_fix_says_its_images_ship_enough_and_names_bottlerocket_al2023_and_fargate():
    lines = fix(MAPS, at("eks"), "kafka").splitlines()
    assert lines[1] == ("EKS's node images ship vm.max_map_count [524288] (Amazon Linux 2023) or [1048576] "
                        "(Bottlerocket): a node whose image ships [262144] or more and falls short was changed "
                        "(its user data, a DaemonSet).")
    assert lines[2:6] == [
        "To fix this on Bottlerocket nodes, in the node group's user data:",
        "  [settings.kernel.sysctl]",
        "  \"vm.max_map_count\" = \"262144\"",
        "and now, from a node's control container: apiclient set --json "
        "'{\"kernel\": {\"sysctl\": {\"vm.max_map_count\": \"262144\"}}}'",
    ]
    assert lines[6].startswith("on Amazon Linux 2023 nodes, in a shell script part (text/x-shellscript) beside the "
                               "NodeConfig of the launch template's user data: echo 'vm.max_map_count=262144' >> ")
    assert "On EKS Fargate it cannot be raised" in lines[-1]
    assert "allow_mmap" not in "\n".join(lines)  # Kafka has no such setting
    # no image ships 2000000: nothing to say of them
    assert "ship" not in fix(Requirement("vm.max_map_count", ">=", 2000000), at("eks"))


def test_a_pods_limit_is_the_runtimes_default_named_with_its_value_for_each_runtime():
    assert fix(FILES, KUBERNETES) == (
        "To fix this, raise the container runtime's default on the node: Kubernetes has no pod field for resource "
        "limits (containerd: LimitNOFILE=65535 in its systemd unit; CRI-O: default_ulimits = [\"nofile=65535:65535\"] "
        "in [crio.runtime] of crio.conf; dockerd: --default-ulimit nofile=65535:65535).")
    # OpenShift's nodes run CRI-O (cri-o/cri-o#5463): its option alone
    assert fix(FILES, at("openshift")) == (
        "To fix this, raise CRI-O's default on the nodes: Kubernetes has no pod field for resource limits: "
        "default_ulimits = [\"nofile=65535:65535\"] in [crio.runtime] of crio.conf.")
    # a limit docker and CRI-O cannot name (go-units' ulimit names) is the runtime's own, which containers inherit
    assert fix(Requirement("as", ">=", UNLIMITED), at("openshift")).endswith(": LimitAS=infinity in its systemd unit.")
    assert fix(Requirement("as", ">=", UNLIMITED), KUBERNETES) == (
        "To fix this, raise the container runtime's default on the node: Kubernetes has no pod field for resource "
        "limits (containerd: LimitAS=infinity in its systemd unit).")


def test_eks_limits_are_bottlerockets_oci_defaults():
    lines = fix(Requirement("memlock", ">=", UNLIMITED), at("eks")).splitlines()
    assert lines[-4:] == ["On Bottlerocket nodes, in the node group's user data:",
                          "  [settings.oci-defaults.resource-limits.max-locked-memory]",
                          "  soft-limit = -1",
                          "  hard-limit = -1"]


def test_aks_fix_is_a_node_pool_with_its_linux_os_configuration():
    lines = fix(MAPS, at("aks"), "elasticsearch").splitlines()
    assert lines[1] == ("AKS's node images ship vm.max_map_count [65530] (Ubuntu 22.04) or [1048576] (Ubuntu 24.04, "
                        "Azure Linux 3.0): a node whose image ships [262144] or more and falls short was changed "
                        "(a DaemonSet, by hand).")
    assert lines[2:5] == [
        "To fix this on AKS, add a node pool with it in its Linux OS configuration, a file linuxosconfig.json "
        "holding {\"sysctls\": {\"vmMaxMapCount\": 262144}}:",
        "  az aks nodepool add --resource-group RG --cluster-name CLUSTER --name POOL "
        "--linux-os-config ./linuxosconfig.json",
        "then move the workload to that pool: AKS sets it only when a pool is created.",
    ]
    assert '{"sysctls": {"vmSwappiness": 1}}' in fix(parse_spec("vm.swappiness=1"), at("aks"))
    assert '{"transparentHugePageEnabled": "madvise"}' in fix(THP, at("aks"))
    somaxconn = fix(Requirement("net.core.somaxconn", ">=", 1024), at("aks"))
    assert '{"allowedUnsafeSysctls": ["net.core.somaxconn"]}' in somaxconn and "--kubelet-config" in somaxconn


@pytest.mark.parametrize("where, spec", [("aks", "vm.overcommit_memory=1"), ("gke", "transparent_hugepage!=always"),
                                         ("openshift", "transparent_hugepage!=always")])
def test_a_setting_the_providers_configuration_lacks_is_left_to_guards_daemonset(where, spec):
    lines = fix(parse_spec(spec), at(where), "redis").splitlines()
    assert lines[1].startswith("To fix this, set it to [") and "kubectl apply -k deploy/kubernetes/fix" in lines[1]


def test_openshift_fix_is_one_pasteable_command_with_a_tuned_profile_that_keeps_openshifts_own():
    lines = fix(MAPS._replace(fix_value=1048576), at("openshift"), "elasticsearch").splitlines()
    assert not any("ship" in line for line in lines)  # OpenShift's 262144 falls short of 1048576
    command = shlex.split(lines[2])
    assert command[:2] == ["printf", "%s"] and command[3:] == ["|", "oc", "apply", "-f", "-"]
    tuned = json.loads(command[2])
    assert tuned["metadata"] == {"name": "guard-elasticsearch", "namespace": "openshift-cluster-node-tuning-operator"}
    assert tuned["spec"]["profile"][0]["data"] == "[main]\ninclude=openshift-node\n[sysctl]\nvm.max_map_count=1048576\n"
    assert tuned["spec"]["recommend"][0]["profile"] == "guard-elasticsearch"
    assert "oc adm policy add-scc-to-user privileged -z default -n guard-system" in lines[3]
    assert "OpenShift's nodes ship vm.max_map_count [262144]" in fix(MAPS, at("openshift"))


@pytest.mark.parametrize("where", ["kubernetes", "gke", "eks"])
@pytest.mark.parametrize("program", ["elasticsearch", "opensearch"])
def test_where_raising_may_be_impossible_search_engines_are_told_of_allow_mmap_and_its_cost(where, program):
    config = f"{program}.yml"
    assert f"node.store.allow_mmap: false in {config}" in fix(MAPS, at(where), program)
    assert "niofs" in fix(MAPS, at(where), program)


@pytest.mark.parametrize("where", ["host", "container", "aks", "openshift", "podman"])
def test_where_it_can_be_raised_allow_mmap_is_not_offered(where):
    assert "allow_mmap" not in fix(MAPS, at(where), "elasticsearch")


@pytest.mark.parametrize("where,machine", [(HOST, "this host"), (CONTAINER, "the Docker host"),
                                           (KUBERNETES, "the Kubernetes node")])
def test_kernel_release_fix_says_which_kernel_to_boot_where(where, machine):
    text = fix(parse_spec("kernel.osrelease>=5.10")._replace(hint="Dragonfly runs on epoll meanwhile."), where)
    assert text == (f"The Linux kernel is the one {machine} booted: no setting changes its release.\n"
                    f"To fix this, boot a Linux kernel 5.10 or later on {machine}.\n"
                    "Dragonfly runs on epoll meanwhile.")
    assert "sysctl" not in text
    assert "6.18 or older" in fix(parse_spec("kernel.osrelease<=6.18"), where)


def test_a_program_setting_is_fixed_as_its_profile_says():
    req = Requirement("dragonfly --maxmemory", ">=", 1 << 30, observed=1, hint="To fix this, give it --maxmemory=1G.")
    assert fix(req, CONTAINER) == "To fix this, give it --maxmemory=1G."


def indented_block(text, after):
    """The lines indented under the line that ends with `after`, dedented: a snippet to paste."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(after)) + 1
    block = list(itertools.takewhile(lambda line: line.startswith("  "), lines[start:]))
    return textwrap.dedent("\n".join(block))


SOMAXCONN = Requirement("net.core.somaxconn", ">=", 8192)
MEMLOCK = Requirement("memlock", ">=", UNLIMITED)


def test_every_config_snippet_parses_as_the_format_its_reader_takes():
    assert yaml.safe_load(indented_block(fix(FILES, CONTAINER), "or in compose:")) == {
        "ulimits": {"nofile": {"soft": 65535, "hard": 65535}}}
    assert yaml.safe_load(indented_block(fix(SOMAXCONN, CONTAINER), "or in compose:")) == {
        "sysctls": {"net.core.somaxconn": 8192}}
    assert yaml.safe_load(indented_block(fix(SOMAXCONN, KUBERNETES), "set it in the pod spec:")) == {
        "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "8192"}]}}
    assert tomllib.loads(indented_block(fix(MAPS, at("eks")), "in the node group's user data:")) == {
        "settings": {"kernel": {"sysctl": {"vm.max_map_count": "262144"}}}}
    assert tomllib.loads(indented_block(fix(MEMLOCK, at("eks")), "in the node group's user data:")) == {
        "settings": {"oci-defaults": {"resource-limits": {"max-locked-memory": {"soft-limit": -1, "hard-limit": -1}}}}}
    wslconfig = configparser.ConfigParser()
    wslconfig.read_string(indented_block(fix(MAPS, WSL2), "applies it):"))
    assert wslconfig["wsl2"]["kernelCommandLine"] == '"sysctl.vm.max_map_count=262144"'
    containers_conf = fix(FILES, at("podman")).split("([containers]): ", 1)[1]
    assert tomllib.loads(containers_conf) == {"default_ulimits": ["nofile=65535:65535"]}
    crio_conf = fix(FILES, at("openshift")).split("limits: ", 1)[1].split(" in [crio.runtime]", 1)[0]
    assert tomllib.loads(crio_conf) == {"default_ulimits": ["nofile=65535:65535"]}
    aks = fix(MAPS, at("aks")).split("linuxosconfig.json holding ", 1)[1].split(":\n", 1)[0]
    assert json.loads(aks) == {"sysctls": {"vmMaxMapCount": 262144}}
