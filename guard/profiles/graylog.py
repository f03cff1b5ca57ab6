"""Graylog Data Node: its preflight check, before it starts the OpenSearch it manages."""

from guard.checks import Requirement
from guard.profiles.plan import Plan

# Graylog2/graylog2-server data-node .../bootstrap/preflight/OpenSearchPreconditionsCheck.java:
# MAX_MAP_COUNT_MIN, OpenSearch's own minimum. Below it the data node refuses to start
# (PreflightCheckException): "/proc/sys/vm/max_map_count value should be at least 262144 but is
# 65530 (set via "vm.max_map_count" sysctl)". A value it cannot read (0) is only logged.
DATANODE_MAX_MAP_COUNT = 262144


def datanode_plan(invocation):
    return Plan([
        Requirement("vm.max_map_count", ">=", DATANODE_MAX_MAP_COUNT, True,
                    source="Graylog Data Node OpenSearchPreconditionsCheck (262144)",
                    hint="The data node refuses to start: \"/proc/sys/vm/max_map_count value should be at least "
                         "262144 but is N\"."),
    ], ["the OpenSearch the data node starts then runs its own bootstrap checks: see the opensearch profile"])
