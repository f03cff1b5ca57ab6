import pytest

from guard import place
from guard.checks import Requirement, parse_spec
from guard.fixes import fix
from guard.host import UNLIMITED
from support import crafted_proc

MAPS = Requirement("vm.max_map_count", ">=", 262144)
HOST = place.Place("host", False, True)
CONTAINER = place.Place("container", True, False)
KUBERNETES = place.Place("kubernetes", True, False)
WSL2 = place.Place("wsl2", True, False)
DESKTOP = place.Place("docker-desktop", True, False)


def test_host_fix_is_sysctl_now_and_a_persistent_line():
    text = fix(MAPS, HOST, "elasticsearch")
    assert text.startswith("To fix this, run as root: sysctl -w vm.max_map_count=262144")
    assert "echo 'vm.max_map_count=262144' > /etc/sysctl.d/99-elasticsearch.conf" in text
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
    text = fix(MAPS, KUBERNETES, "elasticsearch")
    assert text.splitlines() == [
        "vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside a "
        "container, only on the Kubernetes node.",
        "To fix this, raise it on every node with guard fix's DaemonSet, which never lowers a value set higher: "
        "in a clone of guard's repository, with --require vm.max_map_count>=262144 in the args of "
        "deploy/kubernetes/fix/daemonset.yaml, run: kubectl apply -k deploy/kubernetes/fix",
        "or set it in the node image: echo 'vm.max_map_count=262144' > /etc/sysctl.d/99-elasticsearch.conf",
        "On GKE Autopilot, which admits no privileged pod: Google's allow-listed DaemonSet sets vm.max_map_count "
        "to [262144]; from GKE 1.30.3-gke.1451000 a custom ComputeClass sets it instead.",
    ]
    assert "initContainers" not in text and "sysctl -w" not in text  # no blind privileged write in the pod


def test_kubernetes_fix_says_when_autopilots_daemonset_sets_less_than_needed():
    text = fix(Requirement("vm.max_map_count", ">=", 400000), KUBERNETES, "kafka")
    assert "--require vm.max_map_count>=400000 in the args" in text
    assert "sets vm.max_map_count to [262144], less than the [400000] needed here" in text


def test_kubernetes_fix_of_a_check_another_covers_names_the_stricter_value_in_the_daemonsets_args():
    # Elasticsearch 8.16 and later: the bootstrap check's 262144 and the docs' 1048576 share one fix,
    # which sets 1048576; a DaemonSet given 262144 would leave the second check failing.
    text = fix(MAPS._replace(fix_value=1048576), KUBERNETES, "elasticsearch")
    assert "--require vm.max_map_count>=1048576 in the args" in text
    assert "echo 'vm.max_map_count=1048576' > /etc/sysctl.d/99-elasticsearch.conf" in text


@pytest.mark.parametrize("spec, does, image", [
    ("vm.overcommit_memory=1", "set it to [1] on every node with guard fix's DaemonSet",
     "echo 'vm.overcommit_memory=1' > /etc/sysctl.d/99-redis.conf"),
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
    assert "> /etc/sysctl.d/99-guard.conf" in fix(MAPS, HOST, "none")
    assert fix(MAPS, HOST).endswith("> /etc/sysctl.d/99-guard.conf")


def test_not_equal_on_a_sysctl_asks_for_another_value():
    assert "other than [2]" in fix(parse_spec("vm.overcommit_memory!=2"), HOST)


# --- where guard runs ---


@pytest.mark.parametrize("release,expected", [
    ("5.15.133.1-microsoft-standard-WSL2", "wsl2"),
    ("6.6.16-linuxkit", "docker-desktop"),
    ("6.1.0-18-amd64", None),
])
def test_docker_desktop_is_recognised_from_the_kernel_release(tmp_path, monkeypatch, release, expected):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {}, osrelease=release))
    found = place.detect(environ={})
    if expected:
        assert found.name == expected
    else:
        assert found.name in ("host", "container")


def test_kubernetes_is_recognised_from_its_service_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {}))
    found = place.detect(environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert (found.name, found.in_container) == ("kubernetes", True)


def test_container_is_recognised_from_the_init_cgroup(tmp_path, monkeypatch):
    root = crafted_proc(tmp_path, {})
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cgroup").write_text("12:memory:/docker/0123abcd\n")
    monkeypatch.setenv("GUARD_PROCFS", root)
    assert place.detect(environ={}).name == "container"


def test_place_override_wins():
    assert place.detect(environ={}, override="wsl2").name == "wsl2"
    assert place.detect(environ={}, override="host").in_container is False


def test_container_that_can_write_proc_sys_is_told_it_changes_the_host():
    text = fix(MAPS, place.Place("container", True, True))
    assert "This container can write /proc/sys" in text and "cannot be set" not in text
    assert "on the Docker host run as root: sysctl -w vm.max_map_count=262144" in text


def test_place_records_whether_proc_sys_is_writable(tmp_path, monkeypatch):
    root = crafted_proc(tmp_path, {"vm.max_map_count": 65530})
    monkeypatch.setenv("GUARD_PROCFS", root)
    assert place.detect(environ={}).proc_sys_writable is True  # a crafted tree the test owns
    monkeypatch.setenv("GUARD_PROCFS", str(tmp_path / "none"))
    assert place.detect(environ={}).proc_sys_writable is False


@pytest.mark.parametrize("spec, where", [("core<=0", HOST), ("as<=1048576", CONTAINER), ("core<=0", KUBERNETES)],
                         ids=["host", "container-engine", "kubernetes"])
def test_fix_for_a_limit_that_is_too_high_says_lower_it(spec, where):
    text = fix(parse_spec(spec), where)
    assert text.startswith("To fix this, lower ") and "raise" not in text


def test_fix_for_a_limit_that_is_too_low_says_raise_it():
    assert fix(parse_spec("nofile>=65535"), HOST).startswith("To fix this, raise it ")


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
