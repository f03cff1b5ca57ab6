"""Cassandra: its start-up checks (which warn) and its recommended limits."""

from guard.checks import Requirement
from guard.host import UNLIMITED
from guard.profiles.plan import Plan

# apache/cassandra StartupChecks.checkMaxMapCount and redhat/cassandra.conf limits.
CASSANDRA_MAX_MAP_COUNT = 1048575
CASSANDRA_FILES = 100000
CASSANDRA_PROCESSES = 32768


def cassandra_plan(invocation):
    return Plan([
        Requirement("vm.max_map_count", ">=", CASSANDRA_MAX_MAP_COUNT, False,
                    source="Cassandra StartupChecks.checkMaxMapCount (warns)"),
        Requirement("nofile.hard", ">=", CASSANDRA_FILES, False, name="file-descriptors",
                    source="Cassandra redhat/cassandra.conf: nofile 100000"),
        Requirement("nproc", ">=", CASSANDRA_PROCESSES, False, name="processes",
                    source="Cassandra recommended settings: nproc 32768"),
        Requirement("memlock", ">=", UNLIMITED, False, name="memory-lock",
                    source="Cassandra redhat/cassandra.conf: memlock unlimited"),
        Requirement("as", ">=", UNLIMITED, False, name="max-size-virtual-memory",
                    source="Cassandra recommended settings: as unlimited"),
    ], [])
