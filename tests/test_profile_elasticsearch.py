"""Elasticsearch's vm.max_map_count advice for 8.16 and later, read from the installation the
program runs from (the server jar's name in its lib folder), beside the bootstrap check that
refuses only below 262144; and the memory lock, hard only where mlockall certainly fails."""

import json
import os
import re
import subprocess
import sys

import pytest

from guard import checks, profiles
from guard.host import UNLIMITED
from guard.profiles import Invocation
from guard.profiles.elasticsearch import ES_MAP_COUNT_ADVICE, JVM_SMALLEST_ADDRESS_SPACE
from support import crafted_proc, run_guard, text

ADVISED = 1048576
# Every check but the maps passes on this machine's limits (its hard nofile is below 65535).
ONLY_MAPS = {"GUARD_SKIP": "file-descriptors", "GUARD_PLACE": "host"}


def installation(root, *jars):
    """A crafted installation: bin/elasticsearch (a script) and lib/ holding the named files."""
    (root / "lib").mkdir(parents=True)
    for name in jars:
        (root / "lib" / name).touch()
    (root / "bin").mkdir()
    script = root / "bin" / "elasticsearch"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return root


def plan(argv, env=None, name="elasticsearch"):
    return profiles.PROFILES[name].plan(Invocation(tuple(argv), dict(env or {})))


def by_name(p):
    return {r.name: r for r in p.requirements}


def script_of(home):
    return str(home / "bin" / "elasticsearch")


# --- the version, from the installation's lib folder ---

@pytest.mark.parametrize("jar,advised", [
    ("elasticsearch-7.17.29.jar", False),
    ("elasticsearch-8.15.5.jar", False),
    ("elasticsearch-8.16.0.jar", True),
    ("elasticsearch-8.17.1.jar", True),
    ("elasticsearch-9.1.0-SNAPSHOT.jar", True),
    ("elasticsearch-10.0.0.jar", True),
])
def test_the_advice_is_a_warning_from_8_16_on(tmp_path, jar, advised):
    version = re.search(r"-([0-9.]+?)(-SNAPSHOT)?\.jar$", jar).group(1)
    home = installation(tmp_path / "es", jar, f"elasticsearch-core-{version}.jar", "lucene-core-9.12.0.jar")
    p = plan([script_of(home)])
    reqs = by_name(p)
    assert f"version [{version}] ({home}/lib/{jar})" in p.notes
    assert ("max-map-count-recommended" in reqs) == advised
    assert reqs["max-map-count"].value == 262144 and reqs["max-map-count"].hard
    if advised:
        advice = reqs["max-map-count-recommended"]
        assert (advice.key, advice.op, advice.value, advice.hard) == ("vm.max_map_count", ">=", ADVISED, False)
        assert advice.source == ES_MAP_COUNT_ADVICE.source
        assert reqs["max-map-count"].fix_value == ADVISED  # following the refusal's fix meets the advice too
    else:
        assert reqs["max-map-count"].fix_value is None


def test_the_installation_is_where_the_script_is_not_where_es_home_says(tmp_path):
    new = installation(tmp_path / "new", "elasticsearch-8.17.0.jar")
    old = installation(tmp_path / "old", "elasticsearch-8.15.0.jar")
    # elasticsearch-env derives ES_HOME from its own path and ignores the variable
    assert "max-map-count-recommended" in by_name(plan([script_of(new)], {"ES_HOME": str(old)}))
    assert "max-map-count-recommended" not in by_name(plan([script_of(old)], {"ES_HOME": str(new)}))


def test_a_symlinked_script_leads_to_its_real_installation(tmp_path):
    home = installation(tmp_path / "es-8.16.1", "elasticsearch-8.16.1.jar")
    (tmp_path / "usr-bin").mkdir()
    link = tmp_path / "usr-bin" / "elasticsearch"
    link.symlink_to(script_of(home))
    p = plan([str(link)])
    assert "max-map-count-recommended" in by_name(p)
    assert f"version [8.16.1] ({home}/lib/elasticsearch-8.16.1.jar)" in p.notes


def test_a_relative_script_is_found_from_the_working_directory(tmp_path, monkeypatch):
    installation(tmp_path / "es", "elasticsearch-8.18.2.jar")
    monkeypatch.chdir(tmp_path / "es")
    assert "max-map-count-recommended" in by_name(plan(["bin/elasticsearch"]))


def test_a_bare_name_is_found_in_the_programs_path(tmp_path):
    home = installation(tmp_path / "es", "elasticsearch-8.19.0.jar")
    p = plan(["elasticsearch", "-Ecluster.name=x"], {"PATH": f"{tmp_path / 'nothing'}:{home / 'bin'}"})
    assert "max-map-count-recommended" in by_name(p)


def test_es_home_names_the_installation_for_the_image_command(tmp_path):
    home = installation(tmp_path / "es", "elasticsearch-8.16.0.jar")
    found = profiles.invocation(profiles.PROFILES["elasticsearch"], ["docker-entrypoint.sh", "eswrapper"],
                                {"ES_HOME": str(home)})
    assert "max-map-count-recommended" in by_name(profiles.PROFILES["elasticsearch"].plan(found))


def test_allow_mmap_false_drops_the_advice_with_the_check(tmp_path):
    home = installation(tmp_path / "es", "elasticsearch-8.17.0.jar")
    p = plan([script_of(home), "-Enode.store.allow_mmap=false"])
    assert "vm.max_map_count" not in {r.key for r in p.requirements}
    assert not any(n.startswith("version") for n in p.notes)


def test_in_development_mode_both_warn_and_the_fix_still_sets_the_advice(tmp_path):
    home = installation(tmp_path / "es", "elasticsearch-8.17.0.jar")
    reqs = by_name(plan([script_of(home), "-Ediscovery.type=single-node"]))
    assert not reqs["max-map-count"].hard and not reqs["max-map-count-recommended"].hard
    assert reqs["max-map-count"].fix_value == ADVISED


def test_opensearch_is_not_given_elasticsearchs_advice(tmp_path):
    home = tmp_path / "os"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / "opensearch-3.1.0.jar").touch()
    (home / "lib" / "elasticsearch-8.17.0.jar").touch()
    p = plan(["opensearch"], {"OPENSEARCH_HOME": str(home)}, name="opensearch")
    assert [r.value for r in p.requirements if r.key == "vm.max_map_count"] == [262144]
    assert not any(n.startswith("version") for n in p.notes)


# --- an unknown version: today's checks, and a note only where the user said where ---

def test_no_installation_where_nobody_said_is_no_news():
    p = plan(["elasticsearch"], {"PATH": "/nonexistent"})  # the image's /usr/share/elasticsearch is not here
    assert "max-map-count-recommended" not in by_name(p)
    assert len(p.notes) == 1  # only the mode


@pytest.mark.parametrize("make,reason", [
    (lambda lib: None, "cannot list {lib}: No such file or directory"),
    (lambda lib: lib.write_text("x"), "{lib} is not a directory"),
    (lambda lib: lib.mkdir(), "{lib} names one version in elasticsearch-X.Y.Z.jar, but holds none"),
    (lambda lib: (lib.mkdir(), (lib / "elasticsearch-8.15.0.jar").touch(), (lib / "elasticsearch-8.17.0.jar").touch()),
     "{lib} names one version in elasticsearch-X.Y.Z.jar, but holds "
     "[elasticsearch-8.15.0.jar, elasticsearch-8.17.0.jar]"),
], ids=["absent", "a-file", "no-server-jar", "two-versions"])
def test_an_unknown_version_keeps_todays_checks_and_says_why_when_named(tmp_path, make, reason):
    home = tmp_path / "es"
    home.mkdir()
    make(home / "lib")
    expected = (f"version unknown ({reason.format(lib=home / 'lib')}): the docs' vm.max_map_count advice "
                "for 8.16 and later is not checked")
    named = plan(["eswrapper"], {"ES_HOME": str(home)})
    assert "max-map-count-recommended" not in by_name(named)
    assert by_name(named)["max-map-count"].fix_value is None
    assert expected in named.notes
    (home / "bin").mkdir()
    (home / "bin" / "elasticsearch").write_text("#!/bin/sh\n")
    (home / "bin" / "elasticsearch").chmod(0o755)
    unnamed = plan(["elasticsearch"], {"PATH": str(home / "bin")})  # found in PATH: nobody said where
    assert "max-map-count-recommended" not in by_name(unnamed)
    assert not any(n.startswith("version") for n in unnamed.notes)


def test_a_script_outside_a_bin_folder_is_an_unknown_installation(tmp_path):
    script = tmp_path / "elasticsearch"
    script.write_text("#!/bin/sh\n")
    p = plan([str(script)])
    assert "max-map-count-recommended" not in by_name(p)
    assert (f"version unknown (no folder named bin above {script}): the docs' vm.max_map_count advice for 8.16 "
            "and later is not checked") in p.notes


def test_a_lib_folder_guard_may_not_list_is_an_unknown_version(tmp_path):
    home = installation(tmp_path / "es", "elasticsearch-8.17.0.jar")
    code = ("from guard import profiles; p = profiles.PROFILES['elasticsearch'].plan(profiles.Invocation("
            f"({script_of(home)!r},))); print([r.name for r in p.requirements]); print(*p.notes, sep='\\n')")
    # root lists through mode 0: the child drops the DAC capabilities, as a non-root user meets it
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    os.chmod(home / "lib", 0)
    try:
        out = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    finally:
        os.chmod(home / "lib", 0o755)
    assert "max-map-count-recommended" not in out.stdout, out
    assert f"version unknown (cannot list {home}/lib: Permission denied)" in out.stdout, out


def test_a_fifo_for_lib_is_never_opened(tmp_path):
    home = tmp_path / "es"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "elasticsearch").write_text("#!/bin/sh\n")
    os.mkfifo(home / "lib")
    done = run_guard("check", "--format", "json", "--", script_of(home), env=ONLY_MAPS, timeout=20)
    assert done.returncode in (0, 78), text(done)
    assert (f"version unknown ({home}/lib is not a directory): the docs' vm.max_map_count advice for 8.16 "
            "and later is not checked") in json.loads(done.stdout)["notes"]


# --- the two checks together, as the user sees them ---

REPORT_BELOW_BOTH = """\
guard: elasticsearch: production mode (no network.host or transport setting given, and no elasticsearch.yml to read here: taken as the official image's network.host [0.0.0.0], beyond loopback): checks are enforced
guard: elasticsearch: version [8.17.0] ({home}/lib/elasticsearch-8.17.0.jar)
guard: FAIL  max-map-count              max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]
guard: warn  max-map-count-recommended  max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [1048576]
guard: skip  file-descriptors           max file descriptors nofile.hard skipped: --skip file-descriptors
guard: pass  max-threads                max number of threads nproc [8192] >= [4096]
guard: pass  max-size-virtual-memory    max size virtual memory as [unlimited] >= [unlimited]
guard: pass  max-file-size              max file size fsize [unlimited] >= [unlimited]
guard: [1] of [6] checks failed for elasticsearch, and [1] gave a warning
guard: [1] max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]
guard:     To fix this, run as root: sysctl -w vm.max_map_count=1048576
guard:     and keep it across reboots: echo 'vm.max_map_count=1048576' >> /etc/sysctl.d/zz-guard-elasticsearch.conf
guard:     This sets [1048576], which max-map-count-recommended asks for: one change meets both.
guard: [2] (warning) max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [1048576]
guard:     The fix in [1] covers this too: it sets [1048576].
guard: check failed (exit 78): fix the failures above, or run with --mode warn (GUARD_MODE=warn) to start anyway
"""
LIMITS = {"nproc": (8192, 8192)}


def check_es(tmp_path, host_value, *args):
    home = installation(tmp_path / "es", "elasticsearch-8.17.0.jar")
    env = {**ONLY_MAPS, "GUARD_PROCFS": crafted_proc(tmp_path / "proc", {"vm.max_map_count": host_value})}
    return home, run_guard("check", *args, "--", script_of(home), env=env, limits=LIMITS)


def test_below_both_the_refusal_and_the_warning_print_one_fix_once(tmp_path):
    home, done = check_es(tmp_path, 65530)
    assert done.returncode == 78
    assert text(done) == REPORT_BELOW_BOTH.format(home=home)
    assert set(re.findall(r"vm\.max_map_count=([0-9]+)", text(done))) == {"1048576"}


@pytest.mark.parametrize("host_value,code,statuses", [
    (262143, 78, ("fail", "warn")),
    (262144, 0, ("pass", "warn")),
    (1048575, 0, ("pass", "warn")),
    (1048576, 0, ("pass", "pass")),
    (2000000, 0, ("pass", "pass")),
])
def test_at_and_around_both_thresholds(tmp_path, host_value, code, statuses):
    _, done = check_es(tmp_path, host_value, "--format", "json")
    assert done.returncode == code, text(done)
    report = json.loads(done.stdout)
    found = {c["name"]: c for c in report["checks"]}
    refusal, advice = found["max-map-count"], found["max-map-count-recommended"]
    assert (refusal["status"], advice["status"]) == statuses
    assert (refusal["required"], refusal["hard"], advice["required"], advice["hard"]) == (262144, True, ADVISED, False)
    assert report["verdict"] == {78: "refuse", 0: "warn" if "warn" in statuses else "pass"}[code]
    for check in (refusal, advice):
        if check["status"] != "pass":
            assert "sysctl -w vm.max_map_count=1048576" in check["fix"], check
            assert "vm.max_map_count=262144" not in check["fix"]


# --- memory lock: hard where mlockall certainly fails, the docs' unlimited a warning ---

def test_memory_lock_is_hard_below_any_jvms_address_space_and_advised_unlimited():
    reqs = by_name(plan(["elasticsearch"], {"bootstrap.memory_lock": "true"}))
    floor, advice = reqs["memory-lock"], reqs["memory-lock-recommended"]
    assert (floor.key, floor.value, floor.hard) == ("memlock", 512 << 20, True)
    assert (advice.key, advice.value, advice.hard) == ("memlock", UNLIMITED, False)
    assert floor.fix_value == UNLIMITED
    assert "MlockallCheck" in floor.source


@pytest.mark.parametrize("limit,floor_status,advice_status", [
    (64 << 10, "fail", "warn"),
    (JVM_SMALLEST_ADDRESS_SPACE - 1, "fail", "warn"),
    (JVM_SMALLEST_ADDRESS_SPACE, "pass", "warn"),
    (64 << 30, "pass", "warn"),
    (UNLIMITED, "pass", "pass"),
])
def test_memory_lock_below_at_and_above_the_floor(limit, floor_status, advice_status):
    reqs = by_name(plan(["elasticsearch"], {"bootstrap.memory_lock": "true"}))
    assert checks.judge(reqs["memory-lock"], limit).status == floor_status
    assert checks.judge(reqs["memory-lock-recommended"], limit).status == advice_status


def test_a_small_memory_lock_limit_refuses_with_the_unlimited_fix(tmp_path):
    env = {**ONLY_MAPS, "GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 262144}),
           "bootstrap.memory_lock": "true", "GUARD_PLACE": "container"}
    done = run_guard("check", "--format", "json", "--", "elasticsearch", env=env,
                     limits={**LIMITS, "memlock": (64 << 10, 64 << 10)})
    assert done.returncode == 78, text(done)
    found = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert found["memory-lock"]["status"] == "fail" and found["memory-lock"]["required"] == 512 << 20
    assert found["memory-lock-recommended"]["status"] == "warn"
    assert "docker run --ulimit memlock=-1:-1" in found["memory-lock"]["fix"]
    assert "memlock=536870912" not in found["memory-lock"]["fix"]


# --- settings from variables: only in the Docker distribution ---

@pytest.mark.parametrize("line, counted", [
    ("ES_DISTRIBUTION_TYPE=docker", True),  # the image's Dockerfile rewrites tar to docker
    ("ES_DISTRIBUTION_TYPE=tar", False),
    ("readonly ES_DISTRIBUTION_TYPE=\"deb\"", False),
    ("ES_DISTRIBUTION_TYPE=@es.distribution.type@", True),  # not built: unknown, as without the file
    (None, True),  # no env script to read: as in the image
], ids=["docker", "tar", "deb", "placeholder", "no-script"])
def test_setting_variables_count_only_in_the_docker_distribution(tmp_path, line, counted):
    home = installation(tmp_path / "es", "elasticsearch-8.17.0.jar")
    if line is not None:
        (home / "bin" / "elasticsearch-env").write_text(f"#!/bin/bash\nset -e\n{line}\ncd \"$ES_HOME\"\n")
    env = {"discovery.type": "single-node", "ES_SETTING_NETWORK_HOST": "127.0.0.1",
           "ES_PATH_CONF": str(tmp_path / "no-config")}
    p = plan([script_of(home)], env)
    assert all(not r.hard for r in p.requirements) == counted, p.notes
    left_out = [n for n in p.notes if "takes no settings from variables" in n]
    if counted:
        assert not left_out
    else:
        kind = re.search(r"=\W*(\w+)", line).group(1)
        assert left_out == [f"the {kind} distribution takes no settings from variables, as its "
                            "bin/elasticsearch-env says: discovery.type, network.host left out, as it leaves them"]


def test_a_fifo_in_place_of_the_env_script_is_not_read(tmp_path):
    home = installation(tmp_path / "es", "elasticsearch-8.17.0.jar")
    os.mkfifo(home / "bin" / "elasticsearch-env")
    p = plan([script_of(home)], {"discovery.type": "single-node", "ES_PATH_CONF": str(tmp_path)})
    assert all(not r.hard for r in p.requirements)  # unknown: the variables count, nothing waited on


@pytest.mark.parametrize("argv, counted", [
    (["./opensearch-docker-entrypoint.sh", "opensearch"], True),  # the image's way
    ([], True),  # a preflight, no command: as in the image
    (["/usr/share/opensearch/bin/opensearch"], False),  # the program itself reads no variables
])
def test_opensearch_takes_setting_variables_only_through_its_entrypoint(tmp_path, argv, counted):
    p = plan(argv, {"discovery.type": "single-node", "OPENSEARCH_PATH_CONF": str(tmp_path)}, name="opensearch")
    assert all(not r.hard for r in p.requirements) == counted, p.notes
    left_out = ("opensearch takes no settings from variables when started without "
                "opensearch-docker-entrypoint.sh: discovery.type left out, as it leaves them")
    assert (left_out in p.notes) == (not counted)
