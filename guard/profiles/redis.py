"""Redis: the checks redis-server makes at start."""

from guard import config
from guard.checks import THP_KEY, Requirement, decimal_number
from guard.profiles.plan import Plan

# redis/redis src/server.c and src/syscheck.c (7.0): what redis-server checks at start.
REDIS_DEFAULTS = {"maxclients": "10000", "tcp-backlog": "511", "disable-thp": "yes"}
REDIS_RESERVED_FDS = 32  # server.h CONFIG_MIN_RESERVED_FDS, added to maxclients
FILES_TO_START = REDIS_RESERVED_FDS + 1  # the fewest with which Valkey and KeyDB start (files_to_start)
# config.c: maxclients is an unsigned int from 1, tcp-backlog an int from 0; others are refused.
REDIS_RANGES = {"maxclients": (1, (1 << 32) - 1), "tcp-backlog": (0, (1 << 31) - 1)}


def redis_command_line(args):
    """(config file or None, whether settings come from stdin, option directives) from
    redis-server's arguments as server.c main() reads them: a first argument not starting with
    '-' is the config file; '-' as the first or last argument reads more from standard input;
    each --name starts a directive and the words after it are its arguments."""
    config_file, start = (args[0], 1) if args and not args[0].startswith("-") else (None, 0)
    directives, from_stdin, handled_last = [], False, True
    for i in range(start, len(args)):
        arg = args[i]
        if arg == "-" and (i == 0 or i == len(args) - 1):
            from_stdin = True
        elif handled_last and arg.startswith("--"):
            words = config.split_redis_args(arg[2:])
            directives.append(words if words is not None else [arg])
            handled_last = len(words or ()) != 1
            following = args[i + 1] if i + 1 < len(args) else None
            # --save followed by another option (or by nothing) means save "" (server.c, 7.0.1)
            if not handled_last and arg.lower() == "--save" and (following is None or following.startswith("--")):
                directives[-1].append("")
                handled_last = True
        elif directives:
            directives[-1].append(arg)
            handled_last = True
    return config_file, from_stdin, directives


def redis_settings(invocation, program="redis-server"):
    """(settings, notes): the config file with its includes, then the command line, the last
    value of each directive winning, as Redis (and its forks, by their program's name) applies them."""
    notes = []
    config_file, from_stdin, options = redis_command_line(list(invocation.argv[1:]))
    directives = config.redis_directives(config_file, options, notes)
    if from_stdin:
        notes.append(f"{program} reads more settings from its standard input ('-'): guard leaves "
                     "them to it (reading would take them away); judged without them")
    settings = dict(REDIS_DEFAULTS)
    for name, values in directives:
        if values:
            settings[name] = values[0]
    return settings, notes


def redis_int(settings, name, notes, program="redis-server"):
    """A number setting as config.c reads it; a value the program refuses is a note, and the default."""
    text = settings[name]
    low, high = REDIS_RANGES[name]
    # util.c string2ll, which config.c parses numbers with: no sign but '-', no leading zero
    number = decimal_number(text, low, high)
    if number is not None and (text == "0" or text.lstrip("-")[:1] != "0"):
        return number
    notes.append(f"{name} [{text}] must be a whole number from [{low}] to [{high}]: {program} "
                 f"refuses it; judged on the default [{REDIS_DEFAULTS[name]}]")
    return int(REDIS_DEFAULTS[name])


def redis_plan(invocation):
    settings, notes = redis_settings(invocation)
    maxclients, backlog = redis_int(settings, "maxclients", notes), redis_int(settings, "tcp-backlog", notes)
    reqs = [
        # Redis only warns (syscheck.c checkOvercommit): without overcommit a BGSAVE or replica
        # sync fork *may* fail under low memory, and with stop-writes-on-bgsave-error (on by
        # default) Redis then refuses writes. Not certain: in the default heuristic mode the kernel
        # refuses only a commit larger than RAM + swap (mm/util.c __vm_enough_memory), so a fork
        # usually succeeds. A warning, as Redis gives; `--require vm.overcommit_memory=1` refuses.
        Requirement("vm.overcommit_memory", "=", 1, False, name="overcommit",
                    source="Redis syscheck.c checkOvercommit",
                    soft_hint="Redis only warns; to refuse to start without it, add --require vm.overcommit_memory=1."),
    ]
    reqs += backlog_and_files("Redis", "server.c", backlog, maxclients + REDIS_RESERVED_FDS,
                              f"maxclients [{maxclients}] + 32")
    return Plan(reqs + thp_unless_disabled(settings, "Redis", "syscheck.c checkTHPEnabled", notes), notes)


def backlog_and_files(program, source_file, backlog, files, why):
    """The two limits Redis and its forks warn about and cope with, each sourced to program's
    source_file. Short of somaxconn it listens with the smaller backlog (checkTcpBacklogSettings);
    it raises its own soft open files limit up to the hard one, and when even that is short it
    lowers maxclients and warns (adjustOpenFilesLimit): the hard limit is what counts."""
    return [Requirement("net.core.somaxconn", ">=", backlog, False,
                        source=f"{program} {source_file} checkTcpBacklogSettings: tcp-backlog [{backlog}]"),
            Requirement("nofile.hard", ">=", files, False, name="open-files",
                        source=f"{program} {source_file} adjustOpenFilesLimit: {why}")]


def files_to_start(program, source_file):
    """The one limit a fork refuses to start below (Valkey's server.c, KeyDB's server.cpp
    adjustOpenFilesLimit): when the most descriptors it can give itself leave none for clients
    (CONFIG_MIN_RESERVED_FDS, 32, or fewer), it exits. It tries maxclients + 32, then 16 fewer at
    a time down to its soft limit, so a hard limit of 32 or less is certain to stop it; between
    33 and 47 that depends on the soft limit and the steps, and only the warning says so."""
    return Requirement("nofile.hard", ">=", FILES_TO_START, True, name="open-files-to-start",
                       source=f"{program} {source_file} adjustOpenFilesLimit: exits with 32 or fewer",
                       hint=f"Below this {program} exits: \"Your current 'ulimit -n' of N is not enough for the "
                            "server to start.\"")


def thp_unless_disabled(settings, program, check, notes):
    """THP set to always is warned about only when the server cannot turn it off for itself,
    which it does with disable-thp yes (prctl PR_SET_THP_DISABLE, Linux 3.5): Redis and its forks."""
    if settings.get("disable-thp", "yes").lower() != "no":
        notes.append(f"disable-thp yes: {program} turns THP off for itself, the THP check is dropped")
        return []
    return [Requirement(THP_KEY, "!=", "always", False, name="transparent-hugepage",
                        source=f"{program} {check} (disable-thp no)",
                        hint=f"Or let {program} turn THP off for itself: disable-thp yes (the default).")]
