"""The fix for a failed requirement, as commands to paste where they must run.

Three kinds of knob, three places to change them:
- node-level sysctls and THP belong to the kernel every container shares: the Linux host, the VM
  of Docker Desktop, OrbStack, WSL2 or a Podman machine, or the Kubernetes node (set the way its
  provider sets them). A container cannot change them for itself.
- namespaced sysctls (net.*, IPC) belong to the container: docker or podman run --sysctl, compose
  sysctls:, the pod's securityContext.
- resource limits are inherited from whoever starts the process: docker or podman run --ulimit,
  compose ulimits:, ulimit/systemd on a plain host, the node's runtime under Kubernetes.
The commands of each platform are in guard/platforms.py.
"""

from guard import platforms
from guard.checks import THP_KEY, format_value, kind_of, rlimit_parts
from guard.host import UNLIMITED

# Sysctls the kernel keeps per namespace, which Docker lets a container set with --sysctl
# (Docker run reference, "Configure namespaced kernel parameters (sysctls) at runtime").
NAMESPACED_PREFIXES = ("net.", "fs.mqueue.")
NAMESPACED_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                  "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")

# Kubernetes "safe" sysctls need no kubelet flag; everything else must be allowed with
# --allowed-unsafe-sysctls (Kubernetes docs, "Using sysctls in a Kubernetes Cluster").
KUBERNETES_SAFE = ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                   "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                   "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
                   "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                   "net.ipv4.tcp_keepalive_probes")

ULIMIT_LETTERS = {"nofile": "n", "nproc": "u", "memlock": "l", "as": "v", "fsize": "f", "core": "c", "stack": "s"}
SYSTEMD_NAMES = {"nofile": "LimitNOFILE", "nproc": "LimitNPROC", "memlock": "LimitMEMLOCK", "as": "LimitAS",
                 "fsize": "LimitFSIZE", "core": "LimitCORE", "stack": "LimitSTACK"}
# docker --ulimit takes the names of Go's units.ParseUlimit; RLIMIT_AS is not among them.
DOCKER_ULIMITS = ("core", "fsize", "memlock", "nofile", "nproc", "stack")


def is_namespaced(key):
    return key.startswith(NAMESPACED_PREFIXES) or key in NAMESPACED_IPC


def target(req):
    """The value to set: the threshold, or the stricter one the requirement's fix_value names, or
    for THP's "not always" the mode the kernel docs advise."""
    if req.fix_value is not None:
        return req.fix_value
    if req.key == THP_KEY and req.op == "!=":
        return "madvise" if req.value != "madvise" else "never"
    return req.value


# What a kernel release must be, by the requirement's operator.
KERNEL_WANTED = {">=": "{} or later", "<=": "{} or older", "=": "{}", "!=": "other than {}"}


def fix(req, place, program="guard"):
    """Multi-line fix text starting 'To fix this'; None when there is nothing sensible to set."""
    kind = kind_of(req.key)
    if kind == "program":
        # A setting of the program worked out by its profile: only the profile knows what to change.
        return req.hint or "To fix this, change the program's settings named above."
    if kind == "kernel":
        where = place.where_the_kernel_is
        wanted = KERNEL_WANTED[req.op].format(format_value(req.value))
        return (f"The Linux kernel is the one {where} booted: no setting changes its release.\n"
                f"To fix this, boot a Linux kernel {wanted} on {where}." + (f"\n{req.hint}" if req.hint else ""))
    if req.op == "!=" and req.key != THP_KEY:
        return f"To fix this, set {req.key} to a value other than [{format_value(req.value)}]."
    if kind == "rlimit":
        text = _rlimit_fix(req, place)
    elif kind == "thp":
        text = _node_fix(req, place, program, thp_commands)
    elif is_namespaced(req.key):
        text = _namespaced_fix(req.key, target(req), place, program)
    else:
        text = _node_fix(req, place, program, _sysctl_commands)
    return text + "".join(f"\n{hint}" for hint in (req.hint, "" if req.hard else req.soft_hint) if hint)


def sysctl_d_file(program):
    """The sysctl.d(5) file a program's settings are kept in. The boot applies every file in the
    order of its name, the last assignment of a key winning (guard.sysctld), so the name sorts
    after the ones distributions and tools use: "zz-" comes after every name that starts with a
    digit or another letter, as Debian's and Ubuntu's 99-sysctl.conf (-> ../sysctl.conf),
    systemd's 50-*.conf and Cilium's 99-zzz-override_cilium.conf do. With no profile (only
    --require) the file is guard's alone."""
    return f"zz-guard-{program}.conf" if program not in (None, "none", "guard") else "zz-guard.conf"


def earlier_sysctl_d_file(program):
    """The name guard fix --persist kept a program's settings in before sysctl_d_file's, which
    sorts before 99-sysctl.conf and so lost to /etc/sysctl.conf at boot."""
    return f"99-{program if program not in (None, 'none') else 'guard'}.conf"


def _sysctl_commands(key, value, program):
    # ">>": a program short of two sysctls gets a line for each, into one file; pasted one after
    # the other, ">" would keep only the last. A key appended twice is harmless: the last line wins.
    return (f"sysctl -w {key}={value}",
            f"echo '{key}={value}' >> /etc/sysctl.d/{sysctl_d_file(program)}")


def thp_commands(key, value, program=None):
    """THP now, and across reboots: it is no sysctl, so sysctl.d cannot keep it
    (Documentation/admin-guide/mm/transhuge.rst, "Boot parameters")."""
    return (f"echo {value} > /sys/kernel/mm/transparent_hugepage/enabled",
            f"add transparent_hugepage={value} to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub)")


# What guard fix does to a node-level setting, by the requirement's operator (guard/fix.py).
FIX_DAEMONSET_DOES = {">=": "raise it on every node with guard fix's DaemonSet, which never lowers a value set higher"}


def _kubernetes_node_fix(req, value, now, persist, place, program):
    """The node's kernel, from the provider's node configuration where guard knows it, else from
    the manifests in guard's repository: the raise-only DaemonSet of deploy/kubernetes/fix, or the
    node image; never a blind privileged `sysctl -w` in the pod."""
    # The value the fix sets (a stricter check's, when one covers this), but a "!=" names the one to avoid.
    spec = f"{req.key}{req.op}{format_value(req.value if req.op == '!=' else value)}"
    does = FIX_DAEMONSET_DOES.get(req.op, f"set it to [{value}] on every node with guard fix's DaemonSet")
    how = (f"in a clone of guard's repository, with --require {spec} in the args of "
           "deploy/kubernetes/fix/daemonset.yaml, run: kubectl apply -k deploy/kubernetes/fix")
    provider = place.name
    maps = req.key == "vm.max_map_count"
    shipped = platforms.shipped(provider, req.key, value) if req.op == ">=" else None
    lines = [shipped] if shipped else []
    own = _provider_node_fix(provider, req.key, value, now, persist, program)
    if own:
        privileged = (f", once its service account may run privileged ({platforms.OPENSHIFT_DAEMONSET})"
                      if provider == "openshift" else "")
        lines += own + [f"or {does}{privileged}: {how}"]
    else:
        lines += [f"To fix this, {does}: {how}", f"or set it in the node image: {persist}"]
    if maps and provider in ("kubernetes", "gke"):
        lines.append(platforms.autopilot(value, compute_class=provider == "gke"))
    if maps and provider in ("kubernetes", "eks"):
        lines.append(platforms.FARGATE)
    if provider == "kubernetes":
        lines.append(platforms.local_clusters(now))
    if maps and provider in ("kubernetes", "gke", "eks"):
        lines += filter(None, [platforms.without_mmap(program)])
    return lines


def _provider_node_fix(provider, key, value, now, persist, program):
    """The provider's own way to set a node-level setting on its nodes; [] where it has none."""
    if provider == "gke":
        return platforms.gke(key, value)
    if provider == "eks":
        return platforms.eks(key, value, now, persist)
    if provider == "aks":
        return platforms.aks(key, value)
    if provider == "openshift":
        return platforms.openshift(key, value, program)
    return []


def _node_fix(req, place, program, commands):
    key, value = req.key, target(req)
    now, persist = commands(key, value, program)
    lines = []
    if place.in_container and place.proc_sys_writable and key != THP_KEY:
        lines.append(f"{key} is a node-level setting shared by every container. This container can "
                     f"write /proc/sys (privileged, or systempaths=unconfined), so `{now}` here changes "
                     f"it for the whole of {place.where_the_kernel_is}, until it restarts.")
    elif place.in_container:
        lines.append(f"{key} is a node-level setting shared by every container: it cannot be set "
                     f"from inside a container, only on {place.where_the_kernel_is}.")
    if place.engine == "kubernetes":
        lines += _kubernetes_node_fix(req, value, now, persist, place, program)
    elif place.engine == "podman":
        lines += platforms.podman_node(now, persist, rootless=place.name == "podman-rootless")
    elif place.engine == "system":
        lines += platforms.system_container_node(now, persist)
    elif place.name == "wsl2":
        lines += platforms.wsl2_container(key, value, now)
    elif place.name == "wsl2-distro":
        lines += platforms.wsl2_distribution(key, value, now)
    elif place.name == "docker-desktop":
        lines += platforms.docker_desktop(now)
    elif place.name == "orbstack":
        lines += platforms.orbstack(now)
    else:
        where = "on the Docker host run as root" if place.in_container else "run as root"
        lines += [f"To fix this, {where}: {now}", f"and keep it across reboots: {persist}"]
        if place.name == "container":
            lines += platforms.docker_vms(now)
    return "\n".join(lines)


def _namespaced_fix(key, value, place, program):
    if place.engine == "kubernetes":
        lines = ["To fix this, set it in the pod spec:",
                 "  securityContext:",
                 f"    sysctls: [{{name: {key}, value: \"{value}\"}}]"]
        if key not in KUBERNETES_SAFE:
            lines.append(f"{key} is not a safe sysctl: the kubelet must allow it with "
                         f"--allowed-unsafe-sysctls={key}.")
            if place.name == "aks":
                lines.append(platforms.aks_unsafe_sysctl(key))
        return "\n".join(lines)
    if place.engine == "system":
        return "\n".join(platforms.system_container_sysctl(key, value))
    if place.in_container:
        # podman run --sysctl takes the namespaced ones, as docker's (podman docs, options/sysctl.md)
        engine = "podman" if place.engine == "podman" else "docker"
        return "\n".join([
            f"{key} belongs to the container's own namespace: set it where the container is created.",
            f"To fix this, run the container with: {engine} run --sysctl {key}={value} ...",
            "or in compose:",
            "    sysctls:",
            f"      {key}: {value}",
            "(a container on the host network shares the host's value: there, sysctl -w on the host)",
        ])
    now, persist = _sysctl_commands(key, value, program)
    return f"To fix this, run as root: {now}\nand keep it across reboots: {persist}"


# What a fix does to a limit, by the requirement's operator: a "<=" limit is too high.
CHANGE_VERBS = {">=": "raise", "<=": "lower"}


def _rlimit_fix(req, place):
    base, which = rlimit_parts(req.key)
    value = target(req)
    verb = CHANGE_VERBS.get(req.op, "set")
    if place.engine == "kubernetes":
        number = _docker(value)
        unit = f"{SYSTEMD_NAMES[base]}={_systemd(value)} in its systemd unit"  # what its containers inherit
        if place.name == "openshift":
            crio = platforms.crio_limit(base, number) if base in DOCKER_ULIMITS else unit
            return (f"To fix this, {verb} CRI-O's default on the nodes: Kubernetes has no pod field for resource "
                    f"limits: {crio}.")
        runtimes = [f"containerd: {unit}"]
        if base in DOCKER_ULIMITS:
            runtimes += [f"CRI-O: {platforms.crio_limit(base, number)}", f"dockerd: --default-ulimit {base}={number}:{number}"]
        text = (f"To fix this, {verb} the container runtime's default on the node: Kubernetes has no pod "
                f"field for resource limits ({'; '.join(runtimes)}).")
        if place.name == "eks":
            text = "\n".join([text] + platforms.bottlerocket_limit(base, _docker(value)))
        return text
    if place.engine == "system":
        return "\n".join(platforms.system_container_limit(base, _docker(value), verb, SYSTEMD_NAMES[base]))
    if place.engine == "podman":
        return "\n".join(platforms.podman_limit(base, _docker(value), ULIMIT_LETTERS[base], verb,
                                                 rootless=place.name == "podman-rootless" and verb == "raise",
                                                 settable=base in DOCKER_ULIMITS))
    if place.in_container:
        if base not in DOCKER_ULIMITS:
            return (f"To fix this, {verb} {base} for the container engine itself (dockerd's systemd unit "
                    f"{SYSTEMD_NAMES[base]}={_systemd(value)}): docker --ulimit cannot set it.")
        number = _docker(value)
        lines = [
            f"To fix this, start the container with: docker run --ulimit {base}={number}:{number} ...",
            "or in compose:",
            "    ulimits:",
            f"      {base}:",
            f"        soft: {number}",
            f"        hard: {number}",
        ]
        if place.name == "container" and verb == "raise":
            lines.append(platforms.dockerd_limit(SYSTEMD_NAMES[base], _systemd(value)))
        return "\n".join(lines)
    letter = ULIMIT_LETTERS[base]
    # Anyone may lower a limit; raising one beyond the hard limit takes root (setrlimit(2)), so a
    # hard limit itself is raised only as root.
    if verb == "lower":
        who = "any user may lower a limit"
    elif which == "hard":
        who = "as root: only root raises a hard limit"
    else:
        who = "as root, or up to the hard limit"
    return (f"To fix this, {verb} it for the user or service that starts the program: "
            f"ulimit -{letter} {format_value(value)} ({who}), "
            f"{SYSTEMD_NAMES[base]}={_systemd(value)} in its systemd unit, or "
            f"'* - {base} {format_value(value)}' in /etc/security/limits.conf.")


def _docker(value):
    return -1 if value == UNLIMITED else value


def _systemd(value):
    return "infinity" if value == UNLIMITED else value
