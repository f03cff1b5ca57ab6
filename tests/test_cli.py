import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

import support
from guard import cli
from support import crafted_proc, run_guard, text


@pytest.fixture
def host_at(tmp_path):
    """A crafted proc root: the map count at 65530, overcommit off, somaxconn 4096; the host's own
    network namespace (netdev_max_backlog: the kernel lists it there alone)."""
    return {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 65530, "vm.overcommit_memory": 0,
                                                    "net.core.somaxconn": 4096,
                                                    "net.core.netdev_max_backlog": 1000})}


@pytest.mark.parametrize("args,env,message", [
    ([], {"GUARD_MODE": "x"}, "GUARD_MODE must be [enforce|warn] but was [x]"),
    (["--mode", "loud"], {}, "--mode must be [enforce|warn] but was [loud]"),
    (["--format", "xml"], {}, "--format must be [text|json] but was [xml]"),
    ([], {"GUARD_PROFILE": "postgres"}, "GUARD_PROFILE must be [elasticsearch|"),
    ([], {"GUARD_REQUIRE": "vm.max_map_count>=1,nonsense"}, "[nonsense]"),
    (["--require", "nofile>=many"], {}, "[many]"),
    ([], {"GUARD_QUIET": "maybe"}, "GUARD_QUIET must be [1|0|true|false|yes|no|on|off] but was [maybe]"),
    ([], {"GUARD_PLACE": "moon"}, "but was [moon]"),
])
def test_bad_values_exit_2_naming_the_value(args, env, message):
    done = run_guard("check", *args, env={"GUARD_PROFILE": "redis", **env})
    assert done.returncode == 2
    assert message in text(done)
    assert "Traceback" not in text(done)


@pytest.mark.parametrize("interval", ["0", "-1", "soon", "nan", "inf"])
def test_bad_watch_interval_is_a_usage_error(interval):
    done = run_guard("--watch", "--interval", interval, "--", "true", env={"GUARD_PROFILE": "none"})
    assert done.returncode == 2 and f"but was [{interval}]" in text(done)


def test_unknown_flag_is_a_usage_error():
    done = run_guard("--bogus", "--", "true")
    assert done.returncode == 2 and "--bogus" in text(done)


def test_no_command_is_a_usage_error():
    assert run_guard("--mode", "warn").returncode == 2
    done = run_guard("check")
    assert done.returncode == 2 and "--profile" in text(done)


def test_flag_wins_over_environment(host_at):
    env = {**host_at, "GUARD_MODE": "warn"}
    assert run_guard("check", "--profile", "elasticsearch", env=env).returncode == 0
    assert run_guard("check", "--profile", "elasticsearch", "--mode", "enforce", env=env).returncode == 78


def test_environment_requirements_and_skips_are_comma_separated(host_at):
    env = {**host_at, "GUARD_PROFILE": "none", "GUARD_REQUIRE": "vm.max_map_count>=1, vm.overcommit_memory=1"}
    assert run_guard("check", env=env).returncode == 78
    assert run_guard("check", env={**env, "GUARD_SKIP": "overcommit-memory,vm.max_map_count"}).returncode == 0


def test_repeated_flags_add_requirements(host_at):
    done = run_guard("check", "--require", "vm.max_map_count>=1", "--require", "vm.max_map_count>=70000",
                     "--format", "json", env=host_at)
    statuses = [c["status"] for c in json.loads(done.stdout)["checks"]]
    assert statuses == ["pass", "fail"] and done.returncode == 78


def test_check_takes_the_command_for_its_settings_without_running_it(host_at, tmp_path):
    marker = tmp_path / "ran"
    done = run_guard("check", "--format", "json", "--", "redis-server", "--tcp-backlog", "8192",
                     "--", str(marker), env=host_at)
    report = json.loads(done.stdout)
    assert report["profile"] == "redis"
    assert {c["key"]: c["required"] for c in report["checks"]}["net.core.somaxconn"] == 8192
    assert not marker.exists()


def test_options_after_the_command_belong_to_the_command(host_at):
    done = run_guard("--mode", "warn", "--require", "vm.max_map_count>=1", "echo", "--mode", "enforce", env=host_at)
    assert done.returncode == 0 and done.stdout == b"--mode enforce\n"


def test_help_lists_every_variable_and_exit_code():
    done = run_guard("--help")
    assert done.returncode == 0
    for option in cli.OPTIONS:
        assert option.env in done.stdout.decode() and option.flag in done.stdout.decode()
    for code in ("78", "126", "127"):
        assert code in done.stdout.decode()


def test_check_help_says_it_starts_nothing_and_help_gives_the_watch_defaults():
    check = run_guard("check", "--help")
    assert check.returncode == 0
    assert "start nothing" in check.stdout.decode() and "then start it" not in check.stdout.decode()
    words = " ".join(run_guard("--help").stdout.decode().split())  # argparse wraps the help
    assert "with --watch (default 1) [GUARD_INTERVAL]" in words
    assert "(default 1.5) [GUARD_WATCH_CPU]" in words


def test_fix_help_lists_its_own_options_and_variables_and_the_roots_it_writes_under():
    done = run_guard("fix", "--help")
    assert done.returncode == 0
    out = done.stdout.decode()
    for flag, env in (("--dry-run", "GUARD_DRY_RUN"), ("--persist", "GUARD_PERSIST"), ("--every", "GUARD_EVERY")):
        assert f"  {flag}" in out and f"[{env}]" in out
    for root in ("GUARD_PROCFS", "GUARD_SYSFS", "GUARD_SYSCTL_D"):
        assert root in out
    assert "--watch" not in out.split("commands:")[0]  # supervise mode is not guard fix's


def test_fix_variables_do_not_concern_check(host_at):
    env = {**host_at, "GUARD_EVERY": "soon", "GUARD_DRY_RUN": "2", "GUARD_PERSIST": "yes"}
    assert run_guard("check", "--profile", "elasticsearch", env=env).returncode == 78


def test_install_from_a_pip_install_is_a_usage_error_saying_it_works_from_the_bundle_only(tmp_path):
    done = run_guard("install", str(tmp_path))
    assert done.returncode == 2
    assert text(done).startswith("guard: guard install works from the bundle only (/opt/guard, docker build "
                                 "--target bundle), and this guard runs from [")
    assert os.listdir(tmp_path) == []


def test_install_needs_its_folder():
    done = run_guard("install")
    assert done.returncode == 2 and "DIR" in text(done)


def test_profiles_lists_thresholds_hardness_and_sources():
    out = run_guard("profiles").stdout.decode()
    for line in ("vm.max_map_count >= 262144", "MaxMapCountCheck", "vm.overcommit_memory = 1", "hard", "soft"):
        assert line in out
    for name in ("elasticsearch", "opensearch", "kafka", "redis", "mongodb", "cassandra", "sonarqube"):
        assert f"{name}:" in out


def test_module_entry_point_is_the_same_program():
    done = subprocess.run([sys.executable, "-m", "guard", "--version"], capture_output=True, cwd="/")
    assert done.returncode == 0 and done.stdout.startswith(b"guard ")


def test_scripts_install_from_a_clone_whose_path_has_a_space_gives_a_guard_that_starts(tmp_path):
    # pip writes the interpreter's path into bin/guard's #! line, and the kernel ends it at a space.
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    clone = tmp_path / "my projects" / "guard"
    clone.mkdir(parents=True)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=repository, capture_output=True, check=True).stdout
    for relative in filter(None, tracked.decode().split("\0")):
        if os.path.isfile(os.path.join(repository, relative)):
            (clone / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(repository, relative), clone / relative)
    installed = subprocess.run([str(clone / "scripts" / "install")], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    envp = ["GLIBC_TUNABLES=glibc.malloc.arena_max=2", "A=1"]  # and nothing else: no PWD from a shell
    done = subprocess.run([str(clone / ".venv" / "bin" / "guard"), "--profile", "none", "--", "/usr/bin/env"],
                          env=dict(entry.split("=", 1) for entry in envp), capture_output=True, cwd="/", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == envp


def test_unknown_program_starts_unchecked_with_a_note():
    done = run_guard("--", "true")
    assert done.returncode == 0 and "no profile knows [true]" in text(done)
    assert "no profile" not in text(run_guard("--quiet", "--", "true"))


@pytest.mark.parametrize("name", ["GUARD_PROFILE", "GUARD_MODE", "GUARD_FORMAT", "GUARD_PLACE", "GUARD_QUIET",
                                  "GUARD_REQUIRE", "GUARD_SKIP"])
def test_empty_variable_is_unset_as_compose_writes_it(host_at, name):
    done = run_guard("check", "--profile", "elasticsearch", env={**host_at, name: ""})
    assert done.returncode == 78, text(done)  # the map count at 65530 in the crafted tree: the check ran


def test_watch_variables_do_not_concern_check(host_at):
    env = {**host_at, "GUARD_INTERVAL": "soon", "GUARD_WATCH": "2", "GUARD_WATCH_CPU": "lots"}
    assert run_guard("check", "--profile", "elasticsearch", env=env).returncode == 78


def test_abbreviated_flags_are_not_taken_for_options():
    done = run_guard("--prof", "redis", "redis-server")
    assert done.returncode == 2 and "--prof" in text(done)


def test_refusal_names_the_program_past_its_launcher(host_at):
    done = run_guard("--require", "vm.overcommit_memory=1", "--", "docker-entrypoint.sh", "redis-server", "--port", "0",
                     env=host_at)
    assert done.returncode == 78
    assert "guard: refusing to start redis-server (exit 78)" in text(done)


# --- guard's own output: a closed, full or broken stdout is said, never an internal error -------


def guard_writing_to(stdout, *args, env=None):
    """guard ARGS with its stdout on the descriptor or file given, stderr captured."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    return subprocess.run([support.guard_executable(), *args], env={**clean, **(env or {})}, stdout=stdout,
                          stderr=subprocess.PIPE, cwd="/", timeout=30)


def stdout_to_a_pipe_nobody_reads(*args, env=None):
    """guard ARGS with stdout a pipe whose reader is gone before guard writes (| head -1 that
    already has its line)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return guard_writing_to(write_end, *args, env=env)
    finally:
        os.close(write_end)


FIX_JSON = ["fix", "--profile", "redis", "--mode", "warn", "--format", "json", "--dry-run"]


@pytest.mark.parametrize("args", [["profiles"], ["check", "--profile", "redis", "--mode", "warn", "--format", "json"],
                                  ["--help"], ["maps"], FIX_JSON])
def test_reader_gone_ends_quietly_with_74(args, host_at):
    done = stdout_to_a_pipe_nobody_reads(*args, env=host_at)
    assert (done.returncode, text(done)) == (74, "")


def test_profiles_piped_to_head_prints_its_first_line_cleanly():
    done = subprocess.run(["sh", "-c", f"{support.guard_executable()} profiles | head -1"],
                          capture_output=True, cwd="/", timeout=30)
    assert done.stdout.startswith(b"elasticsearch: ") and done.stdout.count(b"\n") == 1
    assert done.stderr == b""


@pytest.mark.parametrize("args", [["check", "--profile", "redis", "--mode", "warn", "--format", "json"],
                                  ["profiles"], ["--version"], ["maps", "--format", "json"], FIX_JSON])
def test_full_stdout_is_said_and_exits_74(args, host_at):
    with open("/dev/full", "wb") as full:  # an output target only: guard writes to the descriptor
        done = guard_writing_to(full, *args, env=host_at)
    assert done.returncode == 74
    assert text(done).splitlines()[-1] == "guard: cannot write to stdout: No space left on device"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_refusal_is_78_even_when_its_report_cannot_be_written(host_at):
    with open("/dev/full", "wb") as full:
        done = guard_writing_to(full, "check", "--profile", "elasticsearch", "--format", "json", env=host_at)
    assert done.returncode == 78 and "internal error" not in text(done)


@pytest.mark.parametrize("redirect", [">&-", "2>&-"])
def test_check_with_a_closed_stream_keeps_its_verdict(host_at, redirect):
    command = f"exec {support.guard_executable()} check --profile elasticsearch {redirect}"
    done = subprocess.run(["sh", "-c", command], env={**os.environ, **host_at}, capture_output=True, cwd="/")
    assert done.returncode == 78  # the map count at 65530 in the crafted tree
    assert b"internal error" not in done.stderr and done.stdout == b""


# --- values guard cannot take are usage errors naming them ---------------------------------


def test_number_beyond_any_kernel_value_is_a_usage_error_not_an_internal_one():
    done = run_guard("check", "--require", "vm.max_map_count>=" + "9" * 5000)
    assert done.returncode == 2
    assert text(done) == ("guard: --require [vm.max_map_count>=9999999999999999999999... (5018 characters)]: "
                          "[vm.max_map_count] takes a number of 64 bits at most, as the kernel keeps its values, "
                          "but was given [99999999999999999999...] (5000 digits)\n")


@pytest.mark.parametrize("given, env, named", [(["--skip", "max-map-cont"], {}, "--skip [max-map-cont]"),
                                               ([], {"GUARD_SKIP": "overcommit,thp"}, "GUARD_SKIP [thp]")])
def test_skip_that_matches_no_check_is_a_usage_error_naming_it_and_the_checks(host_at, given, env, named):
    done = run_guard("check", "--profile", "redis", *given, env={**host_at, **env})
    assert done.returncode == 2
    assert text(done) == (f"guard: {named} matches no check; the checks of redis are: overcommit "
                          "(vm.overcommit_memory), somaxconn (net.core.somaxconn), open-files (nofile.hard)\n")


@pytest.mark.parametrize("spelling", ["vm/max_map_count", "vm.max_map_count", "max-map-count"])
def test_skip_takes_a_key_in_either_spelling_sysctl_takes(host_at, spelling):
    # sysctl(8) reads vm/max_map_count as vm.max_map_count; --require does too, and so does --skip.
    done = run_guard("check", "--require", "vm.max_map_count>=262144", "--skip", spelling, env=host_at)
    assert done.returncode == 0, text(done)
    assert "max-map-count" in text(done) and "skipped: --skip max-map-count" in text(done)


# --- --metrics-file names a regular file or nothing yet ------------------------------------


def special_files(tmp_path):
    """A FIFO, a symlink to a regular file, a directory and, as root, a character device (the
    numbers of /dev/null): each made here, in the test's own directory. Never a host device: a
    guard with this bug would put a regular file in its place."""
    target = tmp_path / "target.prom"
    target.write_text("kept\n")
    os.mkfifo(tmp_path / "fifo")
    os.symlink(target, tmp_path / "link")
    os.mkdir(tmp_path / "directory")
    made = {"fifo": "FIFO", "link": "symbolic link", "directory": "directory"}
    try:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        made["null"] = "character device"
    except PermissionError:
        pass  # not root: the other kinds make the point
    return made


def file_kind(path):
    return stat.S_IFMT(os.lstat(path).st_mode)


def test_metrics_file_that_is_not_a_regular_file_is_a_usage_error_and_left_alone(tmp_path):
    marker = tmp_path / "started"
    for name, kind in special_files(tmp_path).items():
        path = tmp_path / name
        before = file_kind(path)
        for args, env, given in ((["--metrics-file", str(path)], {}, "--metrics-file"),
                                 ([], {"GUARD_METRICS_FILE": str(path)}, "GUARD_METRICS_FILE")):
            done = run_guard("--watch", "--profile", "none", *args, "--", "touch", str(marker), env=env)
            assert done.returncode == 2, (name, text(done))
            assert text(done) == (f"guard: {given} must be a regular file or a path that does not exist "
                                  f"yet, but [{path}] is a {kind}\n")
            assert file_kind(path) == before and not marker.exists()
    assert (tmp_path / "target.prom").read_text() == "kept\n"


@pytest.mark.parametrize("args", [["maps", "--output", ""], ["--watch", "--profile", "none", "--metrics-file", ""]])
def test_an_empty_path_to_write_is_a_usage_error_and_nothing_is_made(tmp_path, args):
    # An empty path named the current folder's parent to make the temporary file in, and the
    # metrics file was dropped without a word.
    work = tmp_path / "parent" / "work"
    work.mkdir(parents=True)
    marker = tmp_path / "started"
    command = ["--", "touch", str(marker)] if "--watch" in args else []
    done = run_guard(*args, *command, cwd=work)
    assert done.returncode == 2, text(done)
    assert text(done).startswith("guard: ") and "[]" in text(done) and "Traceback" not in text(done)
    assert os.listdir(tmp_path / "parent") == ["work"] and os.listdir(work) == [] and not marker.exists()


# --- words: what a usage error names ---------------------------------------------------------


def test_a_bad_item_of_guard_require_is_named_whole_with_the_variable():
    done = run_guard("check", "--profile", "none", env={"GUARD_REQUIRE": "vm.max_map_count>=1, nofile>=many"})
    assert done.returncode == 2
    assert text(done) == ("guard: GUARD_REQUIRE item [nofile>=many]: [nofile] takes a number or [unlimited] "
                          "but was given [many]\n")


def test_a_bad_require_flag_is_named_whole():
    done = run_guard("check", "--require", "nofile>=many")
    assert done.returncode == 2
    assert text(done).startswith("guard: --require [nofile>=many]: ")


def test_check_of_a_command_no_profile_knows_names_the_command():
    done = run_guard("check", "--", "/usr/bin/some-unknown-cmd", "--flag")
    assert done.returncode == 2
    assert text(done).startswith("guard: guard check: no profile knows [some-unknown-cmd]; name one with "
                                 "--profile NAME (elasticsearch, ")


@pytest.mark.parametrize("args, prog", [(["--bogus", "--", "true"], "guard"), (["check", "--bogus"], "guard check"),
                                        (["fix", "--bogus"], "guard fix"), (["maps", "--bogus"], "guard maps")])
def test_an_unknown_flag_points_at_help(args, prog):
    done = run_guard(*args)
    assert done.returncode == 2
    assert text(done).splitlines()[-1] == (f"{prog}: error: unrecognized arguments: --bogus; "
                                           f"{prog} --help lists the options")


# --- a requirement the kernel cannot hold, or a key that names no sysctl ------------------------


@pytest.mark.parametrize("command", ["check", "fix"])
@pytest.mark.parametrize("spec, message", [
    ("vm.maxmapcount>=262144", "[vm.maxmapcount] names no sysctl: {proc}/sys/vm has no maxmapcount; did you "
                               "mean vm.max_map_count?"),
    ("vmm.max_map_count>=262144", "[vmm.max_map_count] names no sysctl: {proc}/sys has no vmm; did you mean "
                                  "vm.max_map_count?"),
    ("vm.nothing_like_it>=1", "[vm.nothing_like_it] names no sysctl: {proc}/sys/vm has no nothing_like_it"),
    ("net.core.somaxcon>=1024", "[net.core.somaxcon] names no sysctl: {proc}/sys/net/core has no somaxcon; did "
                                "you mean net.core.somaxconn?"),
    ("vm.max_map_count.x>=1", "[vm.max_map_count.x] names no sysctl: {proc}/sys/vm/max_map_count is a sysctl, "
                              "not a folder of them"),
    ("net.core>=1", "[net.core] names no sysctl: {proc}/sys/net/core is a folder of them, not a sysctl"),
])
def test_a_key_that_names_no_sysctl_is_a_usage_error_with_the_nearest_real_one(host_at, command, spec, message):
    done = run_guard(command, "--require", spec, env=host_at)
    assert done.returncode == 2
    shown = message.format(proc=host_at["GUARD_PROCFS"])
    assert text(done) == f"guard: --require [{spec}]: {shown}\n"


def test_a_misspelled_key_is_named_on_the_real_proc_too():
    done = run_guard("check", env={"GUARD_REQUIRE": "vm.maxmapcount>=262144"})
    assert done.returncode == 2
    assert text(done) == ("guard: GUARD_REQUIRE item [vm.maxmapcount>=262144]: [vm.maxmapcount] names no sysctl: "
                          "/proc/sys/vm has no maxmapcount; did you mean vm.max_map_count?\n")


@pytest.mark.parametrize("key", [
    "net.netfilter.nf_conntrack_max",  # a module's, loaded later (kube-proxy)
    "net.ipv4.conf.eth9.forwarding",  # an interface this namespace does not have
    "fs.nfs.nfs_callback_tcpport",  # a module's own folder
])
def test_a_key_that_may_be_absent_only_from_this_view_is_skipped_with_the_reason(host_at, key):
    done = run_guard("check", "--require", f"{key}>=1", env=host_at)
    assert done.returncode == 0, text(done)
    path = os.path.join(host_at["GUARD_PROCFS"], "sys", *key.split("."))
    assert f"skipped: cannot read {path}: No such file or directory" in text(done)


@pytest.mark.parametrize("key", [
    "net.ipv4.tcp_mem",  # the host's alone, and close to tcp_rmem and tcp_wmem, which every namespace has
    "net.core.somaxcon",  # from here a misspelling cannot be told from a key of the host's
])
def test_a_net_key_missing_from_a_containers_own_network_namespace_is_skipped(tmp_path, key):
    # A container's network namespace lists only the per-namespace net.* sysctls: the kernel
    # registers the rest (net/core/sysctl_net_core.c net_core_table, net/ipv4 ipv4_table) for the
    # host's namespace alone.
    proc = crafted_proc(tmp_path, {"net.core.somaxconn": 4096, "net.ipv4.tcp_rmem": "4096 131072 6291456",
                                   "net.ipv4.tcp_wmem": "4096 16384 4194304"})
    done = run_guard("check", "--require", f"{key}>=1", env={"GUARD_PROCFS": proc})
    assert done.returncode == 0, text(done)
    path = os.path.join(proc, "sys", *key.split("."))
    assert f"skipped: cannot read {path}: No such file or directory" in text(done)


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of the test's own takes root")
def test_a_host_net_key_is_no_usage_error_in_a_network_namespace_of_its_own():
    assert os.path.exists("/proc/sys/net/ipv4/tcp_mem")  # the host's namespace has it
    done = subprocess.run(["unshare", "--net", support.guard_executable(), "check", "--require",
                           "net.ipv4.tcp_mem>=1"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "net.ipv4.tcp_mem skipped" in done.stderr


def test_a_key_that_exists_but_cannot_be_read_is_skipped_with_the_reason(host_at):
    knob = os.path.join(host_at["GUARD_PROCFS"], "sys", "vm", "swappiness")
    os.mkfifo(knob)  # there, but no regular file: never opened
    done = run_guard("check", "--require", "vm.swappiness<=10", env=host_at, timeout=10)
    assert done.returncode == 0 and f"swappiness skipped: {knob} is a FIFO or pipe" in text(done), text(done)


@pytest.mark.parametrize("spec, message", [
    ("vm.max_map_count>=4000000000", "[vm.max_map_count] is at most [2147483647], the most the kernel takes (an "
                                     "int): [>= 4000000000] can never be met, and no fix could set it"),
    ("net.core.somaxconn=2147483648", "[net.core.somaxconn] is at most [2147483647], the most the kernel takes "
                                      "(an int): [= 2147483648] can never be met, and no fix could set it"),
    ("nofile.hard>=unlimited", "[nofile.hard] is at most [2147483584], the most fs.nr_open can be (fs/file.c "
                               "sysctl_nr_open_max): [>= unlimited] can never be met, and no fix could set it"),
])
def test_a_requirement_beyond_what_the_kernel_takes_is_a_usage_error(host_at, spec, message):
    done = run_guard("check", "--require", spec, env=host_at)
    assert done.returncode == 2
    assert text(done) == f"guard: --require [{spec}]: {message}\n"


# --- words: what guard says when nothing is wrong, and when a word is almost right -----------

def test_check_ends_with_one_line_when_every_check_passes(host_at):
    done = run_guard("check", "--require", "vm.overcommit_memory=0", "--require", "nofile>=0", env=host_at)
    assert done.returncode == 0
    assert text(done).endswith("guard: all [2] checks passed\n")
    done = run_guard("check", "--profile", "redis", "--skip", "overcommit", env=host_at, limits={"nofile": (1024, 20000)})
    assert text(done).endswith("guard: all [2] checks passed for redis; [1] skipped, as said above\n"), text(done)
    done = run_guard("check", "--require", "nofile>=0", "--skip", "nofile", env=host_at)
    assert text(done).endswith("guard: no check could be run here: nothing was judged\n")
    assert run_guard("check", "--quiet", "--require", "nofile>=0", env=host_at).stderr == b""


def test_a_warning_is_not_followed_by_the_line_that_says_all_passed(host_at):
    done = run_guard("check", "--profile", "redis", env=host_at)
    assert done.returncode == 0 and "all [" not in text(done) and "gave a warning" in text(done)


@pytest.mark.parametrize("args,env,said", [
    (["--profile", "elastic"], {}, "--profile must be [elasticsearch|"),
    ([], {"GUARD_PROFILE": "opensarch"}, "GUARD_PROFILE must be [elasticsearch|"),
    ([], {"GUARD_PLACE": "podmn"}, "GUARD_PLACE must be ["),
    (["--mode", "wran"], {}, "--mode must be [enforce|warn]"),
])
def test_a_misspelled_word_gets_the_nearest_one_suggested(args, env, said):
    done = run_guard("check", *args, env=env)
    assert done.returncode == 2 and said in text(done)
    near = {"elastic": "elasticsearch", "opensarch": "opensearch", "podmn": "podman", "wran": "warn"}
    given = (args[1:] or list(env.values()))[0]
    assert text(done).endswith(f"; did you mean {near[given]}?\n"), text(done)


def test_a_word_like_none_of_the_choices_gets_no_suggestion():
    done = run_guard("check", "--profile", "postgres")
    assert done.returncode == 2 and "did you mean" not in text(done)


def test_a_requirement_typed_unquoted_in_a_shell_is_explained(tmp_path, host_at):
    # The shell takes >=262144 for a redirection: guard gets [vm.max_map_count] and its stdout
    # goes to a file named =262144.
    done = subprocess.run(["sh", "-c", f"{support.guard_executable()} check --require vm.max_map_count>=262144"],
                          cwd=tmp_path, capture_output=True, env={**os.environ, **host_at}, timeout=30)
    assert done.returncode == 2
    assert (tmp_path / "=262144").exists()  # the shell made it, before guard ran
    assert text(done).endswith("quote the requirement: --require 'vm.max_map_count>=VALUE'\n"), text(done)
    assert "a shell took an unquoted > for a redirection" in text(done)
    quoted = run_guard("check", "--require", "vm.max_map_count>=262144", env=host_at)
    assert quoted.returncode == 78 and "redirection" not in text(quoted)


def write_mo(path, catalogue):
    """A GNU gettext catalogue (.mo) holding catalogue's translations, as msgfmt writes one."""
    import struct

    keys = sorted(catalogue)
    ids, strs = b"".join(k.encode() + b"\0" for k in keys), b"".join(catalogue[k].encode() + b"\0" for k in keys)
    start = 7 * 4 + 16 * len(keys)
    offsets, at = [], 0
    for k in keys:
        offsets.append((len(k.encode()), start + at))
        at += len(k.encode()) + 1
    targets, at = [], 0
    for k in keys:
        targets.append((len(catalogue[k].encode()), start + len(ids) + at))
        at += len(catalogue[k].encode()) + 1
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    table = b"".join(struct.pack("ii", *o) for o in offsets) + b"".join(struct.pack("ii", *t) for t in targets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + table + ids + strs)


def test_argparses_words_are_not_translated_from_catalogues_guard_never_reads(tmp_path):
    # In the bundle, gettext would open the image's catalogues (Debian's Python also looks in
    # /usr/share/locale-langpack); guard speaks English throughout and opens none.
    write_mo(tmp_path / "fr" / "LC_MESSAGES" / "messages.mo", {"unrecognized arguments: %s": "TRADUIT: %s"})
    code = ("import gettext, sys; gettext.bindtextdomain('messages', sys.argv[1]); "
            "from guard.cli import main; sys.exit(main(sys.argv[2:]))")
    env = {**os.environ, "LANGUAGE": "fr", "LANG": "fr_FR.UTF-8"}
    control = subprocess.run([sys.executable, "-c", "import argparse, gettext, sys; "
                              "gettext.bindtextdomain('messages', sys.argv[1]); argparse.ArgumentParser().parse_args(['-x'])",
                              str(tmp_path)], capture_output=True, text=True, env=env)
    assert "TRADUIT: -x" in control.stderr  # the catalogue is one gettext takes
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), "check", "--bogus"], capture_output=True,
                          text=True, env=env, cwd="/")
    assert done.returncode == 2
    assert "unrecognized arguments: --bogus" in done.stderr and "TRADUIT" not in done.stderr
