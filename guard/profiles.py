"""What each program needs from the host, as plain lists of requirements.

Each profile mirrors its upstream's own rules: the threshold, whether the program refuses to
start or only warns, and the configuration that changes either. The source sits next to each
threshold. A requirement is hard (guard refuses to start the program in enforce mode) when the
program itself refuses or is certain to fail; soft (a warning) when the program copes.
"""

import collections
import math
import os
import re

from guard import config, host
from guard.checks import THP_KEY, Requirement
from guard.host import UNLIMITED


class Invocation(collections.namedtuple("Invocation", "argv environ")):
    """The command guard is about to start, and its environment: where settings come from."""

    __slots__ = ()

    def __new__(cls, argv=(), environ=None):
        return super().__new__(cls, tuple(argv), dict(environ or {}))


# requirements, and notes: how the configuration shaped them, shown in the report.
Plan = collections.namedtuple("Plan", "requirements notes")


class Profile(collections.namedtuple("Profile", "name summary commands build")):
    """commands: basenames of the commands that select this profile; build: Invocation -> Plan."""

    __slots__ = ()

    def plan(self, invocation):
        return self.build(invocation)


# --- Elasticsearch and OpenSearch -------------------------------------------------------------

# Elasticsearch server/src/main/java/org/elasticsearch/bootstrap/BootstrapChecks.java
ES_MAX_MAP_COUNT = 1 << 18  # MaxMapCountCheck: 262144
ES_FILE_DESCRIPTORS = (1 << 16) - 1  # FileDescriptorCheck: 65535
ES_THREADS = 1 << 12  # MaxNumberOfThreadsCheck: 4096

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "_local_", "_local:ipv4_", "_local:ipv6_"}


# setting_env_prefix: ES 8's ES_SETTING_DISCOVERY_TYPE style; "" when the image has none.
SearchFlavour = collections.namedtuple(
    "SearchFlavour", "name conf_env conf_dir config_file java_opts_env enforce_property setting_env_prefix")


ELASTICSEARCH = SearchFlavour("elasticsearch", "ES_PATH_CONF", "/usr/share/elasticsearch/config",
                              "elasticsearch.yml", "ES_JAVA_OPTS", "es.enforce.bootstrap.checks", "ES_SETTING_")
OPENSEARCH = SearchFlavour("opensearch", "OPENSEARCH_PATH_CONF", "/usr/share/opensearch/config",
                           "opensearch.yml", "OPENSEARCH_JAVA_OPTS", "opensearch.enforce.bootstrap.checks", "")


def _setting_from_env_name(name, prefix):
    """ES_SETTING_DISCOVERY_TYPE -> discovery.type; a double underscore stands for one underscore."""
    body = name[len(prefix):].lower()
    return body.replace("__", "\0").replace("_", ".").replace("\0", "_")


def search_settings(flavour, invocation):
    """Settings in the precedence the image applies them: file < environment < -E arguments."""
    env = invocation.environ
    conf_dir = env.get(flavour.conf_env) or flavour.conf_dir
    settings = config.read_yaml_settings(os.path.join(conf_dir, flavour.config_file))
    for name, value in env.items():
        # The official images turn variables named like settings (lowercase, with a dot) into -E.
        if re.fullmatch(r"[-a-z0-9_]+(\.[-a-z0-9_]+)+", name):
            settings[name] = value
        elif flavour.setting_env_prefix and name.startswith(flavour.setting_env_prefix):
            settings[_setting_from_env_name(name, flavour.setting_env_prefix)] = value
    args = list(invocation.argv[1:])
    for i, arg in enumerate(args):
        pair = args[i + 1] if arg == "-E" and i + 1 < len(args) else arg[2:] if arg.startswith("-E") else ""
        key, sep, value = pair.partition("=")
        if sep:
            settings[key] = value
    return settings


def _enforced(flavour, settings, environ):
    """Production mode decides whether failures refuse or warn (BootstrapChecks.enforceLimits)."""
    java_opts = environ.get(flavour.java_opts_env, "")
    if re.search(rf"-D{re.escape(flavour.enforce_property)}=true\b", java_opts):
        return True, f"-D{flavour.enforce_property}=true: checks are enforced"
    if settings.get("discovery.type") == "single-node":
        return False, "discovery.type=single-node: failures are warnings, as in development mode"
    bind = settings.get("transport.host") or settings.get("network.host")
    hosts = [h.strip().strip("'\"") for h in bind.strip().strip("[]").split(",")] if bind else []
    if hosts and all(h in LOOPBACK_HOSTS for h in hosts):
        return False, f"bound to loopback only (network.host={bind}): failures are warnings, as in development mode"
    if bind:
        return True, f"production mode (network.host={bind}, beyond loopback): checks are enforced"
    # Elasticsearch alone binds loopback; its official image sets network.host 0.0.0.0 in its
    # elasticsearch.yml. Without the setting, guard takes the image's side: the stricter one.
    return True, "production mode (bound beyond loopback, as the official image is): checks are enforced"


def search_plan(flavour, invocation):
    settings = search_settings(flavour, invocation)
    hard, mode_note = _enforced(flavour, settings, invocation.environ)
    source = "BootstrapChecks."
    reqs = []
    if settings.get("node.store.allow_mmap", "true").lower() != "false":
        reqs.append(Requirement("vm.max_map_count", ">=", ES_MAX_MAP_COUNT, hard,
                                source=source + "MaxMapCountCheck (1 << 18)"))
    reqs += [
        # The JVM raises its soft descriptor limit to the hard one at start (HotSpot -XX:+MaxFDLimit,
        # on by default), so the hard limit is what Elasticsearch sees.
        Requirement("nofile.hard", ">=", ES_FILE_DESCRIPTORS, hard, name="file-descriptors",
                    source=source + "FileDescriptorCheck ((1 << 16) - 1)"),
        Requirement("nproc", ">=", ES_THREADS, hard, name="max-threads",
                    source=source + "MaxNumberOfThreadsCheck (1 << 12)"),
        Requirement("as", ">=", UNLIMITED, hard, name="max-size-virtual-memory",
                    source=source + "MaxSizeVirtualMemoryCheck"),
        Requirement("fsize", ">=", UNLIMITED, hard, name="max-file-size",
                    source=source + "MaxFileSizeCheck"),
    ]
    if settings.get("bootstrap.memory_lock", "false").lower() == "true":
        reqs.append(Requirement("memlock", ">=", UNLIMITED, hard, name="memory-lock",
                                source=source + "MlockallCheck (bootstrap.memory_lock=true)"))
    notes = [mode_note]
    if not any(r.key == "vm.max_map_count" for r in reqs):
        notes.append("node.store.allow_mmap=false: the map count check is dropped")
    return Plan(reqs, notes)


# --- Kafka ------------------------------------------------------------------------------------

# apache/kafka docs/ops.html, "File descriptors and mmap": at least 100000 descriptors as a
# starting point; each log segment maps its .index and .timeindex, so 2 map areas per segment.
KAFKA_FILE_DESCRIPTORS = 100000
KAFKA_MAPS_PER_SEGMENT = 2
# Without segments to count guard asks for the figure Elasticsearch requires, a common floor for
# JVM services that mmap their data; a warning only, since Kafka starts and fails later.
KAFKA_DEFAULT_MAP_COUNT = 1 << 18
# The broker's JVM maps a few thousand areas of its own (heap, code cache, libraries, thread
# stacks), and segments keep coming: ask for half as much again as what is on disk needs now.
KAFKA_JVM_MAPS = 4096
KAFKA_HEADROOM = 1.5
KAFKA_DEFAULT_LOG_DIRS = "/tmp/kafka-logs"  # KafkaConfig log.dirs default


def kafka_settings(invocation):
    """server.properties from the argument, then --override key=value, then KAFKA_* variables."""
    args = [a for a in invocation.argv[1:] if a != "-daemon"]
    settings = {}
    if args and not args[0].startswith("-"):
        settings.update(config.read_properties(args[0]))
    for i, arg in enumerate(args):
        if arg == "--override" and i + 1 < len(args):
            key, sep, value = args[i + 1].partition("=")
            if sep:
                settings[key] = value
    for name in ("KAFKA_LOG_DIRS", "KAFKA_CFG_LOG_DIRS"):  # apache/kafka and Bitnami images
        if invocation.environ.get(name):
            settings["log.dirs"] = invocation.environ[name]
    return settings


def count_segments(log_dirs):
    """Segments (.log files) in the partition folders of the log dirs, or None when a log dir or
    a partition in it cannot be listed: a partial count would understate what the broker maps."""
    total = 0
    try:
        for log_dir in log_dirs:
            with os.scandir(log_dir) as partitions:
                for partition in partitions:
                    if partition.is_dir():
                        with os.scandir(partition.path) as files:
                            total += sum(1 for f in files if f.name.endswith(".log"))
    except OSError:
        return None
    return total


def kafka_maps_needed(segments):
    need = (KAFKA_MAPS_PER_SEGMENT * segments + KAFKA_JVM_MAPS) * KAFKA_HEADROOM
    return int(math.ceil(need / 1024.0) * 1024)


def kafka_plan(invocation):
    settings = kafka_settings(invocation)
    dirs_text = settings.get("log.dirs") or settings.get("log.dir") or KAFKA_DEFAULT_LOG_DIRS
    log_dirs = [d.strip() for d in dirs_text.split(",") if d.strip()]
    segments = count_segments(log_dirs)
    fds = Requirement("nofile.hard", ">=", KAFKA_FILE_DESCRIPTORS, False, name="file-descriptors",
                      source="Kafka docs ops.html: at least 100000 file descriptors")
    if segments is None:
        maps = Requirement("vm.max_map_count", ">=", KAFKA_DEFAULT_MAP_COUNT, False,
                           source="guard default when log.dirs cannot be read (2 maps per segment, ops.html)")
        note = f"log.dirs [{dirs_text}] cannot be listed here: map requirement is the default, a warning"
    else:
        maps = Requirement("vm.max_map_count", ">=", kafka_maps_needed(segments), True,
                           source=f"{segments} segments in log.dirs x 2 maps (ops.html) + JVM, x1.5 headroom")
        note = f"log.dirs [{dirs_text}] holds {segments} segments"
    return Plan([maps, fds], [note])


# --- Redis ------------------------------------------------------------------------------------

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


# --- MongoDB, Cassandra, SonarQube -----------------------------------------------------------
# All three start with low limits and say so in their logs; guard warns the same way, except where
# SonarQube's embedded Elasticsearch enforces its own bootstrap checks.

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


# SonarQube docs, "Linux pre-installation"; sonar-main EsJvmOptions adds
# -Des.enforce.bootstrap.checks=true unless the database is H2 or the checks are disabled.
SONARQUBE_MAX_MAP_COUNT = 524288
SONARQUBE_FILES = 131072
SONARQUBE_THREADS = 8192


def sonarqube_plan(invocation):
    env = invocation.environ
    h2 = "jdbc:h2" in env.get("SONAR_JDBC_URL", "jdbc:h2")
    disabled = env.get("SONAR_ES_BOOTSTRAP_CHECKS_DISABLE", "").lower() == "true"
    enforced = not (h2 or disabled)
    note = ("embedded Elasticsearch enforces its bootstrap checks (external database)" if enforced else
            "embedded Elasticsearch checks are not enforced (H2 database or SONAR_ES_BOOTSTRAP_CHECKS_DISABLE)")
    return Plan([
        Requirement("vm.max_map_count", ">=", ES_MAX_MAP_COUNT, enforced, name="es-max-map-count",
                    source="embedded Elasticsearch MaxMapCountCheck (1 << 18)"),
        Requirement("nofile.hard", ">=", ES_FILE_DESCRIPTORS, enforced, name="es-file-descriptors",
                    source="embedded Elasticsearch FileDescriptorCheck"),
        Requirement("vm.max_map_count", ">=", SONARQUBE_MAX_MAP_COUNT, False,
                    source="SonarQube docs: vm.max_map_count >= 524288"),
        Requirement("fs.file-max", ">=", SONARQUBE_FILES, False,
                    source="SonarQube docs: fs.file-max >= 131072"),
        Requirement("nofile.hard", ">=", SONARQUBE_FILES, False, name="file-descriptors",
                    source="SonarQube docs: 131072 file descriptors"),
        Requirement("nproc", ">=", SONARQUBE_THREADS, False, name="max-threads",
                    source="SonarQube docs: 8192 threads"),
    ], [note])


# --- The table --------------------------------------------------------------------------------


def _none_plan(invocation):
    return Plan([], [])


PROFILES = {
    p.name: p
    for p in (
        Profile("elasticsearch", "Elasticsearch bootstrap checks", ("elasticsearch", "eswrapper"),
                lambda inv: search_plan(ELASTICSEARCH, inv)),
        Profile("opensearch", "OpenSearch bootstrap checks (Elasticsearch's, forked)",
                ("opensearch", "opensearch-docker-entrypoint.sh"),
                lambda inv: search_plan(OPENSEARCH, inv)),
        Profile("kafka", "Kafka broker: file descriptors and maps per log segment",
                ("kafka-server-start.sh", "kafka-server-start", "kafka"), kafka_plan),
        Profile("redis", "Redis server's own start-up checks", ("redis-server", "valkey-server"), redis_plan),
        Profile("mongodb", "MongoDB mongod start-up warnings and ulimit advice", ("mongod",), mongodb_plan),
        Profile("cassandra", "Cassandra start-up checks and recommended limits", ("cassandra",), cassandra_plan),
        Profile("sonarqube", "SonarQube host requirements and its embedded Elasticsearch",
                ("sonar.sh", "sonarqube"), sonarqube_plan),
        Profile("none", "no profile: only --require", (), _none_plan),
    )
}

# Wrappers that start the real program, so guard looks past them for its name: how many words
# each takes before the program (gosu USER, chroot NEWROOT), and its options that take a value.
LAUNCHERS = {
    "docker-entrypoint.sh": (0, ()),
    "tini": (0, ("-e", "-p")),
    "dumb-init": (0, ("-r", "--rewrite")),
    "env": (0, ("-u", "--unset", "-C", "--chdir", "-S", "--split-string")),
    "nice": (0, ("-n", "--adjustment")),
    "numactl": (0, ("-i", "--interleave", "-N", "--cpunodebind", "-m", "--membind", "-C", "--physcpubind",
                    "-p", "--preferred")),
    "setpriv": (0, ("--reuid", "--regid", "--ruid", "--euid", "--rgid", "--egid", "--groups",
                    "--inh-caps", "--ambient-caps", "--bounding-set", "--securebits", "--pdeathsig",
                    "--selinux-label", "--apparmor-profile")),
    "gosu": (1, ()),
    "su-exec": (1, ()),
    "chroot": (1, ("--userspec", "--groups")),
}


def locate(argv):
    """(profile, index of the program's word in argv), looking past launchers; (None, index of
    the first word that is neither a launcher nor one of its arguments) when none is known."""
    words, takes_value, i = 0, (), 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            i += 2 if arg in takes_value else 1  # --opt=value is one word
            continue
        if words or "=" in arg:  # a launcher's own argument (gosu USER), or env's NAME=value
            words -= 1 if words else 0
            i += 1
            continue
        base = os.path.basename(arg)
        for profile in PROFILES.values():
            if base in profile.commands:
                return profile, i
        if base not in LAUNCHERS:
            return None, i
        words, takes_value = LAUNCHERS[base]
        i += 1
    return None, len(argv)


def detect(argv):
    """The profile whose command the argv starts, looking past launchers; None if unknown."""
    return locate(argv)[0]


def program_argv(profile, argv):
    """The program's own words (its name first), without the launchers before it: where the
    profile reads its settings (redis-server /etc/redis.conf). The whole argv when not found."""
    found, index = locate(argv)
    return tuple(argv[index:]) if found is profile else tuple(argv)
