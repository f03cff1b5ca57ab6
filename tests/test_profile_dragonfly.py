"""Dragonfly: the memory it needs per thread (it exits without it), and the kernel and limits
that only move it from io_uring to epoll (warnings)."""

import json
import os

import pytest

from guard import profiles
from guard.checks import run_check
from guard.profiles import Invocation, dragonfly
from support import crafted_proc, run_guard

MIB = 1 << 20


def plan(args=(), env=None):
    return profiles.PROFILES["dragonfly"].plan(Invocation(("dragonfly", *args), env or {}))


def per_thread(p):
    return {r.name: r for r in p.requirements}["memory-per-thread"]


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A crafted host: 4 GiB available, kernel 6.1, in cgroup v2 with no limits, 8 CPUs to run on;
    returns a setter for the container's cgroup files."""
    # More CPUs than any cgroup limit the tests set: a limit that is not read shows.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    proc = crafted_proc(tmp_path / "proc", {}, osrelease="6.1.0-test")
    os.makedirs(os.path.join(proc, "self"))
    with open(os.path.join(proc, "self", "cgroup"), "w") as f:
        f.write("0::/\n")
    with open(os.path.join(proc, "meminfo"), "w") as f:
        f.write(f"MemTotal: {8 << 20} kB\nMemAvailable: {4 << 20} kB\nSwapTotal: 0 kB\n")
    cgroup = tmp_path / "sys" / "fs" / "cgroup"
    cgroup.mkdir(parents=True)
    monkeypatch.setenv("GUARD_PROCFS", proc)
    monkeypatch.setenv("GUARD_SYSFS", str(tmp_path / "sys"))

    def set_cgroup(name, text):
        (cgroup / name).write_text(text + "\n")
    return set_cgroup


@pytest.mark.parametrize("text,size", [
    ("1G", 1 << 30), ("1GB", 1 << 30), ("1.5GiB", 3 << 29), ("512mb", 512 * MIB), ("100", 100), ("2t", 2 << 40),
    ("1Q", None), ("G", None), ("-1G", None),
    # helio ParseHumanReadableBytes: the number is C's strtod's, rounded to the nearest byte
    ("1e9", 10 ** 9), ("0x40000000", 1 << 30), ("1.5", 2), (".5k", 512), (" 1G", 1 << 30), ("+5m", 5 * MIB),
    ("1E", 1 << 60), ("1e", 1 << 60), ("1EB", 1 << 60),  # E is exa- unless digits follow it
    ("-0", 0), ("1Gigabytes", None), ("1G ", None), ("1 G", None), ("1ib", None), ("0x", None),
    ("7E", 7 << 60), ("8E", None), ("9" * 400, None), ("1e400", None), ("inf", None), ("nan", None),
])
def test_sizes_are_read_as_dragonfly_reads_them(text, size):
    assert dragonfly.parse_bytes(text) == size


@pytest.mark.parametrize("args,env,maxmemory,threads", [
    (["--maxmemory=1G", "--proactor_threads=4"], {}, 1 << 30, 4),
    (["--maxmemory", "512mb", "--proactor_threads", "2"], {}, 512 * MIB, 2),
    (["-maxmemory=2G", "-proactor_threads=3"], {}, 2 << 30, 3),  # absl takes one dash too
    ([], {"DFLY_maxmemory": "3G", "DFLY_proactor_threads": "5"}, 3 << 30, 5),
    (["--maxmemory=1G"], {"DFLY_maxmemory": "9G", "DFLY_proactor_threads": "2"}, 1 << 30, 2),  # the command line wins
])
def test_maxmemory_against_256_mib_per_thread(host, args, env, maxmemory, threads):
    req = per_thread(plan(args, env))
    assert (req.key, req.op, req.value, req.observed, req.hard) == ("dragonfly --maxmemory", ">=", threads * 256 * MIB,
                                                                    maxmemory, True)
    assert req.source.startswith(f"Dragonfly dfly_main.cc RunEngine: 256 MiB x [{threads}] threads")


@pytest.mark.parametrize("maxmemory,status", [("1023M", "fail"), ("1024M", "pass"), ("1025M", "pass")])
def test_dragonfly_is_refused_exactly_below_what_its_threads_need(host, maxmemory, status):
    result = run_check(per_thread(plan([f"--maxmemory={maxmemory}", "--proactor_threads=4"])))
    assert result.status == status
    if status == "fail":
        assert result.message == (f"dragonfly --maxmemory [{1023 * MIB}] is too low, increase to at least "
                                  f"[{1 << 30}]")
        assert "--proactor_threads=3 fits this much" in result.requirement.hint
    alone = per_thread(plan(["--maxmemory=100M", "--proactor_threads=2"])).hint
    assert "--maxmemory=536870912 or more, or a larger memory limit)." in alone and "--proactor_threads" not in alone


def test_without_maxmemory_it_takes_80_percent_of_what_is_available_capped_by_the_cgroup(host):
    assert per_thread(plan(["--proactor_threads=1"])).observed == int(0.8 * (4 << 30))
    host("memory.max", str(1 << 30))
    p = plan(["--proactor_threads=8"])
    assert per_thread(p).observed == int(0.8 * (1 << 30))
    assert run_check(per_thread(p)).status == "fail"  # 8 threads want 2 GiB: Dragonfly exits
    host("memory.high", str(512 * MIB))
    assert per_thread(plan(["--proactor_threads=1"])).observed == int(0.8 * 512 * MIB)


def test_threads_are_the_cgroups_cpu_limit_else_the_cpus_it_may_run_on(host):
    cpus = len(os.sched_getaffinity(0))
    assert per_thread(plan(["--maxmemory=8G"])).value == cpus * 256 * MIB
    host("cpu.max", "150000 100000")  # 1.5 CPUs: 2 threads (dfly_main.cc rounds up)
    assert per_thread(plan(["--maxmemory=8G"])).value == 2 * 256 * MIB
    host("cpu.max", "max 100000")
    assert per_thread(plan(["--maxmemory=8G"])).value == cpus * 256 * MIB


def test_a_v1_cpu_quota_is_whole_cpus_and_below_one_cpu_no_limit_as_dragonfly_reads_it(host, tmp_path):
    with open(os.path.join(os.environ["GUARD_PROCFS"], "self", "cgroup"), "w") as f:
        f.write("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:pids:/docker/abc\n")
    v1 = tmp_path / "sys" / "fs" / "cgroup" / "cpu,cpuacct" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    cpus = len(os.sched_getaffinity(0))
    for quota, threads in (("250000", 2), ("50000", cpus), ("-1", cpus)):  # 2.5 CPUs: 2; half a CPU: no limit
        (v1 / "cpu.cfs_quota_us").write_text(quota + "\n")
        assert per_thread(plan(["--maxmemory=64G"])).value == threads * 256 * MIB, quota


def test_threads_beyond_the_flags_uint32_are_refused_by_dragonfly_and_noted(host):
    p = plan(["--proactor_threads=4294967296", "--maxmemory=64G"])
    assert per_thread(p).value == len(os.sched_getaffinity(0)) * 256 * MIB
    assert "--proactor_threads [4294967296] is not a whole number from [0] to [4294967295]: Dragonfly refuses it" \
        in p.notes


def test_a_size_dragonfly_refuses_is_skipped_with_the_reason(host):
    result = run_check(per_thread(plan(["--maxmemory=lots"])))
    assert result.status == "skip"
    assert result.message == ("dragonfly --maxmemory skipped: --maxmemory [lots] is not a size Dragonfly reads: "
                              "it refuses it")


def test_flagfile_lines_count_as_command_line_flags(host, tmp_path):
    (tmp_path / "dragonfly.conf").write_text("--maxmemory=6G\n--proactor_threads=6\n")
    req = per_thread(plan([f"--flagfile={tmp_path / 'dragonfly.conf'}"]))
    assert (req.observed, req.value) == (6 << 30, 6 * 256 * MIB)


@pytest.mark.parametrize("kind", ["fifo", "missing", "directory"])
def test_a_flagfile_not_read_here_skips_the_memory_check_rather_than_judge_without_it(host, tmp_path, kind):
    flagfile = tmp_path / "dragonfly.conf"
    if kind == "fifo":
        os.mkfifo(flagfile)
    elif kind == "directory":
        flagfile.mkdir()
    result = run_check(per_thread(plan([f"--flagfile={flagfile}", "--proactor_threads=64"])))
    assert result.status == "skip" and f"--flagfile [{flagfile}] not read here" in result.message


@pytest.mark.parametrize("release,names", [
    ("5.4.0-200-generic", ["memory-per-thread", "io-uring-kernel", "memory-lock"]),
    ("5.11.0", ["memory-per-thread", "io-uring-kernel", "memory-lock"]),
    ("5.15.0", ["memory-per-thread", "io-uring-kernel"]),  # io_uring charges the memory cgroup from 5.12
    ("6.6.0", ["memory-per-thread", "io-uring-kernel", "io-uring-disabled"]),
])
def test_io_uring_checks_follow_the_kernel_and_are_only_warnings(host, tmp_path, monkeypatch, release, names):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path / "proc", {}, osrelease=release))
    p = plan(["--maxmemory=8G", "--proactor_threads=1"])
    assert [r.name for r in p.requirements] == names
    assert not any(r.hard for r in p.requirements if r.name != "memory-per-thread")


def test_force_epoll_drops_the_io_uring_checks(host):
    p = plan(["--force_epoll", "--maxmemory=8G"])
    assert [r.name for r in p.requirements] == ["memory-per-thread"]
    assert "--force_epoll" in p.notes[-1]


def test_guard_refuses_to_start_dragonfly_where_it_would_exit(host, tmp_path):
    stand_in = tmp_path / "dragonfly"
    stand_in.write_text("#!/bin/sh\necho started\n")
    stand_in.chmod(0o755)
    env = {"GUARD_FORMAT": "json", "GUARD_PROCFS": os.environ["GUARD_PROCFS"], "GUARD_SYSFS": os.environ["GUARD_SYSFS"]}
    refused = run_guard("--", str(stand_in), "--maxmemory=256M", "--proactor_threads=2", env=env)
    assert refused.returncode == 78 and refused.stdout == b""
    report = json.loads(refused.stderr)
    assert {c["name"]: c["status"] for c in report["checks"]}["memory-per-thread"] == "fail"
    started = run_guard("--", str(stand_in), "--maxmemory=512M", "--proactor_threads=2", env=env)
    assert started.returncode == 0 and started.stdout == b"started\n"
