"""Valkey: the checks valkey-server makes at start (Redis 7.2's, forked, in its own words)."""

import os

from guard.checks import Requirement
from guard.profiles.plan import Plan
from guard.profiles.redis import (REDIS_RESERVED_FDS, backlog_and_files, files_to_start, redis_int, redis_settings,
                                  thp_unless_disabled)

# valkey-io/valkey 8.0 and 8.1: the defaults and checks of Redis 7.2 (src/config.c maxclients
# 10000, tcp-backlog 511, disable-thp yes; src/syscheck.c, src/server.c), with Valkey's name in
# the messages. Valkey 8.1.1 (Debian 13) prints them as the oracle test reads them.
VALKEY = "valkey-server"
# server.c main: on arm64 Valkey tests the kernel for the copy-on-write bug Linux fixed in
# ff1712f953e2 ("arm64: pgtable: Ensure dirty bit is preserved across pte_wrprotect()") and exits
# unless told to go on.
ARM64_COW_BUG = "ARM64-COW-BUG"


def valkey_plan(invocation):
    settings, notes = redis_settings(invocation, VALKEY)
    maxclients = redis_int(settings, "maxclients", notes, VALKEY)
    backlog = redis_int(settings, "tcp-backlog", notes, VALKEY)
    reqs = [
        # syscheck.c checkOvercommit warns unless it is 1, as Redis does ("WARNING Memory overcommit
        # must be enabled!"): a fork for a save may fail under low memory, not certainly.
        Requirement("vm.overcommit_memory", "=", 1, False, name="overcommit",
                    source="Valkey syscheck.c checkOvercommit",
                    soft_hint="Valkey only warns; to refuse to start without it, add --require vm.overcommit_memory=1."),
    ]
    reqs += backlog_and_files("Valkey", "server.c", backlog, maxclients + REDIS_RESERVED_FDS,
                              f"maxclients [{maxclients}] + 32")
    reqs.append(files_to_start("Valkey", "server.c"))
    # server.c linuxMemoryWarnings, as Redis's.
    reqs += thp_unless_disabled(settings, "Valkey", "syscheck.c checkTHPEnabled", notes)
    if os.uname().machine in ("aarch64", "arm64"):
        ignored = ARM64_COW_BUG in settings.get("ignore-warnings", "").upper().split()
        notes.append("arm64: Valkey tests the kernel for the copy-on-write bug fixed in Linux commit ff1712f953e2 "
                     "and exits if it has it" + (f"; ignore-warnings {ARM64_COW_BUG} lets it run on" if ignored else
                                                 f", unless told ignore-warnings {ARM64_COW_BUG}") +
                     ": guard does not repeat the test")
    return Plan(reqs, notes)
