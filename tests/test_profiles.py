import json
import os
import resource
import shutil
import subprocess
import sys
import time

import pytest

from guard import profiles
from guard.host import UNLIMITED
from guard.profiles import Invocation, kafka
from support import crafted_proc, guard_executable, in_own_namespaces


def plan(name, argv=(), env=None):
    return profiles.PROFILES[name].plan(Invocation(tuple(argv), dict(env or {})))


def by_key(p):
    return {r.key: r for r in p.requirements}


def names(p):
    return [r.name for r in p.requirements]


# --- detection ---

@pytest.mark.parametrize("argv,expected", [
    (["/usr/share/elasticsearch/bin/elasticsearch"], "elasticsearch"),
    (["docker-entrypoint.sh", "eswrapper"], "elasticsearch"),
    (["/usr/local/bin/docker-entrypoint.sh", "redis-server", "--port", "0"], "redis"),
    (["tini", "--", "redis-server"], "redis"),
    (["gosu", "redis", "redis-server"], "redis"),
    (["env", "A=b", "kafka-server-start.sh", "config/server.properties"], "kafka"),
    (["opensearch-docker-entrypoint.sh"], "opensearch"),
    (["mongod", "--bind_ip_all"], "mongodb"),
    (["cassandra", "-f"], "cassandra"),
    (["/opt/sonarqube/bin/linux-x86-64/sonar.sh", "console"], "sonarqube"),
    (["nice", "-n", "10", "redis-server"], "redis"),
    (["setpriv", "--reuid", "redis", "--init-groups", "redis-server"], "redis"),
    (["numactl", "--interleave", "all", "mongod"], "mongodb"),
    (["numactl", "--interleave=all", "mongod"], "mongodb"),
    (["/__cacert_entrypoint.sh", "/etc/kafka/docker/run"], "kafka"),  # the apache/kafka image's
    # The images of the servers the profiles know, as their ENTRYPOINT and CMD start them.
    (["/usr/local/bin/docker-entrypoint.sh", "valkey-server"], "valkey"),
    (["setpriv", "--reuid=valkey", "--regid=valkey", "--clear-groups", "--", "/usr/local/bin/docker-entrypoint.sh",
      "valkey-server"], "valkey"),  # valkey-container's entrypoint, after it re-execs itself
    (["docker-entrypoint.sh", "keydb-server", "/etc/keydb/keydb.conf"], "keydb"),
    (["gosu", "keydb", "keydb-server"], "keydb"),
    (["/usr/bin/tini", "--", "entrypoint.sh", "dragonfly", "--logtostderr"], "dragonfly"),
    (["setpriv", "--reuid=dfly", "--regid=dfly", "--clear-groups", "--", "dragonfly"], "dragonfly"),
    (["/entrypoint.sh", "clickhouse", "su", "101:101", "/usr/bin/clickhouse-server", "--config-file=/c.xml"],
     "clickhouse"),
    (["clickhouse", "server", "--config-file=/c.xml"], "clickhouse"),
    (["clickhouse", "client"], None),
    (["clickhouse", "su", "101:101", "clickhouse-client"], None),
    (["/usr/bin/scylla", "--developer-mode=1"], "scylladb"),
    (["docker-entrypoint.sh", "solr-foreground"], "solr"),
    (["tini", "--", "solr", "start", "-f"], "solr"),
    (["runuser", "-u", "solr", "--", "solr", "start", "-f"], "solr"),
    (["runuser", "--user=solr", "--", "solr", "start", "-f"], "solr"),
    (["runuser", "--user", "solr", "-g", "solr", "solr", "start"], "solr"),
    (["docker-entrypoint.sh", "solr-precreate", "gettingstarted"], "solr"),
    (["docker-entrypoint.sh", "solr-create", "-c", "mycore"], "solr"),
    (["docker-entrypoint.sh", "solr-demo"], "solr"),
    (["su-exec", "valkey:valkey", "valkey-server", "/etc/valkey.conf"], "valkey"),
    (["tini", "-g", "--", "/startup/docker-entrypoint.sh", "neo4j"], "neo4j"),
    (["tini", "--", "/entrypoint.sh", "graylog-datanode"], "graylog-datanode"),
    (["/usr/share/wazuh-indexer/bin/opensearch"], "wazuh-indexer"),
    (["/bin/weaviate", "--host", "0.0.0.0", "--port", "8080", "--scheme", "http"], "weaviate"),
    (["chroot", "--userspec=1000:1000", "/", "/qdrant/qdrant"], "qdrant"),
    (["runuser", "solr", "-c", "solr start"], None),  # a shell: guard does not follow it
    (["/usr/local/bin/run"], None),  # only the image's run script is Kafka's
    (["gosu", "kafka", "/bin/sh", "-c", "x"], None),
    (["chroot", "/opt/cassandra", "/bin/true"], None),
    (["python3", "redis-server"], None),
    (["docker-entrypoint.sh", "postgres"], None),
    ([], None),
])
def test_profile_is_detected_from_the_command_past_launchers(argv, expected):
    found = profiles.detect(argv)
    assert (found.name if found else None) == expected


def test_an_entrypoint_that_starts_its_image_program_itself_is_known_by_the_image(tmp_path, monkeypatch):
    # The ClickHouse image has no CMD: its /entrypoint.sh alone starts clickhouse-server.
    marker = tmp_path / "clickhouse-server"
    monkeypatch.setattr(profiles, "IMAGE_ENTRYPOINTS", {"/entrypoint.sh": (str(marker), "clickhouse")})
    assert profiles.locate(["/entrypoint.sh"]) == (None, 1)  # another image's /entrypoint.sh
    marker.touch()
    assert profiles.locate(["/entrypoint.sh"])[0].name == "clickhouse"
    assert profiles.locate(["tini", "--", "/entrypoint.sh", "--config-file=/c.xml"]) == (
        profiles.PROFILES["clickhouse"], 2)
    assert profiles.detect(["/entrypoint.sh", "graylog-datanode"]).name == "graylog-datanode"


def test_a_fixed_path_other_images_use_too_is_the_profiles_only_in_its_image(tmp_path, monkeypatch):
    # ScyllaDB's /docker-entrypoint.py: another image's script of that name (on a host with many
    # CPUs) must not meet ScyllaDB's refusal of fs.aio-max-nr.
    marker = tmp_path / "scylla_dev_mode_setup"
    monkeypatch.setattr(profiles, "IMAGE_MARKERS", {"/docker-entrypoint.py": str(marker)})
    assert profiles.detect(["/docker-entrypoint.py", "--smp", "2"]) is None
    assert profiles.detect(["tini", "--", "/docker-entrypoint.py"]) is None
    marker.touch()
    assert profiles.locate(["/docker-entrypoint.py", "--smp", "2"]) == (profiles.PROFILES["scylladb"], 0)


def test_a_program_named_as_another_is_known_by_its_images_layout(tmp_path, monkeypatch):
    # The Wazuh indexer's CMD is plain opensearch, in /usr/share/wazuh-indexer.
    home = tmp_path / "wazuh-indexer"
    monkeypatch.setattr(profiles, "IMAGE_PROGRAMS", {"opensearch": (str(home), "wazuh-indexer")})
    assert profiles.detect(["/entrypoint.sh", "opensearch"]).name == "opensearch"
    home.mkdir()
    assert profiles.detect(["/entrypoint.sh", "opensearch"]).name == "wazuh-indexer"


def test_a_relative_command_is_matched_against_an_images_fixed_path(monkeypatch):
    # Qdrant's CMD is ./entrypoint.sh in WORKDIR /qdrant.
    monkeypatch.chdir("/")
    assert profiles.detect(["qdrant/entrypoint.sh"]).name == "qdrant"
    assert profiles.detect(["./entrypoint.sh"]) is None


@pytest.mark.parametrize("launchers", [[], ["docker-entrypoint.sh"], ["tini", "--", "gosu", "redis"],
                                       ["env", "A=b", "nice", "-n", "5"]])
def test_settings_are_read_from_the_program_arguments_past_launchers(tmp_path, launchers):
    conf = tmp_path / "redis.conf"
    conf.write_text("tcp-backlog 8192\nmaxclients 50000\n")
    argv = [*launchers, "redis-server", str(conf), "--port", "0"]
    reqs = by_key(plan("redis", profiles.program_argv(profiles.PROFILES["redis"], argv)))
    assert (reqs["net.core.somaxconn"].value, reqs["nofile.hard"].value) == (8192, 50032)


def test_kafka_settings_past_the_image_entrypoint(tmp_path):
    logs = tmp_path / "logs"
    make_segments(logs, 2, 3)
    props = tmp_path / "server.properties"
    props.write_text(f"log.dirs={logs}\n")
    argv = ["docker-entrypoint.sh", "kafka-server-start.sh", str(props)]
    assert "6 segments" in plan("kafka", profiles.program_argv(profiles.PROFILES["kafka"], argv)).notes[0]


# --- Elasticsearch / OpenSearch ---

def test_elasticsearch_defaults_mirror_bootstrap_checks():
    reqs = by_key(plan("elasticsearch"))
    assert reqs["vm.max_map_count"].value == 262144
    assert reqs["nofile.hard"].value == 65535
    assert reqs["nproc"].value == 4096
    assert reqs["as"].value == reqs["fsize"].value == UNLIMITED
    assert "memlock" not in reqs
    assert all(r.hard for r in reqs.values())


@pytest.mark.parametrize("argv,env", [
    ([], {"discovery.type": "single-node"}),
    (["elasticsearch", "-Ediscovery.type=single-node"], {}),
    (["elasticsearch", "-E", "discovery.type=single-node"], {}),
    ([], {"ES_SETTING_DISCOVERY_TYPE": "single-node"}),
    ([], {"network.host": "127.0.0.1"}),
])
def test_single_node_or_loopback_turns_failures_into_warnings(argv, env):
    p = plan("elasticsearch", argv, env)
    assert not any(r.hard for r in p.requirements)
    assert "warnings" in p.notes[0]


@pytest.mark.parametrize("yml", [
    'network.host: ["127.0.0.1", "::1"]\n',
    "network.host:\n  - 127.0.0.1\n  - '::1'\n",
    "network:\n  host: _local_\n",
])
def test_loopback_lists_in_the_config_file_are_development_mode(tmp_path, yml):
    (tmp_path / "elasticsearch.yml").write_text(yml)
    p = plan("elasticsearch", ["elasticsearch"], {"ES_PATH_CONF": str(tmp_path)})
    assert not any(r.hard for r in p.requirements), p.notes


@pytest.mark.parametrize("env,arg,enforced", [
    ({"discovery.type": "single-node"}, "-Ediscovery.type=multi-node", False),
    ({"ES_SETTING_DISCOVERY_TYPE": "multi-node"}, "-Ediscovery.type=single-node", True),
])
def test_the_image_variables_win_over_e_arguments_as_in_elasticsearch_8(env, arg, enforced):
    # EnvironmentAwareCommand (8.3 on, elastic/elasticsearch#85913) puts the Docker variables over
    # the -E settings; before, a setting given both ways stopped Elasticsearch (already set)
    p = plan("elasticsearch", ["elasticsearch", arg], env)
    assert all(r.hard for r in p.requirements) if enforced else not any(r.hard for r in p.requirements)


def test_enforce_property_wins_over_single_node():
    p = plan("elasticsearch", [], {"discovery.type": "single-node",
                                   "ES_JAVA_OPTS": "-Xms1g -Des.enforce.bootstrap.checks=true"})
    assert all(r.hard for r in p.requirements)


def test_opensearch_reads_its_own_property_and_variables():
    p = plan("opensearch", [], {"discovery.type": "single-node",
                                "OPENSEARCH_JAVA_OPTS": "-Dopensearch.enforce.bootstrap.checks=true"})
    assert all(r.hard for r in p.requirements)
    assert not any(r.hard for r in plan("opensearch", [], {"ES_SETTING_DISCOVERY_TYPE": "x",
                                                          "discovery.type": "single-node"}).requirements)


def test_allow_mmap_false_drops_the_map_count_check():
    p = plan("elasticsearch", ["elasticsearch", "-Enode.store.allow_mmap=false"])
    assert "vm.max_map_count" not in by_key(p)
    assert any("allow_mmap" in n for n in p.notes)


def test_memory_lock_adds_the_memlock_checks():
    p = plan("elasticsearch", [], {"bootstrap.memory_lock": "true"})
    assert [(r.name, r.value) for r in p.requirements if r.key == "memlock"] == [
        ("memory-lock", 512 << 20), ("memory-lock-recommended", UNLIMITED)]


def test_config_file_is_read_flat_or_nested_and_arguments_override_it(tmp_path):
    (tmp_path / "elasticsearch.yml").write_text(
        "cluster.name: docker-cluster\nnetwork.host: 0.0.0.0\n"
        "bootstrap:\n  memory_lock: true\nnode:\n  store:\n    allow_mmap: false  # data on NFS\n")
    env = {"ES_PATH_CONF": str(tmp_path)}
    reqs = by_key(plan("elasticsearch", ["elasticsearch"], env))
    assert "memlock" in reqs and "vm.max_map_count" not in reqs
    reqs = by_key(plan("elasticsearch", ["elasticsearch", "-Enode.store.allow_mmap=true"], env))
    assert "vm.max_map_count" in reqs


def test_unreadable_config_file_leaves_the_defaults_and_says_which_file(tmp_path):
    p = plan("elasticsearch", [], {"ES_PATH_CONF": str(tmp_path / "missing")})
    reqs = by_key(p)
    assert "vm.max_map_count" in reqs and "memlock" not in reqs
    assert p.notes[1] == (f"elasticsearch.yml: cannot read {tmp_path}/missing/elasticsearch.yml: "
                          "No such file or directory; judged without its settings")


def test_the_default_config_file_missing_is_no_news():
    assert len(plan("elasticsearch", ["elasticsearch"], {}).notes) == 1  # only the mode


def es_conf(tmp_path, yml):
    (tmp_path / "elasticsearch.yml").write_text(yml)
    return {"ES_PATH_CONF": str(tmp_path)}


@pytest.mark.parametrize("yml,env,enforced", [
    ("discovery: {type: single-node}\nnetwork.host: 0.0.0.0\n", {}, False),
    ("x: |\n  discovery.type: single-node\nnetwork.host: 0.0.0.0\n", {}, True),
    ("cluster.name: docker-cluster\n", {}, False),  # the file sets no host: ES binds _local_
    ("network.host: 0.0.0.0\n", {}, True),
    ("network.host: '::'\n", {}, True),
    ("network.host: 169.254.1.1\n", {}, True),  # link-local is beyond loopback to enforceLimits
    ("network.host: '[::1]'\n", {}, False),
    ("network.host: ::ffff:127.0.0.1\n", {}, False),
    ("network.host: localhost\n", {}, False),
    ("transport.host: 127.0.0.1\nnetwork.host: 0.0.0.0\n", {}, False),  # only HTTP is beyond
    ("network.host: 0.0.0.0\ntransport.bind_host: 127.0.0.1\ntransport.publish_host: 127.0.0.1\n", {}, False),
    ("network.bind_host: 127.0.0.1\nnetwork.publish_host: 10.0.0.1\n", {}, True),
    ("network.host: _local:ipv4_\n", {}, False),
    ("network.host: ${BIND}\n", {"BIND": "127.0.0.1"}, False),
    ("network.host: ${BIND}\n", {"BIND": "0.0.0.0"}, True),
    ("network.host: ${UNSET_IN_THIS_TEST:127.0.0.1}\n", {}, False),
    ("discovery.type: ${MODE}\n", {"MODE": "single-node", "network.host": "0.0.0.0"}, False),
])
def test_production_mode_is_decided_as_enforce_limits_decides(tmp_path, yml, env, enforced):
    p = plan("elasticsearch", ["elasticsearch"], {**es_conf(tmp_path, yml), **env})
    assert all(r.hard == enforced for r in p.requirements), p.notes
    assert p.notes[0].startswith("production mode" if enforced else ("bound and published", "discovery.type"))


def test_an_unresolved_placeholder_is_a_note_and_the_setting_is_left_out(tmp_path):
    p = plan("elasticsearch", ["elasticsearch"], es_conf(tmp_path, "network.host: ${NOT_SET_HERE}\n"))
    assert p.notes[1] == ("[network.host] names ${NOT_SET_HERE}, which is not set: the program refuses to "
                          "start with an unresolved placeholder; judged without that setting")
    assert not any(r.hard for r in p.requirements)  # the file was read and sets no host: _local_


@pytest.mark.parametrize("yml,reason", [
    ("network.host: [0.0.0.0\n", "not valid YAML"),
    ("discovery.type: a\ndiscovery.type: b\n", "duplicate key [discovery.type] at line 2"),
    ("network.host:\n", "[network.host] has no value (line 1)"),
])
def test_yaml_elasticsearch_refuses_is_a_note_and_the_rest_is_judged(tmp_path, yml, reason):
    env = {**es_conf(tmp_path, yml), "discovery.type": "single-node"}
    p = plan("elasticsearch", ["elasticsearch"], env)
    assert p.notes[1].startswith(f"elasticsearch.yml [{tmp_path}/elasticsearch.yml] cannot be used: {reason}")
    assert p.notes[1].endswith("the program refuses it too; judged without its settings")
    assert not any(r.hard for r in p.requirements)  # discovery.type from the environment still counts


def test_a_boolean_elasticsearch_refuses_is_a_note_and_the_default(tmp_path):
    p = plan("elasticsearch", ["elasticsearch"], es_conf(tmp_path, "bootstrap.memory_lock: yes\n"))
    assert "memlock" not in by_key(p)
    assert "bootstrap.memory_lock [yes] must be [true] or [false]: the program refuses it; " \
           "judged on the default [false]" in p.notes


NETNS = shutil.which("unshare") and shutil.which("ip")


def mode_in_fresh_network(tmp_path, setup, *es_args):
    """guard check's JSON for elasticsearch ES_ARGS, run in a network namespace of its own (only
    its loopback interface, set up with ip commands): the interfaces are real, and the host's
    are untouched."""
    if os.geteuid() != 0 or not NETNS:
        pytest.skip("needs root, unshare(1) and ip(8) for a network namespace of its own")
    (tmp_path / "elasticsearch.yml").write_text("cluster.name: netns\n")
    script = "".join(f"ip {command} && " for command in setup) + 'exec "$@"'
    argv = ["unshare", "--net", "sh", "-c", script, "sh", guard_executable(), "check", "--format", "json",
            "--", "elasticsearch", *es_args]
    done = subprocess.run(argv, capture_output=True, timeout=60, env={**os.environ, "ES_PATH_CONF": str(tmp_path)})
    if done.returncode not in (0, 78) and b"unshare" in done.stderr:
        pytest.skip(f"unshare --net is not allowed here: {done.stderr.decode(errors='replace')}")
    report = json.loads(done.stdout)
    return all(c["hard"] for c in report["checks"]), report["notes"][0]


LO_UP = ["link set lo up"]
LO_WITH_A_SERVICE_ADDRESS = LO_UP + ["addr add 10.9.8.7/32 dev lo"]


@pytest.mark.parametrize("setup,args,enforced,note", [
    (LO_UP, ["-Enetwork.host=_local_"], False, "network.host [_local_] = 127.0.0.1, ::1"),
    (LO_UP, ["-Enetwork.host=_lo_"], False, "network.host [_lo_] = 127.0.0.1, ::1"),
    (LO_UP, [], False, "the default [_local_]"),
    (LO_UP, ["-Enetwork.bind_host=127.0.0.1", "-Enetwork.publish_host=0.0.0.0"], False, "loopback only"),
    (LO_WITH_A_SERVICE_ADDRESS, ["-Enetwork.host=_lo_"], True, "network.host [_lo_] = 10.9.8.7"),
    (LO_WITH_A_SERVICE_ADDRESS, ["-Enetwork.host=_local_"], False, "loopback only"),
    (LO_WITH_A_SERVICE_ADDRESS, ["-Enetwork.host=_site_"], True, "network.host [_site_] = 10.9.8.7"),
    (LO_WITH_A_SERVICE_ADDRESS, ["-Enetwork.host=_lo:ipv6_"], False, "network.host [_lo:ipv6_] = ::1"),
    (LO_WITH_A_SERVICE_ADDRESS, ["-Enetwork.bind_host=127.0.0.1", "-Enetwork.publish_host=0.0.0.0"], True,
     "network.publish_host [0.0.0.0] = 10.9.8.7"),
    (LO_UP, ["-Enetwork.host=_eth9_"], True, "[_eth9_] matches no network interface here"),
    ([], ["-Enetwork.host=_local_"], True, "[_local_]: no up-and-running loopback addresses here"),
    ([], ["-Enetwork.host=_lo_"], True, "[_lo_] matches interface [lo], which is not up"),
], ids=["local", "lo", "default", "publish-wildcard-only-lo", "lo-with-service-address", "local-skips-it",
        "site", "lo-ipv6", "publish-wildcard", "no-such-interface", "lo-down", "lo-down-by-name"])
def test_special_hosts_resolve_against_the_real_interfaces(tmp_path, setup, args, enforced, note):
    hard, mode = mode_in_fresh_network(tmp_path, setup, *args)
    assert hard == enforced, mode
    assert note in mode


def test_a_host_name_with_no_thread_left_to_resolve_it_is_taken_as_beyond_loopback(tmp_path):
    # nobody may run one process, guard itself, and threads count as processes: the lookup's
    # thread cannot start. Root is exempt from nproc, so guard runs with nobody as its real user,
    # without the capabilities that lift the limit. The nproc check then says what is wrong.
    (tmp_path / "elasticsearch.yml").write_text("network.host: localhost\n")
    argv = ["setpriv", "--ruid", "65534", "--bounding-set", "-sys_resource,-sys_admin", guard_executable(), "check",
            "--format", "json", "--", "elasticsearch"]
    done = subprocess.run(argv, capture_output=True, timeout=30, env={**os.environ, "ES_PATH_CONF": str(tmp_path)},
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NPROC, (1, 1)))
    assert done.returncode == 78, done.stderr
    report = json.loads(done.stdout)
    assert report["notes"][0] == ("production mode (cannot resolve [localhost]: no thread to wait for the lookup "
                                  "with: can't start new thread: taken as beyond loopback): checks are enforced")
    assert {c["name"]: c["status"] for c in report["checks"]}["max-threads"] == "fail"


SILENT_RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n"  # 10 s a name, unbounded


def check_in_own_namespaces(tmp_path, es_args, binds):
    """(seconds, guard check's JSON) for elasticsearch ES_ARGS, with a name server that never answers."""
    (tmp_path / "elasticsearch.yml").write_text("cluster.name: lookups\n")
    argv = in_own_namespaces([guard_executable(), "check", "--format", "json", "--", "elasticsearch", *es_args],
                             binds=binds, silent_name_server=True)
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, timeout=60, env={**os.environ, "ES_PATH_CONF": str(tmp_path)})
    took = time.monotonic() - started
    assert done.returncode == 78, done.stderr
    return took, json.loads(done.stdout)


@pytest.mark.parametrize("es_args,note", [
    (["-Enetwork.host=es-node.example"], "resolving [es-node.example] took more than [2] seconds"),
    (["-Enetwork.bind_host=es-a.example", "-Enetwork.publish_host=es-b.example"],
     "resolving [es-a.example] took more than [2] seconds"),
    (["-Enetwork.bind_host=es-a.example,es-b.example,es-c.example"],
     "resolving [es-a.example] took more than [2] seconds"),
], ids=["one-name-bind-and-publish", "two-names", "three-names"])
def test_host_names_no_name_server_answers_hold_guard_two_seconds_in_all(tmp_path, es_args, note):
    # The README's bound: 2 seconds for every name of a run together. network.host is both the
    # bind and the publish host, and was looked up twice (4.07 s); each name more added 2 s.
    (tmp_path / "resolv.conf").write_text(SILENT_RESOLV_CONF)
    took, report = check_in_own_namespaces(tmp_path, es_args, [(tmp_path / "resolv.conf", "/etc/resolv.conf")])
    assert report["notes"][0] == f"production mode ({note}: taken as beyond loopback): checks are enforced"
    assert 2 <= took < 3.5, f"guard waited {took:.2f} s for the names"


def test_a_name_is_not_looked_up_when_a_resolver_file_is_a_fifo(tmp_path):
    # getaddrinfo opens /etc/hosts: a FIFO there would hold the lookup (and take what a writer
    # meant for the program). guard says so at once instead.
    os.mkfifo(tmp_path / "hosts")
    took, report = check_in_own_namespaces(tmp_path, ["-Enetwork.host=es-node.example"],
                                           [(tmp_path / "hosts", "/etc/hosts")])
    assert report["notes"][0] == (
        "production mode ([es-node.example] was not looked up: /etc/hosts is a FIFO or pipe, not a regular file: "
        "not read (reading it would wait for a writer or take what the program is to read): taken as beyond "
        "loopback): checks are enforced")
    assert took < 2, f"guard waited {took:.2f} s"


@pytest.mark.parametrize("variable", ["HOSTALIASES", "RESOLV_HOST_CONF"])
def test_a_name_is_not_looked_up_when_a_file_the_environment_names_for_the_resolver_is_a_pipe(tmp_path, variable):
    # glibc's resolver opens the file HOSTALIASES names (res_query.c, for a name without a dot)
    # and the one RESOLV_HOST_CONF names in place of /etc/host.conf (res_hconf.c): naming
    # /dev/stdin, the lookup read the program's input away before the program started.
    (tmp_path / "elasticsearch.yml").write_text("network.host: es-node\n")
    program = ["sh", "-c", 'echo "the program read [$(cat)]"', "elasticsearch"]
    done = subprocess.run([guard_executable(), "--profile", "elasticsearch", "--mode", "warn", "--", *program],
                          input=b"its input", capture_output=True, timeout=30,
                          env={**os.environ, "ES_PATH_CONF": str(tmp_path), variable: "/dev/stdin"})
    assert done.stdout == b"the program read [its input]\n", done.stderr
    assert (f"production mode ([es-node] was not looked up: {variable} names /dev/stdin, which is a FIFO or pipe, "
            "not a regular file: not read") in done.stderr.decode(), done.stderr

# --- Kafka ---

def make_segments(log_dir, partitions, segments_each):
    for p in range(partitions):
        part = log_dir / f"topic-{p}"
        part.mkdir(parents=True)
        for s in range(segments_each):
            for suffix in (".log", ".index", ".timeindex"):
                (part / f"{s * 1000:020d}{suffix}").touch()


def test_kafka_derives_the_map_requirements_from_segments_on_disk(tmp_path):
    logs = tmp_path / "logs"
    make_segments(logs, partitions=10, segments_each=30)
    props = tmp_path / "server.properties"
    props.write_text(f"broker.id=0\nlog.dirs={logs}\n")
    p = plan("kafka", ["kafka-server-start.sh", str(props)])
    on_disk, headroom = [r for r in p.requirements if r.key == "vm.max_map_count"]
    assert (on_disk.name, on_disk.value, on_disk.hard) == ("max-map-count", 2 * 300 + kafka.KAFKA_JVM_OWN_MAPS, True)
    assert (headroom.name, headroom.value, headroom.hard) == ("max-map-count-headroom", kafka.kafka_maps_needed(300),
                                                              False)
    assert "300 segments" in p.notes[0]


def test_kafka_many_segments_need_more_than_the_default_limit(tmp_path):
    logs = tmp_path / "logs"
    make_segments(logs, partitions=4, segments_each=9000)
    p = plan("kafka", ["kafka-server-start.sh", "--override", f"log.dirs={logs}"])
    assert {r.name: r for r in p.requirements}["max-map-count"].value > 65530


def test_kafka_log_dir_that_cannot_be_listed_is_not_zero_segments(tmp_path):
    logs = tmp_path / "logs"
    make_segments(logs, 2, 3)
    props = tmp_path / "server.properties"
    props.write_text(f"log.dirs={logs}\n")
    code = ("from guard import profiles; p = profiles.PROFILES['kafka'].plan(profiles.Invocation("
            f"('kafka-server-start.sh', {str(props)!r}))); r = p.requirements[0]; print(r.hard, r.value, p.notes[0])")
    # A preflight container runs as a user that cannot list the broker's volume; root lists
    # through mode 0, so the child drops the DAC capabilities to meet the same denial.
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    os.chmod(logs, 0)
    try:
        out = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    finally:
        os.chmod(logs, 0o755)
    assert out.stdout.startswith(f"False {kafka.KAFKA_DEFAULT_MAP_COUNT}"), out
    assert "cannot count the segments in log.dirs" in out.stdout and "not readable here" in out.stdout


def test_kafka_environment_sets_log_dirs(tmp_path):
    logs = tmp_path / "data"
    make_segments(logs, 1, 2)
    assert "2 segments" in plan("kafka", ["kafka"], {"KAFKA_LOG_DIRS": str(logs)}).notes[0]


@pytest.fixture
def kafka_image(tmp_path, monkeypatch):
    """The apache/kafka image's two server.properties, in a folder of the test's own: the default
    (Kafka's KRaft example) and, once written, the one mounted at /mnt/shared/config."""
    default, mounted = tmp_path / "etc-kafka-docker.properties", tmp_path / "mnt-shared-config.properties"
    default.write_text("process.roles=broker,controller\nlog.dirs=/tmp/kraft-combined-logs\n")
    monkeypatch.setattr(kafka, "KAFKA_IMAGE_DEFAULT_PROPERTIES", str(default))
    monkeypatch.setattr(kafka, "KAFKA_IMAGE_MOUNTED_PROPERTIES", str(mounted))
    return mounted


def image_log_dirs(args, env):
    found = profiles.invocation(profiles.PROFILES["kafka"], ["/__cacert_entrypoint.sh", "/etc/kafka/docker/run", *args],
                                env)
    note = profiles.PROFILES["kafka"].plan(found).notes[0]
    return note[note.index("log.dirs [") + len("log.dirs ["):].split("]")[0]


@pytest.mark.parametrize("args, env, log_dirs", [
    ([], {}, "/tmp/kraft-combined-logs"),  # nothing given: the image's default file
    ([], {"KAFKA_OPTS": "-Dx=y", "KAFKA_HEAP_OPTS": "-Xmx1g"}, "/tmp/kraft-combined-logs"),  # no settings
    # Any setting given: server.properties is made of those alone, without log.dirs: KafkaConfig's.
    ([], {"KAFKA_NODE_ID": "1", "KAFKA_PROCESS_ROLES": "broker,controller"}, "/tmp/kafka-logs"),
    (["KAFKA_LOG_DIRS=/from/argument"], {"KAFKA_LOG_DIRS": "/from/env"}, "/from/argument"),  # run exports it
    ([], {"KAFKA_LOG_DIR": "/single"}, "/single"),  # log.dir, as KafkaDockerWrapper names it
], ids=["default-file", "only-options", "settings-without-log-dirs", "argument", "log-dir"])
def test_kafka_image_run_script_takes_the_images_log_dirs(kafka_image, args, env, log_dirs):
    assert image_log_dirs(args, env) == log_dirs


def test_kafka_image_run_script_reads_the_mounted_server_properties_under_its_variables(kafka_image):
    kafka_image.write_text("node.id=1\nlog.dirs=/var/lib/kafka/data\n")
    assert image_log_dirs([], {"KAFKA_NODE_ID": "2"}) == "/var/lib/kafka/data"
    assert image_log_dirs([], {"KAFKA_LOG_DIRS": "/from/env"}) == "/from/env"  # appended: the last line wins


def test_kafka_image_run_script_without_the_images_files_takes_its_default(kafka_image, monkeypatch, tmp_path):
    monkeypatch.setattr(kafka, "KAFKA_IMAGE_DEFAULT_PROPERTIES", str(tmp_path / "absent"))
    assert image_log_dirs([], {}) == "/tmp/kraft-combined-logs"


def test_kafka_image_run_script_counts_the_segments_of_its_log_dirs(kafka_image, tmp_path):
    logs = tmp_path / "data"
    make_segments(logs, 2, 2)
    p = plan("kafka", ["/etc/kafka/docker/run", f"KAFKA_LOG_DIRS={logs}"])
    assert p.notes[0] == f"log.dirs [{logs}] holds 4 segments in 2 partitions"


def test_kafka_a_folder_that_is_not_a_partition_is_skipped_and_said(tmp_path):
    logs = tmp_path / "logs"
    make_segments(logs, 2, 3)
    (logs / "lost+found").mkdir(mode=0o700)
    (logs / "topic-0.0123456789abcdef0123456789abcdef-delete").mkdir()
    (logs / "topic-0.0123456789abcdef0123456789abcdef-delete" / "00000000000000000000.log").touch()
    code = ("from guard import profiles; p = profiles.PROFILES['kafka'].plan(profiles.Invocation("
            f"('kafka-server-start.sh', '--override', 'log.dirs={logs}'))); r = p.requirements[0]; "
            "print(r.hard, r.value); print(*p.notes, sep='\\n')")
    # As a broker's user who cannot list lost+found (0700, root's): root drops the DAC capabilities.
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    os.chown(logs / "lost+found", 0, 0) if os.geteuid() == 0 else None
    out = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    lines = out.stdout.splitlines()
    assert lines[0] == f"True {kafka.kafka_maps_on_disk(7)}", out
    assert lines[1] == f"log.dirs [{logs}] holds 7 segments in 3 partitions"
    assert lines[2] == f"not partitions, so not counted: {logs}/lost+found"


def test_kafka_unreadable_log_dirs_fall_back_to_a_soft_default(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text(f"log.dirs={tmp_path / 'nowhere'}\n")
    maps = by_key(plan("kafka", ["kafka-server-start.sh", str(props)]))["vm.max_map_count"]
    assert (maps.value, maps.hard) == (kafka.KAFKA_DEFAULT_MAP_COUNT, False)
    assert by_key(plan("kafka"))["nofile.hard"].value == 100000


# --- Redis ---

def test_redis_defaults_follow_redis_7():
    reqs = by_key(plan("redis", ["redis-server"]))
    assert (reqs["vm.overcommit_memory"].op, reqs["vm.overcommit_memory"].value) == ("=", 1)
    # Redis warns and starts: its fork may fail later, not certainly, so guard warns too.
    assert not reqs["vm.overcommit_memory"].hard
    assert reqs["net.core.somaxconn"].value == 511 and not reqs["net.core.somaxconn"].hard
    assert reqs["nofile.hard"].value == 10032
    assert "transparent_hugepage" not in reqs


def test_redis_settings_come_from_the_command_line(tmp_path):
    reqs = by_key(plan("redis", ["redis-server", "--port", "0", "--maxclients", "100",
                                 "--tcp-backlog", "1024", "--disable-thp", "no"]))
    assert reqs["nofile.hard"].value == 132
    assert reqs["net.core.somaxconn"].value == 1024
    assert reqs["transparent_hugepage"].value == "always"


def test_redis_config_file_and_include_then_arguments_win(tmp_path):
    extra = tmp_path / "extra.conf"
    extra.write_text("tcp-backlog 2048\n")
    conf = tmp_path / "redis.conf"
    conf.write_text(f"# comment\nmaxclients 50000\ninclude {extra}\ndisable-thp no\n")
    reqs = by_key(plan("redis", ["redis-server", str(conf), "--maxclients", "20"]))
    assert reqs["nofile.hard"].value == 52
    assert reqs["net.core.somaxconn"].value == 2048
    assert "transparent_hugepage" in reqs


def test_redis_unreadable_config_file_keeps_the_defaults_and_says_which_file(tmp_path):
    p = plan("redis", ["redis-server", str(tmp_path / "missing.conf")])
    assert by_key(p)["nofile.hard"].value == 10032
    assert p.notes[0] == (f"config file: cannot read {tmp_path}/missing.conf: No such file or directory; "
                          "judged without its settings")


@pytest.mark.parametrize("args,maxclients,backlog", [
    (["--maxclients", "100", "--tcp-backlog", "1024"], 100, 1024),
    (["--maxclients 100"], 100, 511),  # name and value in one word, as redis-server takes it
    (["--save", "--maxclients", "7"], 7, 511),  # --save then an option: save ""
    (["--requirepass", "--maxclients", "7"], 10000, 511),  # after a bare name, --maxclients is its value
    (["--maxclients", "abc"], 10000, 511),
    (["--maxclients", "0"], 10000, 511),
    (["--tcp-backlog", "99999999999"], 10000, 511),
])
def test_redis_command_line_is_read_as_redis_reads_it(args, maxclients, backlog):
    reqs = by_key(plan("redis", ["redis-server", *args]))
    assert (reqs["nofile.hard"].value, reqs["net.core.somaxconn"].value) == (maxclients + 32, backlog)


def test_redis_include_on_the_command_line_is_followed(tmp_path):
    (tmp_path / "a.conf").write_text("maxclients 300\n")
    reqs = by_key(plan("redis", ["redis-server", "--include", str(tmp_path / "a.conf")]))
    assert reqs["nofile.hard"].value == 332


def test_redis_settings_from_stdin_are_left_to_redis_and_said():
    p = plan("redis", ["redis-server", "--port", "0", "-"])
    assert p.notes[0].startswith("redis-server reads more settings from its standard input ('-')")


@pytest.mark.parametrize("release, backlog, asked", [
    ("6.1.0-test", "2147483647", 2147483647),  # an int the kernel takes, and a listen backlog it keeps
    ("3.10.0-1160.el7.x86_64", "70000", 65535),  # before 4.1: 16 bits, 70000 would wrap to 4464
    ("3.10.0-1160.el7.x86_64", "65535", 65535),
])
def test_redis_backlog_asks_somaxconn_no_higher_than_the_kernel_keeps(tmp_path, monkeypatch, release, backlog, asked):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {}, osrelease=release))
    p = plan("redis", ["redis-server", "--tcp-backlog", backlog])
    assert by_key(p)["net.core.somaxconn"].value == asked
    capped = [note for note in p.notes if note.startswith("net.core.somaxconn")]
    assert capped == ([] if str(asked) == backlog else [
        f"net.core.somaxconn [{backlog}] (Redis server.c checkTcpBacklogSettings: tcp-backlog [{backlog}]) is above "
        "[65535], the most a listen backlog keeps before Linux 4.1 (16 bits: above, it wraps): guard asks for "
        "[65535]"])


def test_redis_maxclients_asks_no_more_files_than_fs_nr_open_lets_a_process_have(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"fs.nr_open": 1048576}))
    p = plan("redis", ["redis-server", "--maxclients", "4294967295"])
    assert by_key(p)["nofile.hard"].value == 1048576
    assert ("nofile.hard [4294967327] (Redis server.c adjustOpenFilesLimit: maxclients [4294967295] + 32) is above "
            "[1048576], fs.nr_open here, the most setrlimit(2) raises nofile to: guard asks for [1048576]") in p.notes


def test_a_value_redis_refuses_is_a_note_naming_it():
    p = plan("redis", ["redis-server", "--maxclients", "1e4"])
    assert "maxclients [1e4] must be a whole number from [1] to [4294967295]: redis-server refuses it; " \
           "judged on the default [10000]" in p.notes


# A number longer than int() reads (4300 digits), wherever a profile takes a number from: the
# program's arguments, its environment, its config file. Each is what the program refuses or
# clamps, never an internal error.
HUGE = "9" * 5000


@pytest.mark.parametrize("argv,env,note", [
    (["redis-server", "--maxclients", HUGE], {}, "maxclients ["),
    (["valkey-server", "--tcp-backlog", HUGE], {}, "tcp-backlog ["),
    (["keydb-server", "--maxclients", HUGE], {}, "maxclients ["),
    (["dragonfly", "--proactor_threads", HUGE, "--maxmemory", "1G"], {}, "--proactor_threads ["),
    (["dragonfly"], {"DFLY_maxmemory": HUGE}, None),
    (["scylla", "--smp", HUGE], {}, "--smp ["),
    (["scylla", "--smp", "1", "--reserve-io-control-blocks", HUGE], {}, "--reserve-io-control-blocks ["),
    (["scylla", "--cpuset", HUGE], {}, "--cpuset ["),
    (["solr", "start"], {"SOLR_RECOMMENDED_OPEN_FILES": HUGE}, "SOLR_RECOMMENDED_OPEN_FILES ["),
    (["weaviate"], {"MAX_MEMORY_MAPPINGS": HUGE}, None),
    (["mongod"], {"MONGO_VERSION": HUGE + ".0"}, "mongod version unknown"),
])
def test_a_number_too_long_for_int_is_what_the_program_refuses_not_an_internal_error(argv, env, note):
    done = subprocess.run([guard_executable(), "check", "--", *argv], capture_output=True, cwd="/",
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}, **env})
    stderr = done.stderr.decode()
    assert done.returncode in (0, 78) and "internal error" not in stderr, stderr[-500:]
    assert note is None or note in stderr


@pytest.mark.parametrize("name", sorted(set(profiles.PROFILES) - {"none"}))
def test_host_files_holding_numbers_too_long_for_int_are_skipped_not_an_internal_error(tmp_path, name):
    proc = crafted_proc(tmp_path / "proc", {key: HUGE for key in (
        "vm.max_map_count", "vm.overcommit_memory", "net.core.somaxconn", "fs.file-max", "fs.aio-nr",
        "fs.aio-max-nr", "fs.nr_open", "kernel.io_uring_disabled", "kernel.pid_max", "vm.swappiness")},
        osrelease=HUGE + ".1.0")
    os.makedirs(os.path.join(proc, "self"))
    for path, content in (("meminfo", f"MemAvailable: {HUGE} kB\nSwapTotal: {HUGE} kB\n"),
                          ("self/cgroup", "0::/\n"), ("version_signature", f"Ubuntu 7.0.0-1.1-generic {HUGE}.1\n")):
        with open(os.path.join(proc, path), "w") as f:
            f.write(content)
    cgroup = tmp_path / "sys" / "fs" / "cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "cpu.max").write_text(f"{HUGE} {HUGE}\n")
    (cgroup / "memory.max").write_text(HUGE + "\n")
    done = subprocess.run([guard_executable(), "check", "--profile", name], capture_output=True, cwd="/",
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("GUARD_")},
                               "GUARD_PROCFS": proc, "GUARD_SYSFS": str(tmp_path / "sys")})
    assert done.returncode in (0, 78) and b"internal error" not in done.stderr, done.stderr[-500:]


# --- MongoDB, Cassandra, SonarQube ---

def test_mongodb_map_count_follows_max_conns():
    assert by_key(plan("mongodb", ["mongod", "--maxConns", "5000"]))["vm.max_map_count"].value == 10000
    assert by_key(plan("mongodb", ["mongod", "--maxConns=7"]))["vm.max_map_count"].value == 14


def test_mongodb_max_conns_is_capped_at_80_percent_of_the_soft_file_limit_as_mongod_does():
    # mongod --maxConns 2000000000 once asked for vm.max_map_count 4000000000, which the kernel refuses.
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    p = plan("mongodb", ["mongod", "--maxConns", "2000000000"])
    assert by_key(p)["vm.max_map_count"].value == 2 * int(soft * 0.8)
    assert (f"--maxConns [2000000000] is more than mongod takes with a soft nofile of [{soft}]: it caps it at 80% "
            f"of that (\"--maxConns too high\"); judged on [{int(soft * 0.8)}]") in p.notes


def test_mongodb_max_conns_beyond_an_int_is_refused_by_mongod_and_noted():
    p = plan("mongodb", ["mongod", "--maxConns", "4000000000"])
    assert p.notes[0].startswith("--maxConns [4000000000] is more than mongod takes (an int, at most [2147483647]): "
                                 "mongod refuses it; judged on the default")
    assert by_key(p)["vm.max_map_count"].value <= 2 * 1048576


@pytest.mark.parametrize("value", ["\u00b2", "-5", "0", "", "1e3", "\u0663"])
def test_mongodb_max_conns_mongod_refuses_is_a_note_not_a_crash(value):
    p = plan("mongodb", ["mongod", "--maxConns", value])
    assert p.notes[0].startswith(f"--maxConns [{value}] is not a positive whole number: mongod refuses it")


def test_cassandra_only_warns():
    p = plan("cassandra")
    assert by_key(p)["vm.max_map_count"].value == 1048575
    assert not any(r.hard for r in p.requirements)


def test_sonarqube_embedded_elasticsearch_enforces_with_an_external_database():
    external = plan("sonarqube", [], {"SONAR_JDBC_URL": "jdbc:postgresql://db/sonar"})
    assert {r.name: r.hard for r in external.requirements}["es-max-map-count"]
    h2 = plan("sonarqube", [], {})
    assert not any(r.hard for r in h2.requirements)
    disabled = plan("sonarqube", [], {"SONAR_JDBC_URL": "jdbc:postgresql://db/sonar",
                                      "SONAR_ES_BOOTSTRAP_CHECKS_DISABLE": "true"})
    assert not any(r.hard for r in disabled.requirements)


@pytest.mark.parametrize("env,enforced", [
    ({"SONAR_JDBC_URL": ""}, False),  # compose's ${SONAR_JDBC_URL:-}: JdbcSettings picks H2
    ({"SONAR_JDBC_URL": "   "}, False),  # Props trims
    ({"SONAR_JDBC_URL": "jdbc:h2:tcp://localhost:9092/sonar"}, False),
    ({"SONAR_JDBC_URL": "jdbc:postgresql://db/sonar", "SONAR_EMBEDDEDDATABASE_PORT": "9092"}, False),
    ({"SONAR_JDBC_URL": "jdbc:postgresql://db/sonar", "SONAR_EMBEDDEDDATABASE_PORT": ""}, True),
    ({"SONAR_ES_BOOTSTRAP_CHECKS_DISABLE": ""}, True),  # present, and parseBoolean("") is false
    ({"SONAR_ES_BOOTSTRAP_CHECKS_DISABLE": "TRUE", "SONAR_JDBC_URL": "jdbc:oracle:x"}, False),
])
def test_sonarqube_decides_the_database_as_sonarqube_does(env, enforced):
    p = plan("sonarqube", [], env)
    assert {r.name: r.hard for r in p.requirements}["es-max-map-count"] == enforced, p.notes


def test_sonarqube_reads_its_properties_file_and_the_environment_wins(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sonar.properties").write_text("sonar.jdbc.url=jdbc:postgresql://db/sonar\n")
    home = {"SONARQUBE_HOME": str(tmp_path)}
    assert {r.name: r.hard for r in plan("sonarqube", [], home).requirements}["es-file-descriptors"]
    h2 = plan("sonarqube", [], {**home, "SONAR_JDBC_URL": ""})
    assert not {r.name: r.hard for r in h2.requirements}["es-file-descriptors"]


# --- settings given by the launchers in front of the program ---

SINGLE_NODE = {"discovery.type": "single-node"}


@pytest.mark.parametrize("launchers,environ,enforced", [
    (["env", "discovery.type=single-node"], {}, False),
    (["env", "-i", "PATH=/usr/bin", "discovery.type=single-node"], {}, False),
    (["env", "discovery.type=single-node", "env", "-u", "discovery.type"], {}, True),
    (["env", "--unset=discovery.type"], SINGLE_NODE, True),
    (["env", "-i"], SINGLE_NODE, True),
    (["env", "-"], SINGLE_NODE, True),
    (["gosu", "es", "env", "-udiscovery.type"], SINGLE_NODE, True),
    (["tini", "--", "env", "ES_JAVA_OPTS=-Des.enforce.bootstrap.checks=true", "gosu", "es"], SINGLE_NODE, True),
    # short options cluster as getopt reads them; -C DIR and -v leave the environment be
    (["env", "-vi"], SINGLE_NODE, True),
    (["env", "-vu", "discovery.type"], SINGLE_NODE, True),
    (["env", "-iC", "/", "discovery.type=single-node"], SINGLE_NODE, False),
    (["env", "-v", "-C", "/"], SINGLE_NODE, False),
    # setpriv --reset-env keeps TERM alone of what it was given
    (["setpriv", "--reset-env", "--reuid=es"], SINGLE_NODE, True),
    (["setpriv", "--reuid=es"], SINGLE_NODE, False),
    (["env", "--unse=discovery.type"], SINGLE_NODE, True),
    (["env", "--ignore-e"], SINGLE_NODE, True),
    (["env", "--ign"], SINGLE_NODE, False),  # --ignore-environment or --ignore-signal: env refuses it
    (["env", "--u", "discovery.type"], SINGLE_NODE, True),
    (["env", "--un", "discovery.type", "-S", "discovery.type=single-node"], {}, True),  # -S: not split (a note)
])
def test_env_launcher_assignments_reach_the_program(launchers, environ, enforced):
    found = profiles.invocation(profiles.PROFILES["elasticsearch"], [*launchers, "elasticsearch"], environ)
    assert found.argv == ("elasticsearch",)
    p = profiles.PROFILES["elasticsearch"].plan(found)
    assert all(r.hard == enforced for r in p.requirements), p.notes


@pytest.mark.parametrize("launchers,path", [
    (["setpriv", "--reset-env", "--reuid=1000"], "/usr/local/bin:/bin:/usr/bin"),
    (["setpriv", "--reuid", "1000", "--reset-env"], "/usr/local/bin:/bin:/usr/bin"),
    (["setpriv", "--reuid=1000", "--reset-env", "--ruid", "0"],
     "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"),
    # getopt_long takes a prefix that names one option alone; a uid is a number however written
    (["setpriv", "--reu", "1000", "--rese"], "/usr/local/bin:/bin:/usr/bin"),
    (["setpriv", "--reuid=1000", "--ruid=+00", "--reset-env"], "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"),
])
def test_setpriv_reset_env_leaves_term_and_logins_path(launchers, path):
    found = profiles.invocation(profiles.PROFILES["redis"], [*launchers, "--", "redis-server"],
                                {"TERM": "xterm", "PATH": "/opt/bin", "REDIS_X": "1"})
    assert found.environ == {"TERM": "xterm", "PATH": path}


def test_env_launcher_log_dirs_reach_the_kafka_profile(tmp_path):
    make_segments(tmp_path / "logs", 3, 2)
    argv = ["env", f"KAFKA_LOG_DIRS={tmp_path / 'logs'}", "kafka-server-start.sh"]
    found = profiles.invocation(profiles.PROFILES["kafka"], argv, {"KAFKA_LOG_DIRS": "/elsewhere"})
    assert profiles.PROFILES["kafka"].plan(found).notes[0].endswith("holds 6 segments in 3 partitions")


def test_every_requirement_names_its_source():
    for profile in profiles.PROFILES.values():
        for req in profile.plan(Invocation((), {})).requirements:
            assert req.source, (profile.name, req.name)


def test_elasticsearch_without_settings_is_production_like_the_official_image():
    assert plan("elasticsearch", [], {}).notes[0].startswith("production mode")
