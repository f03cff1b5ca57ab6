"""MongoDB mongod: the start-up warnings it logs and the ulimit settings its docs advise."""

from guard import host
from guard.checks import Requirement
from guard.profiles.plan import Plan

# mongodb/mongo src/mongo/db/startup_warnings_mongod.cpp and docs "UNIX ulimit Settings".
MONGODB_FILES = 64000  # soft rlimit warning threshold (log id 22184) and the docs' -n
MONGODB_PROCESSES = 64000  # docs: -u 64000
MONGODB_MAPS_PER_CONNECTION = 2  # vm.max_map_count warning: at least 2 x maxConns (log id 5123300)
MONGODB_CONNECTIONS_SHARE_OF_FILES = 0.8  # mongod caps maxConns at 80 % of its descriptor limit


def _mongod_max_conns(argv, soft_files):
    for i, arg in enumerate(argv):
        value = arg.partition("=")[2] if arg.startswith("--maxConns=") else (
            argv[i + 1] if arg == "--maxConns" and i + 1 < len(argv) else None)
        if value and value.isdigit():
            return int(value)
    return int(soft_files * MONGODB_CONNECTIONS_SHARE_OF_FILES)


def mongodb_plan(invocation):
    try:
        soft_files = host.read_rlimit("nofile")[0]
    except host.Unreadable:
        soft_files = MONGODB_FILES
    conns = _mongod_max_conns(list(invocation.argv), min(soft_files, 1 << 20))
    return Plan([
        Requirement("nofile", ">=", MONGODB_FILES, False, name="open-files",
                    source="mongod startup warning 22184; docs ulimit -n 64000"),
        Requirement("nproc", ">=", MONGODB_PROCESSES, False, name="processes",
                    source="MongoDB docs UNIX ulimit Settings: -u 64000"),
        Requirement("vm.max_map_count", ">=", MONGODB_MAPS_PER_CONNECTION * conns, False,
                    source=f"mongod startup warning 5123300: 2 x maxConns [{conns}]"),
        Requirement("vm.overcommit_memory", "!=", 2, False, name="overcommit",
                    source="mongod startup warning 22171 (overcommit_memory 2)"),
    ], ["THP advice depends on the mongod build (8.0 wants always, 7.0 and older never): not checked"])
