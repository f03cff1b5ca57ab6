"""MongoDB mongod: the start-up warnings it logs and the ulimit settings its docs advise."""

import re

from guard import host
from guard.checks import Requirement
from guard.profiles.plan import Plan

# mongodb/mongo src/mongo/db/startup_warnings_mongod.cpp and docs "UNIX ulimit Settings".
MONGODB_FILES = 64000  # soft rlimit warning threshold (log id 22184) and the docs' -n
MONGODB_PROCESSES = 64000  # docs: -u 64000
MONGODB_MAPS_PER_CONNECTION = 2  # vm.max_map_count warning: at least 2 x maxConns (log id 5123300)
MONGODB_CONNECTIONS_SHARE_OF_FILES = 0.8  # mongod caps maxConns at 80 % of its descriptor limit


def _mongod_max_conns(argv, soft_files, notes):
    """--maxConns N (the last one given), else 80 % of the soft file limit; a value that is not
    a positive whole number is refused by mongod itself, so guard notes it and uses the default."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith("--maxConns="):
            value = arg.partition("=")[2]
        elif arg == "--maxConns" and i + 1 < len(argv):
            value = argv[i + 1]
    default = int(soft_files * MONGODB_CONNECTIONS_SHARE_OF_FILES)
    if value is None:
        return default
    if re.fullmatch(r"[0-9]+", value) and int(value) > 0:
        return int(value)
    notes.append(f"--maxConns [{value}] is not a positive whole number: mongod refuses it; "
                 f"judged on the default [{default}]")
    return default


def mongodb_plan(invocation):
    try:
        soft_files = host.read_rlimit("nofile")[0]
    except host.Unreadable:
        soft_files = MONGODB_FILES
    notes = []
    conns = _mongod_max_conns(list(invocation.argv), min(soft_files, 1 << 20), notes)
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
