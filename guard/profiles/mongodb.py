"""MongoDB mongod: the start-up warnings it logs and the ulimit settings its docs advise."""

import re

from guard import host
from guard.checks import INT_MAX, Requirement
from guard.host import UNLIMITED
from guard.profiles.plan import Plan

# mongodb/mongo src/mongo/db/startup_warnings_mongod.cpp and docs "UNIX ulimit Settings".
MONGODB_FILES = 64000  # soft rlimit warning threshold (log id 22184) and the docs' -n
MONGODB_PROCESSES = 64000  # docs: -u 64000
MONGODB_MAPS_PER_CONNECTION = 2  # vm.max_map_count warning: at least 2 x maxConns (log id 5123300)
MONGODB_CONNECTIONS_SHARE_OF_FILES = 0.8  # mongod caps maxConns at 80 % of its descriptor limit


def _mongod_max_conns(argv, soft_files, notes):
    """The connections mongod takes: --maxConns N (the last one given) up to 80 % of the soft file
    limit, as mongod caps it (service_entry_point_impl.cpp getSupportedMax, log id 22941 "--maxConns
    too high"); the vm.max_map_count warning counts that capped number. A value that is not a
    positive whole number is refused by mongod itself, so guard notes it and uses the default."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith("--maxConns="):
            value = arg.partition("=")[2]
        elif arg == "--maxConns" and i + 1 < len(argv):
            value = argv[i + 1]
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


def mongodb_plan(invocation):
    try:
        soft_files = host.read_rlimit("nofile")[0]
    except host.Unreadable:
        soft_files = MONGODB_FILES
    notes = []
    conns = _mongod_max_conns(list(invocation.argv), soft_files, notes)
    return Plan([
        Requirement("nofile", ">=", MONGODB_FILES, False, name="open-files",
                    source="mongod startup warning 22184; docs ulimit -n 64000"),
        Requirement("nproc", ">=", MONGODB_PROCESSES, False, name="processes",
                    source="MongoDB docs UNIX ulimit Settings: -u 64000"),
        Requirement("vm.max_map_count", ">=", MONGODB_MAPS_PER_CONNECTION * conns, False,
                    source=f"mongod startup warning 5123300: 2 x maxConns [{conns}]"),
        Requirement("vm.overcommit_memory", "!=", 2, False, name="overcommit",
                    source="mongod startup warning 22171 (overcommit_memory 2)"),
    ], notes + ["THP advice depends on the mongod build (8.0 wants always, 7.0 and older never): not checked"])
