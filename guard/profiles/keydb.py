"""KeyDB: the checks keydb-server makes at start (Redis 6's, forked)."""

from guard.checks import Requirement
from guard.profiles.plan import Plan
from guard.profiles.redis import (REDIS_RESERVED_FDS, backlog_and_files, files_to_start, redis_int, redis_settings,
                                  thp_unless_disabled)

# Snapchat/KeyDB 6.3 src/server.cpp and src/config.cpp: the defaults of Redis 6 (maxclients
# 10000, tcp-backlog 511, disable-thp yes) and its checks, with two differences.
KEYDB = "keydb-server"
# linuxMemoryWarnings warns only when overcommit_memory is 0 ("WARNING overcommit_memory is set to
# 0! Background save may fail under low memory condition."): 2 is not warned about.
KEYDB_OVERCOMMIT_WARNED = 0
# adjustOpenFilesLimit adds the storage provider's descriptors to maxclients + 32: the flash
# provider (RocksDB, storage-provider flash PATH) asks for 256 (storage/rocksdbfactory.cpp
# filedsRequired), the others none.
KEYDB_FLASH_FILES = 256


def keydb_plan(invocation):
    settings, notes = redis_settings(invocation, KEYDB)
    maxclients = redis_int(settings, "maxclients", notes, KEYDB)
    backlog = redis_int(settings, "tcp-backlog", notes, KEYDB)
    files, why = maxclients + REDIS_RESERVED_FDS, f"maxclients [{maxclients}] + 32"
    if settings.get("storage-provider", "").lower() == "flash":
        files, why = files + KEYDB_FLASH_FILES, why + " + 256 for the flash storage provider"
    reqs = [
        Requirement("vm.overcommit_memory", "!=", KEYDB_OVERCOMMIT_WARNED, False, name="overcommit",
                    source="KeyDB server.cpp linuxMemoryWarnings (overcommit_memory 0)",
                    hint="KeyDB warns and advises 1: sysctl -w vm.overcommit_memory=1."),
    ]
    reqs += backlog_and_files("KeyDB", "server.cpp", backlog, files, why)
    reqs.append(files_to_start("KeyDB", "server.cpp"))  # it exits with too few, as Valkey does
    reqs += thp_unless_disabled(settings, "KeyDB", "server.cpp linuxMemoryWarnings", notes)
    return Plan(reqs, notes)
