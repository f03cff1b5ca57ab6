"""Elasticsearch and OpenSearch: the bootstrap checks and the production mode that enforces them."""

import os
import stat

from guard import config, host
from guard.checks import Requirement
from guard.host import UNLIMITED
from guard.profiles import WAZUH_INDEXER_HOME
from guard.profiles.plan import Plan, on_path
from guard.records import record

# Elasticsearch server/src/main/java/org/elasticsearch/bootstrap/BootstrapChecks.java
ES_MAX_MAP_COUNT = 1 << 18  # MaxMapCountCheck: 262144
ES_FILE_DESCRIPTORS = (1 << 16) - 1  # FileDescriptorCheck: 65535
ES_THREADS = 1 << 12  # MaxNumberOfThreadsCheck: 4096

# MlockallCheck refuses when mlockall(MCL_CURRENT) failed, and the kernel refuses it unless the
# soft RLIMIT_MEMLOCK covers the whole address space (mm/mlock.c compares mm->total_vm with it),
# which the JVM's reservations alone make large: Debian's OpenJDK 17.0.15 with its defaults and a
# 16 MiB heap has a VmSize of 2.5 GiB, and 1137272 kB with every reservation shrunk (serial GC,
# 1 MiB class space, 3 MiB code cache; the commands are in the README's note on it). Below half
# that, failure is certain; above it, it depends on the heap, so only the docs' unlimited is asked
# for, as a warning.
JVM_SMALLEST_ADDRESS_SPACE = 1 << 29  # 512 MiB

# The docs advise more maps than MaxMapCountCheck asks for from 8.16 on: "for Elasticsearch
# version 8.16 and later, set vm.max_map_count to 1048576; for 8.15 and earlier, 262144"
# (elastic/docs-content deploy-manage/deploy/cloud-on-k8s/virtual-memory.md; the self-managed
# "Increase virtual memory" page since elastic/docs-content#4380, December 2025, and the 8.16 to
# 8.18 reference since elastic/elasticsearch#139968). The check still refuses only below 1 << 18,
# so the advice is a warning. OpenSearch's docs (documentation-website, install-opensearch
# "Important settings") and its MaxMapCountCheck both still say 262144: no advice beyond it.
MapCountAdvice = record("MapCountAdvice", "value since source")
ES_MAP_COUNT_ADVICE = MapCountAdvice(1 << 20, (8, 16),
                                     "Elasticsearch docs, Increase virtual memory: 1048576 from 8.16 on")

# Where the transport binds and what it publishes, each with its fallbacks: TransportSettings
# BIND_HOST and PUBLISH_HOST fall back to transport.host; when that is empty too, TcpTransport
# takes NetworkService's network.bind_host / network.publish_host, which fall back to
# network.host; with none set, NetworkService binds and publishes DEFAULT_NETWORK_HOST, _local_.
BIND_SETTINGS = ("transport.bind_host", "transport.host", "network.bind_host", "network.host")
PUBLISH_SETTINGS = ("transport.publish_host", "transport.host", "network.publish_host", "network.host")
DEFAULT_HOST = "_local_"
# ES Settings.Builder.replacePropertyPlaceholders: ${NAME} or ${NAME:default}, from the
# environment, else from another setting. Values rarely nest; past this many, guard stops.
PLACEHOLDER = r"\$\{([^${}]*)\}"  # compiled where used: re is imported only when a value holds "${"
PLACEHOLDER_ROUNDS = 32
# What the values may come to, all together, once resolved: settings read within host.FILE_LIMIT
# grow past this only when values name big values over and over (a placeholder bomb), which would
# take guard's memory before the program's. The values past it are judged as written.
PLACEHOLDER_BUDGET = 8 * host.FILE_LIMIT


# setting_env_prefix: ES 8's ES_SETTING_DISCOVERY_TYPE style; "" when the image has none.
# home_env, home_dir: the installation, whose lib/ names the version; map_count_advice: the
# docs' vm.max_map_count beyond the bootstrap check, or None; env_script: the installation's
# script that names its distribution type (below), or None; env_launcher: the image's script
# that turns variables into settings, when the program itself does not (below), or None.
SearchFlavour = record(
    "SearchFlavour", "name conf_env conf_dir config_file java_opts_env enforce_property setting_env_prefix "
                     "home_env home_dir map_count_advice env_script env_launcher")


ELASTICSEARCH = SearchFlavour("elasticsearch", "ES_PATH_CONF", "/usr/share/elasticsearch/config",
                              "elasticsearch.yml", "ES_JAVA_OPTS", "es.enforce.bootstrap.checks", "ES_SETTING_",
                              "ES_HOME", "/usr/share/elasticsearch", ES_MAP_COUNT_ADVICE,
                              os.path.join("bin", "elasticsearch-env"), None)
OPENSEARCH = SearchFlavour("opensearch", "OPENSEARCH_PATH_CONF", "/usr/share/opensearch/config",
                           "opensearch.yml", "OPENSEARCH_JAVA_OPTS", "opensearch.enforce.bootstrap.checks", "",
                           "OPENSEARCH_HOME", "/usr/share/opensearch", None, None, "opensearch-docker-entrypoint.sh")
# The Wazuh indexer is OpenSearch with its own layout (wazuh/wazuh-docker
# build-docker-images/wazuh-indexer: INSTALL_DIR /usr/share/wazuh-indexer, whose config/ the
# entrypoint names OPENSEARCH_PATH_CONF). That entrypoint, not the program, turns the image's
# dotted variables into -E arguments, as OpenSearch's does, and its CMD is plain opensearch.
WAZUH_INDEXER = OPENSEARCH._replace(conf_dir=os.path.join(WAZUH_INDEXER_HOME, "config"), home_dir=WAZUH_INDEXER_HOME,
                                    env_launcher=None)

# Elasticsearch takes settings from variables only in its Docker distribution: the docker
# branch of bin/elasticsearch-env before 8.3, EnvironmentAwareCommand.putDockerEnvSettings for
# the Docker build type after. The image's Dockerfile (distribution/docker/src/docker/Dockerfile)
# marks it by rewriting ES_DISTRIBUTION_TYPE=tar to docker in bin/elasticsearch-env; the tar,
# deb and rpm distributions keep theirs, and ignore such variables.
DISTRIBUTION_TYPE = rb"^[ \t]*(?:readonly[ \t]+)?ES_DISTRIBUTION_TYPE=[\"']?([A-Za-z0-9_.-]+)[\"']?[ \t]*$"  # MULTILINE
DOCKER_DISTRIBUTION = "docker"
# OpenSearch itself reads no settings from variables: its image's entrypoint
# (opensearch-build docker/release/config/opensearch/opensearch-docker-entrypoint.sh) turns
# them into -E arguments, so they count only when the program is started through it.


def _setting_from_env_name(name, prefix):
    """ES_SETTING_DISCOVERY_TYPE -> discovery.type; a double underscore stands for one underscore."""
    body = name[len(prefix):].lower()
    return body.replace("__", "\0").replace("_", ".").replace("\0", "_")


# What a variable's name is made of when the official images take it for a setting (lowercase
# words joined with dots: discovery.type); str methods, as every variable is tested at each start.
_SETTING_CHARACTERS = frozenset("-abcdefghijklmnopqrstuvwxyz0123456789_")


def _named_like_a_setting(name):
    words = name.split(".")
    return len(words) > 1 and all(word and _SETTING_CHARACTERS.issuperset(word) for word in words)


def _enforcing(flavour, java_opts):
    """Whether the JVM options set the property that enforces the checks (-D...=true)."""
    if flavour.enforce_property not in java_opts:
        return False
    import re

    return re.search(rf"-D{re.escape(flavour.enforce_property)}=true\b", java_opts) is not None


class _PastBudget(Exception):
    """Resolving a value would take the values past PLACEHOLDER_BUDGET."""


def _replace_placeholders(value, settings, environ, room):
    """value with ${NAME} and ${NAME:default} replaced; KeyError naming one that is unset,
    _PastBudget when it would grow past room characters."""
    if "${" not in value:
        return value
    import re

    for _ in range(PLACEHOLDER_ROUNDS):
        match = re.search(PLACEHOLDER, value)
        if match is None:
            break
        name, sep, default = match.group(1).partition(":")
        found = environ.get(name, settings.get(name) if isinstance(settings.get(name), str) else None)
        if found is None and not sep:
            raise KeyError(name)
        replacement = default if found is None else found
        if len(value) - len(match.group(0)) + len(replacement) > room:
            raise _PastBudget()
        value = value[:match.start()] + replacement + value[match.end():]
    return value


def _resolve_placeholders(settings, environ, notes):
    resolved, unset, room, past = {}, [], PLACEHOLDER_BUDGET, None
    for key, value in settings.items():
        items = []
        try:
            for item in value if isinstance(value, list) else [value]:
                items.append(_replace_placeholders(item, settings, environ, room))
                room -= len(items[-1])
        except KeyError as e:
            unset.append(f"[{key}] names ${{{e.args[0]}}}")
            continue
        except _PastBudget:
            past, room, items = past or key, 0, value if isinstance(value, list) else [value]
        resolved[key] = items if isinstance(value, list) else items[0]
    if past:
        notes.append(f"placeholders expand past [{PLACEHOLDER_BUDGET}] bytes at [{past}]: from there on, values "
                     "are judged as written")
    if unset:
        more = f" and [{len(unset) - 1}] more" if len(unset) > 1 else ""
        notes.append(f"{unset[0]}{more}, which is not set: the program refuses to start with an unresolved "
                     "placeholder; judged without that setting")
    return resolved


def search_settings(flavour, invocation, home):
    """(settings, notes, whether the config file was read), in the precedence the image applies
    them: file < -E arguments < environment, then ${...} placeholders resolved. Elasticsearch 8.3
    and later put the image's variables over the -E settings (EnvironmentAwareCommand
    putDockerEnvSettings); earlier images pass them as -E arguments too (elasticsearch-env), and
    a setting given twice stops the program ("already set"), so no order is wrong there."""
    env = invocation.environ
    named = bool(env.get(flavour.conf_env))
    conf_dir = env.get(flavour.conf_env) or flavour.conf_dir
    from_file, notes = config.read_yaml_settings(os.path.join(conf_dir, flavour.config_file),
                                                 flavour.config_file, named=named)
    settings = dict(from_file or {})
    args = list(invocation.argv[1:])
    for i, arg in enumerate(args):
        pair = args[i + 1] if arg == "-E" and i + 1 < len(args) else arg[2:] if arg.startswith("-E") else ""
        key, sep, value = pair.partition("=")
        if sep:
            settings[key] = value
    from_env = {}
    for name, value in env.items():
        # The official images take variables named like settings (lowercase, with a dot).
        if _named_like_a_setting(name):
            from_env[name] = value
        elif flavour.setting_env_prefix and name.startswith(flavour.setting_env_prefix):
            from_env[_setting_from_env_name(name, flavour.setting_env_prefix)] = value
    ignored = variables_ignored(flavour, invocation, home)
    if ignored is None:
        settings.update(from_env)
    elif from_env:
        notes.append(f"{ignored}: {', '.join(sorted(from_env))} left out, as it leaves them")
    return _resolve_placeholders(settings, env, notes), notes, from_file is not None


def variables_ignored(flavour, invocation, home):
    """Why the program will take no settings from variables, or None when it will (as in the image).
    home: the installation (installation()), None when unknown."""
    command = invocation.argv[0] if invocation.argv else ""
    if flavour.env_launcher and os.path.basename(command) == flavour.name:
        return f"{flavour.name} takes no settings from variables when started without {flavour.env_launcher}"
    kind = distribution_type(flavour, home)
    if kind not in (None, DOCKER_DISTRIBUTION):
        return f"the {kind} distribution takes no settings from variables, as its {flavour.env_script} says"
    return None


def distribution_type(flavour, home):
    """The distribution type the env script of the installation at home names (docker, tar, deb,
    rpm), or None when there is none to read: then variables count, as in the image (a preflight
    container without the program has its variables, not its files)."""
    if flavour.env_script is None or home is None:
        return None
    try:
        text = host.read_bytes(os.path.join(home, flavour.env_script))
    except host.Unreadable:
        return None
    import re

    found = re.findall(DISTRIBUTION_TYPE, text, re.MULTILINE)
    return found[-1].decode() if found else None  # a build-time placeholder (@es.distribution.type@) names none


def _hosts(settings, keys):
    """(the first of keys that holds hosts, its hosts as a list) or (None, []). A list setting
    given as text is split at commas (Settings.getAsList)."""
    for key in keys:
        value = settings.get(key)
        hosts = value if isinstance(value, list) else (value or "").split(",")
        hosts = [h.strip() for h in hosts if h.strip()]
        if hosts:
            return key, hosts
    return None, []


# java.net.InetAddress's address classes, which NetworkUtils and BootstrapChecks use; they differ
# from Python's ipaddress (a unique-local fc00::/7 address is not site-local to Java).
def java_loopback(address):
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def java_link_local(address):
    return address in _network("169.254.0.0/16" if address.version == 4 else "fe80::/10")


def java_site_local(address):
    if address.version == 6:
        return address in _network("fec0::/10")
    return any(address in _network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _network(text):
    import ipaddress

    return ipaddress.ip_network(text)


SPECIAL_HOSTS = {  # NetworkService.resolveInternal, NetworkUtils.get*Addresses
    "local": ("loopback", java_loopback),
    "site": ("site-local", java_site_local),
    "global": ("global", lambda a: not (java_loopback(a) or java_site_local(a) or java_link_local(a))),
}


class HostResolver:
    """Elasticsearch host specifications to addresses, as NetworkService.resolveInternal does,
    with this machine's interfaces (guard runs where the program will) read once, and each host
    name looked up once, all of them within host.RESOLVE_TIMEOUT: network.host alone is both the
    bind and the publish host, and a name server that never answers held guard for twice the
    wait."""

    def __init__(self):
        self._interfaces = None
        self._names = {}  # name: its addresses, or the Unreadable it gave
        self._deadline = None

    def interfaces(self):
        if self._interfaces is None:
            try:
                self._interfaces = host.network_interfaces()
            except host.Unreadable as e:
                self._interfaces = e
        if isinstance(self._interfaces, host.Unreadable):
            raise self._interfaces
        return self._interfaces

    def up_addresses(self, keep=lambda a: True):
        return [a for i in self.interfaces() if i.up for a in i.addresses if keep(a)]

    def _special(self, spec, name):
        base, family = name, None
        if name.endswith((":ipv4", ":ipv6")):
            base, family = name[:-5], int(name[-1])
        if base in SPECIAL_HOSTS:
            what, keep = SPECIAL_HOSTS[base]
            found = self.up_addresses(keep)
        else:
            matching = [i for i in self.interfaces() if i.name == base]
            if not matching:
                raise host.Unreadable(f"[{spec}] matches no network interface here")
            if not matching[0].up:
                raise host.Unreadable(f"[{spec}] matches interface [{base}], which is not up")
            what, found = f"interface [{base}]", matching[0].addresses
        found = [a for a in found if family is None or a.version == family]
        if not found:
            raise host.Unreadable(f"[{spec}]: no up-and-running {what} {'IPv' + str(family) + ' ' if family else ''}"
                                  "addresses here")
        return found

    def resolve(self, spec):
        """The addresses of one specification, or Unreadable: the program would not start with
        it (no such interface), or guard cannot tell (a name that does not resolve in time)."""
        import ipaddress

        if len(spec) > 1 and spec[0] == spec[-1] and spec[0] in "_#":
            return self._special(spec, spec[1:-1])
        try:
            return [ipaddress.ip_address(spec.strip("[]").split("%")[0])]
        except ValueError:
            pass
        return self._lookup(spec)

    def _lookup(self, name):
        import time

        if name not in self._names:
            now = time.monotonic()
            if self._deadline is None:
                self._deadline = now + host.RESOLVE_TIMEOUT
            try:
                if now >= self._deadline:
                    raise host.Unreadable(f"[{name}] was not looked up: the names before it took the "
                                          f"[{host.RESOLVE_TIMEOUT:g}] seconds guard waits for host names")
                self._names[name] = host.resolve_name(name, self._deadline - now)
            except host.Unreadable as e:
                self._names[name] = e
        if isinstance(self._names[name], host.Unreadable):
            raise self._names[name]
        return self._names[name]


def _describe(key, spec, addresses):
    where = f"{key} [{spec}]" if key else f"the default [{spec}]"
    shown = ", ".join(dict.fromkeys(str(a) for a in addresses))
    return where if shown == spec.strip("[]") else f"{where} = {shown}"


def transport_mode(settings, file_read, resolver):
    """(enforced, note) from where the transport binds and publishes, as
    BootstrapChecks.enforceLimits decides: enforced unless every bound address and the publish
    address are loopback (isLoopbackAddress; link-local addresses count as beyond loopback)."""
    bind_key, bind = _hosts(settings, BIND_SETTINGS)
    publish_key, publish = _hosts(settings, PUBLISH_SETTINGS)
    if bind_key is None and publish_key is None and not file_read:
        # Elasticsearch alone binds _local_, but its official image sets network.host 0.0.0.0 in
        # the elasticsearch.yml guard could not read here (a preflight container has none): the
        # image's side is the stricter one.
        return True, ("production mode (no network.host or transport setting given, and no elasticsearch.yml "
                      "to read here: taken as the official image's network.host [0.0.0.0], beyond loopback): "
                      "checks are enforced")
    candidates, unresolved = [], []
    for key, specs, publishing in ((bind_key, bind or [DEFAULT_HOST], False),
                                   (publish_key, publish or [DEFAULT_HOST], True)):
        addresses = []
        for spec in specs:
            try:
                addresses += [(key, spec, a) for a in resolver.resolve(spec)]
            except host.Unreadable as e:
                unresolved.append(str(e))
        if publishing and len(addresses) == 1 and addresses[0][2].is_unspecified:
            # NetworkService.resolvePublishHostAddresses: a lone wildcard publishes one of the
            # up interfaces' addresses, loopback ones last (NetworkUtils.sortKey).
            try:
                addresses = [(key, addresses[0][1], a) for a in resolver.up_addresses()]
            except host.Unreadable as e:
                unresolved.append(str(e))
        candidates += addresses
    beyond = [c for c in candidates if not java_loopback(c[2])]
    if beyond:
        key, spec, address = beyond[0]
        return True, f"production mode ({_describe(key, spec, [address])}, beyond loopback): checks are enforced"
    if unresolved:
        return True, f"production mode ({unresolved[0]}: taken as beyond loopback): checks are enforced"
    by_spec = {}
    for key, spec, address in candidates:
        by_spec.setdefault((key, spec), []).append(address)
    where = "; ".join(_describe(key, spec, addresses) for (key, spec), addresses in by_spec.items())
    return False, f"bound and published on loopback only ({where}): failures are warnings, as in development mode"


def _enforced(flavour, settings, environ, file_read, resolver):
    """Production mode decides whether failures refuse or warn (BootstrapChecks.enforceLimits)."""
    java_opts = environ.get(flavour.java_opts_env, "")
    if _enforcing(flavour, java_opts):
        return True, f"-D{flavour.enforce_property}=true: checks are enforced"
    if settings.get("discovery.type") == "single-node":
        return False, "discovery.type=single-node: failures are warnings, as in development mode"
    return transport_mode(settings, file_read, resolver)


def _boolean(settings, key, default, notes):
    """A boolean setting as Booleans.parseBoolean reads it: only "true" or "false"."""
    value = settings.get(key, default)
    if value in ("true", "false"):
        return value == "true"
    notes.append(f"{key} [{value}] must be [true] or [false]: the program refuses it; judged on the default [{default}]")
    return default == "true"


def _home_above(script):
    """The installation a launcher script belongs to, as elasticsearch-env finds it: the script's
    real path, up to its bin folder, and that folder's parent. None when no folder is named bin."""
    folder = os.path.dirname(os.path.realpath(script))
    while os.path.basename(folder) != "bin":
        if folder == os.path.dirname(folder):
            return None
        folder = os.path.dirname(folder)
    return os.path.dirname(folder)


def installation(flavour, invocation):
    """(home, named): the installation the program will run from; home is None for a launcher
    script with no bin folder above it. The script derives its home from its own path, so the
    command's path comes first (or where PATH finds the bare name), then the home variable
    ($ES_HOME), then the official image's home. named: the user said where (a path, the variable)."""
    command = invocation.argv[0] if invocation.argv else ""
    if os.path.basename(command) == flavour.name:
        script = command if "/" in command else on_path(command, invocation.environ)
        if script:
            return _home_above(script), "/" in command
    if invocation.environ.get(flavour.home_env):
        return invocation.environ[flavour.home_env], True
    return flavour.home_dir, False


def installed_version(flavour, home):
    """((major, minor, patch), jar path) from the name of the server jar in home/lib
    (lib/elasticsearch-8.17.0.jar), or Unreadable with the reason. The folder is only listed:
    nothing in it is opened."""
    lib = os.path.join(home, "lib")
    try:
        if not stat.S_ISDIR(os.stat(lib).st_mode):
            raise host.Unreadable(f"{lib} is not a directory")
        with os.scandir(lib) as entries:
            names = [entry.name for entry in entries]
    except OSError as e:
        raise host.Unreadable(f"cannot list {lib}: {e.strerror or e}") from None
    import re  # here: a host without the installation (a preflight container) never needs it

    jar = re.compile(re.escape(flavour.name) + r"-([0-9]+)\.([0-9]+)\.([0-9]+)(-[0-9A-Za-z.]+)?\.jar")
    found = {name: jar.fullmatch(name) for name in names}
    jars = sorted(name for name, match in found.items() if match)
    versions = {tuple(int(part) for part in found[name].groups()[:3]) for name in jars}
    if len(versions) != 1:
        what = f"[{', '.join(jars)}]" if jars else "none"
        raise host.Unreadable(f"{lib} names one version in {flavour.name}-X.Y.Z.jar, but holds {what}")
    return versions.pop(), os.path.join(lib, jars[0])


def advised_map_count(flavour, invocation, found, notes):
    """The docs' vm.max_map_count beyond the bootstrap check, as a warning, when the installed
    version is one the advice is for. A version that cannot be read leaves the check out (today's
    behaviour), with a note only when the user said where the installation is (found: what
    installation() gives)."""
    advice = flavour.map_count_advice
    if advice is None:
        return []
    home, named = found
    try:
        if home is None:
            raise host.Unreadable(f"no folder named bin above {invocation.argv[0]}")
        version, jar = installed_version(flavour, home)
    except host.Unreadable as e:
        if named:
            notes.append(f"version unknown ({e}): the docs' vm.max_map_count advice for "
                         f"{'.'.join(map(str, advice.since))} and later is not checked")
        return []
    notes.append(f"version [{'.'.join(map(str, version))}] ({jar})")
    if version[:2] < advice.since:
        return []
    return [Requirement("vm.max_map_count", ">=", advice.value, False, name="max-map-count-recommended",
                        source=advice.source)]


def search_plan(flavour, invocation):
    found = installation(flavour, invocation)  # once: a PATH lookup and a realpath
    settings, file_notes, file_read = search_settings(flavour, invocation, found[0])
    hard, mode_note = _enforced(flavour, settings, invocation.environ, file_read, HostResolver())
    notes = [mode_note] + file_notes
    source = "BootstrapChecks."
    reqs = []
    if _boolean(settings, "node.store.allow_mmap", "true", notes):
        reqs.append(Requirement("vm.max_map_count", ">=", ES_MAX_MAP_COUNT, hard,
                                source=source + "MaxMapCountCheck (1 << 18)"))
        reqs += advised_map_count(flavour, invocation, found, notes)
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
        reqs += [
            Requirement("memlock", ">=", JVM_SMALLEST_ADDRESS_SPACE, hard, name="memory-lock",
                        source=source + "MlockallCheck (bootstrap.memory_lock=true): mlockall fails "
                        "below the JVM's address space"),
            Requirement("memlock", ">=", UNLIMITED, False, name="memory-lock-recommended",
                        source="docs (Disable swapping; OpenSearch: Important settings): memlock unlimited"),
        ]
    return Plan(reqs, notes)


def elasticsearch_plan(invocation):
    return search_plan(ELASTICSEARCH, invocation)


def opensearch_plan(invocation):
    return search_plan(OPENSEARCH, invocation)


def wazuh_indexer_plan(invocation):
    return search_plan(WAZUH_INDEXER, invocation)
