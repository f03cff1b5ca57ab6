"""Valkey: the checks valkey-server makes at start (Redis 7.2's, forked, in its own words)."""

import os

from guard import host
from guard.checks import Requirement
from guard.profiles.plan import Plan, on_path
from guard.profiles.redis import REDIS_RESERVED_FDS, redis_int, redis_settings, thp_unless_disabled

# valkey-io/valkey 8.0 and 8.1: the defaults and checks of Redis 7.2 (src/config.c maxclients
# 10000, tcp-backlog 511, disable-thp yes; src/syscheck.c, src/server.c), with Valkey's name in
# the messages. Valkey 8.1.1 (Debian 13) prints them as the oracle test reads them.
VALKEY = "valkey-server"
# server.c adjustOpenFilesLimit: when the most descriptors Valkey can give itself leave none for
# clients (CONFIG_MIN_RESERVED_FDS, 32, or fewer), it exits. It tries maxclients + 32, then 16
# fewer at a time down to its soft limit, so a hard limit of 32 or less is certain to stop it;
# between 33 and 47 that depends on the soft limit and the steps, and only the warning says so.
VALKEY_FILES_TO_START = REDIS_RESERVED_FDS + 1
# server.c main: on arm64 Valkey tests the kernel for the copy-on-write bug Linux fixed in
# ff1712f953e2 ("arm64: pgtable: Ensure dirty bit is preserved across pte_wrprotect()") and exits
# unless told to go on.
ARM64_COW_BUG = "ARM64-COW-BUG"
# The valkey/valkey image's docker-entrypoint.sh (valkey-io/valkey-container) ends in
# exec "$@" $VALKEY_EXTRA_FLAGS: the variable unquoted, so sh splits its value at spaces, tabs and
# newlines and appends the words to the command it starts, after any launcher in between.
IMAGE_ENTRYPOINT = "docker-entrypoint.sh"
EXTRA_FLAGS = "VALKEY_EXTRA_FLAGS"
SH_FIELD_SEPARATORS = " \t\n"  # sh's IFS, which dash and bash set at start, whatever the environment says
SH_PATTERN_CHARACTERS = "*?["


def image_extra_flags(invocation):
    """(the words the image's entrypoint appends to valkey-server's arguments, notes). The words
    are not shown: VALKEY_EXTRA_FLAGS is where the image's users put --requirepass."""
    for word, environ in invocation.launchers:
        if os.path.basename(word) != IMAGE_ENTRYPOINT or EXTRA_FLAGS not in environ:
            continue
        path = word if "/" in word else on_path(word, environ)
        unknown = f"{EXTRA_FLAGS} is set, and whether {word} appends it to valkey-server's arguments is unknown"
        if path is None:
            return [], [f"{unknown}: it is not found in PATH; judged without it"]
        try:
            text = host.read_bytes(path)
        except host.Unreadable as e:
            return [], [f"{unknown}: {e}; judged without it"]
        if EXTRA_FLAGS.encode() not in text:
            return [], []
        value = environ[EXTRA_FLAGS]
        for separator in SH_FIELD_SEPARATORS[1:]:
            value = value.replace(separator, " ")
        words = [w for w in value.split(" ") if w]
        if not words:  # set, but empty or blank: sh appends nothing
            return [], []
        taken = f"its {len(words)} words" if len(words) != 1 else "its word"
        notes = [f"{EXTRA_FLAGS}: {path} appends {taken} to valkey-server's arguments; judged with "
                 + ("them" if len(words) != 1 else "it")]
        if any(c in w for w in words for c in SH_PATTERN_CHARACTERS):
            notes.append(f"{EXTRA_FLAGS}: a word with * ? or [ is judged as written; sh replaces it with "
                         "the names of the files it matches, if any")
        return words, notes
    return [], []


def valkey_plan(invocation):
    extra, entrypoint_notes = image_extra_flags(invocation)
    settings, notes = redis_settings(invocation._replace(argv=invocation.argv + tuple(extra)), VALKEY)
    notes = entrypoint_notes + notes
    maxclients = redis_int(settings, "maxclients", notes, VALKEY)
    backlog = redis_int(settings, "tcp-backlog", notes, VALKEY)
    reqs = [
        # syscheck.c checkOvercommit warns unless it is 1, as Redis does ("WARNING Memory overcommit
        # must be enabled!"): a fork for a save may fail under low memory, not certainly.
        Requirement("vm.overcommit_memory", "=", 1, False, name="overcommit",
                    source="Valkey syscheck.c checkOvercommit",
                    soft_hint="Valkey only warns; to refuse to start without it, add --require vm.overcommit_memory=1."),
        # server.c checkTcpBacklogSettings: Valkey warns and listens with the smaller backlog.
        Requirement("net.core.somaxconn", ">=", backlog, False,
                    source=f"Valkey server.c checkTcpBacklogSettings: tcp-backlog [{backlog}]"),
        # Valkey raises its soft limit up to the hard one, and lowers maxclients when even that is
        # short ("maxclients has been reduced to %d to compensate for low ulimit").
        Requirement("nofile.hard", ">=", maxclients + REDIS_RESERVED_FDS, False, name="open-files",
                    source=f"Valkey server.c adjustOpenFilesLimit: maxclients [{maxclients}] + 32"),
        Requirement("nofile.hard", ">=", VALKEY_FILES_TO_START, True, name="open-files-to-start",
                    source="Valkey server.c adjustOpenFilesLimit: exits with 32 or fewer",
                    hint="Below this Valkey exits: \"Your current 'ulimit -n' of N is not enough for the server "
                         "to start.\""),
    ]
    # server.c linuxMemoryWarnings, as Redis's.
    reqs += thp_unless_disabled(settings, "Valkey", "syscheck.c checkTHPEnabled", notes)
    if os.uname().machine in ("aarch64", "arm64"):
        ignored = ARM64_COW_BUG in settings.get("ignore-warnings", "").upper().split()
        notes.append(f"arm64: Valkey tests the kernel for the copy-on-write bug fixed in Linux commit ff1712f953e2 "
                     "and exits if it has it" + (f"; ignore-warnings {ARM64_COW_BUG} lets it run on" if ignored else
                                                 f", unless told ignore-warnings {ARM64_COW_BUG}") +
                     ": guard does not repeat the test")
    return Plan(reqs, notes)
