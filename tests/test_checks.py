import os
import resource
import subprocess
import sys

import pytest

from guard import checks, profiles
from guard.checks import Requirement, judge, parse_spec, run_check
from guard.host import UNLIMITED
from support import crafted_proc, crafted_sys


def every_profile_requirement():
    for profile in profiles.PROFILES.values():
        for req in profile.plan(profiles.Invocation((), {})).requirements:
            yield pytest.param(req, id=f"{profile.name}-{req.name}")


def neighbours(req):
    """(value, expected status) just below, at and just above the threshold."""
    bad = "fail" if req.hard else "warn"
    if checks.kind_of(req.key) == "kernel":  # a version: the release a kernel reports, around it
        parts = [int(part) for part in req.value.split(".")]
        below, at, above = (".".join(map(str, parts[:-1] + [parts[-1] + step])) + ".0-1-amd64" for step in (-1, 0, 1))
    elif req.value == UNLIMITED:
        return [(1 << 40, bad), (UNLIMITED, "pass")]
    elif isinstance(req.value, str):
        return [(req.value, "pass" if req.op == "=" else bad), ("madvise" if req.value != "madvise" else "never",
                                                                  bad if req.op == "=" else "pass")]
    else:
        below, at, above = req.value - 1, req.value, req.value + 1
    expected = {
        ">=": (bad, "pass", "pass"),
        "<=": ("pass", "pass", bad),
        "=": (bad, "pass", bad),
        "!=": ("pass", bad, "pass"),
    }[req.op]
    return list(zip((below, at, above), expected))


@pytest.mark.parametrize("req", list(every_profile_requirement()))
def test_every_profile_check_below_at_and_above_its_threshold(req):
    for value, expected in neighbours(req):
        result = judge(req, value)
        assert result.status == expected, (req, value, result)
        if expected != "pass":
            assert f"[{checks.format_value(value)}]" in result.message
            assert f"[{checks.format_value(req.value)}]" in result.message


def test_max_map_count_message_is_the_sentence_users_search_for():
    req = Requirement("vm.max_map_count", ">=", 262144)
    assert judge(req, 65530).message == (
        "max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]")


def test_unlimited_requirement_says_increase_to_unlimited():
    req = Requirement("as", ">=", UNLIMITED)
    assert judge(req, 1 << 30).message == (
        f"max size virtual memory as [{1 << 30}] is too low, increase to [unlimited]")


def test_soft_requirement_warns_where_hard_one_fails():
    assert judge(Requirement("vm.max_map_count", ">=", 10, hard=False), 9).status == "warn"
    assert judge(Requirement("vm.max_map_count", ">=", 10, hard=True), 9).status == "fail"


def test_word_where_a_number_is_needed_is_skipped_not_failed():
    result = judge(Requirement("vm.max_map_count", ">=", 10), "garbage")
    assert result.status == "skip"


@pytest.mark.parametrize("value,status", [(65529, "fail"), (65530, "pass"), (65531, "pass")])
def test_sysctl_is_read_from_the_proc_root(tmp_path, monkeypatch, value, status):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"vm.max_map_count": value}))
    result = run_check(Requirement("vm.max_map_count", ">=", 65530))
    assert (result.status, result.actual) == (status, value)


@pytest.mark.parametrize("spelling", ["net/ipv4/conf/eth0.100/forwarding", "net.ipv4.conf.eth0/100.forwarding"])
def test_a_sysctl_whose_component_has_a_dot_is_read_from_its_file(tmp_path, monkeypatch, spelling):
    # A VLAN interface eth0.100: sysctl(8) names it with "/" for the dot in the dotted form.
    folder = tmp_path / "sys" / "net" / "ipv4" / "conf" / "eth0.100"
    folder.mkdir(parents=True)
    (folder / "forwarding").write_text("1\n")
    monkeypatch.setenv("GUARD_PROCFS", str(tmp_path))
    result = run_check(parse_spec(f"{spelling}=1"))
    assert (result.status, result.actual) == ("pass", 1), result.message


def test_unreadable_value_is_skipped_not_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {}))
    result = run_check(Requirement("vm.max_map_count", ">=", 262144))
    assert result.status == "skip"
    assert "vm/max_map_count" in result.message and "No such file" in result.message


def test_permission_denied_is_skipped_with_the_reason(tmp_path, monkeypatch):
    root = crafted_proc(tmp_path, {"vm.max_map_count": 1})
    path = os.path.join(root, "sys", "vm", "max_map_count")
    os.chmod(path, 0)
    monkeypatch.setenv("GUARD_PROCFS", root)
    # root reads through mode 0: a child without the DAC capabilities meets the real denial
    code = ("from guard.checks import *; r = run_check(Requirement('vm.max_map_count', '>=', 5)); "
            "print(r.status, '|', r.message)")
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    out = subprocess.run([*drop, sys.executable, "-c", code],
                         capture_output=True, text=True, env={**os.environ, "GUARD_PROCFS": root}, cwd="/")
    assert out.stdout.startswith("skip |"), out
    assert "Permission denied" in out.stdout


@pytest.mark.parametrize("thp,status", [("[always] madvise never", "fail"),
                                        ("always [madvise] never", "pass"),
                                        ("always madvise [never]", "pass")])
def test_transparent_hugepage_mode_is_the_bracketed_word(tmp_path, monkeypatch, thp, status):
    monkeypatch.setenv("GUARD_SYSFS", crafted_sys(tmp_path, thp))
    result = run_check(parse_spec("transparent_hugepage!=always"))
    assert result.status == status


def test_kernel_without_thp_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_SYSFS", crafted_sys(tmp_path, thp=None))
    assert run_check(parse_spec("transparent_hugepage!=always")).status == "skip"


def _check_in_child(spec, limit, soft, hard):
    """Run a check in a child whose rlimit is really set: rlimits are not faked."""
    code = (f"import resource; resource.setrlimit(resource.{limit}, ({soft}, {hard})); "
            f"from guard.checks import *; r = run_check(parse_spec({spec!r})); print(r.status, r.actual)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                          check=True).stdout.split()


@pytest.mark.parametrize("soft,expected", [(1023, "fail"), (1024, "pass"), (1025, "pass")])
def test_plain_rlimit_name_is_the_soft_limit(soft, expected):
    assert _check_in_child("nofile>=1024", "RLIMIT_NOFILE", soft, 4096) == [expected, str(soft)]


@pytest.mark.parametrize("hard,expected", [(4095, "fail"), (4096, "pass"), (4097, "pass")])
def test_hard_suffix_reads_the_hard_limit(hard, expected):
    assert _check_in_child("nofile.hard>=4096", "RLIMIT_NOFILE", 100, hard) == [expected, str(hard)]


def test_unlimited_rlimit_reads_as_unlimited():
    infinity = resource.RLIM_INFINITY
    assert _check_in_child("fsize>=unlimited", "RLIMIT_FSIZE", infinity, infinity) == ["pass", "inf"]
    assert _check_in_child("fsize>=unlimited", "RLIMIT_FSIZE", 1 << 20, infinity)[0] == "fail"


def test_every_check_runs_even_after_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"vm.max_map_count": 1, "vm.overcommit_memory": 0}))
    reqs = [parse_spec("vm.max_map_count>=2"), parse_spec("vm.overcommit_memory=1"), parse_spec("vm.swappiness<=1")]
    assert [r.status for r in checks.run_checks(reqs)] == ["fail", "fail", "skip"]


def test_skipped_checks_are_reported_as_skipped_by_name_or_key():
    reqs = [Requirement("vm.max_map_count", ">=", 1 << 40), Requirement("nofile", ">=", 1 << 40)]
    results = checks.run_checks(reqs, skip={"max-map-count", "nofile"})
    assert [r.status for r in results] == ["skip", "skip"]
    assert "--skip max-map-count" in results[0].message


@pytest.mark.parametrize("op", [">=", "<=", "=", "!="])
@pytest.mark.parametrize("text", ["", "garbage", "4096 16384 4194304"])
def test_value_that_is_not_a_number_is_skipped_with_the_reason_whatever_the_operator(tmp_path, monkeypatch, op, text):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"vm.overcommit_memory": text}))
    result = run_check(parse_spec(f"vm.overcommit_memory{op}1"))
    assert result.status == "skip"
    assert result.message == f"memory overcommit vm.overcommit_memory skipped: [{text}] is not a number"


def test_word_requirement_compares_a_numeric_value_as_text(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {"net.ipv4.tcp_congestion_control": "1"}))
    assert run_check(parse_spec("net.ipv4.tcp_congestion_control=bbr")).status == "fail"
    assert run_check(parse_spec("net.ipv4.tcp_congestion_control!=bbr")).status == "pass"


def test_skips_that_name_no_check_are_found_by_name_or_key():
    reqs = [Requirement("vm.max_map_count", ">=", 1), Requirement("nofile.hard", ">=", 1, name="file-descriptors")]
    assert checks.unmatched_skips(["max-map-count", "nofile.hard", "nofile", "max-map-cont"], reqs) == [
        "nofile", "max-map-cont"]


@pytest.mark.parametrize("op,hard,word", [("=", True, "must be"), ("=", False, "should be"),
                                          ("!=", True, "must not be"), ("!=", False, "should not be")])
def test_a_soft_check_says_should_where_a_hard_one_says_must(op, hard, word):
    req = Requirement("vm.overcommit_memory", op, 1 if op == "=" else 0, hard)
    assert judge(req, 0 if op == "=" else 0).message.endswith(f"is [0] but {word} [{1 if op == '=' else 0}]")


# --- the kernel's release, judged as a version ---

@pytest.mark.parametrize("spec,release,status", [
    ("kernel.osrelease>=5.10", "5.9.16-1-amd64", "fail"),
    ("kernel.osrelease>=5.10", "5.10.0-28-amd64", "pass"),
    ("kernel.osrelease>=5.10", "6.1.0-test", "pass"),
    ("kernel.osrelease>=5.10", "5.100.0", "pass"),  # numbers, not text: 100 > 10
    ("kernel.osrelease<=6.18", "6.18.44-fc-v1272", "pass"),  # on as many parts as 6.18 names
    ("kernel.osrelease<=6.18", "6.19.0-1-amd64", "fail"),
    ("kernel.osrelease>=7.0.14", "7.0.13", "fail"),
    ("kernel.osrelease>=7.0.14", "7.0", "fail"),  # 7.0 is 7.0.0
    ("kernel.osrelease>=7.0.14", "7.1-rc2", "pass"),
    ("kernel.osrelease=6.1", "6.1.0-test", "pass"),
    ("kernel.osrelease!=6.1", "6.10.3", "pass"),
    ("kernel.osrelease<=6.18", "6.19.0-rc1", "fail"),  # a release candidate is its version
    ("kernel.osrelease>=5.10", "7", "pass"),  # 7 is 7.0
])
def test_kernel_release_compares_as_a_version_on_the_parts_required(spec, release, status):
    result = judge(parse_spec(spec), release)
    assert result.status == status, result
    if status == "fail":
        assert f"Linux kernel kernel.osrelease [{release}]" in result.message


def test_kernel_release_without_a_version_is_skipped_with_the_reason():
    result = judge(parse_spec("kernel.osrelease>=5.10"), "custom-kernel")
    assert (result.status, result.message) == ("skip", "Linux kernel kernel.osrelease skipped: [custom-kernel] names "
                                                       "no version")


@pytest.mark.parametrize("release", ["", "abc", ".5", "9" * 5000 + ".1.0", "6." + "9" * 30])
def test_a_release_with_no_version_or_beyond_any_is_skipped_not_an_error(release):
    assert judge(parse_spec("kernel.osrelease>=5.10"), release).status == "skip"


@pytest.mark.parametrize("text,low,high,number", [
    ("42", None, None, 42), ("-7", None, None, -7), ("007", None, None, 7),
    ("18446744073709551615", None, None, (1 << 64) - 1), ("18446744073709551616", None, None, None),
    ("9" * 5000, None, None, None),  # int() itself refuses more than 4300 digits
    ("0" * 5000 + "5", None, None, 5),  # leading zeros are not digits of the number
    ("5", 1, 4, None), ("4", 1, 4, 4), ("0", 1, 4, None),
    ("", None, None, None), ("+5", None, None, None), ("1_000", None, None, None), ("\u00b2", None, None, None),
    (" 5", None, None, None),
])
def test_a_decimal_number_is_read_only_when_it_fits_the_range(text, low, high, number):
    assert checks.decimal_number(text, low, high) == number


@pytest.mark.parametrize("spec", ["kernel.osrelease>=5.x", "kernel.osrelease>=1.2.3.4", "kernel.osrelease>=unlimited",
                                  "kernel.osrelease>=-1", "kernel.osrelease>=5.",
                                  # a version beyond any kernel's is a usage error too
                                  pytest.param("kernel.osrelease>=" + "9" * 5000 + ".1", id="beyond-any-kernel")])
def test_kernel_release_takes_a_version_of_up_to_three_numbers(spec):
    with pytest.raises(checks.SpecError, match=r"takes a version such as \[5.10\] or \[7.0.14\]"):
        parse_spec(spec)


def test_kernel_release_is_read_from_the_proc_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {}, osrelease="6.19.0-1-amd64"))
    result = run_check(parse_spec("kernel.osrelease<=6.18"))
    assert (result.status, result.actual) == ("fail", "6.19.0-1-amd64")


# --- values a profile works out itself ---

def test_a_value_the_profile_worked_out_is_judged_without_reading_the_host():
    req = Requirement("dragonfly --maxmemory", ">=", 2 << 30, observed=1 << 30)
    result = run_check(req)
    assert (result.status, result.message) == ("fail", "dragonfly --maxmemory [1073741824] is too low, increase to "
                                                       "at least [2147483648]")
    assert req.name == "maxmemory" and checks.kind_of(req.key) == "program"


def test_a_value_the_profile_could_not_work_out_is_skipped_with_its_reason():
    reason = checks.Unreadable("no MemAvailable in /proc/meminfo")
    result = run_check(Requirement("dragonfly --maxmemory", ">=", 1, observed=reason))
    assert (result.status, result.message) == ("skip", "dragonfly --maxmemory skipped: no MemAvailable in "
                                                       "/proc/meminfo")


def test_an_observed_kernel_version_stands_for_the_release(tmp_path, monkeypatch):
    # An Ubuntu 7.0 kernel names its upstream version elsewhere: the profile passes it on.
    monkeypatch.setenv("GUARD_PROCFS", crafted_proc(tmp_path, {}, osrelease="7.0.0-28-generic"))
    result = run_check(parse_spec("kernel.osrelease>=7.0.14")._replace(observed="7.0.15"))
    assert (result.status, result.actual) == ("pass", "7.0.15")
