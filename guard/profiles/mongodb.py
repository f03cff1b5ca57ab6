"""MongoDB mongod: the start-up warnings it logs, the ulimit settings its docs advise, and the
kernels 8.0 and later refuse."""

import os
import re

from guard import host
from guard.checks import INT_MAX, KERNEL_RELEASE, THP_KEY, Requirement, decimal_number, kernel_version, running_kernel
from guard.host import UNLIMITED
from guard.profiles.plan import Plan, last_option

# mongodb/mongo src/mongo/db/startup_warnings_mongod.cpp and docs "UNIX ulimit Settings".
MONGODB_FILES = 64000  # soft rlimit warning threshold (log id 22184) and the docs' -n
MONGODB_PROCESSES = 64000  # docs: -u 64000
MONGODB_MAPS_PER_CONNECTION = 2  # vm.max_map_count warning: at least 2 x maxConns (log id 5123300)
MONGODB_CONNECTIONS_SHARE_OF_FILES = 0.8  # mongod caps maxConns at 80 % of its descriptor limit
MONGODB_LOCKED_PAGES = 16  # warning 22188: the SecureAllocator locks 16 pages
MONGODB_SWAPPINESS = 1  # warning 8386700: "We suggest setting swappiness to 0 or 1"

# From 8.0 mongod is built with tcmalloc-google on x86_64 and arm64 Linux, the legacy gperftools
# tcmalloc elsewhere and before (docs, "TCMalloc Performance Optimization"), and the THP advice
# follows the allocator: tcmalloc-google wants enabled always (warning 9068900, desiredValue
# always), gperftools wants it not always (22178).
TCMALLOC_GOOGLE_SINCE = (8, 0)
TCMALLOC_GOOGLE_MACHINES = ("x86_64", "aarch64", "arm64")

# src/mongo/db/startup_check_rseq.cpp validateRseqKernelCompat: while tcmalloc's per-CPU caches
# are on, mongod stops ("MongoDB cannot start: Linux kernel versions 6.19 and newer has a known
# incompatibility with this version of MongoDB. See https://jira.mongodb.org/browse/SERVER-121912
# for more information.", id 12257600, exit 1) on the kernel uname(2) names: in the check's first
# form (8.0.28, seen refusing 7.1.5 in docker-library/mongo#765) any release from 6.19, in its
# later form (SERVER-125742) 6.19.0 through 7.0.13 only, the kernels the release notes name.
# Releases before the check crash there instead (google/tcmalloc#292). An Ubuntu 7.0.0-N kernel
# is 7.0.0 to the check, whatever fix it carries. The caches are on when glibc leaves rseq to
# tcmalloc: GLIBC_TUNABLES=glibc.pthread.rseq=0, which the official images (docker-library/mongo
# ENV GLIBC_TUNABLES) and the packages' mongod.service set, or a glibc older than 2.35, which
# registers no rseq of its own; with glibc.pthread.rseq=1 they are off, at some cost in
# allocation speed, and the check passes.
RSEQ_FIRST_KERNEL, RSEQ_FIXED_KERNEL = (6, 19), "7.0.14"
RSEQ_TUNABLE = "glibc.pthread.rseq"


def _mongod_max_conns(argv, soft_files, notes):
    """The connections mongod takes: --maxConns N (the last one given) up to 80 % of the soft file
    limit, as mongod caps it (service_entry_point_impl.cpp getSupportedMax, log id 22941 "--maxConns
    too high"); the vm.max_map_count warning counts that capped number. A value that is not a
    positive whole number is refused by mongod itself, so guard notes it and uses the default."""
    value = last_option(argv, "--maxConns")
    default = int(min(soft_files, 1 << 20) * MONGODB_CONNECTIONS_SHARE_OF_FILES)
    if value is None:
        return default
    digits = value.lstrip("0") if re.fullmatch(r"[0-9]+", value) else None
    number = None if digits is None else int(digits or "0") if len(digits) <= 10 else INT_MAX + 1
    if number is not None and number > INT_MAX:
        notes.append(f"--maxConns [{value}] is more than mongod takes (an int, at most [{INT_MAX}]): mongod refuses "
                     f"it; judged on the default [{default}]")
        return default
    if number:
        supported = int(soft_files * MONGODB_CONNECTIONS_SHARE_OF_FILES) if soft_files != UNLIMITED else number
        if number > supported:
            notes.append(f"--maxConns [{value}] is more than mongod takes with a soft nofile of [{soft_files}]: it "
                         f"caps it at 80% of that (\"--maxConns too high\"); judged on [{supported}]")
        return min(number, supported)
    notes.append(f"--maxConns [{value}] is not a positive whole number: mongod refuses it; "
                 f"judged on the default [{default}]")
    return default


def mongod_version(invocation):
    """(major, minor) of the mongod to start, or None: MONGO_VERSION or MONGO_MAJOR of the official
    images (docker-library/mongo), else the folder of a release archive it runs from
    (mongodb-linux-x86_64-ubuntu2404-8.0.4/bin/mongod)."""
    env, command = invocation.environ, invocation.argv[0] if invocation.argv else ""
    matches = [re.match(r"([0-9]+)\.([0-9]+)", text) for text in (env.get("MONGO_VERSION", ""),
                                                                  env.get("MONGO_MAJOR", ""))]
    matches.append(re.search(r"mongodb-linux-[^/]*-([0-9]+)\.([0-9]+)\.[0-9]+[^/]*/bin/mongod$", command))
    match = next((m for m in matches if m), None)
    major, minor = (decimal_number(match.group(1)), decimal_number(match.group(2))) if match else (None, None)
    return None if major is None or minor is None else (major, minor)


def per_cpu_caches(environ):
    """Whether GLIBC_TUNABLES leaves rseq to tcmalloc, turning its per-CPU caches on: its last
    glibc.pthread.rseq item (name=value items joined by colons, read in turn) is 0."""
    values = [item.partition("=")[2] for item in environ.get("GLIBC_TUNABLES", "").split(":")
              if item.partition("=")[0] == RSEQ_TUNABLE]
    return bool(values) and decimal_number(values[-1], 0) == 0


def rseq_kernel(invocation, version, notes):
    """The kernel check of 8.0 and later, when tcmalloc's per-CPU caches will be on."""
    if (version is not None and version < TCMALLOC_GOOGLE_SINCE) or os.uname().machine not in TCMALLOC_GOOGLE_MACHINES:
        return []
    if not per_cpu_caches(invocation.environ):
        notes.append(f"GLIBC_TUNABLES has no {RSEQ_TUNABLE}=0: glibc 2.35 and later keep rseq and tcmalloc's per-CPU "
                     "caches stay off (mongod warns, 8718500), so 8.0's kernel refusal (SERVER-121912) does not "
                     "apply; with an older glibc (RHEL 8's 2.28) the caches are on and it does: --require "
                     "kernel.osrelease<=6.18 to refuse then")
        return []
    have = running_kernel()
    if version is None:
        notes.append(f"mongod version unknown (no MONGO_VERSION): judged as 8.0 or later, which {RSEQ_TUNABLE}=0 is "
                     "set for; 7.0 and older do not refuse these kernels (--skip kernel-rseq)")
    older = have is not None and have[:2] < RSEQ_FIRST_KERNEL
    workaround = ("Or turn tcmalloc's per-CPU caches off for mongod, at some cost in allocation speed: "
                  "GLIBC_TUNABLES=glibc.pthread.rseq=1 (docker run -e GLIBC_TUNABLES=glibc.pthread.rseq=1, or compose "
                  "environment:).")
    stops = ("mongod stops: \"MongoDB cannot start: Linux kernel versions 6.19 and newer has a known incompatibility "
             "with this version of MongoDB.\"")
    reqs = [Requirement(KERNEL_RELEASE, "<=" if older else ">=", "6.18" if older else RSEQ_FIXED_KERNEL, True,
                        name="kernel-rseq",
                        source="mongod startup_check_rseq.cpp validateRseqKernelCompat: 6.19.0 through 7.0.13 "
                               "(SERVER-121912)",
                        hint=f"{stops}\n{workaround}")]
    if have is not None and have >= kernel_version(RSEQ_FIXED_KERNEL):
        # Past 7.0.13 which form of the check a release carries decides: not known here, a warning.
        reqs.append(Requirement(KERNEL_RELEASE, "<=", "6.18", False, name="kernel-rseq-first-form",
                                source="mongod startup_check_rseq.cpp before SERVER-125742: 6.19 and newer "
                                       "(8.0.28, docker-library/mongo#765)",
                                hint=f"Releases whose check reads \"6.19 and newer\" refuse this kernel too: {stops} "
                                     f"Later ones start on 7.0.14 and newer.\n{workaround}"))
    return reqs


def thp_advice(version, notes):
    """THP as the allocator of this build wants it, when the version is known."""
    if version is None:
        notes.append("mongod version unknown: the THP advice depends on its allocator (8.0 wants always, 7.0 and "
                     "older never): not checked")
        return []
    if version >= TCMALLOC_GOOGLE_SINCE and os.uname().machine in TCMALLOC_GOOGLE_MACHINES:
        notes.append("tcmalloc-google also wants THP defrag defer+madvise and khugepaged/max_ptes_none 0: not checked")
        return [Requirement(THP_KEY, "=", "always", False, name="transparent-hugepage",
                            source="mongod startup warning 9068900 (tcmalloc-google, 8.0 and later): always")]
    return [Requirement(THP_KEY, "!=", "always", False, name="transparent-hugepage",
                        source="mongod startup warning 22178 (tcmalloc-gperftools): not always")]


def swap_on():
    """Whether swap is on (SwapTotal of /proc/meminfo), None when unknown."""
    try:
        match = re.search(r"^SwapTotal:\s+([0-9]+)", host.read_text(os.path.join(host.proc_root(), "meminfo")),
                          re.MULTILINE)
    except host.Unreadable:
        return None
    swap_kb = decimal_number(match.group(1)) if match else None
    return None if swap_kb is None else swap_kb > 0


def mongodb_plan(invocation):
    try:
        soft_files = host.read_rlimit("nofile")[0]
    except host.Unreadable:
        soft_files = MONGODB_FILES
    notes = []
    conns = _mongod_max_conns(list(invocation.argv), soft_files, notes)
    version = mongod_version(invocation)
    reqs = rseq_kernel(invocation, version, notes) + thp_advice(version, notes)
    if swap_on() is False:
        notes.append("no swap: mongod does not judge swappiness then (8.0's check of SwapTotal)")
    else:
        reqs.append(Requirement("vm.swappiness", "<=", MONGODB_SWAPPINESS, False,
                                source="mongod startup warning 8386700: swappiness 0 or 1"))
    return Plan(reqs + [
        Requirement("nofile", ">=", MONGODB_FILES, False, name="open-files",
                    source="mongod startup warning 22184; docs ulimit -n 64000"),
        Requirement("nproc", ">=", MONGODB_PROCESSES, False, name="processes",
                    source="MongoDB docs UNIX ulimit Settings: -u 64000"),
        Requirement("vm.max_map_count", ">=", MONGODB_MAPS_PER_CONNECTION * conns, False,
                    source=f"mongod startup warning 5123300: 2 x maxConns [{conns}]"),
        Requirement("vm.overcommit_memory", "!=", 2, False, name="overcommit",
                    source="mongod startup warning 22171 (overcommit_memory 2)"),
        Requirement("vm.zone_reclaim_mode", "=", 0, False,
                    source="mongod startup warning 22174: \"We suggest setting zone_reclaim_mode to 0\""),
        Requirement("memlock", ">=", MONGODB_LOCKED_PAGES * os.sysconf("SC_PAGE_SIZE"), False, name="memory-lock",
                    source="mongod startup warning 22188: 16 pages for the SecureAllocator"),
    ], notes)
