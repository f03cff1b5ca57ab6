"""MongoDB 8.0: the kernels it refuses while tcmalloc's per-CPU caches are on, and its start-up
warnings as startup_warnings_mongod.cpp gives them."""

import json
import os

import pytest

from guard import profiles
from guard.checks import run_check
from guard.profiles import Invocation, mongodb
from support import crafted_proc, run_guard

IMAGE_8 = {"MONGO_VERSION": "8.0.15", "GLIBC_TUNABLES": "glibc.pthread.rseq=0"}  # docker-library/mongo 8.0


def plan(env=None, argv=("mongod",)):
    return profiles.PROFILES["mongodb"].plan(Invocation(argv, env or {}))


def by_name(p):
    return {r.name: r for r in p.requirements}


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """Boot a crafted kernel: its release, and for Ubuntu its version string and signature."""
    def boot(release, version="#1 SMP PREEMPT_DYNAMIC", signature=None, swap_kb=0):
        root = tmp_path / release
        proc = crafted_proc(root, {"kernel.version": version}, osrelease=release)
        with open(os.path.join(proc, "meminfo"), "w") as f:
            f.write(f"MemTotal: 8000000 kB\nSwapTotal: {swap_kb} kB\n")
        if signature:
            with open(os.path.join(proc, "version_signature"), "w") as f:
                f.write(signature + "\n")
        monkeypatch.setenv("GUARD_PROCFS", proc)
    if os.uname().machine not in mongodb.TCMALLOC_GOOGLE_MACHINES:
        pytest.skip("tcmalloc-google is built for x86_64 and arm64 only")
    return boot


@pytest.mark.parametrize("release,status", [
    ("6.18.44-fc-v1272", "pass"),
    ("6.19.0-1-amd64", "fail"),
    ("7.0.12-linuxkit", "fail"),  # Docker Desktop's, where mongo:8.0 was seen to refuse
    ("7.0.13", "fail"),
    ("7.0.14", "pass"),
    ("7.1.2-arch1-1", "pass"),
])
def test_kernels_6_19_through_7_0_13_are_refused_while_per_cpu_caches_are_on(kernel, release, status):
    kernel(release)
    req = by_name(plan(IMAGE_8))["kernel-rseq"]
    result = run_check(req)
    assert (result.status, req.hard) == (status, True), result
    assert "MongoDB cannot start: Linux kernel versions 6.19 and newer has a known incompatibility" in req.hint
    assert "GLIBC_TUNABLES=glibc.pthread.rseq=1" in req.hint


def test_an_ubuntu_7_0_kernel_is_judged_on_its_release_as_mongod_reads_it_from_uname(kernel):
    # startup_check_rseq.cpp reads uname(2)'s release: 7.0.0, whatever fix the Ubuntu kernel carries.
    kernel("7.0.0-28-generic", "#28~24.04.1-Ubuntu SMP PREEMPT_DYNAMIC", "Ubuntu 7.0.0-28.28-generic 7.0.15")
    p = plan(IMAGE_8)
    assert run_check(by_name(p)["kernel-rseq"]).status == "fail"
    assert not any("version_signature" in note for note in p.notes)


@pytest.mark.parametrize("release,status", [("7.0.14", "warn"), ("7.1.5-arch1-1", "warn"), ("7.0.13", None),
                                            ("6.18.2", None)])
def test_past_7_0_13_the_checks_first_form_still_refusing_is_a_warning(kernel, release, status):
    kernel(release)
    req = by_name(plan(IMAGE_8)).get("kernel-rseq-first-form")
    assert (run_check(req).status if req else None) == status
    if req:
        assert not req.hard and (req.op, req.value) == ("<=", "6.18")
        assert "GLIBC_TUNABLES=glibc.pthread.rseq=1" in req.hint and "6.19 and newer" in req.hint


@pytest.mark.parametrize("env,why", [
    ({"MONGO_VERSION": "8.0.15"}, "GLIBC_TUNABLES has no glibc.pthread.rseq=0: glibc 2.35 and later keep rseq"),
    ({"MONGO_VERSION": "8.0.15", "GLIBC_TUNABLES": "glibc.pthread.rseq=1"}, "GLIBC_TUNABLES has no"),
    ({"MONGO_VERSION": "7.0.12", "GLIBC_TUNABLES": "glibc.pthread.rseq=0"}, None),
])
def test_no_refusal_without_per_cpu_caches_or_before_8_0(kernel, env, why):
    kernel("6.19.0-1-amd64")
    p = plan(env)
    assert "kernel-rseq" not in by_name(p)
    assert why is None or any(note.startswith(why) for note in p.notes)


@pytest.mark.parametrize("tunables,caches", [
    ("glibc.malloc.arena_max=2:glibc.pthread.rseq=0", True),
    ("glibc.pthread.rseq=0:glibc.pthread.rseq=1", False),  # glibc reads them in turn: the last one is set
    ("glibc.pthread.rseq=1:glibc.pthread.rseq=0", True),
    ("glibc.pthread.rseq=2", False),  # out of its range: ignored, glibc keeps rseq
    ("glibc.pthread.rseq=", False),
    ("xglibc.pthread.rseq=0", False),
])
def test_glibc_tunables_are_read_item_by_item(kernel, tunables, caches):
    kernel("6.19.0")
    assert ("kernel-rseq" in by_name(plan({"MONGO_MAJOR": "8.0", "GLIBC_TUNABLES": tunables}))) == caches


def test_an_unknown_version_with_the_tunable_is_judged_as_8_0_and_says_so(kernel):
    kernel("6.19.0")
    p = plan({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
    assert by_name(p)["kernel-rseq"].hard
    assert any(note.startswith("mongod version unknown (no MONGO_VERSION): judged as 8.0 or later") for note in p.notes)


def test_the_version_of_a_release_archive_is_read_from_its_folder(kernel):
    kernel("6.1.0")
    argv = ("/opt/mongodb-linux-x86_64-ubuntu2204-7.0.14/bin/mongod",)
    assert by_name(plan({}, argv))["transparent-hugepage"].op == "!="


def test_unreadable_kernel_release_is_skipped_not_refused(kernel, tmp_path, monkeypatch):
    kernel("6.1.0")
    os.unlink(os.path.join(os.environ["GUARD_PROCFS"], "sys", "kernel", "osrelease"))
    result = run_check(by_name(plan(IMAGE_8))["kernel-rseq"])
    assert result.status == "skip" and "cannot read" in result.message


def test_thp_advice_follows_the_allocator_of_the_version(kernel):
    kernel("6.1.0")
    google, gperf = by_name(plan(IMAGE_8))["transparent-hugepage"], by_name(plan({"MONGO_VERSION": "7.0.5"}))[
        "transparent-hugepage"]
    assert (google.op, google.value, gperf.op, gperf.value) == ("=", "always", "!=", "always")
    assert "9068900" in google.source and "22178" in gperf.source
    assert "transparent-hugepage" not in by_name(plan({}))


@pytest.mark.parametrize("swap_kb,present", [(0, False), (1048576, True)])
def test_swappiness_is_judged_only_with_swap_on_as_mongod_8_does(kernel, swap_kb, present):
    kernel("6.1.0", swap_kb=swap_kb)
    p = plan(IMAGE_8)
    assert ("swappiness" in by_name(p)) == present
    if present:
        assert (by_name(p)["swappiness"].op, by_name(p)["swappiness"].value) == ("<=", 1)


def test_zone_reclaim_and_locked_memory_as_mongod_warns(kernel):
    kernel("6.1.0")
    reqs = by_name(plan(IMAGE_8))
    assert (reqs["zone-reclaim-mode"].op, reqs["zone-reclaim-mode"].value) == ("=", 0)
    assert reqs["memory-lock"].value == 16 * os.sysconf("SC_PAGE_SIZE")
    assert not any(r.hard for r in reqs.values() if r.name != "kernel-rseq")


def test_guard_refuses_mongod_8_on_a_refused_kernel_with_the_workaround(kernel):
    kernel("6.19.3")
    done = run_guard("check", "--format", "json", "--", "mongod",
                     env={**IMAGE_8, "GUARD_PROCFS": os.environ["GUARD_PROCFS"], "GUARD_PLACE": "container"})
    assert done.returncode == 78
    check = {c["name"]: c for c in json.loads(done.stdout)["checks"]}["kernel-rseq"]
    assert check["message"] == "Linux kernel kernel.osrelease [6.19.3] is too low, increase to at least [7.0.14]"
    assert check["fix"].startswith("The Linux kernel is the one the Docker host booted")
    assert "GLIBC_TUNABLES=glibc.pthread.rseq=1" in check["fix"]
