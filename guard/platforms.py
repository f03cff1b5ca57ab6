"""The fix on each platform guard recognises (guard/place.py), in the commands of the platform's
own documentation: where its kernel's settings are changed and kept, and how its containers get
their limits. guard/fixes.py picks the block for the place; each block is a list of lines.

`now` is the command that sets a node-level setting on a running kernel (`sysctl -w KEY=VALUE`,
or THP's `echo MODE > /sys/...`); `persist` the line that keeps it across reboots. Where a source
says a way to keep a setting is unconfirmed, the printed fix says to run it again instead.
"""

from guard.checks import THP_KEY


def _words(now):
    """now as the words of a command another runs: THP's redirect needs a shell of its own."""
    return f'sh -c "{now}"' if ">" in now else now


def as_root_in(prefix, now):
    """A command that passes its words on intact (limactl shell quotes each one), run as root."""
    return f"{prefix} sudo {_words(now)}"


def as_root_over_ssh(prefix, now):
    """A command that hands ssh one string for the remote shell: the words go in one quoted word."""
    return f"{prefix} 'sudo {_words(now)}'"


def privileged_container(now):
    """A privileged container writes /proc/sys and /sys for the whole kernel it runs on: the way
    into any VM that runs Docker (orbstack/orbstack#459; docker/for-mac#7047)."""
    return f"docker run --rm --privileged alpine {_words(now)}"


# --- a VM that runs Docker, which a container cannot name ---

def docker_vms(now):
    """The VMs that run Docker and look like any Linux host from inside a container (their
    kernels name no distinct release): each tool's way in, then the one for any of them."""
    return [
        "If your Docker host is a VM, set it in the VM instead; it is lost when the VM restarts:",
        # abiosoft/colima docs/FAQ.md; dockhippie/elasticsearch#64
        f"  Colima: {as_root_in('colima ssh --', now)}",
        # rdctl shell runs a command in Rancher Desktop's VM (rdctl command reference); this use
        # of it is seen in users' READMEs, not in Rancher Desktop's docs
        f"  Rancher Desktop: {as_root_in('rdctl shell', now)}",
        f"  Lima: {as_root_in('limactl shell INSTANCE', now)}",  # lima-vm/lima cmd/limactl/shell.go
        f"  any VM that runs Docker: {privileged_container(now)}",
    ]


def _kernel_cmdline(key, value):
    if key == THP_KEY:
        return f"transparent_hugepage={value}"
    return f"sysctl.{key}={value}"  # the kernel's sysctl.*= boot parameter (kernel-parameters.txt)


def _wslconfig(key, value):
    # %USERPROFILE%\.wslconfig [wsl2] kernelCommandLine serves every distribution (WSL docs,
    # wsl-config.md); WSL reads it when its VM starts: after wsl --shutdown (the "8 second rule").
    return ["and keep it across restarts in %USERPROFILE%\\.wslconfig (read when WSL starts: wsl --shutdown "
            "applies it):",
            "  [wsl2]",
            f"  kernelCommandLine = \"{_kernel_cmdline(key, value)}\""]


def wsl2_container(key, value, now):
    """A container on WSL2's kernel: Docker Desktop's distribution most likely (Elastic's docs for
    Docker Desktop on Windows), else the distribution that runs the engine (Rancher Desktop)."""
    return [f"To fix this, in Windows PowerShell run: wsl -d docker-desktop -u root sh -c \"{now}\"",
            *_wslconfig(key, value),
            f"Without Docker Desktop, in the WSL2 distribution that runs the engine: sudo {_words(now)} "
            f"(Rancher Desktop: {as_root_in('rdctl shell', now)})"]


def wsl2_distribution(key, value, now):
    """guard in a WSL2 distribution itself: all of them share one kernel."""
    return [f"To fix this, run as root (every WSL2 distribution shares this kernel): {now}",
            *_wslconfig(key, value)]


def docker_desktop(now):
    return ["To fix this, change it in Docker Desktop's VM from a privileged container:",
            f"  docker run --rm --privileged --pid=host alpine nsenter -t 1 -m -u -n -i sh -c \"{now}\"",
            "Docker Desktop's VM forgets it on restart: run it again after each restart."]


def orbstack(now):
    # OrbStack's maintainer sets sysctls from a privileged container (orbstack/orbstack#459); no
    # way to keep one across its restarts is documented.
    return [f"To fix this, change it in OrbStack's VM from a privileged container: {privileged_container(now)}",
            "OrbStack documents no way to keep it: run it again after OrbStack restarts."]


# --- Podman ---

def podman_node(now, persist, rootless):
    # podman run --sysctl takes only namespaced sysctls (podman docs, options/sysctl.md); the
    # host's are set on the host, which for a Podman machine is its VM: podman machine ssh runs
    # a command there (containers/podman#18824). Whether /etc/sysctl.d survives there is not
    # confirmed (Fedora CoreOS applies it at boot; coreos/fedora-coreos-docs#21).
    who = " (rootless Podman cannot change it: it takes root on that host)" if rootless else ""
    return [f"To fix this, on the host that runs Podman run as root{who}: {now}",
            f"and keep it across reboots: {persist}",
            f"On a Podman machine (macOS, Windows): {as_root_over_ssh('podman machine ssh', now)} "
            "(run it again after the machine restarts: keeping it there is not documented)"]


def podman_limit(base, number, letter, verb, rootless, settable):
    """podman run --ulimit, as docker's (podman docs, options/ulimit.md); containers.conf's
    default_ulimits for every container. Rootless Podman gives a container at most the hard
    limit of the user who runs it: above it, "error setting rlimit ... operation not permitted"
    (containers/podman#19319; measured here)."""
    if settable:
        lines = [f"To fix this, start the container with: podman run --ulimit {base}={number}:{number} ...",
                 f"or for every container, in containers.conf ([containers]): default_ulimits = "
                 f"[\"{base}={number}:{number}\"]"]
    else:
        lines = [f"To fix this, {verb} {base} where podman is started (ulimit -{letter}), and start the "
                 "container with podman run --ulimit host ..., which gives it podman's own limits."]
    if rootless:
        lines.append(f"Rootless Podman cannot give a container more than the hard limit of the user who runs it "
                     f"(ulimit -H{letter}): raise that user's first, as root on the host: "
                     f"'USER hard {base} {'unlimited' if number == -1 else number}' in /etc/security/limits.conf, "
                     "then log in again.")
    return lines


def dockerd_limit(systemd_name, value):
    # runc sets a container's limits from the daemon's side: where it may not raise one past the
    # daemon's own (rootless Docker, a VM without CAP_SYS_RESOURCE) docker run fails with "error
    # setting rlimit type 7: operation not permitted" (measured here, dockerd at 20000 files).
    # Rootless Docker's daemon is the user's own systemd service (Docker docs, "Rootless mode"),
    # which no setting takes past the user's hard limit.
    return (f"If Docker refuses it (error setting rlimit ...: operation not permitted), raise the daemon's own "
            f"limit: {systemd_name}={value} for dockerd (systemctl edit docker; rootless Docker: systemctl --user "
            "edit docker, within the user's own hard limit), then restart it.")


# --- system containers: LXC (LXD, Incus, Proxmox VE), systemd-nspawn ---

SYSTEM_CONTAINER_MANAGERS = "LXC, LXD, Incus, Proxmox VE, systemd-nspawn"


def system_container_node(now, persist):
    return [f"To fix this, on the host that runs the container ({SYSTEM_CONTAINER_MANAGERS}) run as root: {now}",
            f"and keep it across reboots: {persist}"]


def system_container_limit(base, value, verb, systemd_name):
    """Each manager's limit for its container: LXC's lxc.prlimit.NAME, a value or soft:hard
    (lxc.container.conf(5); Proxmox VE writes LXC's keys as "key: value" in its own file);
    LXD's and Incus's limits.kernel.NAME; systemd-nspawn's --rlimit= or the .nspawn file's
    [Exec] Limit*= (systemd-nspawn(1), systemd.nspawn(5))."""
    lxc = "unlimited" if value == -1 else value
    nspawn = "infinity" if value == -1 else value
    return [f"To fix this, {verb} it where the container is started:",
            f"  LXC: lxc.prlimit.{base} = {lxc} in its config (Proxmox VE: lxc.prlimit.{base}: {lxc} in "
            "/etc/pve/lxc/ID.conf)",
            f"  LXD, Incus: lxc config set NAME limits.kernel.{base}={lxc} (incus config set ...)",
            f"  systemd-nspawn: --rlimit=RLIMIT_{base.upper()}={nspawn}, or {systemd_name}={nspawn} in [Exec] of its "
            ".nspawn file"]


def system_container_sysctl(key, value):
    # lxc.sysctl.NAME sets a sysctl of the container's own namespaces (lxc.container.conf(5))
    return [f"{key} belongs to the container's own namespace: set it where the container is created.",
            f"To fix this with LXC: lxc.sysctl.{key} = {value} in its config (Proxmox VE: lxc.sysctl.{key}: {value} "
            "in /etc/pve/lxc/ID.conf)"]


# --- Kubernetes providers ---

# What the providers' node images ship, as (value, images), and who lowers it: OpenShift's TuneD
# profile (cluster-node-tuning-operator assets/tuned/patches/050-openshift-profiles.diff); EKS's
# AL2023 AMI (amazon-eks-ami templates/al2023/runtime/rootfs/etc/sysctl.d/99-amazon.conf) and
# Bottlerocket (bottlerocket-core-kit#835); AKS's images (AKS custom node configuration reference).
SHIPPED_MAX_MAP_COUNT = {
    "openshift": ("OpenShift's nodes", [(262144, "the Node Tuning Operator's openshift profile")],
                  "a Tuned profile of higher priority, by hand"),
    "eks": ("EKS's node images", [(524288, "Amazon Linux 2023"), (1048576, "Bottlerocket")],
            "its user data, a DaemonSet"),
    "aks": ("AKS's node images", [(65530, "Ubuntu 22.04"), (1048576, "Ubuntu 24.04, Azure Linux 3.0")],
            "a DaemonSet, by hand"),
}


def shipped(provider, key, value):
    """A line saying what the provider's node images ship, when one of them ships enough: a node
    of that image that falls short was changed, and the fix is to find what changed it."""
    if key != "vm.max_map_count" or provider not in SHIPPED_MAX_MAP_COUNT:
        return None
    who, images, lowered_by = SHIPPED_MAX_MAP_COUNT[provider]
    if all(ships < value for ships, _ in images):
        return None
    listed = " or ".join(f"[{ships}] ({image})" for ships, image in images)
    return (f"{who} ship {key} {listed}: a node whose image ships [{value}] or more and falls short was "
            f"changed ({lowered_by}).")


# GKE's node system configuration takes these sysctls (googleapis container/v1
# LinuxNodeConfig.sysctls; the gcloud file's key is linuxConfig.sysctl); Autopilot ignores it.
GKE_SYSCTLS = ("vm.max_map_count", "vm.overcommit_memory", "fs.aio-max-nr", "fs.file-max", "fs.nr_open")


def gke(key, value):
    """GKE Standard: a node system configuration file, applied to a node pool (GKE docs,
    "Customizing node system configuration")."""
    if key not in GKE_SYSCTLS:
        return []
    return ["To fix this on GKE Standard, set it in the node pool's system configuration, a file FILE holding:",
            "  linuxConfig:",
            "    sysctl:",
            f"      {key}: '{value}'",
            # gcloud asks for the cluster's location unless a default is configured (gcloud reference)
            "then run: gcloud container node-pools update POOL --cluster CLUSTER --location LOCATION "
            "--system-config-from-file=FILE (create, for a new pool)"]


# GKE Autopilot admits no privileged pod but the DaemonSets Google allow-lists; the one for
# Elasticsearch sets vm.max_map_count to this, exactly, or is refused (Elastic Cloud on Kubernetes
# docs, "Deploy ECK on GKE Autopilot"). A custom ComputeClass sets node sysctls in
# spec.priorityDefaults.nodeSystemConfig from GKE 1.32.1-gke.1729000 (GKE docs, "Customizing node
# system configuration" and the ComputeClass reference; ECK's "Virtual memory" example), its sysctl
# values numbers as in those examples.
AUTOPILOT_MAX_MAP_COUNT = 262144


def autopilot(value, compute_class):
    enough = "" if value <= AUTOPILOT_MAX_MAP_COUNT else f", less than the [{value}] needed here"
    if not compute_class:
        return (f"On GKE Autopilot, which admits no privileged pod: Google's allow-listed DaemonSet sets "
                f"vm.max_map_count to [{AUTOPILOT_MAX_MAP_COUNT}]{enough}; from GKE 1.32.1-gke.1729000 a custom "
                "ComputeClass's spec.priorityDefaults sets it instead.")
    return ("On GKE Autopilot, which admits no privileged pod: from 1.32.1-gke.1729000, a custom ComputeClass whose "
            f"spec.priorityDefaults is {{nodeSystemConfig: {{linuxNodeConfig: {{sysctls: {{vm.max_map_count: {value}}}}}}}}}, "
            "chosen by the pods' nodeSelector cloud.google.com/compute-class: NAME; before, Google's allow-listed "
            f"DaemonSet, which sets [{AUTOPILOT_MAX_MAP_COUNT}]{enough}.")


def eks(key, value, now, persist):
    """EKS: Bottlerocket's settings (user data TOML, or apiclient on a running node:
    bottlerocket-core-kit apiclient README), or a shell script part in an AL2023 launch
    template's user data, beside its NodeConfig (amazon-eks-ami nodeadm docs); a new launch
    template version replaces the nodes (EKS docs, launch templates)."""
    import json  # here: only these fixes need it, and guard's start pays for what it imports

    if key == THP_KEY:
        return []
    setting = json.dumps({"kernel": {"sysctl": {key: str(value)}}})
    return ["To fix this on Bottlerocket nodes, in the node group's user data:",
            "  [settings.kernel.sysctl]",
            f"  \"{key}\" = \"{value}\"",
            f"and now, from a node's control container: apiclient set --json '{setting}'",
            "on Amazon Linux 2023 nodes, in a shell script part (text/x-shellscript) beside the NodeConfig of "
            f"the launch template's user data: {persist} && {now} (a new template version replaces the nodes)"]


FARGATE = "On EKS Fargate it cannot be raised: Fargate runs no privileged pod and no DaemonSet."

# AKS's Linux OS configuration: its sysctls, in camelCase, and THP (AKS custom node configuration
# reference). It has no vm.overcommit_memory.
AKS_SYSCTLS = ("vm.max_map_count", "vm.swappiness", "vm.vfs_cache_pressure", "fs.file-max", "fs.aio-max-nr",
               "fs.nr_open", "fs.inotify.max_user_watches", "kernel.threads-max")


def _camel(key):
    words = key.replace("-", ".").replace("_", ".").split(".")
    return words[0] + "".join(word.capitalize() for word in words[1:])


def aks(key, value):
    """AKS: a linuxosconfig.json given when a node pool is added (AKS docs, "Customize the node
    configuration for AKS node pools"); the docs show no way to change an existing pool's."""
    import json  # here: only these fixes need it, and guard's start pays for what it imports

    if key == THP_KEY:
        setting = {"transparentHugePageEnabled": value}
    elif key in AKS_SYSCTLS:
        setting = {"sysctls": {_camel(key): value}}
    else:
        return []
    return [f"To fix this on AKS, add a node pool with it in its Linux OS configuration, a file "
            f"linuxosconfig.json holding {json.dumps(setting)}:",
            "  az aks nodepool add --resource-group RG --cluster-name CLUSTER --name POOL "
            "--linux-os-config ./linuxosconfig.json",
            "then move the workload to that pool: AKS sets it only when a pool is created."]


def aks_unsafe_sysctl(key):
    # AKS's kubelet configuration takes allowedUnsafeSysctls (net.*, kernel.shm*, ...), per node pool.
    return (f"On AKS, a node pool's kubelet allows it with {{\"allowedUnsafeSysctls\": [\"{key}\"]}} in a "
            "linuxkubeletconfig.json given to az aks nodepool add ... --kubelet-config ./linuxkubeletconfig.json.")


def openshift(key, value, program):
    """OpenShift: a Tuned profile for the Node Tuning Operator, in its namespace, that includes
    OpenShift's own so as to keep it (cluster-node-tuning-operator README, "Custom tuning
    specification"); the operator applies it and rolls it back when the profile changes."""
    import json  # here: only these fixes need it, and guard's start pays for what it imports

    if key == THP_KEY:
        return []
    name = f"guard-{program if program not in (None, 'none') else 'node'}"
    tuned = {"apiVersion": "tuned.openshift.io/v1", "kind": "Tuned",
             "metadata": {"name": name, "namespace": "openshift-cluster-node-tuning-operator"},
             "spec": {"profile": [{"name": name, "data": f"[main]\ninclude=openshift-node\n[sysctl]\n{key}={value}\n"}],
                      "recommend": [{"match": [{"label": "node-role.kubernetes.io/worker"}], "priority": 20,
                                     "profile": name}]}}
    return ["To fix this, have the Node Tuning Operator set it on the worker nodes, in a Tuned profile that keeps "
            "OpenShift's own (include=openshift-node):",
            f"  printf '%s' '{json.dumps(tuned)}' | oc apply -f -"]


# OpenShift admits a privileged pod only with the privileged SCC; guard's fix DaemonSet runs as
# the default service account of guard-system.
OPENSHIFT_DAEMONSET = "oc adm policy add-scc-to-user privileged -z default -n guard-system"


def local_clusters(now):
    # kind, k3d and minikube's docker driver run their nodes as containers of the Docker host
    # (kind docs, "Known issues"); minikube's VM drivers take minikube ssh (kubernetes/minikube#2367).
    return (f"On a local cluster whose nodes are containers (kind, k3d, minikube's docker driver), set it on the "
            f"Docker host or its VM as for a container: {now}; in a minikube VM: "
            f"{as_root_over_ssh('minikube ssh', now)}")


# --- where vm.max_map_count cannot be raised ---

# Elasticsearch and OpenSearch start without memory-mapping their indices when told not to use
# mmap, and the bootstrap check is then not enforced (Elasticsearch docs, "Maximum map count
# check"); they read them with niofs instead of hybridfs/mmapfs ("Index store"), and Elastic's
# docs strongly recommend raising vm.max_map_count for production instead ("Virtual memory").
NO_MMAP_CONFIG = {"elasticsearch": ("Elasticsearch", "elasticsearch.yml"),
                  "opensearch": ("OpenSearch", "opensearch.yml")}


def without_mmap(program):
    if program not in NO_MMAP_CONFIG:
        return None
    name, config = NO_MMAP_CONFIG[program]
    return (f"Where it cannot be raised, start {name} without memory-mapping: node.store.allow_mmap: false "
            f"in {config} (this check then no longer applies), at a cost: indices are read with niofs instead "
            "of hybridfs, so searches are slower; for production the docs advise raising it instead.")


def crio_limit(base, number):
    """CRI-O's limits for every container, when set, else its own (crio.conf(5), [crio.runtime]
    default_ulimits); OpenShift's nodes run CRI-O, and so does any node that writes
    /run/.containerenv under Kubernetes (cri-o/cri-o#5463)."""
    return f"default_ulimits = [\"{base}={number}:{number}\"] in [crio.runtime] of crio.conf"


# Bottlerocket's default limits for containers (settings.oci-defaults.resource-limits, its
# migrations), by limit; -1 is unlimited.
BOTTLEROCKET_LIMITS = {"nofile": "max-open-files", "nproc": "max-processes", "memlock": "max-locked-memory",
                       "as": "max-address-space", "fsize": "max-file-size", "core": "max-core-file-size",
                       "stack": "max-stack-size"}


def bottlerocket_limit(base, number):
    return ["On Bottlerocket nodes, in the node group's user data:",
            f"  [settings.oci-defaults.resource-limits.{BOTTLEROCKET_LIMITS[base]}]",
            f"  soft-limit = {number}",
            f"  hard-limit = {number}"]
