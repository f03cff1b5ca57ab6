"""What each program needs from the host, as plain lists of requirements.

Each profile mirrors its upstream's own rules: the threshold, whether the program refuses to
start or only warns, and the configuration that changes either. The source sits next to each
threshold. A requirement is hard (guard refuses to start the program in enforce mode) when the
program itself refuses or is certain to fail; soft (a warning) when the program copes.
"""


import os

from guard.profiles.cassandra import cassandra_plan
from guard.profiles.elasticsearch import ELASTICSEARCH, OPENSEARCH, search_plan
from guard.profiles.kafka import KAFKA_IMAGE_RUN, kafka_plan
from guard.profiles.mongodb import mongodb_plan
from guard.profiles.plan import Invocation, Plan, Profile
from guard.profiles.redis import redis_plan
from guard.profiles.sonarqube import sonarqube_plan

__all__ = ["Invocation", "Plan", "Profile", "PROFILES", "detect", "invocation", "locate", "program_argv"]



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
                ("kafka-server-start.sh", "kafka-server-start", "kafka", KAFKA_IMAGE_RUN), kafka_plan),
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
    "__cacert_entrypoint.sh": (0, ()),  # eclipse-temurin and apache/kafka: imports CA certificates, execs "$@"
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


def _env_option(arg, following):
    """What an option of env(1) does to the environment: -i clears it, -u NAME unsets NAME."""
    if arg in ("-i", "--ignore-environment"):
        return [("clear",)]
    if arg in ("-u", "--unset") and following is not None:
        return [("unset", following)]
    if arg.startswith("--unset="):
        return [("unset", arg[len("--unset="):])]
    if arg.startswith("-u") and not arg.startswith("--"):
        return [("unset", arg[2:])]
    return []


def _walk(argv):
    """(profile, index of the program's word in argv, what env(1) launchers before it do to the
    environment), looking past launchers; (None, index of the first word that is neither a
    launcher nor one of its arguments, ...) when no profile knows it."""
    words, takes_value, launcher, i, changes = 0, (), None, 0, []
    while i < len(argv):
        arg = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if launcher == "env" and arg == "-":  # env - is env -i
            changes.append(("clear",))
            i += 1
            continue
        if arg.startswith("-") and arg != "-":
            if launcher == "env":
                changes += _env_option(arg, following)
            i += 2 if arg in takes_value else 1  # --opt=value is one word
            continue
        if words or "=" in arg:  # a launcher's own argument (gosu USER), or env's NAME=value
            if launcher == "env" and not words:
                changes.append(("set",) + tuple(arg.split("=", 1)))
            words -= 1 if words else 0
            i += 1
            continue
        base = os.path.basename(arg)
        for profile in PROFILES.values():
            if base in profile.commands or arg in profile.commands:  # a name, or an image's fixed path
                return profile, i, changes
        if base not in LAUNCHERS:
            return None, i, changes
        launcher = base
        words, takes_value = LAUNCHERS[base]
        i += 1
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
    it) and its environment, with what env(1) in front of it sets (env NAME=value), unsets
    (-u NAME) or clears (-i)."""
    found, index, changes = _walk(argv)
    seen = dict(environ)
    for change in changes:
        if change[0] == "clear":
            seen.clear()
        elif change[0] == "unset":
            seen.pop(change[1], None)
        else:
            seen[change[1]] = change[2]
    return Invocation(tuple(argv[index:]) if found is profile else tuple(argv), seen)
