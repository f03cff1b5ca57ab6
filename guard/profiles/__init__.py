"""What each program needs from the host, as plain lists of requirements.

Each profile mirrors its upstream's own rules: the threshold, whether the program refuses to
start or only warns, and the configuration that changes either. The source sits next to each
threshold. A requirement is hard (guard refuses to start the program in enforce mode) when the
program itself refuses or is certain to fail; soft (a warning) when the program copes.
"""


import os

from guard.checks import decimal_number
from guard.profiles.plan import Invocation, Plan, Profile

__all__ = ["Invocation", "Plan", "Profile", "PROFILES", "detect", "invocation", "locate", "program_argv"]

# Where the official images keep what starts each program: how guard knows it from the command.
#
# The apache/kafka image (3.7 and later) starts through this script (apache/kafka
# docker/resources/common-scripts/run): it exports its NAME=value arguments, and configure runs
# KafkaDockerWrapper setup, which writes server.properties as the mounted one
# (/mnt/shared/config) with a line for each KAFKA_* variable appended; only when that is blank,
# the image's default (Kafka's KRaft example, log.dirs=/tmp/kraft-combined-logs) is copied instead.
KAFKA_IMAGE_RUN = "/etc/kafka/docker/run"
# The ScyllaDB image's entrypoint (scylladb dist/docker): it takes --smp, --cpuset and
# --developer-mode (default 1) itself, passes the arguments it does not know on to scylla, and
# starts it through supervisord, not by exec. Other images have a /docker-entrypoint.py of their
# own: it is ScyllaDB's where the script it runs first is (scyllasetup.py developerMode).
SCYLLA_IMAGE_ENTRYPOINT = "/docker-entrypoint.py"
SCYLLA_IMAGE_SETUP = "/opt/scylladb/scripts/scylla_dev_mode_setup"
# The Qdrant image's CMD, in its WORKDIR /qdrant (qdrant/qdrant Dockerfile): a script that runs
# ./qdrant "$@" in the background and waits for it (tools/entrypoint.sh), so the server is not
# at the end of an exec chain.
QDRANT_IMAGE_ENTRYPOINT = "/qdrant/entrypoint.sh"
# The ClickHouse server binary (a link to the multi-call clickhouse, which also answers to
# `clickhouse server`), and the file that tells the ClickHouse image apart: its /entrypoint.sh,
# given no command, starts it (docker/server/entrypoint.sh).
CLICKHOUSE_SERVER = "/usr/bin/clickhouse-server"
# The Wazuh indexer image runs OpenSearch (its CMD is opensearch) from here.
WAZUH_INDEXER_HOME = "/usr/share/wazuh-indexer"

# Each profile's plan is named "module:function" in guard.profiles and imported when a run needs
# it (Profile.plan): guard runs before every start of the program, and a run loads only its own
# profile, not the seventeen others.
PROFILES = {
    p.name: p
    for p in (
        Profile("elasticsearch", "Elasticsearch bootstrap checks", ("elasticsearch", "eswrapper"),
                "elasticsearch:elasticsearch_plan"),
        Profile("opensearch", "OpenSearch bootstrap checks (Elasticsearch's, forked)",
                ("opensearch", "opensearch-docker-entrypoint.sh"), "elasticsearch:opensearch_plan"),
        Profile("wazuh-indexer", "Wazuh indexer: OpenSearch's bootstrap checks, in its image's layout",
                (os.path.join(WAZUH_INDEXER_HOME, "bin", "opensearch"),), "elasticsearch:wazuh_indexer_plan"),
        Profile("graylog-datanode", "Graylog Data Node's preflight check before it starts OpenSearch",
                ("graylog-datanode",), "graylog:datanode_plan"),
        Profile("kafka", "Kafka broker: file descriptors and maps per log segment",
                ("kafka-server-start.sh", "kafka-server-start", "kafka", KAFKA_IMAGE_RUN), "kafka:kafka_plan"),
        Profile("redis", "Redis server's own start-up checks", ("redis-server",), "redis:redis_plan"),
        Profile("valkey", "Valkey server's own start-up checks (Redis's, forked)", ("valkey-server",),
                "valkey:valkey_plan"),
        Profile("keydb", "KeyDB server's start-up checks (Redis 6's, forked)", ("keydb-server",), "keydb:keydb_plan"),
        Profile("dragonfly", "Dragonfly: memory per thread, and what makes it leave io_uring for epoll",
                ("dragonfly",), "dragonfly:dragonfly_plan"),
        Profile("mongodb", "MongoDB mongod start-up warnings, ulimit advice and 8.0's kernel refusal", ("mongod",),
                "mongodb:mongodb_plan"),
        Profile("cassandra", "Cassandra start-up checks and recommended limits", ("cassandra",),
                "cassandra:cassandra_plan"),
        Profile("scylladb", "ScyllaDB and Seastar start-up checks: AIO control blocks per shard, open files",
                ("scylla", SCYLLA_IMAGE_ENTRYPOINT), "scylladb:scylladb_plan"),
        Profile("clickhouse", "ClickHouse server's start-up sanity warnings", ("clickhouse-server",),
                "clickhouse:clickhouse_plan"),
        # The Solr image's scripts (solr/docker/scripts) each end in exec solr-fg, which runs bin/solr start -f.
        Profile("solr", "Solr's bin/solr ulimit warnings",
                ("solr", "solr-foreground", "solr-fg", "solr-precreate", "solr-create", "solr-demo"), "solr:solr_plan"),
        Profile("neo4j", "Neo4j's open files warning", ("neo4j",), "neo4j:neo4j_plan"),
        Profile("weaviate", "Weaviate: memory maps it leaves itself when loading shards", ("weaviate",),
                "weaviate:weaviate_plan"),
        Profile("qdrant", "Qdrant: open files its docs advise", ("qdrant", QDRANT_IMAGE_ENTRYPOINT),
                "qdrant:qdrant_plan"),
        Profile("sonarqube", "SonarQube host requirements and its embedded Elasticsearch",
                ("sonar.sh", "sonarqube"), "sonarqube:sonarqube_plan"),
        Profile("none", "no profile: only --require", (), lambda invocation: Plan([], [])),
    )
}

# Wrappers that start the real program, so guard looks past them for its name: how many words
# each takes before the program (gosu USER, chroot NEWROOT), and its options that take a value.
LAUNCHERS = {
    "docker-entrypoint.sh": (0, ()),
    "__cacert_entrypoint.sh": (0, ()),  # eclipse-temurin and apache/kafka: imports CA certificates, execs "$@"
    # The entrypoint of the Dragonfly, Graylog Data Node, Wazuh indexer, ClickHouse and Qdrant images:
    # each ends in exec "$@" (Qdrant's runs ./qdrant "$@"; ClickHouse's, given no command, starts
    # clickhouse-server: IMAGE_ENTRYPOINTS below).
    "entrypoint.sh": (0, ()),
    "tini": (0, ("-e", "-p")),  # -g (Neo4j's image: signals to the process group) takes no value
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

# Programs that launch another only when their first argument says so, and what they are then: a
# launcher, with the words and the options that take a value LAUNCHERS gives (the word after is
# counted: clickhouse su USER:GROUP COMMAND, as the ClickHouse image starts its server; util-linux
# runuser -u USER [--] COMMAND, where runuser USER -c '...' would run a shell, which guard does not
# follow), or a profile's program (clickhouse server, the multi-call binary).
RUNUSER_OPTIONS = ("-u", "--user", "-g", "--group", "-G", "--supp-group", "-w", "--whitelist-environment")
SUBCOMMANDS = {
    ("clickhouse", "su"): ("launcher", (1, ())),
    ("runuser", "-u"): ("launcher", (0, RUNUSER_OPTIONS)),
    ("runuser", "--user"): ("launcher", (0, RUNUSER_OPTIONS)),
    ("clickhouse", "server"): ("profile", "clickhouse"),
}

# Images whose command does not name the program. An entrypoint that starts it itself when given
# no command, with the file that tells its image apart (the ClickHouse image has no CMD; its
# /entrypoint.sh starts clickhouse-server); and a program's name that is another's in one image's
# layout (the Wazuh indexer's CMD is opensearch, run from /usr/share/wazuh-indexer).
IMAGE_ENTRYPOINTS = {"/entrypoint.sh": (CLICKHOUSE_SERVER, "clickhouse")}
IMAGE_PROGRAMS = {"opensearch": (WAZUH_INDEXER_HOME, "wazuh-indexer")}
# A profile's fixed path whose name other images use too, with the file that tells its image apart.
IMAGE_MARKERS = {SCYLLA_IMAGE_ENTRYPOINT: SCYLLA_IMAGE_SETUP}


# Entrypoints that append the words of a variable to the command they start, and the variable.
# The valkey/valkey image's docker-entrypoint.sh (valkey-io/valkey-container) ends in
# exec "$@" $VALKEY_EXTRA_FLAGS: unquoted, so sh splits the value into words, and they follow the
# command's own whatever it is (the image's redis-server is Valkey too). Known by its file naming
# the variable: other images' docker-entrypoint.sh do not append it.
APPENDING_ENTRYPOINTS = {"docker-entrypoint.sh": "VALKEY_EXTRA_FLAGS"}
SH_FIELD_SEPARATORS = " \t\n"  # sh's IFS: dash and bash set it at start, whatever the environment says
# util-linux setpriv --reset-env keeps only TERM and sets PATH to login's default, root's
# (_PATH_DEFPATH_ROOT) or a user's; it sets HOME, SHELL, USER and LOGNAME too, which no profile
# reads. Which user: guard takes root unless --reuid or --ruid names another (a number by its
# value); setpriv asks the passwd database, and guard does not follow users launchers before it set.
SETPRIV_PATHS = {True: "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin",
                 False: "/usr/local/bin:/bin:/usr/bin"}
# Every long option of GNU env (coreutils 9) and of util-linux setpriv (2.38 to 2.40): getopt_long
# takes any prefix that names one of them alone (env --unse=NAME, setpriv --reset).
LONG_OPTIONS = {
    "env": ("--ignore-environment", "--null", "--unset", "--chdir", "--split-string", "--block-signal",
            "--default-signal", "--ignore-signal", "--list-signal-handling", "--debug", "--help", "--version"),
    "setpriv": ("--dump", "--no-new-privs", "--nnp", "--ambient-caps", "--inh-caps", "--bounding-set", "--ruid",
                "--euid", "--rgid", "--egid", "--reuid", "--regid", "--clear-groups", "--keep-groups",
                "--init-groups", "--groups", "--securebits", "--pdeathsig", "--selinux-label", "--apparmor-profile",
                "--landlock-access", "--landlock-rule", "--seccomp-filter", "--reset-env", "--help", "--version"),
}


def _long_option(launcher, arg):
    """(the long option arg names, as getopt_long reads it, "=" when a value is joined, the value):
    the whole name, or a prefix of exactly one of the launcher's long options."""
    name, joined, value = arg.partition("=")
    known = LONG_OPTIONS.get(launcher, ())
    if name.startswith("--") and name not in known:
        matches = [option for option in known if option.startswith(name)]
        name = matches[0] if len(matches) == 1 else name
    return name, joined, value


def _env_option(arg, following):
    """(what an option of env(1) does, whether it takes the next word): -i clears the
    environment, -u NAME unsets NAME, -C DIR changes the working folder; short options cluster
    as getopt reads them (-vi, -iu NAME, -uNAME)."""
    if arg.startswith("--"):
        name, given, value = _long_option("env", arg)
        if name == "--ignore-environment":
            return [("clear",)], False
        kind = {"--unset": "unset", "--chdir": "chdir", "--split-string": "split"}.get(name)
        if kind is None or given:
            return ([(kind, value)] if kind and given else []), False
        return ([(kind, following)] if following is not None else []), True
    changes = []
    for j in range(1, len(arg)):
        letter, rest = arg[j], arg[j + 1:]
        if letter == "i":
            changes.append(("clear",))
        elif letter in "uCS":  # the rest of the word is the value, or else the next word
            value = rest or following
            if value is not None:
                changes.append(({"u": "unset", "C": "chdir", "S": "split"}[letter], value))
            return changes, not rest
    return changes, False


def _setpriv_reset(argv, start):
    """setpriv --reset-env, its options from argv[start]: the environment it leaves, as a change."""
    root, i = os.getuid() == 0, start
    takes_value = LAUNCHERS["setpriv"][1]
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        name, given, value = _long_option("setpriv", argv[i])
        if name in takes_value and not given:
            i += 1
            value = argv[i] if i < len(argv) else ""
        if name in ("--reuid", "--ruid"):
            number = decimal_number(value[1:] if value.startswith("+") else value, 0, (1 << 32) - 1)
            root = number == 0 if number is not None else value == "root"
        i += 1
    return ("reset", SETPRIV_PATHS[root])


def _fixed_path(arg):
    """arg as an absolute path when it names one (./entrypoint.sh in the image's WORKDIR), for
    the fixed paths of the images guard knows; arg itself when it is a bare name."""
    if "/" not in arg or os.path.isabs(arg):
        return arg
    try:
        return os.path.normpath(os.path.join(os.getcwd(), arg))
    except OSError:  # the working folder is gone: no image path to match
        return arg


def _program(arg):
    """The profile whose program arg names, or None: an image's fixed path first, then a name; a
    name that is another program's in the image's layout gives that one (IMAGE_PROGRAMS)."""
    base, path = os.path.basename(arg), _fixed_path(arg)
    for profile in PROFILES.values():
        if "/" in arg and path in profile.commands and os.path.exists(IMAGE_MARKERS.get(path, "/")):
            return profile
    for profile in PROFILES.values():
        if base in profile.commands:
            marker, other = IMAGE_PROGRAMS.get(base, (None, None))
            return PROFILES[other] if "/" not in arg and marker and os.path.isdir(marker) else profile
    return None


def _walk(argv):
    """(profile, index of the program's word in argv, what env(1) launchers before it do to the
    environment), looking past launchers; (None, index of the first word that is neither a
    launcher nor one of its arguments, ...) when no profile knows it."""
    words, takes_value, launcher, i, changes, reset = 0, (), None, 0, [], False
    entrypoint = None  # (index, fixed path) of the last launcher: an image's may start the program itself
    while i < len(argv):
        arg = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if launcher == "env" and arg == "-":  # env - is env -i
            changes.append(("clear",))
            i += 1
            continue
        if arg.startswith("-") and arg != "-":
            if launcher == "env":
                more, takes_next = _env_option(arg, following)
                changes += more
                i += 2 if takes_next else 1
                continue
            name, given, _ = _long_option(launcher, arg)
            if launcher == "setpriv" and name == "--reset-env" and not reset:
                changes.append(_setpriv_reset(argv, entrypoint[0] + 1))  # once: it reads all the options
                reset = True
            i += 2 if name in takes_value and not given else 1  # --opt=value is one word
            continue
        if words or "=" in arg:  # a launcher's own argument (gosu USER), or env's NAME=value
            if launcher == "env" and not words:
                changes.append(("set",) + tuple(arg.split("=", 1)))
            if launcher == "chroot" and words:  # NEWROOT: what follows sees files under it
                changes.append(("root", arg))
            words -= 1 if words else 0
            i += 1
            continue
        base = os.path.basename(arg)
        option = following.partition("=")[0] if following and following.startswith("--") else following
        kind, what = SUBCOMMANDS.get((base, option), (None, None))  # runuser --user=NAME as runuser --user NAME
        if kind == "profile":
            return PROFILES[what], i, changes
        program = None if kind else _program(arg)
        if program:
            return program, i, changes
        if kind is None and base not in LAUNCHERS:
            return None, i, changes
        launcher, entrypoint, reset = base, (i, _fixed_path(arg)), False
        changes.append(("launcher", arg))  # it sees the environment as the changes so far leave it
        words, takes_value = what if kind else LAUNCHERS[base]
        words += 1 if kind and not following.startswith("-") else 0  # the subcommand, when not an option
        i += 1
    if entrypoint and entrypoint[1] in IMAGE_ENTRYPOINTS:
        marker, name = IMAGE_ENTRYPOINTS[entrypoint[1]]
        if os.path.exists(marker):
            return PROFILES[name], entrypoint[0], changes
    return None, len(argv), changes


def locate(argv):
    """(profile, index of the program's word in argv), looking past launchers; (None, index of
    the first word that is neither a launcher nor one of its arguments) when none is known."""
    return _walk(argv)[:2]


def detect(argv):
    """The profile whose command the argv starts, looking past launchers; None if unknown."""
    return locate(argv)[0]


def program_argv(profile, argv):
    """The program's own words (its name first), without the launchers before it: where the
    profile reads its settings (redis-server /etc/redis.conf). The whole argv when not found."""
    return invocation(profile, argv, {}).argv


def invocation(profile, argv, environ):
    """What the program will see: its own words (the whole argv when the profile does not know
    it) with any an entrypoint before it appends (APPENDING_ENTRYPOINTS), and its environment,
    with what env(1) in front of it sets (env NAME=value), unsets (-u NAME) or clears (-i), and
    setpriv --reset-env leaves; notes say what an entrypoint appended, or why that is unknown."""
    found, index, changes = _walk(argv)
    seen, appended, notes, folder, started_in, root = dict(environ), [], [], None, None, None
    for change in changes:
        kind = change[0]
        if kind == "clear":
            seen.clear()
        elif kind == "unset":
            seen.pop(change[1], None)
        elif kind == "set":
            seen[change[1]] = change[2]
        elif kind == "reset":
            seen = {name: value for name, value in seen.items() if name == "TERM"}
            seen["PATH"] = change[1]
        elif kind == "chdir":  # env goes there once its options are read: the last -C wins
            folder = os.path.join(started_in or "", change[1])
        elif kind == "split":
            notes.append("env -S: guard does not split its string as env does (nor shows it: it may hold a "
                         "password); judged as if it were not there")
        elif kind == "root":
            root = change[1]
        elif kind == "launcher":
            started_in = folder
            variable = APPENDING_ENTRYPOINTS.get(os.path.basename(change[1]))
            if variable and _words(seen.get(variable, "")):
                words, why = _appended(change[1], variable, seen, folder, root)
                appended += words
                notes += why
    own = tuple(argv[index:]) if found is profile else tuple(argv)
    return Invocation(own + tuple(appended), seen, notes)


def _words(value):
    """The words sh makes of an unquoted $VARIABLE: split at spaces, tabs and newlines. (sh would
    also replace a word holding a pattern by the names of the files it matches.)"""
    for separator in SH_FIELD_SEPARATORS[1:]:
        value = value.replace(separator, SH_FIELD_SEPARATORS[0])
    return [word for word in value.split(SH_FIELD_SEPARATORS[0]) if word]


def _appended(word, variable, environ, folder, root):
    """(the words of variable the entrypoint word appends, notes): none unless its file names the
    variable. The note counts the words and never shows them: VALKEY_EXTRA_FLAGS is where the
    image's users put --requirepass."""
    from guard import host
    from guard.profiles.plan import on_path

    unknown = f"{variable} is set, and whether {word} appends it to the command is unknown"
    if root is not None:
        return [], [f"{unknown}: it runs under chroot [{root}]; judged without it"]
    path = (os.path.join(folder, word) if folder else word) if "/" in word else on_path(word, environ, folder)
    if path is None:
        return [], [f"{unknown}: it is not found in PATH; judged without it"]
    try:
        text = host.read_bytes(path)
    except host.Unreadable as e:
        return [], [f"{unknown}: {e}; judged without it"]
    if variable.encode() not in text:
        return [], []
    words = _words(environ[variable])
    taken = f"its {len(words)} words" if len(words) != 1 else "its word"
    notes = [f"{variable}: {path} appends {taken} to the command; judged with {'them' if len(words) != 1 else 'it'}"]
    if any(_is_pattern(w) for w in words):
        notes.append(f"{variable}: a word with a pattern (* ? [...]) is judged as written; sh replaces it with "
                     "the names of the files it matches, if any")
    return words, notes


def _is_pattern(word):
    """Whether sh's pathname expansion takes word for a pattern: a * or ?, or a [ closed by a ]
    after at least one character (a ] right after [ is one of the set)."""
    opening = word.find("[")
    return "*" in word or "?" in word or (opening >= 0 and "]" in word[opening + 2:])
