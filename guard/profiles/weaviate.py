"""Weaviate: the memory maps it leaves itself, checked when it loads a shard, not at start."""

from guard import host
from guard.checks import Requirement, decimal_number
from guard.host import Unreadable
from guard.profiles.plan import Plan

# weaviate/weaviate usecases/memwatch/monitor.go: before it loads a shard (or activates a tenant)
# Weaviate counts the lines of its /proc/PID/maps and refuses the shard when they, those reserved
# in the last minute and the new ones would pass 70 % of vm.max_map_count ("leave room for other
# processes on the system"), or MAX_MEMORY_MAPPINGS when that variable is a number. The node keeps
# running without the shard: "memory pressure: cannot init shard: not enough memory mappings"
# (docs.weaviate.io/errors/cluster-resources, core-mem001: "Raise vm.max_map_count on the host").
WEAVIATE_SHARE = 0.7
# How many maps its shards will need is not known before they load; guard asks for the floor
# Elasticsearch sets for stores that map their files (MaxMapCountCheck, 1 << 18), as a warning,
# with Weaviate's own numbers beside it.
WEAVIATE_MAP_COUNT = 1 << 18


def weaviate_plan(invocation):
    given = invocation.environ.get("MAX_MEMORY_MAPPINGS", "")
    # Go strconv.Atoi: an optional sign, ASCII digits, an int64; else Weaviate takes 70 % of vm.max_map_count.
    unsigned = given[1:] if given[:1] in ("+", "-") else given
    ceiling = decimal_number(given.lstrip("+"), -(1 << 63), (1 << 63) - 1) if unsigned.isdigit() else None
    if ceiling is not None:
        return Plan([
            Requirement("vm.max_map_count", ">=", ceiling, False,
                        source=f"Weaviate memwatch: MAX_MEMORY_MAPPINGS [{ceiling}]",
                        hint="Weaviate counts on as many maps as MAX_MEMORY_MAPPINGS; the kernel refuses more than "
                             "vm.max_map_count first."),
        ], [f"MAX_MEMORY_MAPPINGS [{ceiling}]: Weaviate refuses to load a shard past that many maps"])
    try:
        limit = int(host.read_sysctl("vm.max_map_count"))
        note = (f"Weaviate refuses to load a shard once its maps would pass 70 % of vm.max_map_count: "
                f"[{int(limit * WEAVIATE_SHARE)}] of [{limit}] here")
    except (Unreadable, ValueError) as e:
        note = f"Weaviate refuses to load a shard once its maps would pass 70 % of vm.max_map_count ({e})"
    return Plan([
        Requirement("vm.max_map_count", ">=", WEAVIATE_MAP_COUNT, False,
                    source="Weaviate memwatch: shards past 0.7 x vm.max_map_count refused; floor 1 << 18",
                    hint="Weaviate keeps running without the shards it refuses: \"not enough memory mappings\"."),
    ], [note])
