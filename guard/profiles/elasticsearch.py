"""Elasticsearch and OpenSearch: the bootstrap checks and the production mode that enforces them."""

import collections
import os
import re

from guard import config
from guard.checks import Requirement
from guard.host import UNLIMITED
from guard.profiles.plan import Plan

# Elasticsearch server/src/main/java/org/elasticsearch/bootstrap/BootstrapChecks.java
ES_MAX_MAP_COUNT = 1 << 18  # MaxMapCountCheck: 262144
ES_FILE_DESCRIPTORS = (1 << 16) - 1  # FileDescriptorCheck: 65535
ES_THREADS = 1 << 12  # MaxNumberOfThreadsCheck: 4096

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "_local_", "_local:ipv4_", "_local:ipv6_"}
# ES Settings.Builder.replacePropertyPlaceholders: ${NAME} or ${NAME:default}, from the
# environment, else from another setting. Values rarely nest; past this many, guard stops.
PLACEHOLDER = re.compile(r"\$\{([^${}]*)\}")
PLACEHOLDER_ROUNDS = 32


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


def _replace_placeholders(value, settings, environ):
    """value with ${NAME} and ${NAME:default} replaced; KeyError naming one that is unset."""
    for _ in range(PLACEHOLDER_ROUNDS):
        match = PLACEHOLDER.search(value)
        if match is None:
            break
        name, sep, default = match.group(1).partition(":")
        found = environ.get(name, settings.get(name) if isinstance(settings.get(name), str) else None)
        if found is None and not sep:
            raise KeyError(name)
        value = value[:match.start()] + (default if found is None else found) + value[match.end():]
    return value


def _resolve_placeholders(settings, environ, notes):
    resolved, unset = {}, []
    for key, value in settings.items():
        try:
            if isinstance(value, list):
                resolved[key] = [_replace_placeholders(item, settings, environ) for item in value]
            else:
                resolved[key] = _replace_placeholders(value, settings, environ)
        except KeyError as e:
            unset.append(f"[{key}] names ${{{e.args[0]}}}")
    if unset:
        more = f" and [{len(unset) - 1}] more" if len(unset) > 1 else ""
        notes.append(f"{unset[0]}{more}, which is not set: the program refuses to start with an unresolved "
                     "placeholder; judged without that setting")
    return resolved


def search_settings(flavour, invocation):
    """(settings, notes, whether the config file was read), in the precedence the image applies
    them: file < environment < -E arguments, then ${...} placeholders resolved."""
    env = invocation.environ
    named = bool(env.get(flavour.conf_env))
    conf_dir = env.get(flavour.conf_env) or flavour.conf_dir
    from_file, notes = config.read_yaml_settings(os.path.join(conf_dir, flavour.config_file),
                                                 flavour.config_file, named=named)
    settings = dict(from_file or {})
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
    return _resolve_placeholders(settings, env, notes), notes, from_file is not None


def _enforced(flavour, settings, environ):
    """Production mode decides whether failures refuse or warn (BootstrapChecks.enforceLimits)."""
    java_opts = environ.get(flavour.java_opts_env, "")
    if re.search(rf"-D{re.escape(flavour.enforce_property)}=true\b", java_opts):
        return True, f"-D{flavour.enforce_property}=true: checks are enforced"
    if settings.get("discovery.type") == "single-node":
        return False, "discovery.type=single-node: failures are warnings, as in development mode"
    bind = settings.get("transport.host") or settings.get("network.host")
    hosts = bind if isinstance(bind, list) else [h.strip() for h in (bind or "").split(",") if h.strip()]
    if hosts and all(h in LOOPBACK_HOSTS for h in hosts):
        return False, f"bound to loopback only (network.host={bind}): failures are warnings, as in development mode"
    if bind:
        return True, f"production mode (network.host={bind}, beyond loopback): checks are enforced"
    # Elasticsearch alone binds loopback; its official image sets network.host 0.0.0.0 in its
    # elasticsearch.yml. Without the setting, guard takes the image's side: the stricter one.
    return True, "production mode (bound beyond loopback, as the official image is): checks are enforced"


def _boolean(settings, key, default, notes):
    """A boolean setting as Booleans.parseBoolean reads it: only "true" or "false"."""
    value = settings.get(key, default)
    if value in ("true", "false"):
        return value == "true"
    notes.append(f"{key} [{value}] must be [true] or [false]: the program refuses it; judged on the default [{default}]")
    return default == "true"


def search_plan(flavour, invocation):
    settings, file_notes, _ = search_settings(flavour, invocation)
    hard, mode_note = _enforced(flavour, settings, invocation.environ)
    notes = [mode_note] + file_notes
    source = "BootstrapChecks."
    reqs = []
    if _boolean(settings, "node.store.allow_mmap", "true", notes):
        reqs.append(Requirement("vm.max_map_count", ">=", ES_MAX_MAP_COUNT, hard,
                                source=source + "MaxMapCountCheck (1 << 18)"))
    else:
        notes.append("node.store.allow_mmap=false: the map count check is dropped")
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
    if _boolean(settings, "bootstrap.memory_lock", "false", notes):
        reqs.append(Requirement("memlock", ">=", UNLIMITED, hard, name="memory-lock",
                                source=source + "MlockallCheck (bootstrap.memory_lock=true)"))
    return Plan(reqs, notes)
