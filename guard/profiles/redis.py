"""Redis (and Valkey): the checks redis-server makes at start."""

from guard import config
from guard.checks import THP_KEY, Requirement
from guard.profiles.plan import Plan

# redis/redis src/server.c and src/syscheck.c (7.0): what redis-server checks at start.
REDIS_DEFAULTS = {"maxclients": "10000", "tcp-backlog": "511", "disable-thp": "yes"}
REDIS_RESERVED_FDS = 32  # server.h CONFIG_MIN_RESERVED_FDS, added to maxclients


def redis_settings(invocation):
    """Directives from the config file argument, then --name value options, later ones winning."""
    args = list(invocation.argv[1:])
    directives = []
    if args and not args[0].startswith("-"):
        directives += config.read_redis_config(args.pop(0))
    current = None
    for arg in args:
        if arg.startswith("--"):
            current = (arg[2:].lower(), [])
            directives.append(current)
        elif current is not None:
            current[1].append(arg)
    settings = dict(REDIS_DEFAULTS)
    for name, values in directives:
        if values:
            settings[name] = values[0]
    return settings


def _redis_int(settings, name):
    try:
        return int(settings[name])
    except ValueError:
        return int(REDIS_DEFAULTS[name])


def redis_plan(invocation):
    settings = redis_settings(invocation)
    maxclients, backlog = _redis_int(settings, "maxclients"), _redis_int(settings, "tcp-backlog")
    reqs = [
        # Redis only warns (syscheck.c checkOvercommit), but with overcommit off a BGSAVE or a
        # replica sync fork fails under memory pressure, and with stop-writes-on-bgsave-error (on
        # by default) Redis then refuses writes: a failure waiting to happen, so guard refuses.
        Requirement("vm.overcommit_memory", "=", 1, True, name="overcommit",
                    source="Redis syscheck.c checkOvercommit"),
        # Redis warns and listens with the smaller backlog (server.c checkTcpBacklogSettings).
        Requirement("net.core.somaxconn", ">=", backlog, False,
                    source=f"Redis server.c checkTcpBacklogSettings: tcp-backlog [{backlog}]"),
        # Redis raises its own soft limit up to the hard one, and when even that is short it lowers
        # maxclients and warns (server.c adjustOpenFilesLimit): the hard limit is what counts.
        Requirement("nofile.hard", ">=", maxclients + REDIS_RESERVED_FDS, False, name="open-files",
                    source=f"Redis server.c adjustOpenFilesLimit: maxclients [{maxclients}] + 32"),
    ]
    notes = []
    if settings.get("disable-thp", "yes").lower() == "no":
        reqs.append(Requirement(THP_KEY, "!=", "always", False, name="transparent-hugepage",
                                source="Redis syscheck.c checkTHPEnabled (disable-thp no)",
                                hint="Or let Redis turn THP off for itself: disable-thp yes (the default)."))
    else:
        notes.append("disable-thp yes: Redis turns THP off for itself, the THP check is dropped")
    return Plan(reqs, notes)
