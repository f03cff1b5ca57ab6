"""The servers whose checks are a few warnings (ClickHouse, Solr, Neo4j, Qdrant, Weaviate) or one
refusal (Graylog Data Node), and the Wazuh indexer, which is OpenSearch in its own layout: each
threshold as its source gives it, judged on crafted hosts and real limits."""

import json

import pytest

from guard import profiles
from guard.profiles import Invocation
from support import crafted_proc, crafted_sys, run_guard, text


def plan(name, argv=(), env=None):
    return profiles.PROFILES[name].plan(Invocation(tuple(argv), env or {}))


def by_name(p):
    return {r.name: r for r in p.requirements}


def statuses(done):
    return {c["name"]: c["status"] for c in json.loads(done.stdout)["checks"]}


# --- ClickHouse ---

CLICKHOUSE_HOST = {"vm.overcommit_memory": 0, "kernel.pid_max": 4194304, "kernel.threads-max": 63000,
                   "kernel.task_delayacct": 1, "fs.file-max": 9223372036854775807}


@pytest.mark.parametrize("sysctl,value,name,status", [
    ("vm.overcommit_memory", 2, "overcommit", "warn"),
    ("vm.overcommit_memory", 1, "overcommit", "pass"),
    ("kernel.pid_max", 29999, "pid-max", "warn"),
    ("kernel.pid_max", 30000, "pid-max", "pass"),
    ("kernel.threads-max", 29999, "threads-max", "warn"),
    ("kernel.threads-max", 30000, "threads-max", "pass"),
    ("kernel.task_delayacct", 0, "delay-accounting", "warn"),
    ("fs.file-max", 499999, "file-max", "warn"),
    ("fs.file-max", 500000, "file-max", "pass"),
])
def test_clickhouse_sanity_warnings_never_refuse(tmp_path, sysctl, value, name, status):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {**CLICKHOUSE_HOST, sysctl: value}),
           "GUARD_SYSFS": crafted_sys(tmp_path / "sys", "always madvise [never]"), "GUARD_FORMAT": "json"}
    done = run_guard("check", "--skip", "max-threads", "--", "/usr/bin/clickhouse-server", env=env)
    assert done.returncode == 0, text(done)
    assert statuses(done)[name] == status


def test_clickhouse_thp_always_and_few_threads_are_warnings(tmp_path):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, CLICKHOUSE_HOST),
           "GUARD_SYSFS": crafted_sys(tmp_path / "sys", "[always] madvise never"), "GUARD_FORMAT": "json"}
    done = run_guard("check", "--", "clickhouse", "server", env=env, limits={"nproc": (100, 29999)})
    assert done.returncode == 0
    found = statuses(done)
    assert (found["transparent-hugepage"], found["max-threads"]) == ("warn", "warn")
    assert "Maximum number of threads is lower than 30000" in by_name(plan("clickhouse"))["max-threads"].source


def test_clickhouse_unreadable_sysctl_is_skipped(tmp_path):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {}), "GUARD_FORMAT": "json"}
    assert statuses(run_guard("check", "--profile", "clickhouse", env=env))["delay-accounting"] == "skip"


# --- Solr ---

@pytest.mark.parametrize("files,procs,expected", [
    (4095, 4096, {"open-files": "warn", "max-processes": "pass"}),
    (4096, 4095, {"open-files": "pass", "max-processes": "warn"}),
])
def test_solr_warns_below_its_recommended_limits(files, procs, expected):
    # The recommended 65000 files is past this machine's hard limit: the same check at 4096.
    env = {"SOLR_INCLUDE": "", "SOLR_RECOMMENDED_OPEN_FILES": "4096", "SOLR_RECOMMENDED_MAX_PROCESSES": "4096"}
    done = run_guard("check", "--format", "json", "--", "solr", "start", "-f",
                     limits={"nofile": (files, files), "nproc": (procs, procs)}, env=env)
    assert done.returncode == 0
    found = statuses(done)
    assert {name: found[name] for name in expected} == expected
    assert by_name(plan("solr", ["solr", "start"], {"SOLR_INCLUDE": ""}))["open-files"].value == 65000


def test_solr_takes_its_thresholds_from_the_environment_then_its_include_file(tmp_path):
    include = tmp_path / "solr.in.sh"
    include.write_text("# SOLR_RECOMMENDED_OPEN_FILES=1\nSOLR_RECOMMENDED_OPEN_FILES=4096\n")
    env = {"SOLR_INCLUDE": str(include), "SOLR_RECOMMENDED_OPEN_FILES": "9", "SOLR_RECOMMENDED_MAX_PROCESSES": "77"}
    reqs = by_name(plan("solr", ["solr", "start"], env))
    assert (reqs["open-files"].value, reqs["max-processes"].value) == (4096, 77)  # the include file is sourced last


@pytest.mark.parametrize("env,file", [({"SOLR_ULIMIT_CHECKS": "false", "SOLR_INCLUDE": ""}, None),
                                      ({}, "SOLR_ULIMIT_CHECKS=false\n")])
def test_solr_ulimit_checks_false_turns_them_off(tmp_path, env, file):
    if file:
        (tmp_path / "solr.in.sh").write_text(file)
        env = {"SOLR_INCLUDE": str(tmp_path / "solr.in.sh")}
    p = plan("solr", ["solr-foreground"], env)
    assert p.requirements == [] and "SOLR_ULIMIT_CHECKS=false" in p.notes[-1]


@pytest.mark.parametrize("argv,checked", [
    (["solr", "start", "-f"], True), (["/opt/solr/bin/solr", "restart"], True), (["solr-foreground"], True),
    (["solr-precreate", "core"], True),
    (["solr", "create", "-c", "core"], False), (["solr", "zk", "ls", "/"], False), (["solr", "status"], False),
    (["solr", "-f"], False), (["solr"], False),  # bin/solr: only start and restart reach the ulimit checks
])
def test_solr_limits_are_checked_only_where_bin_solr_checks_them(argv, checked):
    p = plan("solr", argv, {"SOLR_INCLUDE": "/nonexistent"})
    assert bool(p.requirements) == checked, p.notes


@pytest.mark.parametrize("value,checks", [("FALSE", True), ("false", False), ("False", True), ("", True)])
def test_solr_ulimit_checks_are_off_only_for_false_as_bin_solr_compares_it(value, checks):
    p = plan("solr", ["solr", "start"], {"SOLR_ULIMIT_CHECKS": value, "SOLR_INCLUDE": "/nonexistent"})
    assert bool(p.requirements) == checks


@pytest.mark.parametrize("value", ["lots", "1e5", "65 000"])
def test_a_recommended_limit_bash_cannot_compare_warns_of_nothing_as_in_bin_solr(value):
    p = plan("solr", ["solr", "start"], {"SOLR_RECOMMENDED_OPEN_FILES": value, "SOLR_INCLUDE": "/nonexistent"})
    assert "open-files" not in by_name(p) and "max-processes" in by_name(p)
    assert any(f"SOLR_RECOMMENDED_OPEN_FILES [{value}] is not an integer: bin/solr's test of it fails" in note
               for note in p.notes)


def test_an_empty_solr_include_is_unset_to_bin_solr_which_then_searches(tmp_path):
    (tmp_path / ".solr.in.sh").write_text("export SOLR_ULIMIT_CHECKS=false\n")
    p = plan("solr", ["solr", "start"], {"SOLR_INCLUDE": "", "HOME": str(tmp_path)})
    assert p.requirements == [] and "SOLR_ULIMIT_CHECKS=false" in p.notes[-1]


# --- Neo4j, Qdrant ---

@pytest.mark.parametrize("name,command,threshold", [("neo4j", "neo4j", 40000), ("qdrant", "qdrant", 10000)])
def test_open_files_warnings_judge_the_soft_limit(name, command, threshold):
    # Neo4j's 40000 is past this machine's hard limit of files: only below it is run for real.
    cases = ((threshold - 1, "warn"), (threshold, "pass")) if threshold <= 16384 else ((1024, "warn"),)
    for soft, status in cases:
        done = run_guard("check", "--format", "json", "--", command, limits={"nofile": (soft, soft)})
        assert done.returncode == 0 and statuses(done)["open-files"] == status
        assert by_name(plan(name))["open-files"].key == "nofile"  # the soft limit: neither raises its own


def test_neo4j_says_the_official_image_skips_its_own_check():
    assert "--dry-run" in plan("neo4j").notes[0]


# --- Graylog Data Node ---

@pytest.mark.parametrize("maps,code", [(262143, 78), (262144, 0)])
def test_graylog_data_node_refuses_below_262144_maps(tmp_path, maps, code):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": maps})}
    done = run_guard("check", "--", "tini", "--", "/entrypoint.sh", "graylog-datanode", env=env)
    assert done.returncode == code, text(done)
    if code:
        assert "/proc/sys/vm/max_map_count value should be at least 262144 but is N" in text(done)


# --- Weaviate ---

def test_weaviate_says_where_it_refuses_shards_on_this_host(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"vm.max_map_count": 65530}))
    p = plan("weaviate", ["/bin/weaviate"])
    assert p.notes == ["Weaviate refuses to load a shard once its maps would pass 70 % of vm.max_map_count: "
                       "[45871] of [65530] here"]
    assert (by_name(p)["max-map-count"].value, by_name(p)["max-map-count"].hard) == (262144, False)


def test_weaviate_with_max_memory_mappings_needs_the_kernel_to_allow_as_many():
    p = plan("weaviate", ["/bin/weaviate"], {"MAX_MEMORY_MAPPINGS": "500000"})
    assert by_name(p)["max-map-count"].value == 500000
    assert p.notes == ["MAX_MEMORY_MAPPINGS [500000]: Weaviate refuses to load a shard past that many maps"]
    assert by_name(plan("weaviate", [], {"MAX_MEMORY_MAPPINGS": "lots"}))["max-map-count"].value == 262144


# --- Wazuh indexer ---

def test_wazuh_indexer_is_opensearch_whose_image_turns_variables_into_settings(tmp_path):
    from guard.profiles import elasticsearch

    assert elasticsearch.WAZUH_INDEXER.conf_dir == "/usr/share/wazuh-indexer/config"  # the image's OPENSEARCH_PATH_CONF
    (tmp_path / "opensearch.yml").write_text("discovery.type: single-node\n")
    p = plan("wazuh-indexer", ["opensearch"], {"OPENSEARCH_PATH_CONF": str(tmp_path)})
    assert not any(r.hard for r in p.requirements) and p.notes[0].startswith("discovery.type=single-node")
    enforce = {"OPENSEARCH_JAVA_OPTS": "-Dopensearch.enforce.bootstrap.checks=true"}
    assert all(r.hard for r in plan("wazuh-indexer", ["opensearch"], enforce).requirements)
    # Its entrypoint, not OpenSearch's, makes -E options of them: the variables count past it.
    single = plan("wazuh-indexer", ["opensearch"], {"discovery.type": "single-node"})
    assert not any(r.hard for r in single.requirements)
    assert all(r.hard for r in plan("opensearch", ["opensearch"], {"discovery.type": "single-node"}).requirements)
