"""Fuzz the installed guard end to end over generated config files of every kind, per profile:
YAML, properties and Redis text, random bytes; regular files, FIFOs with a writer waiting,
directories, symlink loops, devices. guard ends in bounded time with 0 or 78 (2 for usage, never
70), and a file the program will read is left as it was: a regular file unchanged, a FIFO
unopened, its bytes all there for the program."""

import os
import subprocess
import sys
import tempfile
import textwrap
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.profiles import PROFILES as ALL_PROFILES
from support import guard_executable
from test_config import blocked_writer, drain, still_waiting

# Where each profile's program looks for its config file, given a folder to put it in.
PROFILES = {
    "elasticsearch": (["elasticsearch"], lambda d: ({"ES_PATH_CONF": d}, os.path.join(d, "elasticsearch.yml"))),
    "opensearch": (["opensearch"], lambda d: ({"OPENSEARCH_PATH_CONF": d}, os.path.join(d, "opensearch.yml"))),
    "redis": (["redis-server", "{file}"], lambda d: ({}, os.path.join(d, "redis.conf"))),
    "kafka": (["kafka-server-start.sh", "{file}"], lambda d: ({}, os.path.join(d, "server.properties"))),
    "sonarqube": (["sonar.sh", "console"],
                  lambda d: ({"SONARQUBE_HOME": d}, os.path.join(d, "conf", "sonar.properties"))),
    "valkey": (["valkey-server", "{file}"], lambda d: ({}, os.path.join(d, "valkey.conf"))),
    "keydb": (["keydb-server", "{file}"], lambda d: ({}, os.path.join(d, "keydb.conf"))),
    "scylladb": (["scylla"], lambda d: ({"SCYLLA_CONF": d}, os.path.join(d, "scylla.yaml"))),
    "solr": (["solr", "start", "-f"], lambda d: ({"SOLR_INCLUDE": os.path.join(d, "solr.in.sh")},
                                                 os.path.join(d, "solr.in.sh"))),
    "dragonfly": (["dragonfly", "--flagfile={file}"], lambda d: ({}, os.path.join(d, "dragonfly.conf"))),
    "wazuh-indexer": (["/usr/share/wazuh-indexer/bin/opensearch"],
                      lambda d: ({"OPENSEARCH_PATH_CONF": d}, os.path.join(d, "opensearch.yml"))),
    # The profiles that read no file of their own: the file is the program's, left for it all the same.
    "mongodb": (["mongod", "--config", "{file}"], lambda d: ({}, os.path.join(d, "mongod.conf"))),
    "clickhouse": (["clickhouse-server", "--config-file={file}"], lambda d: ({}, os.path.join(d, "config.xml"))),
    "neo4j": (["neo4j", "console"], lambda d: ({"NEO4J_CONF": d}, os.path.join(d, "neo4j.conf"))),
    "graylog-datanode": (["graylog-datanode"], lambda d: ({}, os.path.join(d, "datanode.conf"))),
    "weaviate": (["weaviate"], lambda d: ({}, os.path.join(d, "weaviate.conf"))),
    "qdrant": (["qdrant", "--config-path", "{file}"], lambda d: ({}, os.path.join(d, "config.yaml"))),
}
# The stand-in program of the second test is written under the test's own folder: a command at a
# fixed path is left out there.
STAND_INS = sorted(name for name, (command, _) in PROFILES.items() if "/" not in command[0])

KEYS = ["discovery.type", "network.host", "transport.host", "network.publish_host", "bootstrap.memory_lock",
        "node.store.allow_mmap", "discovery", "network", "maxclients", "tcp-backlog", "include", "log.dirs",
        "sonar.jdbc.url", "sonar.es.bootstrap.checks.disable", "disable-thp", "a", "storage-provider",
        "developer_mode", "SOLR_ULIMIT_CHECKS", "SOLR_RECOMMENDED_OPEN_FILES", "--maxmemory", "--proactor_threads",
        "ignore-warnings"]
VALUES = ["single-node", "0.0.0.0", "127.0.0.1", "_local_", "_lo_", "_site_", "_eth0_", "[::1]", "true", "yes",
          "", "~", "${HOME}", "${NOPE}", "${X:127.0.0.1}", "10000", "-1", "1e9", "'q'", '"a b"', "{type: x}",
          "[a, b]", "|", "&a x", "*a", "/tmp/*.conf", "\\x41", "'", '"', "#", ":", "- x", "\t", "\u00b2", "flash /x",
          "1G", "0", "false", "ARM64-COW-BUG"]
line = st.builds(lambda k, sep, v: f"{k}{sep}{v}", st.sampled_from(KEYS),
                 st.sampled_from([": ", " ", "=", ":\n  ", ":\n  - ", " \"", ""]), st.sampled_from(VALUES))
text_config = st.lists(st.one_of(line, st.text(max_size=30)), max_size=12).map("\n".join).map(str.encode)
config_bytes = st.one_of(text_config, st.binary(max_size=300))
KINDS = ["regular", "fifo", "directory", "symlink-loop", "missing", "device", "dangling"]

READER = textwrap.dedent(f"""\
    #!{sys.executable}
    import os, sys
    with open(os.environ["FUZZ_CONFIG"], "rb") as f:
        sys.stdout.buffer.write(f.read())
    """)


def make(path, kind, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "regular":
        with open(path, "wb") as f:
            f.write(data)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "symlink-loop":
        os.symlink(path, path)
    elif kind == "device":
        os.symlink("/dev/zero", path)
    elif kind == "dangling":
        os.symlink(path + ".nowhere", path)


def guard(args, env, timeout=30):
    base = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    started = time.monotonic()
    done = subprocess.run([guard_executable(), *args], env={**base, **env}, capture_output=True, timeout=timeout,
                          cwd="/")
    return done, time.monotonic() - started


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PROFILES)), st.sampled_from(KINDS), config_bytes,
       st.sampled_from(KINDS), config_bytes)
def test_any_config_file_ends_cleanly_and_is_left_for_the_program(profile, kind, data, included_kind, included):
    command, place = PROFILES[profile]
    with tempfile.TemporaryDirectory() as folder:
        env, path = place(folder)
        # Redis follows includes: one more file of any kind, which a glob in the config can name.
        make(os.path.join(folder, "inc", "x.conf"), included_kind, included)
        data += f"\ninclude {folder}/inc/*.conf\n".encode() if profile == "redis" else b""
        make(path, kind, data)
        writers = [blocked_writer(p, "settings for the program\n")
                   for p, k in ((path, kind), (os.path.join(folder, "inc", "x.conf"), included_kind)) if k == "fifo"]
        before = os.stat(path) if kind == "regular" else None
        argv = [word.replace("{file}", path) for word in command]
        try:
            done, elapsed = guard(["check", "--", *argv], env)
            assert done.returncode in (0, 2, 78), done.stderr.decode(errors="replace")
            assert elapsed < 20
            assert b"internal error" not in done.stderr
            if kind == "regular":
                after = os.stat(path)
                assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
                with open(path, "rb") as f:
                    assert f.read() == data
            for writer in writers:
                assert still_waiting(writer, 0.05), "guard opened a FIFO"
            if kind == "fifo":
                assert drain(path) == b"settings for the program\n"
        finally:
            for writer in writers:
                writer.kill()
                writer.wait()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(STAND_INS), st.sampled_from(["regular", "fifo"]), config_bytes)
def test_the_program_guard_starts_reads_every_byte(profile, kind, data):
    """guard --mode warn then execs a stand-in that reads the config as the program would."""
    command, place = PROFILES[profile]
    with tempfile.TemporaryDirectory() as folder:
        env, path = place(folder)
        make(path, kind, data)
        program = os.path.join(folder, "bin", command[0])
        os.makedirs(os.path.dirname(program))
        with open(program, "w") as f:
            f.write(READER)
        os.chmod(program, 0o755)
        writer = blocked_writer(path, data) if kind == "fifo" else None
        try:
            argv = [program] + [word.replace("{file}", path) for word in command[1:]]
            done, elapsed = guard(["--mode", "warn", "--", *argv], {**env, "FUZZ_CONFIG": path})
            assert done.returncode == 0, done.stderr.decode(errors="replace")
            assert done.stdout == data
            assert elapsed < 20
        finally:
            if writer:
                writer.kill()
                writer.wait()


HOST_FILES = ["proc/sys/vm/max_map_count", "proc/sys/vm/overcommit_memory", "proc/sys/net/core/somaxconn",
              "proc/sys/fs/file-max", "proc/1/cgroup", "proc/sys/kernel/osrelease", "proc/sys/kernel/version",
              "proc/sys/fs/aio-nr", "proc/sys/kernel/io_uring_disabled", "proc/meminfo", "proc/self/cgroup",
              "proc/version_signature", "sys/fs/cgroup/cpu.max", "sys/fs/cgroup/memory.max"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.binary(max_size=40)), min_size=len(HOST_FILES),
                max_size=len(HOST_FILES)), st.sampled_from(KINDS), st.sampled_from(sorted(ALL_PROFILES)))
def test_any_crafted_host_tree_ends_cleanly_and_opens_no_fifo(files, thp_kind, profile):
    """GUARD_PROCFS and GUARD_SYSFS trees whose files are FIFOs, devices, loops or junk."""
    with tempfile.TemporaryDirectory() as folder:
        proc, sys_root = os.path.join(folder, "proc"), os.path.join(folder, "sys")
        made = [(os.path.join(folder, name), kind, data) for name, (kind, data) in zip(HOST_FILES, files)]
        made.append((os.path.join(sys_root, "kernel", "mm", "transparent_hugepage", "enabled"), thp_kind,
                     b"always [madvise] never\n"))
        for path, kind, data in made:
            make(path, kind, data)
        writers = [blocked_writer(path, "1\n") for path, kind, _ in made if kind == "fifo"]
        try:
            done, elapsed = guard(["check", "--profile", profile], {"GUARD_PROCFS": proc, "GUARD_SYSFS": sys_root})
            assert done.returncode in (0, 78), done.stderr.decode(errors="replace")
            assert elapsed < 20
            for writer in writers:
                assert still_waiting(writer, 0.05), "guard opened a FIFO"
        finally:
            for writer in writers:
                writer.kill()
                writer.wait()


# Where each profile takes a value from its command line ({v}) and its environment: numbers,
# sizes, cpusets, versions, tunables, paths.
INPUTS = {
    "redis": (["redis-server", "--maxclients", "{v}", "--tcp-backlog", "{v}", "--disable-thp", "{v}"], []),
    "valkey": (["docker-entrypoint.sh", "valkey-server", "--maxclients", "{v}", "--ignore-warnings", "{v}"], []),
    "keydb": (["keydb-server", "--storage-provider", "{v}", "{v}", "--maxclients", "{v}"], []),
    "dragonfly": (["entrypoint.sh", "dragonfly", "--maxmemory={v}", "--proactor_threads", "{v}"],
                  ["DFLY_maxmemory", "DFLY_proactor_threads", "DFLY_force_epoll"]),
    "scylladb": (["scylla", "--smp", "{v}", "--cpuset", "{v}", "--developer-mode", "{v}",
                  "--reserve-io-control-blocks", "{v}", "--max-networking-io-control-blocks", "{v}",
                  "--reactor-backend", "{v}"], ["SCYLLA_CONF", "SCYLLA_HOME"]),
    "solr": (["docker-entrypoint.sh", "solr-foreground"],
             ["SOLR_ULIMIT_CHECKS", "SOLR_RECOMMENDED_OPEN_FILES", "SOLR_RECOMMENDED_MAX_PROCESSES", "SOLR_INCLUDE"]),
    "weaviate": (["weaviate", "{v}"], ["MAX_MEMORY_MAPPINGS"]),
    "mongodb": (["mongod", "--maxConns", "{v}"], ["MONGO_VERSION", "MONGO_MAJOR", "GLIBC_TUNABLES"]),
    "clickhouse": (["clickhouse", "su", "{v}", "/usr/bin/clickhouse-server", "{v}"], []),
    "neo4j": (["tini", "-g", "--", "/startup/docker-entrypoint.sh", "neo4j", "{v}"], []),
    "graylog-datanode": (["tini", "--", "/entrypoint.sh", "graylog-datanode", "{v}"], []),
    "qdrant": (["qdrant", "{v}"], []),
    "wazuh-indexer": (["/usr/share/wazuh-indexer/bin/opensearch", "-E", "{v}"],
                      ["OPENSEARCH_JAVA_OPTS", "OPENSEARCH_PATH_CONF"]),
}
SPECIAL_VALUES = ["9" * 5000, "-" + "9" * 30, "0", "-1", "1", "4294967296", "0-4294967295", "0-3,8", "x", "1e9",
                  "0x40000000", "1.5GB", "inf", "nan", "", " ", "8.0", "7.0.14", "glibc.pthread.rseq=0", "yes",
                  "flash", "/", "/dev/zero", "../../etc", "a:b:c", "\u00b2", "\u0663"]
value = st.one_of(st.sampled_from(SPECIAL_VALUES), st.text(max_size=40).map(lambda t: t.replace("\x00", "")))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(INPUTS)), st.lists(value, min_size=12, max_size=12))
def test_any_argument_or_variable_a_profile_reads_ends_cleanly(profile, values):
    """Every value a profile takes from the command line or the environment: guard ends in bounded
    time with 0 or 78, never 70."""
    command, names = INPUTS[profile]
    pool = iter(values)
    argv = [next(pool) if word == "{v}" else word for word in command]
    env = {name: next(pool) for name in names}
    done, elapsed = guard(["check", "--", *argv], env)
    assert done.returncode in (0, 78), done.stderr.decode(errors="replace")[-2000:]
    assert b"internal error" not in done.stderr
    assert elapsed < 20
