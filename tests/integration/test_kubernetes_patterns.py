"""deploy/kubernetes's pods, run in Docker with the settings of their rendered manifests.

No kubelet runs here. Each pattern's kustomization is rendered (`kubectl kustomize`), and its pod
is run the way the kubelet runs it: init containers one after the other, the program's
containers only once every init container has succeeded. Pod (below) turns each field of the
pod spec into Docker's options and refuses a field it has no translation for, so a manifest
cannot gain a setting these tests silently ignore. The images the nodes would pull are the ones
built here: guard:bundle is the bundle, the vendors' are their stand-ins (images/vendors).
"""

import collections
import copy
import json
import os
import re
import time

import pytest
import vmaholder
from containers import EXIT_REFUSED, IMAGES, NO_LIBC_IMAGE, NO_PYTHON_IMAGE, finish, wait_for_log, wait_for_process
from hostsettings import current_value, sysctl, sysctl_path
from test_kubernetes_manifests import GUARD_IMAGE, SYSTEMS, containers, millicores, option_value, render, workload

from guard.profiles.kafka import kafka_maps_needed, kafka_maps_on_disk

ES_SENTENCE = "max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]"
ON_THE_NODE = "it cannot be set from inside a container, only on the Kubernetes node"
RUNTIME_LIMITS_FIX = "raise the container runtime's default on the node"
TEXTFILE_DIRECTORY = "/var/lib/node_exporter/textfile_collector"  # the audit's hostPath on the node
MAX_MAP_COUNT = sysctl_path("vm.max_map_count")

# The kubelet gives every container the variables of the `kubernetes` Service of the default
# namespace (and more that guard does not read): guard takes them as "on Kubernetes".
KUBELET_ENVIRONMENT = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
# What the kubelet makes of each volume (pkg/volume/emptydir: 0777; with fsGroup, the volume's
# group becomes it, group-writable and setgid, as SetVolumeOwnership does).
EMPTY_DIR_MODE, CLAIM_MODE, FS_GROUP_BITS = 0o777, 0o755, 0o2070

# Fields that change nothing inside the container: where the pod is scheduled, the API token, the
# ports (the test containers have no network). Of resources, only the limits reach the container.
OUTSIDE_THE_CONTAINER = {"tolerations", "automountServiceAccountToken", "ports"}
POD_FIELDS = {"containers", "initContainers", "volumes", "securityContext", "hostPID",
              "terminationGracePeriodSeconds"} | OUTSIDE_THE_CONTAINER
CONTAINER_FIELDS = {"name", "image", "command", "args", "env", "envFrom", "volumeMounts", "securityContext",
                    "resources"} | OUTSIDE_THE_CONTAINER
SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "seccompProfile", "allowPrivilegeEscalation",
                   "readOnlyRootFilesystem", "capabilities", "privileged"}
# include/uapi/linux/capability.h, by number.
CAPABILITIES = ("CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
                "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
                "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
                "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
                "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE").split()
# Docker 20.10 refuses the capabilities added after it ("unknown capability: CAP_PERFMON").
ENGINE_CAPABILITIES = CAPABILITIES[:CAPABILITIES.index("AUDIT_READ") + 1]
THP = "/sys/kernel/mm/transparent_hugepage"

Exit = collections.namedtuple("Exit", "name status log stdout")


def process_status(text):
    """/proc/PID/status as {field: value}."""
    return {name: value.strip() for name, value in (line.split(":\t", 1) for line in text.splitlines())}


def status_of(pid):
    """A container's process as the host sees it."""
    with open(f"/proc/{pid}/status") as f:
        return process_status(f.read())


def capability_names(mask):
    return [name for number, name in enumerate(CAPABILITIES) if mask >> number & 1]


def quantity_bytes(text):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(text[:-2]) * units[text[-2:]] if text[-2:] in units else int(text)


def expand(text, environment):
    """$(NAME) as the kubelet expands it in env values, command and args; $$ is a dollar."""
    def one(match):
        return "$" if match.group(0) == "$$" else environment.get(match.group(1), match.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][-._A-Za-z0-9]*)\)", one, text)


def unknown(fields, known, where):
    extra = set(fields) - known
    if extra:
        pytest.fail(f"{where}: no Docker translation for {sorted(extra)}: teach this test what the kubelet "
                    "does with it", pytrace=False)


class Pod:
    """One pod of a rendered workload, run in Docker as the kubelet would run it."""

    def __init__(self, made, images, objects, workdir, host_paths=None):
        self.made, self.images, self.host_paths = made, images, host_paths or {}
        owner = workload(objects)
        template = owner["spec"]["template"]
        self.spec = template["spec"]
        unknown(self.spec, POD_FIELDS, "pod spec")
        self.configmaps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
        self.labels = dict(template["metadata"].get("labels", {}))
        name = owner["metadata"]["name"]
        if owner["kind"] == "StatefulSet":
            self.name = f"{name}-0"
            self.labels.update({"apps.kubernetes.io/pod-index": "0", "statefulset.kubernetes.io/pod-name": self.name})
        else:
            self.name = f"{name}-x7k2p"
        self.security = self.spec.get("securityContext", {})
        unknown(self.security, SECURITY_FIELDS, "pod securityContext")
        claims = [c["metadata"]["name"] for c in owner["spec"].get("volumeClaimTemplates", [])]
        self.volumes = self._make_volumes(workdir, claims)
        self.running = []  # every container started, init containers too
        self.init_exits = []

    def _make_volumes(self, workdir, claims):
        made, fs_group = {}, self.security.get("fsGroup")
        fresh = [(v["name"], EMPTY_DIR_MODE) for v in self.spec.get("volumes", []) if "emptyDir" in v]
        for name, mode in fresh + [(claim, CLAIM_MODE) for claim in claims]:
            path = os.path.join(workdir, "volumes", name)
            os.makedirs(path)
            if fs_group is not None:
                os.chown(path, 0, fs_group)
                mode |= FS_GROUP_BITS
            os.chmod(path, mode)
            made[name] = path
        for volume in self.spec.get("volumes", []):
            if "hostPath" in volume:
                where = volume["hostPath"]["path"]
                if where not in self.host_paths:
                    pytest.fail(f"hostPath {where}: the test must say where it points on this machine", pytrace=False)
                made[volume["name"]] = self.host_paths[where]
            elif volume["name"] not in made:
                pytest.fail(f"volume {volume}: no Docker translation", pytrace=False)
        return made

    def volume(self, name):
        """The folder on this machine that stands for the pod's volume NAME."""
        return self.volumes[name]

    def container(self, name):
        found = containers(self.spec) | containers(self.spec, "initContainers")
        return copy.deepcopy(found[name])

    def environment(self, container):
        environment = dict(KUBELET_ENVIRONMENT)
        for source in container.get("envFrom", []):
            environment.update(self.configmaps[source["configMapRef"]["name"]])
        for variable in container.get("env", []):
            if "value" in variable:
                environment[variable["name"]] = expand(variable["value"], environment)
            else:
                environment[variable["name"]] = self.field(variable["valueFrom"]["fieldRef"]["fieldPath"])
        return environment

    def field(self, path):
        label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
        if path == "metadata.name":
            return self.name
        if label:
            return self.labels[label.group(1)]
        pytest.fail(f"fieldRef {path}: no translation", pytrace=False)

    def options(self, container):
        """How Docker runs a container of this pod: (image, the container's config, its host
        config as the SDK takes it, host config fields the SDK has no name for)."""
        where = f"container {container['name']}"
        unknown(container, CONTAINER_FIELDS, where)
        security = {**self.security, **container.get("securityContext", {})}
        unknown(container.get("securityContext", {}), SECURITY_FIELDS, f"{where} securityContext")
        environment = self.environment(container)
        image = self.images[container["image"]]
        config = {"environment": environment, "hostname": self.name}
        if "command" in container:
            config["entrypoint"] = [expand(word, environment) for word in container["command"]]
        if "args" in container:
            config["command"] = [expand(word, environment) for word in container["args"]]
        host = {"network_mode": "none", "security_opt": [],
                "binds": {self.volume(m["name"]): {"bind": m["mountPath"], "mode": "ro" if m.get("readOnly") else "rw"}
                          for m in container.get("volumeMounts", [])}}
        self._user(security, image, config, host, where)
        raw = self._confinement(security, host)
        if self.spec.get("hostPID"):
            host["pid_mode"] = "host"
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            host["mem_limit"] = quantity_bytes(limits["memory"])
        if "cpu" in limits:
            host["nano_cpus"] = int(millicores(limits["cpu"]) * 1e6)
        return image, config, host, raw

    def _user(self, security, image, config, host, where):
        user = security.get("runAsUser")
        if security.get("runAsNonRoot"):
            # The kubelet refuses to start the container unless it can tell the user is not root:
            # runAsUser, else the image's USER as a number.
            named = user if user is not None else self.made.client.images.get(image).attrs["Config"]["User"]
            if not str(named).isdigit() or int(named) == 0:
                pytest.fail(f"{where}: runAsNonRoot with user [{named}]: the kubelet refuses it", pytrace=False)
        if user is not None:
            group = security.get("runAsGroup")
            config["user"] = str(user) if group is None else f"{user}:{group}"
        if "fsGroup" in security:
            host["group_add"] = [str(security["fsGroup"])]

    def _confinement(self, security, host):
        """Capabilities, seccomp, no_new_privs and the read-only root into host; returns the
        host config fields the SDK has no name for."""
        raw = {}
        if security.get("privileged"):
            # --privileged fails on these machines ("unable to apply caps": the VM's bounding set
            # lacks CAP_SYS_RESOURCE). What a privileged container has that guard fix uses: a
            # writable /proc/sys (what --security-opt systempaths=unconfined asks the engine for:
            # nothing masked, nothing read-only), sysfs' THP knobs writable, every capability
            # (here: every one the machine has and the engine knows), no seccomp filter.
            with open("/proc/self/status") as f:
                bounding = int(re.search(r"^CapBnd:\s*([0-9a-f]+)$", f.read(), re.MULTILINE).group(1), 16)
            host["cap_add"] = [c for c in capability_names(bounding) if c in ENGINE_CAPABILITIES]
            host["security_opt"].append("seccomp=unconfined")
            host["binds"][THP] = {"bind": THP, "mode": "rw"}
            raw = {"MaskedPaths": [], "ReadonlyPaths": []}
        else:
            capabilities = security.get("capabilities", {})
            host["cap_drop"] = capabilities.get("drop", [])
            host["cap_add"] = capabilities.get("add", [])
            # No profile named means Unconfined for the kubelet (unless its SeccompDefault is on).
            profile = (security.get("seccompProfile") or {}).get("type", "Unconfined")
            if profile == "Unconfined":
                host["security_opt"].append("seccomp=unconfined")
            elif profile != "RuntimeDefault":  # RuntimeDefault: the engine's own profile, Docker's default
                pytest.fail(f"seccompProfile {profile}: no translation", pytrace=False)
        if security.get("allowPrivilegeEscalation") is False:
            host["security_opt"].append("no-new-privileges:true")
        host["read_only"] = bool(security.get("readOnlyRootFilesystem"))
        return raw

    def start_container(self, container):
        image, config, host, raw = self.options(container)
        api = self.made.client.api
        host_config = api.create_host_config(**host)
        host_config.update(raw)
        created = api.create_container(image, host_config=host_config, **config)
        self.made.containers.append(created["Id"])  # removed after the test with the others Made made
        started = self.made.client.containers.get(created["Id"])
        started.start()
        self.running.append(started)
        return started

    def run_container(self, container, timeout=60):
        """Run one container to its end: its name, exit status, log (stdout and stderr, as
        kubectl logs) and stdout alone."""
        started = self.start_container(container)
        status, log = finish(started, timeout)
        return Exit(container["name"], status, log, started.logs(stderr=False).decode(errors="replace"))

    def run_init(self):
        """The init containers in order, up to the first that fails (the kubelet retries that
        one and starts nothing after it); kept in init_exits."""
        self.init_exits = []
        for container in self.spec.get("initContainers", []):
            self.init_exits.append(self.run_container(container))
            if self.init_exits[-1].status != 0:
                break
        return self.init_exits

    def start(self):
        """The program's containers, once every init container has succeeded (asserted)."""
        failed = [e for e in self.run_init() if e.status != 0]
        assert not failed, f"init container {failed[0].name} exited {failed[0].status}:\n{failed[0].log}"
        return [self.start_container(c) for c in self.spec["containers"]]

    def stop(self, started):
        """SIGTERM, then SIGKILL after the pod's grace period, as the kubelet stops a container."""
        started.stop(timeout=self.spec.get("terminationGracePeriodSeconds", 30))
        return started.wait(timeout=60)["StatusCode"]


# An image with a shell (root its user) to look inside a container run with a manifest's settings:
# guard's own image has nothing but guard.
SHELL_IMAGE = "shell"


@pytest.fixture(scope="session")
def images(made, bundle_image):
    """The image each manifest names, as built here: the bundle, the vendors' stand-ins, and a
    static busybox for busybox."""
    found = {GUARD_IMAGE: bundle_image, SHELL_IMAGE: NO_PYTHON_IMAGE, "busybox": NO_LIBC_IMAGE}
    for system in SYSTEMS:
        [program] = workload(render(f"base/{system}"))["spec"]["template"]["spec"]["containers"]
        found[program["image"]] = made.build(f"vendor-{system}", os.path.join(IMAGES, "vendors", system),
                                             TARGET_IMAGE=NO_PYTHON_IMAGE)
    return found


@pytest.fixture
def pod_of(made, images, tmp_path):
    def make(path, host_paths=None):
        return Pod(made, images, render(path), str(tmp_path / path.replace("/", "-")), host_paths)
    return make


def poll(predicate, what, running, timeout=30):
    """Wait for predicate while the container keeps running; fail with its log otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        running.reload()
        log = running.logs().decode(errors="replace")
        assert running.status == "running", f"{what}: the container exited:\n{log}"
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s:\n{log}"
        time.sleep(0.1)


# -- check: the pod waits in Init ---------------------------------------------------------------

def test_guard_init_container_settings_are_what_restricted_asks_of_the_kernel(pod_of):
    pod = pod_of("check/elasticsearch")
    guard = pod.container("guard")
    guard["image"] = SHELL_IMAGE
    guard["command"] = ["sh", "-c", "cat /proc/self/status; touch /written && echo root file system writable"]
    del guard["args"]
    ran = pod.run_container(guard)
    status = process_status(ran.stdout)
    assert status["Uid"].split()[0] == "1000"  # the pod's runAsUser
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0  # every capability dropped
    assert status["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
    assert status["Seccomp"] == "2"  # RuntimeDefault: the engine's filter
    assert "Read-only file system" in ran.log and "writable" not in ran.stdout


@pytest.mark.parametrize("system", ["elasticsearch", "opensearch"])
def test_check_keeps_the_pod_in_init_with_the_report_and_passes_once_the_node_is_raised(pod_of, system):
    pod = pod_of(f"check/{system}")
    with sysctl("vm.max_map_count", 65530):
        [guard] = pod.run_init()
    assert (guard.name, guard.status) == ("guard", EXIT_REFUSED), guard.log
    assert f"{system}: production mode" in guard.log  # discovery.seed_hosts, not single-node: enforced
    assert ES_SENTENCE in guard.log
    assert ON_THE_NODE in guard.log
    assert len(pod.running) == 1, "a container started after the check failed"
    # The kubelet runs the check again: it shares the node's kernel, so it sees the raise. The
    # runtime here gives every container 20000 open files, which Elasticsearch refuses too.
    with sysctl("vm.max_map_count", 262144):
        [again] = pod.run_init()
    assert again.status == EXIT_REFUSED, again.log
    assert "pass  max-map-count" in again.log
    assert "[1] of [5] checks failed" in again.log
    assert "file-descriptors         max file descriptors nofile.hard [20000] is too low" in again.log
    assert RUNTIME_LIMITS_FIX in again.log


def write_segments(log_dir, count):
    """count empty segment files in one partition folder, as the broker leaves them."""
    partition = os.path.join(log_dir, "events-0")
    os.mkdir(partition)
    for n in range(count):
        open(os.path.join(partition, f"{n * 1000:020d}.log"), "w").close()


def test_check_lets_kafka_start_on_a_fresh_volume(pod_of):
    pod = pod_of("check/kafka")
    with sysctl("vm.max_map_count", 65530):
        [kafka] = pod.start()
        status, log = finish(kafka)
    [guard] = pod.init_exits
    assert "log.dirs [/var/lib/kafka/data] holds 0 segments" in guard.log
    assert status == 0, log
    assert "stand-in kafka started as uid 1000 with log dirs /var/lib/kafka/data" in log


def test_check_keeps_kafka_in_init_when_its_segments_outgrow_the_node(pod_of):
    pod = pod_of("check/kafka")
    # Two maps a segment: 33000 segments take more than 65530 maps before the broker writes one more
    # (the profile refuses at the maps on disk, and warns below the headroom).
    write_segments(pod.volume("data"), 33000)
    with sysctl("vm.max_map_count", 65530):
        [guard] = pod.run_init()
    assert guard.status == EXIT_REFUSED, guard.log
    assert "log.dirs [/var/lib/kafka/data] holds 33000 segments in 1 partitions" in guard.log
    assert f"vm.max_map_count [65530] is too low, increase to at least [{kafka_maps_on_disk(33000)}]" in guard.log
    assert f"raise it on every node with guard fix's DaemonSet, which never lowers a value set higher: in a clone of " \
           f"guard's repository, with --require vm.max_map_count>={kafka_maps_needed(33000)} in the args" in guard.log
    assert ON_THE_NODE in guard.log


# -- prefix: guard in the program's own container (guard install) -------------------------------

@pytest.mark.parametrize("system", ["elasticsearch", "opensearch"])
def test_prefix_refuses_in_the_programs_own_container_when_the_node_is_short(pod_of, system):
    pod = pod_of(f"prefix/{system}")
    with sysctl("vm.max_map_count", 65530):
        [program] = pod.start()
        status, log = finish(program)
    assert status == EXIT_REFUSED, log
    assert ES_SENTENCE in log and ON_THE_NODE in log
    assert f"stand-in {system} started" not in log


def test_prefix_hands_guard_over_and_kafka_starts_through_it_as_its_own_user(pod_of):
    pod = pod_of("prefix/kafka")
    with sysctl("vm.max_map_count", 65530):
        [kafka] = pod.start()
        status, log = finish(kafka)
    assert status == 0, log
    # guard judged first, from the broker's own environment and volume, then exec'd the start script
    assert "log.dirs [/var/lib/kafka/data] holds 0 segments" in log
    assert "stand-in kafka started as uid 1000 with log dirs /var/lib/kafka/data" in log
    copied = os.path.join(pod.volume("guard"), "bin", "guard")
    assert os.stat(copied).st_uid == 1000  # written by the init container, as the pod's user


# -- fix: the privileged DaemonSet (guard fix) -----------------------------------------------------

def test_fix_containers_settings_change_the_nodes_sysctls(pod_of):
    # What the privileged DaemonSet is run with here (see Pod._confinement) writes the node's
    # /proc/sys, as privileged does on a node.
    pod = pod_of("fix")
    probe = pod.container("guard")
    probe["image"] = SHELL_IMAGE
    probe["command"] = ["sh", "-c", "echo 262144 > /proc/sys/vm/max_map_count && test -w " + THP + "/enabled "
                        "&& echo written; touch /written || echo read-only root"]
    del probe["args"]
    with sysctl("vm.max_map_count", 65530):
        ran = pod.run_container(probe)
        assert current_value(MAX_MAP_COUNT) == "262144", ran.log
    assert "written" in ran.stdout and "read-only root" in ran.stdout, ran.log


def test_fix_raises_the_nodes_map_count_and_ends_with_0_on_sigterm(pod_of):
    pod = pod_of("fix")
    with sysctl("vm.max_map_count", 65530):
        [guard] = pod.start()
        try:
            poll(lambda: current_value(MAX_MAP_COUNT) == "262144", "vm.max_map_count raised to 262144", guard)
        finally:
            status = pod.stop(guard)
    assert status == 0, guard.logs().decode(errors="replace")


def test_fix_never_lowers_a_value_set_higher(pod_of):
    pod = pod_of("fix")
    guard = pod.container("guard")
    every = guard["args"].index("--every")
    del guard["args"][every:every + 2]  # one pass of the DaemonSet's command
    with sysctl("vm.max_map_count", 300000):
        once = pod.run_container(guard)
        assert current_value(MAX_MAP_COUNT) == "300000"
    assert once.status == 0, once.log


# -- audit: the hostPID DaemonSet (guard maps --every) -------------------------------------------

@pytest.fixture(scope="session")
def holder_program(tmp_path_factory):
    directory = tmp_path_factory.mktemp("holder")
    os.chmod(directory, 0o755)  # bound into a container whose user is not root
    return vmaholder.build(str(directory))


HOLDER_MAPS = 30000


@pytest.fixture
def holder(made, holder_program):
    """A process of another user (uid 1000) in another container, holding many memory maps:
    a database in a pod on the same node. Yields its pid as the node sees it."""
    container = made.container(NO_PYTHON_IMAGE, ["/holder/vma_holder", str(HOLDER_MAPS), "anon"], user="1000",
                               stdin_open=True,
                               volumes={os.path.dirname(holder_program): {"bind": "/holder", "mode": "ro"}})
    wait_for_log(container, "ready")
    container.reload()
    yield container.attrs["State"]["Pid"]


AUDIT_IDS = (43210, 43210)  # the audit's --user


def host_map_count(pid):
    """The kernel's count of pid's mappings, read on the host ([vsyscall] is not one)."""
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for line in f if not line.rstrip().endswith("[vsyscall]"))


def test_audit_counts_another_users_process_only_with_sys_ptrace(pod_of, tmp_path, holder):
    pod = pod_of("audit", {TEXTFILE_DIRECTORY: str(tmp_path)})
    guard = pod.container("guard")
    # one count, with the DaemonSet's settings and user
    guard["args"] = ["maps", "--user", option_value(guard["args"], "--user"), str(holder), "--format", "json"]
    counted = pod.run_container(guard)
    assert counted.status == 0, counted.log
    [row] = json.loads(counted.stdout)["processes"]
    assert (row["pid"], row["name"], row["maps"]) == (holder, "vma_holder", host_map_count(holder))
    guard["securityContext"]["capabilities"]["add"].remove("SYS_PTRACE")
    refused = pod.run_container(guard)
    assert refused.status == 1, refused.log
    assert f"cannot count the memory maps of pid [{holder}]: permission denied" in refused.log


def samples(text):
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_audit_keeps_the_nodes_textfile_current_within_its_cpu_budget(pod_of, tmp_path, holder):
    os.chmod(tmp_path, 0o755)  # as DirectoryOrCreate makes it: root's, 0755
    pod = pod_of("audit", {TEXTFILE_DIRECTORY: str(tmp_path)})
    args = pod.container("guard")["args"]
    every, budget = float(option_value(args, "--every")), float(option_value(args, "--watch-cpu")) / 100
    written = os.path.join(tmp_path, os.path.basename(option_value(args, "--output")))
    [guard] = pod.start()
    started = time.monotonic()
    try:
        poll(lambda: os.path.exists(written), f"{written} written", guard)
        first = os.stat(written)
        with open(written) as f:
            gauges = samples(f.read())
        assert gauges["guard_vm_max_map_count"] == int(current_value(MAX_MAP_COUNT))
        assert gauges[f'guard_process_map_count{{pid="{holder}",comm="vma_holder"}}'] == host_map_count(holder)
        # guard's, and node_exporter (uid 65534) reads it; the folder's owner and mode stay but
        # for guard's group and its write
        assert first.st_mode & 0o777 == 0o644 and (first.st_uid, first.st_gid) == AUDIT_IDS
        folder = os.stat(tmp_path)
        assert (folder.st_uid, folder.st_gid, folder.st_mode & 0o7777) == (0, AUDIT_IDS[1], 0o775)
        poll(lambda: os.stat(written).st_ino != first.st_ino, "the file replaced", guard, timeout=every + 30)
        assert os.listdir(tmp_path) == [os.path.basename(written)]  # no temporary file left behind
        used = guard.stats(stream=False)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        elapsed = time.monotonic() - started
        assert used <= budget * elapsed, f"{used:.3f} s of CPU in {elapsed:.1f} s, over {budget:.1%} of a core"
        guard.reload()
        status = status_of(guard.attrs["State"]["Pid"])
        assert status["Uid"].split() == [str(AUDIT_IDS[0])] * 4 and status["Gid"].split() == [str(AUDIT_IDS[1])] * 4
        assert status["Groups"] == ""
        assert capability_names(int(status["CapEff"], 16)) == capability_names(int(status["CapPrm"], 16)) == \
            ["SYS_PTRACE"]
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    finally:
        status = pod.stop(guard)
    guard.reload()
    assert status == 0 and not guard.attrs["State"]["OOMKilled"], guard.logs().decode(errors="replace")


# What a process with the audit's identity reads of the node's other processes, beside their
# maps: per target pid, each read as "name yes|no". mem is read at the first mapping's address.
READS = r"""
for pid in "$@"; do
  try() { if sh -c "$2" >/dev/null 2>&1; then echo "$pid $1 yes"; else echo "$pid $1 no"; fi; }
  try maps "head -c1 /proc/$pid/maps | grep -q ."
  try environ "head -c1 /proc/$pid/environ | grep -q ."
  start=$(head -1 /proc/$pid/maps 2>/dev/null | cut -d- -f1)
  try mem "dd if=/proc/$pid/mem iflag=skip_bytes skip=$((0x${start:-0})) bs=1 count=1 status=none | grep -qc ''"
  try owner-only-file "head -c1 /proc/$pid/root/owner-only | grep -q ."
  try etc-shadow "head -c1 /proc/$pid/root/etc/shadow | grep -q ."
  try world-readable-file "head -c1 /proc/$pid/root/etc/os-release | grep -q ."
done
grep -E '^(Uid|CapEff):' /proc/self/status
"""
# A process of the given user in a container of its own, with a file only that user may read
# and a secret in its environment.
TARGET = ("echo secret > /owner-only && chmod 600 /owner-only && chown $0 /owner-only && "
          "exec setpriv --reuid $0 --regid $0 --clear-groups env TOKEN=secret sleep 1000")


def reads_with(pod, identity, targets):
    """{(target, read): "yes"|"no"} for a shell run with the audit container's settings, as root
    with them (identity None) or having become the audit's user with CAP_SYS_PTRACE alone, as
    guard maps --user does (setpriv keeps the capability across exec as an ambient one)."""
    probe = pod.container("guard")
    probe["image"] = SHELL_IMAGE
    become = [] if identity is None else [
        "setpriv", "--reuid", str(identity[0]), "--regid", str(identity[1]), "--clear-groups",
        "--inh-caps", "-all,+sys_ptrace", "--ambient-caps", "+sys_ptrace"]
    probe["command"] = [*become, "sh", "-c", READS, "sh", *(str(pid) for pid in targets.values())]
    del probe["args"]
    ran = pod.run_container(probe)
    names = {str(pid): name for name, pid in targets.items()}
    found = {(names[pid], read): answer for pid, read, answer in
             (line.split() for line in ran.stdout.splitlines() if line.split()[0] in names)}
    status = process_status("\n".join(line for line in ran.stdout.splitlines() if ":" in line))
    return found, status["Uid"].split()[0], capability_names(int(status["CapEff"], 16))


def test_audit_reads_other_processes_maps_and_only_what_file_modes_give_any_user(made, pod_of, tmp_path):
    # guard becomes the audit's user with CAP_SYS_PTRACE alone (the test above checks its
    # process): maps of every process, and of their files only what any user may read.
    # Root with CAP_SYS_PTRACE, as the DaemonSet ran before, also read root's environments,
    # memory and files. deploy/kubernetes/README.md has this table.
    targets = {}
    for user in ("0", "1000"):
        target = made.container(NO_PYTHON_IMAGE, ["sh", "-c", TARGET, user])
        wait_for_process(target, "sleep")
        target.reload()
        targets["root" if user == "0" else f"uid-{user}"] = target.attrs["State"]["Pid"]
    pod = pod_of("audit", {TEXTFILE_DIRECTORY: str(tmp_path)})
    reads = ("maps", "environ", "mem", "owner-only-file", "etc-shadow", "world-readable-file")

    def table(*rows):
        return {(target, read): answer for target, answers in rows for read, answer in zip(reads, answers.split())}

    found, uid, capabilities = reads_with(pod, AUDIT_IDS, targets)
    assert (uid, capabilities) == (str(AUDIT_IDS[0]), ["SYS_PTRACE"])
    assert found == table(("root", "yes no no no no yes"), ("uid-1000", "yes no no no no yes"))
    found, uid, capabilities = reads_with(pod, None, targets)
    assert (uid, capabilities) == ("0", ["SETGID", "SETUID", "SYS_PTRACE"])
    assert found == table(("root", "yes yes yes yes yes yes"), ("uid-1000", "yes no no no yes yes"))
