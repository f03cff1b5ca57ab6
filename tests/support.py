"""Running the installed guard as a user would, and crafting the host it reads."""

import contextlib
import os
import resource
import shutil
import subprocess
import sys


def guard_executable():
    """The console script installed beside this interpreter (the package as users get it)."""
    beside = os.path.join(os.path.dirname(sys.executable), "guard")
    return beside if os.path.exists(beside) else shutil.which("guard")


@contextlib.contextmanager
def small_tmpfs(folder, size, *options):
    """A tmpfs of the test's own (size: "1m"), mounted over folder (made here) while the body
    runs: a file system to fill, or to mount read-only. Takes root."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(folder)],
                   check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


RLIMIT_NAMES = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC,
                "memlock": resource.RLIMIT_MEMLOCK, "as": resource.RLIMIT_AS,
                "fsize": resource.RLIMIT_FSIZE}


def _set_limits(limits):
    def apply():
        for name, (soft, hard) in limits.items():
            resource.setrlimit(RLIMIT_NAMES[name], (soft, hard))
    return apply


def run_guard(*args, env=None, limits=None, timeout=30, cwd=None, **kwargs):
    """guard ARGS in a child with a clean GUARD_* environment plus ``env``, and real rlimits."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    base.update(env or {})
    return subprocess.run(
        [guard_executable(), *args], env=base, capture_output=True, timeout=timeout, cwd=cwd or "/",
        preexec_fn=_set_limits(limits) if limits else None, **kwargs,
    )


def text(completed):
    return completed.stderr.decode(errors="replace")


def crafted_proc(root, sysctls, osrelease="6.1.0-test"):
    """A proc tree with the given sysctls (dotted name -> value) and a kernel release string."""
    values = {"kernel.osrelease": osrelease, **sysctls}
    for name, value in values.items():
        if value is None:
            continue
        path = os.path.join(root, "sys", *name.split("."))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"{value}\n")
    return str(root)


def crafted_sys(root, thp="always [madvise] never", dmi=None):
    """A sys tree with THP's mode and the machine's DMI names (sys_vendor, product_name, ...)."""
    path = os.path.join(root, "kernel", "mm", "transparent_hugepage")
    os.makedirs(path, exist_ok=True)
    if thp is not None:
        with open(os.path.join(path, "enabled"), "w") as f:
            f.write(thp + "\n")
    crafted_files(os.path.join(root, "class", "dmi", "id"), dmi or {})
    return str(root)


def crafted_files(root, files):
    """Files under root, by path relative to it: text, or None for a folder."""
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(path if content is None else os.path.dirname(path), exist_ok=True)
        if content is not None:
            with open(path, "w") as f:
                f.write(content)
    return str(root)


# A name server on the loopback that never answers: a socket nobody reads, bound before the
# command starts (its own network namespace: port 53 of the host is left alone).
_SILENT_NAME_SERVER = ("python3 -c 'import os, socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                       "s.bind((\"127.0.0.1\", 53)); os.fork() and os._exit(0); time.sleep(15)' "
                       "</dev/null >/dev/null 2>&1")


def in_own_namespaces(command, binds=(), silent_name_server=False):
    """argv that runs command in network and mount namespaces of its own, its loopback up, each
    (source, target) of binds bind-mounted (a resolv.conf over /etc/resolv.conf: the host's files
    are untouched), with a name server on 127.0.0.1 that never answers if asked. Skips the test
    without root, unshare(1) or ip(8)."""
    import pytest

    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("needs root, unshare(1) and ip(8) for namespaces of its own")
    steps = ["ip link set lo up"] + [f'mount --bind "${n + 1}" "{target}"' for n, (_, target) in enumerate(binds)]
    if silent_name_server:
        steps.append(_SILENT_NAME_SERVER)
    script = " && ".join(steps) + f" && shift {len(binds)} && exec \"$@\""
    return ["unshare", "--net", "--mount", "sh", "-c", script, "sh", *(str(source) for source, _ in binds), *command]
