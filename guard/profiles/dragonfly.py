"""Dragonfly: the memory it needs per thread, and what makes it leave io_uring for epoll.

Dragonfly exits when its memory limit is less than 256 MiB per thread; everything else it
checks at start only makes it warn, or run on epoll instead of io_uring (src/server/dfly_main.cc).
"""

import math
import os
import re

from guard import host
from guard.checks import KERNEL_RELEASE, Requirement, decimal_number, running_kernel
from guard.host import UNLIMITED, Unreadable
from guard.profiles.plan import Plan, last_option

# dfly_main.cc RunEngine: "There are %d threads, so %s are required. Exiting..." when maxmemory is
# less than this per thread of its pool.
DFLY_BYTES_PER_THREAD = 256 << 20
# main(): without --maxmemory, 80 % of the memory it finds available (MemAvailable, capped by
# the cgroup's memory.max and memory.high: UpdateResourceLimitsIfInsideContainer).
DFLY_SHARE_OF_AVAILABLE = 0.8
# ShouldUseEpollAPI: "Kernel is older than 5.10, switching to epoll engine."
DFLY_URING_KERNEL = "5.10"
# Before Linux 5.12 io_uring charged its rings to RLIMIT_MEMLOCK, and Dragonfly says "io_uring does
# not have enough memory. That can happen when your max locked memory is too limited. If you run
# via docker, try adding '--ulimit memlock=-1'" and runs on epoll; from 5.12 the memory cgroup
# pays instead (the image's entrypoint.sh raises memlock "when running on kernels < 5.12").
DFLY_MEMLOCK_KERNEL = (5, 12)
# kernel.io_uring_disabled (Linux 6.6): "Check if io_uring is disabled via
# /proc/sys/kernel/io_uring_disabled. Switching to epoll."
URING_DISABLED_KERNEL = (6, 6)
# helio strings/human_readable.cc ParseHumanReadableBytes (the helio Dragonfly 1.40 builds with):
# a number as C's strtod reads it (spaces first, a sign, decimal with an exponent or hexadecimal,
# inf, nan), then nothing, B, or one of K M G T P E (any case) followed by an optional i and an
# optional B; anything else after it is refused, and so is a negative size (AbslParseFlag of
# MemoryBytesFlag) or one an int64 cannot hold.
STRTOD = re.compile(r"[ \t\n\v\f\r]*[+-]?(?:0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?"
                    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)",
                    re.IGNORECASE)
UNITS = "kmgtpe"
INT64_MAX = (1 << 63) - 1
UINT32_MAX = (1 << 32) - 1  # --proactor_threads is a uint32 flag


def parse_bytes(text):
    """Bytes from a size as Dragonfly reads one (1G, 512mb, 1.5GiB, 1e9, 1073741824), or None for
    one it refuses."""
    negative = text.startswith("-")
    body = text[1:] if negative else text
    match = STRTOD.match(body)
    if not match:
        return None
    rest, unit = body[match.end():], body[match.end():match.end() + 1].lower()
    if rest and unit not in UNITS + "b":
        return None
    suffix = rest[1:]
    suffix = suffix[1:] if suffix[:1] == "i" else suffix
    if suffix not in ("", "b", "B"):
        return None
    number = match.group().strip()
    digits = number.lstrip("+-").lower()
    if digits.startswith(("inf", "nan")):  # no int64 holds them: refused
        return None
    value = float.fromhex(number) if digits.startswith("0x") else float(number)
    scale = 1 << (10 * (UNITS.index(unit) + 1)) if unit and unit != "b" else 1
    if not 0 <= value * scale < INT64_MAX:
        return None
    size = int(value * scale + 0.5)
    return None if negative and size else size


def flags(invocation):
    """Dragonfly's flags as absl reads them: --name=value, --name value (and -name), the lines of
    a --flagfile, then DFLY_name variables for the flags the command line did not set
    (ParseFlagsFromEnv). Returns (get(name) -> value or None, notes, the flag files not read)."""
    args, notes, unread = [], [], []
    for arg in invocation.argv[1:]:
        arg = "-" + arg if arg.startswith("-") and not arg.startswith("--") else arg
        flagfile = arg[len("--flagfile="):] if arg.startswith("--flagfile=") else None
        if flagfile:
            try:
                args += host.read_text(flagfile).splitlines()
            except Unreadable as e:
                notes.append(f"--flagfile: {e}; judged without its flags")
                unread.append(flagfile)
        args.append(arg)

    def get(name):
        value = last_option([a.strip() for a in args], "--" + name)
        return value if value is not None else invocation.environ.get("DFLY_" + name)
    return get, notes, unread


def own_cgroups():
    """The lines of /proc/self/cgroup (guard's, which the program it execs keeps); none when unreadable."""
    try:
        return host.read_text(os.path.join(host.proc_root(), "self", "cgroup")).splitlines()
    except Unreadable:
        return []


def cgroup_files(name, lines):
    """The paths Dragonfly reads a cgroup file at (GetCGroupPath, UpdateResourceLimitsIfInsideContainer):
    under the process's own cgroup, from lines of /proc/self/cgroup (v2, or v1's memory and
    cpu,cpuacct hierarchies), and at the hierarchy's root, which is the container's own with a
    cgroup namespace."""
    root, paths = os.path.join(host.sys_root(), "fs", "cgroup"), []
    v1 = "memory" if name.startswith("memory.") else "cpu,cpuacct"
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3 or parts[1] not in ("", v1):
            continue
        base = root if parts[1] == "" else os.path.join(root, v1)
        paths += [os.path.join(base, parts[2].strip("/"), name), os.path.join(base, name)]
    return list(dict.fromkeys(paths))


def _cgroup_numbers(name, own):
    values = []
    for path in cgroup_files(name, own):
        try:
            text = host.read_text(path).split()[0]
        except (Unreadable, IndexError):
            continue
        values.append(decimal_number(text))  # "max" (no limit) and what is not a number: None
    return [v for v in values if v is not None]


def cpu_quota_threads(own):
    """The threads the cgroup's CPU limit gives (UpdateResourceLimitsIfInsideContainer): cpu.max's
    quota / period rounded up; v1's cfs_quota_us / cfs_period_us rounded down, where a quota below
    one CPU gives 0, which Dragonfly takes as no limit. None without a limit."""
    for path in cgroup_files("cpu.max", own):
        try:
            quota, period = host.read_text(path).split()[:2]
        except (Unreadable, ValueError):
            continue
        quota, period = decimal_number(quota, 1), decimal_number(period, 1)
        if quota and period:
            return math.ceil(quota / period)
    quota, period = _cgroup_numbers("cpu.cfs_quota_us", own), _cgroup_numbers("cpu.cfs_period_us", own)
    if quota and period and quota[0] > 0 and period[0] > 0:
        return quota[0] // period[0] or None
    return None


def threads(get, notes, own):
    """(threads, why): --proactor_threads, else the cgroup's CPU limit, else the CPUs this process
    may run on (helio ProactorPool: sched_getaffinity), which guard, exec'ing the program, shares."""
    given = get("proactor_threads")
    count = decimal_number(given.strip(), 1, UINT32_MAX) if given is not None and given.strip().isdigit() else None
    if count:
        return count, f"--proactor_threads [{given}]"
    if given is not None and given.strip() != "0":
        notes.append(f"--proactor_threads [{given}] is not a whole number from [0] to [{UINT32_MAX}]: Dragonfly "
                     "refuses it")
    quota = cpu_quota_threads(own)
    if quota:
        return quota, f"the cgroup's CPU limit of [{quota}]"
    cpus = len(os.sched_getaffinity(0))
    return cpus, f"the [{cpus}] CPUs it may run on"


def available_memory(own):
    """MemAvailable, capped by the cgroup's memory.max and memory.high (v1: limit_in_bytes)."""
    meminfo = host.read_text(os.path.join(host.proc_root(), "meminfo"))
    match = re.search(r"^MemAvailable:\s+([0-9]+) kB", meminfo, re.MULTILINE)
    if not match:
        raise Unreadable("no MemAvailable in /proc/meminfo")
    available_kb = decimal_number(match.group(1))
    if available_kb is None:
        raise Unreadable(f"MemAvailable [{match.group(1)[:20]}] in /proc/meminfo is not a number of 64 bits")
    limits = _cgroup_numbers("memory.max", own) + _cgroup_numbers("memory.high", own) + \
        _cgroup_numbers("memory.limit_in_bytes", own)
    return min([available_kb * 1024] + limits)


def memory_per_thread(get, notes, unread=()):
    """Dragonfly's maxmemory against 256 MiB per thread of its pool: a requirement judged on the
    value worked out here (the key is Dragonfly's flag, not a host knob). A flag file not read
    here may set either: then it is skipped."""
    own = own_cgroups()  # read once: the CPU limit and the memory limits are both under it
    count, why = threads(get, notes, own)
    needed = count * DFLY_BYTES_PER_THREAD
    given = get("maxmemory")
    size = None if given is None else parse_bytes(given)
    observed, source = None, f"Dragonfly dfly_main.cc RunEngine: 256 MiB x [{count}] threads ({why})"
    if unread:
        observed = Unreadable(f"--flagfile [{unread[0]}] not read here: the memory and threads it may set are unknown")
    elif given is not None and size is None:
        observed = Unreadable(f"--maxmemory [{given}] is not a size Dragonfly reads: it refuses it")
    elif given is not None and size > 0:
        observed = size
    else:
        try:
            observed = int(DFLY_SHARE_OF_AVAILABLE * available_memory(own))
        except (Unreadable, ValueError) as e:
            observed = Unreadable(f"no --maxmemory, and the memory Dragonfly would take 80 % of is unknown: {e}")
        else:
            notes.append(f"no --maxmemory: Dragonfly takes 80 % of the memory available, [{observed}] bytes")
    fits = (observed if isinstance(observed, int) else needed) // DFLY_BYTES_PER_THREAD
    fewer = f" or fewer threads (--proactor_threads={fits} fits this much)" if 0 < fits < count else ""
    return Requirement("dragonfly --maxmemory", ">=", needed, True, name="memory-per-thread", source=source,
                       observed=observed,
                       hint=f"Dragonfly exits: \"There are {count} threads, so ... are required. Exiting...\"\n"
                            f"To fix this, give it more memory (--maxmemory={needed} or more, or a larger memory "
                            f"limit){fewer}.")


def dragonfly_plan(invocation):
    get, notes, unread = flags(invocation)
    reqs = [memory_per_thread(get, notes, unread)]
    kernel = running_kernel()
    if (get("force_epoll") or "").lower() in ("", "false", "0", "no"):
        reqs.append(Requirement(KERNEL_RELEASE, ">=", DFLY_URING_KERNEL, False, name="io-uring-kernel",
                                source="Dragonfly dfly_main.cc ShouldUseEpollAPI: \"Kernel is older than 5.10, "
                                       "switching to epoll engine.\""))
        if kernel is None or kernel < DFLY_MEMLOCK_KERNEL:
            reqs.append(Requirement("memlock", ">=", UNLIMITED, False, name="memory-lock",
                                    source="Dragonfly dfly_main.cc ShouldUseEpollAPI: io_uring short of locked "
                                           "memory (kernels before 5.12)",
                                    hint="Dragonfly does not stop: it runs on epoll instead of io_uring."))
        if kernel is None or kernel >= URING_DISABLED_KERNEL:
            reqs.append(Requirement("kernel.io_uring_disabled", "=", 0, False,
                                    source="Dragonfly dfly_main.cc ShouldUseEpollAPI: \"Check if io_uring is "
                                           "disabled via /proc/sys/kernel/io_uring_disabled\""))
    else:
        notes.append("--force_epoll: Dragonfly runs on epoll, the io_uring checks are dropped")
    return Plan(reqs, notes)
