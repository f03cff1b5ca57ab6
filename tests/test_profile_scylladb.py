"""ScyllaDB: fs.aio-max-nr as Seastar counts it per shard (fatal in developer mode too), and the
open files minimum that only production mode refuses."""

import json
import os

import pytest

from guard import profiles
from guard.profiles import Invocation, scylladb
from support import crafted_proc, run_guard

ENTRYPOINT = scylladb.SCYLLA_IMAGE_ENTRYPOINT


def plan(argv, env=None):
    return profiles.PROFILES["scylladb"].plan(Invocation(tuple(argv), env or {}))


def aio(p):
    return [r for r in p.requirements if r.key == "fs.aio-max-nr"]


@pytest.fixture
def in_use(tmp_path, monkeypatch):
    """A host with 5000 AIO control blocks in use by others."""
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"fs.aio-nr": 5000, "fs.aio-max-nr": 65536}))


@pytest.mark.parametrize("argv,shards", [
    (["scylla", "--smp", "4"], 4),
    (["scylla", "--smp=3", "--smp", "2"], 2),  # the last one given
    (["scylla", "--cpuset", "0-3,8,10-11"], 7),
    (["scylla", "--smp", "2", "--cpuset", "0-7"], 2),
    ([ENTRYPOINT, "--smp", "1"], 1),
])
def test_aio_minimum_is_seastars_per_shard_count_from_what_is_in_use(in_use, argv, shards):
    least, advised = aio(plan(argv))
    assert least.value == 5000 + 10 + (1024 + 2 + 1) * shards  # aio-nr + reserve + 1027 per shard
    assert advised.value == 5000 + 10 + (1024 + 2 + 50000) * shards
    assert least.hard and not advised.hard
    assert least.source.endswith(f"1027 x [{shards}] shards")
    assert (f"Set /proc/sys/fs/aio-max-nr to at least {least.value} (minimum) or {advised.value} (recommended for "
            "networking performance).") in least.hint


def test_without_smp_or_cpuset_a_shard_runs_on_each_cpu_this_process_may_use(in_use):
    cpus = len(os.sched_getaffinity(0))
    assert aio(plan(["scylla"]))[0].value == 5010 + 1027 * cpus
    assert f"[{cpus}] shards (the [{cpus}] CPUs this process may run on)" in plan(["scylla"]).notes[-1]


def test_reserve_and_networking_blocks_follow_their_options(in_use):
    least, advised = aio(plan(["scylla", "--smp", "2", "--reserve-io-control-blocks", "100",
                               "--max-networking-io-control-blocks", "1000"]))
    assert (least.value, advised.value) == (5000 + 100 + 1027 * 2, 5000 + 100 + 2026 * 2)


def test_with_io_uring_disabled_scylla_keeps_1024_in_reserve(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"fs.aio-nr": 0, "kernel.io_uring_disabled": 2}))
    assert aio(plan(["scylla", "--smp", "1"]))[0].value == 1024 + 1027


def test_another_reactor_backend_reserves_no_aio(in_use):
    p = plan(["scylla", "--reactor-backend", "epoll"])
    assert not aio(p) and "--reactor-backend [epoll]" in p.notes[1]


def test_unreadable_aio_nr_counts_from_0_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"fs.aio-max-nr": 65536}))
    p = plan(["scylla", "--smp", "1"])
    assert aio(p)[0].value == 10 + 1027
    assert any(note.startswith("fs.aio-nr unreadable") for note in p.notes)


@pytest.mark.parametrize("argv,env,yaml,hard", [
    ([ENTRYPOINT], {}, None, False),  # the image's entrypoint: --developer-mode 1 by default
    ([ENTRYPOINT, "--developer-mode", "0"], {}, None, True),
    ([ENTRYPOINT, "--developer-mode", "0"], {}, "developer_mode: true\n", False),
    (["scylla"], {}, None, True),  # release builds: developer_mode false
    (["scylla", "--developer-mode=1"], {}, None, False),
    (["scylla", "--developer-mode", "false"], {}, "developer_mode: true\n", True),
    (["scylla"], {}, "developer_mode: true\n", False),
])
def test_open_files_minimum_refuses_only_outside_developer_mode(tmp_path, argv, env, yaml, hard):
    if yaml is not None:
        (tmp_path / "scylla.yaml").write_text(yaml)
    p = plan(argv, {"SCYLLA_CONF": str(tmp_path), **env})
    files = {r.name: r for r in p.requirements}
    assert files["open-files"].value == 10000 and files["open-files"].hard == hard, p.notes
    assert files["open-files-recommended"].value == 200000 and not files["open-files-recommended"].hard
    assert "refusing to start." in files["open-files"].hint


# The shape of ScyllaDB's own conf/scylla.yaml: a list of mappings (seed_provider), keys with no value.
STOCK_YAML = """num_tokens: 256
seed_provider:
    - class_name: org.apache.cassandra.locator.SimpleSeedProvider
      parameters:
          - seeds: "127.0.0.1"
listen_address: localhost
api_ui_dir:
"""


@pytest.mark.parametrize("yaml,developer,note", [
    (STOCK_YAML + "developer_mode: true\n", True, None),
    (STOCK_YAML, False, None),
    ("developer_mode: true\ndeveloper_mode: false\n", False, None),  # each line in turn: the last one set wins
    ("developer_mode: true\ndeveloper_mode:\n", True, None),  # a null one is skipped
    ("developer_mode: Y\n", True, None),  # yaml-cpp's booleans
    ("developer_mode: 'on'\n", True, None),
    ("developer_mode: 1\n", False, "developer_mode [1] in"),  # not one of them: scylla logs it, keeps false
    ("developer_mode: [true]\n", False, None),
    ("developer_mode: true\n---\ndeveloper_mode: false\n", True, None),  # yaml-cpp reads the first document
    ("developer_mode: true\n  bad: [\n", False, "scylla refuses it too"),
])
def test_scylla_yaml_is_read_as_scylla_reads_it(tmp_path, yaml, developer, note):
    (tmp_path / "scylla.yaml").write_text(yaml)
    p = plan(["scylla", "--smp", "1"], {"SCYLLA_CONF": str(tmp_path)})
    assert {r.name: r for r in p.requirements}["open-files"].hard == (not developer), p.notes
    assert note is None or any(note in n for n in p.notes), p.notes
    assert not any("cannot be used" in n for n in p.notes) or note == "scylla refuses it too"


def test_stock_scylla_yaml_in_developer_mode_is_not_refused_for_open_files(tmp_path):
    (tmp_path / "scylla.yaml").write_text(STOCK_YAML + "developer_mode: true\n")
    done = run_guard("check", "--skip", "aio-max-nr", "--", "scylla", "--smp", "1",
                     env={"SCYLLA_CONF": str(tmp_path)}, limits={"nofile": (4096, 4096)})
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.parametrize("host_value,status", [(7000, "fail"), (7064, "pass")])
def test_the_aio_minimum_refuses_below_and_passes_at_it(tmp_path, host_value, status):
    # 2 shards, 5000 in use: 5000 + 10 + 2054 = 7064
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"fs.aio-nr": 5000, "fs.aio-max-nr": host_value}),
           "GUARD_FORMAT": "json"}
    done = run_guard("check", "--profile", "scylladb", "--skip", "open-files", "--skip", "open-files-recommended",
                     "--", ENTRYPOINT, "--smp", "2", env=env)
    report = json.loads(done.stdout)
    assert {c["name"]: c["status"] for c in report["checks"]}["aio-max-nr"] == status
    assert done.returncode == (78 if status == "fail" else 0)


@pytest.mark.parametrize("text,size", [("0-3", 4), ("1,3,5", 3), ("0-1,1-2", 3), ("3-1", None), ("a", None),
                                       ("", None), ("8,0-3,2-9", 10), ("0-4294967295", 1 << 32),  # counted, not listed
                                       ("0-4294967296", None), (" 0-3", None), ("0-3,", None), ("-3", None)])
def test_cpuset_lists_are_counted_as_cpuset_7_writes_them(text, size):
    assert scylladb.cpuset_size(text) == size


def test_a_cpuset_past_the_cpus_this_process_may_use_is_noted_as_seastar_refuses_it(in_use):
    last = max(os.sched_getaffinity(0))
    p = plan(["scylla", "--cpuset", f"0-{last + 2}"])
    assert f"--cpuset [0-{last + 2}] names [{last + 3 - len(os.sched_getaffinity(0))}] CPUs this process may not " \
           "run on: Seastar refuses them (\"Bad value for --cpuset\")" in p.notes


@pytest.mark.parametrize("option,value", [("--smp", "0"), ("--smp", "4294967296"), ("--smp", "-1"), ("--smp", "2x"),
                                          ("--reserve-io-control-blocks", "4294967296"),
                                          ("--max-networking-io-control-blocks", "-5")])
def test_a_number_scylla_refuses_is_a_note_and_the_default(in_use, option, value):
    p = plan(["scylla", option, value] + (["--smp", "1"] if option != "--smp" else []))
    assert any(note.startswith(f"{option} [{value}] is not a whole number from [") and "scylla refuses it" in note
               for note in p.notes), p.notes


def test_another_images_docker_entrypoint_py_is_not_taken_for_scyllas(tmp_path):
    if os.path.exists("/opt/scylladb/scripts/scylla_dev_mode_setup"):
        pytest.skip("this is ScyllaDB's image")
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"fs.aio-nr": 0, "fs.aio-max-nr": 100})}
    done = run_guard("check", "--", "/docker-entrypoint.py", "--smp", "64", env=env)
    assert done.returncode == 2 and b"no profile knows [docker-entrypoint.py]" in done.stderr, done.stderr.decode()


@pytest.mark.parametrize("kind", ["fifo", "directory", "unreadable"])
def test_a_scylla_yaml_guard_cannot_read_leaves_developer_mode_unknown_and_the_minimum_a_warning(tmp_path, kind):
    path = tmp_path / "scylla.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text("developer_mode: true\n" + "#" * (2 << 20))  # past what guard reads
    p = plan(["scylla", "--smp", "1"], {"SCYLLA_CONF": str(tmp_path)})
    assert not {r.name: r for r in p.requirements}["open-files"].hard
    assert any(note.startswith(f"developer mode unknown ({path} not read)") for note in p.notes), p.notes


def test_a_missing_scylla_yaml_keeps_production_mode_as_scylla_stops_without_it(tmp_path):
    p = plan(["scylla", "--smp", "1"], {"SCYLLA_CONF": str(tmp_path)})
    assert {r.name: r for r in p.requirements}["open-files"].hard
