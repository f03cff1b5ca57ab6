"""ClickHouse: the sanity warnings clickhouse-server gives at start.

ClickHouse refuses none of them: it lists them in system.warnings and shows them to every
client on connect ("Warnings: * Linux threads max count is too low. ..."), so they are soft.
"""

from guard.checks import THP_KEY, Requirement
from guard.profiles.plan import Plan

# ClickHouse programs/server/Server.cpp, sanityChecks() and the RLIMIT_NPROC block of main().
CLICKHOUSE_PID_MAX = 30000  # "Linux max PID is too low. Check /proc/sys/kernel/pid_max"
CLICKHOUSE_THREADS_MAX = 30000  # "Linux threads max count is too low. Check /proc/sys/kernel/threads-max"
# main() raises its soft RLIMIT_NPROC to the hard one, then warns below this: "Maximum number of
# threads is lower than 30000. There could be problems with handling a lot of simultaneous queries."
CLICKHOUSE_THREADS = 30000
# Recent sanityChecks() also warn when the system-wide open files are few: "Linux system-wide
# limit on the number of open files is too low. Check /proc/sys/fs/file-max".
CLICKHOUSE_FILE_MAX = 500000


def clickhouse_plan(invocation):
    return Plan([
        Requirement("vm.overcommit_memory", "!=", 2, False, name="overcommit",
                    source="ClickHouse Server.cpp sanityChecks: \"Linux memory overcommit is disabled\" (2)"),
        Requirement(THP_KEY, "!=", "always", False, name="transparent-hugepage",
                    source='ClickHouse Server.cpp sanityChecks: "Linux transparent hugepages are set to "always""'),
        Requirement("kernel.pid_max", ">=", CLICKHOUSE_PID_MAX, False,
                    source="ClickHouse Server.cpp sanityChecks: \"Linux max PID is too low\" (30000)"),
        Requirement("kernel.threads-max", ">=", CLICKHOUSE_THREADS_MAX, False,
                    source="ClickHouse Server.cpp sanityChecks: \"Linux threads max count is too low\" (30000)"),
        Requirement("nproc.hard", ">=", CLICKHOUSE_THREADS, False, name="max-threads",
                    source="ClickHouse Server.cpp main: \"Maximum number of threads is lower than 30000\""),
        Requirement("kernel.task_delayacct", "=", 1, False, name="delay-accounting",
                    source="ClickHouse Server.cpp sanityChecks: \"Delay accounting is not enabled, "
                           "OSIOWaitMicroseconds will not be gathered\"",
                    hint="ClickHouse only loses its OSIOWaitMicroseconds metric without it."),
        Requirement("fs.file-max", ">=", CLICKHOUSE_FILE_MAX, False,
                    source="ClickHouse Server.cpp sanityChecks (recent): \"Linux system-wide limit on the number "
                           "of open files is too low\" (500000)"),
    ], ["ClickHouse warns about a slow clock source and low memory or disk too: those are not checked"])
