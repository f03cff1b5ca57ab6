"""Reading host facts: sysctls, resource limits, transparent huge pages, where guard runs.

Reading is kept apart from judging: every reader returns the observed value or raises
``Unreadable`` with the reason, and the checks decide what the value means. "/proc" and "/sys"
live here only, overridable with GUARD_PROCFS and GUARD_SYSFS so tests can feed crafted trees.
"""

import os
import resource

UNLIMITED = float("inf")


class Unreadable(Exception):
    """A host value that cannot be read; the check that wanted it is skipped with this reason."""


def proc_root():
    return os.environ.get("GUARD_PROCFS") or "/proc"


def sys_root():
    return os.environ.get("GUARD_SYSFS") or "/sys"


def read_text(path):
    """The stripped text of a host file, or Unreadable naming the file and the reason."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError as e:
        raise Unreadable(f"cannot read {path}: {e.strerror or e}") from None


def sysctl_path(name):
    """``vm.max_map_count`` -> ``<proc root>/sys/vm/max_map_count`` (sysctl(8) naming)."""
    return os.path.join(proc_root(), "sys", *name.split("."))


def read_sysctl(name):
    """The value of a sysctl as text (``65530``, ``4096 16384 4194304`` for vectors)."""
    return read_text(sysctl_path(name))


THP_ENABLED = ("kernel", "mm", "transparent_hugepage", "enabled")


def read_thp():
    """The selected transparent huge page mode: the bracketed word of ``always [madvise] never``.

    Source: Documentation/admin-guide/mm/transhuge.rst. Kernels built without THP have no file.
    """
    path = os.path.join(sys_root(), *THP_ENABLED)
    text = read_text(path)
    start, end = text.find("["), text.find("]")
    if start < 0 or end < start:
        raise Unreadable(f"unexpected content in {path}: [{text}]")
    return text[start + 1 : end]


# The resource limits guard knows, by the names ulimit(1), docker --ulimit and limits.conf use.
RLIMITS = {
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "memlock": "RLIMIT_MEMLOCK",
    "as": "RLIMIT_AS",
    "fsize": "RLIMIT_FSIZE",
    "core": "RLIMIT_CORE",
    "stack": "RLIMIT_STACK",
}


def _limit_value(raw):
    return UNLIMITED if raw == resource.RLIM_INFINITY else raw


def read_rlimit(name):
    """(soft, hard) of this process's limit; ``UNLIMITED`` for RLIM_INFINITY.

    guard execs the program in the same process, so the program inherits exactly these.
    """
    constant = getattr(resource, RLIMITS[name], None)
    if constant is None:
        raise Unreadable(f"{RLIMITS[name]} is not available on this platform")
    try:
        soft, hard = resource.getrlimit(constant)
    except (OSError, ValueError) as e:
        raise Unreadable(f"getrlimit({RLIMITS[name]}) failed: {e}") from None
    return _limit_value(soft), _limit_value(hard)
