"""guard fix: raise what falls short, never lower, read back; on crafted trees and the real host.

The real host's settings are changed only under tests/hostsettings.py's lock, which saves and
restores them; namespaced sysctls only in a network namespace of the test's own (unshare -n).
"""

import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from guard import fix
from hostsettings import THP_ENABLED, current_value, host_setting, sysctl, sysctl_path
from support import crafted_files, crafted_proc, guard_executable, run_guard, text

ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="writing the host's sysctls takes root")
MAPS = "vm.max_map_count>=262144"


@pytest.fixture
def node(tmp_path):
    """A crafted host: proc tree at the kernel's defaults for Redis's knobs, a root whose boot
    files (sysctl.d folders, /etc/sysctl.conf) are the test's own, with an empty etc/sysctl.d."""
    (tmp_path / "root" / "etc" / "sysctl.d").mkdir(parents=True)
    proc = crafted_proc(tmp_path / "proc", {"vm.max_map_count": 65530, "vm.overcommit_memory": 0,
                                            "net.core.somaxconn": 128})
    return {"GUARD_PROCFS": proc, "GUARD_SYSCTL_D": str(tmp_path / "root" / "etc" / "sysctl.d"),
            "GUARD_SYSCTL_ROOT": str(tmp_path / "root"), "GUARD_PLACE": "host"}


def value(env, name):
    with open(os.path.join(env["GUARD_PROCFS"], "sys", *name.split("."))) as f:
        return f.read().strip()


def set_value(env, name, number):
    with open(os.path.join(env["GUARD_PROCFS"], "sys", *name.split(".")), "w") as f:
        f.write(f"{number}\n")


# The whole report, pinned once: Redis on a host at the kernel's defaults, as root.
REDIS_FIXED = """\
guard: set vm.overcommit_memory [0] -> [1]
guard: set net.core.somaxconn [128] -> [511]
guard: cannot set nofile.hard [1024] -> [10032]: a resource limit is given to a process by whoever starts it: guard fix cannot raise it for another process
guard: redis: disable-thp yes: Redis turns THP off for itself, the THP check is dropped
guard: pass  overcommit  memory overcommit vm.overcommit_memory [1] = [1]
guard: pass  somaxconn   TCP listen backlog net.core.somaxconn [511] >= [511]
guard: warn  open-files  max file descriptors nofile.hard [1024] is too low, increase to at least [10032]
guard: [1] of [3] checks gave a warning for redis; none of them stops it from starting
guard: [1] (warning) max file descriptors nofile.hard [1024] is too low, increase to at least [10032]
guard:     To fix this, raise it for the user or service that starts the program: ulimit -n 10032 (as root: only root raises a hard limit), LimitNOFILE=10032 in its systemd unit, or '* - nofile 10032' in /etc/security/limits.conf.
"""


def test_full_report_sets_what_it_can_reads_it_back_and_gives_the_fix_for_the_rest(node):
    done = run_guard("fix", "--profile", "redis", env=node, limits={"nofile": (1024, 1024)})
    assert text(done) == REDIS_FIXED
    assert done.returncode == 0  # the open-files check is soft: Redis lowers maxclients itself
    assert (value(node, "vm.overcommit_memory"), value(node, "net.core.somaxconn")) == ("1", "511")


def test_low_value_is_raised_to_what_is_required(node):
    done = run_guard("fix", "--require", MAPS, env=node)
    assert done.returncode == 0, text(done)
    assert "guard: set vm.max_map_count [65530] -> [262144]\n" in text(done)
    assert "pass  max-map-count  max virtual memory areas vm.max_map_count [262144] >= [262144]" in text(done)
    assert value(node, "vm.max_map_count") == "262144"


@pytest.mark.parametrize("above", [262144, 1048576])
def test_value_at_or_above_the_requirement_is_never_lowered(node, above):
    set_value(node, "vm.max_map_count", above)
    done = run_guard("fix", "--require", MAPS, env=node)
    assert done.returncode == 0
    assert f"guard: leave vm.max_map_count [{above}] (already >= [262144])\n" in text(done)
    assert value(node, "vm.max_map_count") == str(above)


def test_equal_requirement_sets_the_value_named_even_below(node):
    set_value(node, "vm.overcommit_memory", 2)  # "never overcommit": Redis wants 1
    done = run_guard("fix", "--require", "vm.overcommit_memory=1", env=node)
    assert done.returncode == 0 and "set vm.overcommit_memory [2] -> [1]" in text(done)
    assert value(node, "vm.overcommit_memory") == "1"


def test_second_requirement_on_a_key_sees_the_first_ones_value(node):
    done = run_guard("fix", "--require", "vm.max_map_count>=1048576", "--require", MAPS, env=node)
    assert "set vm.max_map_count [65530] -> [1048576]\nguard: leave vm.max_map_count [1048576] (already >= [262144])" \
        in text(done)
    assert value(node, "vm.max_map_count") == "1048576"


def test_dry_run_says_what_it_would_write_and_writes_nothing(node):
    before = os.stat(os.path.join(node["GUARD_PROCFS"], "sys", "vm", "max_map_count"))
    done = run_guard("fix", "--require", MAPS, "--dry-run", "--persist", env=node)
    assert done.returncode == 78  # the host as it is: still short
    assert text(done).startswith("guard: would set vm.max_map_count [65530] -> [262144]\n"
                                 "guard: would persist vm.max_map_count=262144 in ")
    assert text(done).endswith("guard: dry run: nothing was written\n")
    after = os.stat(os.path.join(node["GUARD_PROCFS"], "sys", "vm", "max_map_count"))
    assert value(node, "vm.max_map_count") == "65530" and after.st_mtime_ns == before.st_mtime_ns
    assert os.listdir(node["GUARD_SYSCTL_D"]) == []


def test_switches_come_from_their_variables_too(node):
    done = run_guard("fix", env={**node, "GUARD_REQUIRE": MAPS, "GUARD_DRY_RUN": "yes"})
    assert "would set vm.max_map_count" in text(done) and value(node, "vm.max_map_count") == "65530"


def test_json_is_the_checks_after_plus_the_changes_and_the_file_kept(node):
    done = run_guard("fix", "--profile", "redis", "--require", "nofile.hard>=99999999", "--persist",
                     "--format", "json", env=node)
    report = json.loads(done.stdout)
    assert done.returncode == 78 and report["verdict"] == "refuse"
    assert {c["name"]: c["status"] for c in report["checks"]}["overcommit"] == "pass"
    hard_limit = report["checks"][-1]["actual"]
    assert report["changes"] == [
        {"key": "vm.overcommit_memory", "before": 0, "after": 1, "written": True, "error": None},
        {"key": "net.core.somaxconn", "before": 128, "after": 511, "written": True, "error": None},
        {"key": "nofile.hard", "before": hard_limit, "after": hard_limit, "written": False,
         "error": "a resource limit is given to a process by whoever starts it: guard fix cannot raise it "
                  "for another process"},
    ]
    assert report["persisted"] == os.path.join(node["GUARD_SYSCTL_D"], "zz-guard-redis.conf")
    assert report["dry_run"] is False
    assert report["checks"][-1]["fix"].startswith("To fix this, raise it")


def test_resource_limit_is_never_set_and_its_fix_is_printed_with_exit_78(node):
    done = run_guard("fix", "--require", "nofile>=4096", env={**node, "GUARD_PLACE": "container"},
                     limits={"nofile": (1024, 1024)})
    assert done.returncode == 78
    assert "cannot set nofile [1024] -> [4096]: a resource limit is given to a process" in text(done)
    assert "To fix this, start the container with: docker run --ulimit nofile=4096:4096 ..." in text(done)
    assert text(done).endswith("guard: still failing after guard fix (exit 78): the fixes above must be "
                               "applied where they say\n")


def test_namespaced_sysctl_is_left_to_the_container_engine_in_a_container(node):
    done = run_guard("fix", "--require", "net.core.somaxconn>=1024", env={**node, "GUARD_PLACE": "container"})
    assert done.returncode == 78 and value(node, "net.core.somaxconn") == "128"
    assert ("cannot set net.core.somaxconn [128] -> [1024]: net.core.somaxconn is kept per namespace: written from "
            "a container it changes that container's own, not the program's") in text(done)
    assert "docker run --sysctl net.core.somaxconn=1024" in text(done)


def test_warn_mode_exits_0_with_what_still_fails(node):
    done = run_guard("fix", "--require", "nofile.hard>=99999999", "--mode", "warn", env=node)
    assert done.returncode == 0 and "FAIL  nofile-hard" in text(done)


def test_not_equal_on_a_sysctl_names_no_value_and_is_left_to_its_fix(node):
    set_value(node, "vm.overcommit_memory", 2)
    done = run_guard("fix", "--profile", "mongodb", "--skip", "max-map-count", env=node)
    assert "cannot set vm.overcommit_memory [2]: [!= 2] names no value to set" in text(done)
    assert "To fix this, set vm.overcommit_memory to a value other than [2]." in text(done)
    assert value(node, "vm.overcommit_memory") == "2"


def test_kernel_release_and_a_programs_setting_are_never_written(node):
    done = run_guard("fix", "--require", "kernel.osrelease>=99.1", "--profile", "dragonfly",
                     env={**node, "DFLY_maxmemory": "1M"})
    assert done.returncode == 78
    assert ("cannot set kernel.osrelease [6.1.0-test] -> [99.1]: the kernel's release is the one the machine "
            "booted") in text(done)
    assert "cannot set dragonfly --maxmemory [1048576] -> [" in text(done)
    assert ": a setting of the program, not of the host" in text(done)
    assert value(node, "kernel.osrelease") == "6.1.0-test"


# --- what guard never writes to --------------------------------------------------------------


def test_symlink_in_place_of_a_sysctl_is_read_but_never_written_through(node, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("65530\n")
    knob = os.path.join(node["GUARD_PROCFS"], "sys", "vm", "max_map_count")
    os.unlink(knob)
    os.symlink(target, knob)
    done = run_guard("fix", "--require", MAPS, env=node)
    assert done.returncode == 78
    assert (f"cannot set vm.max_map_count [65530] -> [262144]: not writing {knob}: it is a symbolic link, "
            "not a regular file") in text(done)
    assert target.read_text() == "65530\n" and os.path.islink(knob)


def test_fifo_in_place_of_a_sysctl_is_skipped_never_opened(node):
    knob = os.path.join(node["GUARD_PROCFS"], "sys", "vm", "max_map_count")
    os.unlink(knob)
    os.mkfifo(knob)
    done = run_guard("fix", "--require", MAPS, env=node, timeout=10)  # opening it would wait for a reader
    assert done.returncode == 0, text(done)  # an unread value is skipped, never a false refusal
    assert "skipped" in text(done) and "set vm.max_map_count" not in text(done)
    assert stat.S_ISFIFO(os.lstat(knob).st_mode)


def test_directory_in_place_of_a_sysctl_cannot_be_set(node):
    knob = os.path.join(node["GUARD_PROCFS"], "sys", "vm", "overcommit_memory")
    os.unlink(knob)
    os.mkdir(knob)
    # a profile's requirement (a --require naming a folder is a usage error: tests/test_cli.py)
    done = run_guard("fix", "--profile", "redis", env=node)
    assert done.returncode == 0 and "vm.overcommit_memory skipped" in text(done)  # not read, so not written either
    assert os.path.isdir(knob)


# --- --persist -------------------------------------------------------------------------------


def test_persist_writes_the_file_the_fix_names_once_and_keeps_it_on_a_second_run(node):
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard-redis.conf")
    done = run_guard("fix", "--profile", "redis", "--persist", env=node)
    assert f"guard: persisted vm.overcommit_memory=1, net.core.somaxconn=511 in {path}\n" in text(done)
    first = os.stat(path)
    with open(path) as f:
        assert f.read().splitlines()[1:] == ["vm.overcommit_memory=1", "net.core.somaxconn=511"]
    assert stat.S_IMODE(first.st_mode) == 0o644
    again = run_guard("fix", "--profile", "redis", "--persist", env=node)
    assert f"guard: already persisted: vm.overcommit_memory=1, net.core.somaxconn=511 in {path}\n" in text(again)
    assert os.stat(path).st_ino == first.st_ino  # not rewritten
    assert os.listdir(node["GUARD_SYSCTL_D"]) == ["zz-guard-redis.conf"]


def test_persist_merges_one_line_a_key_and_never_lowers_a_value_kept_higher(node):
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    with open(path, "w") as f:
        f.write("# the node's own\nvm.swappiness = 1\n-vm/max_map_count = 1048576\nvm.overcommit_memory=0\n"
                "vm.max_map_count=300000\n")
    done = run_guard("fix", "--require", MAPS, "--require", "vm.overcommit_memory=1", "--persist", env=node)
    assert done.returncode == 0, text(done)
    with open(path) as f:
        assert f.read() == ("# the node's own\nvm.swappiness = 1\n-vm/max_map_count = 1048576\n"
                            "vm.overcommit_memory=1\n")


def test_persist_never_lowers_a_key_written_twice_whose_last_line_is_the_higher(node):
    # sysctl.d(5): a later assignment of the same key wins; the node boots with 1048576, not 65530.
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    with open(path, "w") as f:
        f.write("vm.max_map_count=65530\n# raised later\nvm.max_map_count = 1048576\n")
    done = run_guard("fix", "--require", MAPS, "--persist", env=node)
    assert done.returncode == 0, text(done)
    with open(path) as f:
        assert f.read() == "vm.max_map_count=1048576\n# raised later\n"


def test_persist_keeps_the_strictest_of_two_requirements_of_one_key(node):
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    done = run_guard("fix", "--require", "vm.max_map_count>=1048576", "--require", MAPS, "--persist", env=node)
    assert done.returncode == 0, text(done)
    assert value(node, "vm.max_map_count") == "1048576"
    with open(path) as f:
        assert f.read().splitlines()[1:] == ["vm.max_map_count=1048576"]


def test_persist_never_keeps_less_than_the_node_has_now(node):
    # zz-guard.conf sorts after the node's own files (sysctl.d(5): the last file read wins), so
    # keeping 262144 there would lower a node set to 1048576 elsewhere at its next boot.
    set_value(node, "vm.max_map_count", 1048576)
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    done = run_guard("fix", "--require", MAPS, "--persist", env=node)
    assert done.returncode == 0, text(done)
    assert f"guard: persisted vm.max_map_count=1048576 in {path}\n" in text(done)
    with open(path) as f:
        assert f.read().splitlines()[1:] == ["vm.max_map_count=1048576"]


def test_persist_keeps_bytes_that_are_not_utf8_and_leaves_no_temporary_file(node):
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    with open(path, "wb") as f:
        f.write(b"# r\xe9gl\xe9 \xe0 la main (Latin-1)\nvm.max_map_count=1000\n")
    done = run_guard("fix", "--require", MAPS, "--persist", env=node)
    assert done.returncode == 0, text(done)
    with open(path, "rb") as f:
        assert f.read() == b"# r\xe9gl\xe9 \xe0 la main (Latin-1)\nvm.max_map_count=262144\n"
    assert os.listdir(node["GUARD_SYSCTL_D"]) == ["zz-guard.conf"]



def test_persist_file_that_is_a_symlink_or_fifo_is_a_usage_error_and_left_alone(node, tmp_path):
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    target = tmp_path / "target.conf"
    target.write_text("kept\n")
    for make, kind in ((lambda: os.symlink(target, path), "symbolic link"), (lambda: os.mkfifo(path), "FIFO")):
        make()
        done = run_guard("fix", "--require", MAPS, "--persist", env=node)
        assert done.returncode == 2
        assert text(done) == (f"guard: --persist writes {path}, which must be a regular file or a path that does "
                              f"not exist yet, but [{path}] is a {kind}\n")
        assert value(node, "vm.max_map_count") == "65530"  # a usage error changes nothing
        os.unlink(path)
    assert target.read_text() == "kept\n"


def test_persist_in_a_container_needs_the_nodes_folder_named(node):
    env = {k: v for k, v in node.items() if k not in ("GUARD_SYSCTL_D", "GUARD_SYSCTL_ROOT")}
    done = run_guard("fix", "--require", MAPS, env={**env, "GUARD_PERSIST": "1", "GUARD_PLACE": "container"})
    assert done.returncode == 2
    assert "GUARD_PERSIST: in a container /etc/sysctl.d is the container's own" in text(done)


@pytest.mark.parametrize("line, kept, after", [
    # procps writes the value with its comment; the kernel takes the number and leaves the rest
    ("vm.max_map_count = 1048576 # keep high\n", "already persisted: vm.max_map_count=1048576",
     "vm.max_map_count = 1048576 # keep high\n"),
    ("vm.max_map_count = 0x200000\n", "already persisted: vm.max_map_count=2097152",  # C's base 0
     "vm.max_map_count = 0x200000\n"),
    # the kernel refuses "1048576#x" (EINVAL): the line sets nothing, so the file keeps the requirement
    ("vm.max_map_count = 1048576#x\n", "persisted vm.max_map_count=262144", "vm.max_map_count = 262144\n"),
    ("vm.max_map_count = 010 # octal 8\n", "persisted vm.max_map_count=262144",
     "vm.max_map_count = 262144 # octal 8\n"),
])
def test_persist_reads_a_kept_value_as_the_kernel_does_and_never_writes_less(node, line, kept, after):
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    with open(path, "w") as f:
        f.write(line)
    done = run_guard("fix", "--require", MAPS, "--persist", env=node)
    assert done.returncode == 0, text(done)
    assert f"guard: {kept} in {path}\n" in text(done)
    with open(path) as f:
        assert f.read() == after


def test_persist_never_keeps_less_than_a_file_the_boot_applies_before_it(node):
    # The node runs 65530 until its next boot, when 60-search.conf sets 1048576: keeping 262144 in a
    # file applied after it would lower the node then.
    root = node["GUARD_SYSCTL_ROOT"]
    crafted_files(root, {"usr/lib/sysctl.d/60-search.conf": "vm.max_map_count = 1048576 # keep high\n"})
    done = run_guard("fix", "--require", MAPS, "--persist", env=node)
    assert done.returncode == 0, text(done)
    assert f"guard: persisted vm.max_map_count=1048576 in {node['GUARD_SYSCTL_D']}/zz-guard.conf\n" in text(done)
    assert value(node, "vm.max_map_count") == "262144"  # the node now: raised to what is required


def test_persist_file_sorts_after_debians_99_sysctl_conf_and_names_lower_lines_applied_after_it(node):
    root, folder = node["GUARD_SYSCTL_ROOT"], node["GUARD_SYSCTL_D"]
    crafted_files(root, {"etc/sysctl.conf": "vm.max_map_count = 65530 # the default\n",
                         "usr/lib/sysctl.d/zzz-tuning.conf": "vm.max_map_count = 100000\nvm.overcommit_memory = 0\n",
                         "usr/lib/sysctl.d/zzz-masked.conf": "vm.max_map_count = 1\n"})
    os.symlink("../sysctl.conf", f"{folder}/99-sysctl.conf")  # as Debian and Ubuntu ship it
    os.symlink(os.devnull, f"{folder}/zzz-masked.conf")  # systemd's mask: sets nothing
    done = run_guard("fix", "--require", MAPS, "--persist", env=node)
    path = f"{folder}/zz-guard.conf"
    assert sorted(os.listdir(folder), key=os.fsencode)[-2:] == ["zz-guard.conf", "zzz-masked.conf"]
    assert done.returncode == 0, text(done)
    assert text(done).startswith(
        "guard: set vm.max_map_count [65530] -> [262144]\n"
        f"guard: persisted vm.max_map_count=262144 in {path}\n"
        f"guard: {root}/usr/lib/sysctl.d/zzz-tuning.conf sets vm.max_map_count = 100000 after {path} (sysctl.d "
        "files apply in the order of their names): the node would boot with [100000], not the [262144] kept; "
        "change or remove that line\n"
        f"guard: {root}/etc/sysctl.conf sets vm.max_map_count = 65530 # the default after {path} (sysctl "
        "--system (procps) applies it after every sysctl.d file): the node would boot with [65530], not the "
        "[262144] kept; change or remove that line\n"), text(done)
    report = json.loads(run_guard("fix", "--require", MAPS, "--persist", "--format", "json", env=node).stdout)
    assert report["overridden"] == [
        {"path": f"{root}/usr/lib/sysctl.d/zzz-tuning.conf", "key": "vm.max_map_count", "value": 100000,
         "kept": 262144},
        {"path": f"{root}/etc/sysctl.conf", "key": "vm.max_map_count", "value": 65530, "kept": 262144}]
    assert any("zzz-tuning.conf sets vm.max_map_count = 100000" in note for note in report["notes"])


def test_persist_keeps_what_the_file_of_the_earlier_name_kept_and_says_it_may_go(node):
    # guard fix --persist wrote 99-PROFILE.conf before; it sorts before 99-sysctl.conf.
    earlier = os.path.join(node["GUARD_SYSCTL_D"], "99-redis.conf")
    crafted_files(node["GUARD_SYSCTL_D"], {"99-redis.conf": "vm.overcommit_memory=1\nnet.core.somaxconn=4096\n"})
    done = run_guard("fix", "--profile", "redis", "--persist", env=node)
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard-redis.conf")
    assert f"guard: persisted vm.overcommit_memory=1, net.core.somaxconn=4096 in {path}\n" in text(done)
    assert (f"guard: {earlier}, where guard fix --persist kept these before, is applied before {path}, which keeps "
            "none of them lower: 99-redis.conf may be removed\n") in text(done)
    with open(earlier) as f:
        assert f.read() == "vm.overcommit_memory=1\nnet.core.somaxconn=4096\n"  # not guard's to remove


def test_persist_keeps_the_files_line_endings_owner_and_mode(node):
    path = os.path.join(node["GUARD_SYSCTL_D"], "zz-guard.conf")
    with open(path, "wb") as f:
        f.write(b"# kept by hand\r\nvm.max_map_count=1000\r\n")
    os.chmod(path, 0o600)
    owner = (0, 4) if ROOT else (os.getuid(), os.getgid())  # root:adm (gid 4 on Debian) when it can be
    os.chown(path, *owner)
    done = run_guard("fix", "--require", MAPS, "--require", "vm.overcommit_memory=1", "--persist", env=node)
    assert done.returncode == 0, text(done)
    with open(path, "rb") as f:
        assert f.read() == b"# kept by hand\r\nvm.max_map_count=262144\r\nvm.overcommit_memory=1\r\n"
    kept = os.stat(path)
    assert (stat.S_IMODE(kept.st_mode), kept.st_uid, kept.st_gid) == (0o600, *owner)


def test_persist_that_fails_exits_74_after_setting_the_values(node, tmp_path):
    missing = str(tmp_path / "no-such-folder")
    done = run_guard("fix", "--require", MAPS, "--persist", env={**node, "GUARD_SYSCTL_D": missing})
    assert done.returncode == 74, text(done)
    assert value(node, "vm.max_map_count") == "262144"  # set now, only not kept
    why = f"cannot persist: cannot write {missing}/zz-guard.conf: No such file or directory"
    assert f"guard: {why}\n" in text(done)
    assert text(done).endswith(f"guard: set, but not kept across reboots (exit 74): {why}\n")


def test_persist_that_fails_ends_every_with_74(node, tmp_path):
    guard = start_guard("fix", "--require", MAPS, "--persist", "--every", "0.05",
                        env={**node, "GUARD_SYSCTL_D": str(tmp_path / "no-such-folder")})
    assert guard.wait(timeout=10) == 74
    assert "cannot persist: cannot write" in guard.stderr.read()


@as_root
@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1) for a mount namespace of its own")
def test_persist_on_a_full_disk_exits_74_and_leaves_the_file_as_it_was(node):
    # A tmpfs of the test's own, filled up: the new file cannot be written, the old one stays whole.
    folder = node["GUARD_SYSCTL_D"]
    script = ('mount -t tmpfs -o size=64k guard-test "$1" || exit 99; printf "vm.max_map_count=1000\\n" > '
              '"$1/zz-guard.conf"; head -c 1M /dev/zero > "$1/filler" 2>/dev/null; shift; "$@"; code=$?; '
              'cat "$GUARD_SYSCTL_D/zz-guard.conf"; ls -A "$GUARD_SYSCTL_D"; exit $code')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", folder,
                           guard_executable(), "fix", "--require", MAPS, "--persist"],
                          env={**os.environ, **node}, capture_output=True, text=True, timeout=60)
    if done.returncode == 99:
        pytest.skip(f"no tmpfs here: {done.stderr}")
    assert done.returncode == 74, done.stderr
    assert f"cannot write {folder}/zz-guard.conf: No space left on device" in done.stderr
    assert done.stdout.split() == ["vm.max_map_count=1000", "filler", "zz-guard.conf"]  # no temporary file left


def test_thp_cannot_be_persisted_in_sysctl_d_and_the_kernel_command_line_is_named(node, tmp_path):
    sysfs = tmp_path / "sys"
    (sysfs / "kernel" / "mm" / "transparent_hugepage").mkdir(parents=True)
    (sysfs / "kernel" / "mm" / "transparent_hugepage" / "enabled").write_text("always madvise [never]\n")
    done = run_guard("fix", "--require", "transparent_hugepage!=always", "--persist",
                     env={**node, "GUARD_SYSFS": str(sysfs)})
    assert (f"guard: transparent_hugepage cannot be kept in {node['GUARD_SYSCTL_D']}: to keep it across reboots, add "
            "transparent_hugepage=madvise to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub)\n"
            ) in text(done)
    assert os.listdir(node["GUARD_SYSCTL_D"]) == []


# --- usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, env, message", [
    ([], {}, "guard: guard fix needs --profile NAME, --require SPEC or a known COMMAND"),
    (["--require", MAPS, "--every", "0"], {},
     "guard: --every must be a number of seconds above 0, at most 1000000000 but was [0]"),
    (["--require", MAPS], {"GUARD_EVERY": "often"},
     "guard: GUARD_EVERY must be a number of seconds above 0, at most 1000000000 but was [often]"),
    (["--require", MAPS, "--every", "1e308"], {},
     "guard: --every must be a number of seconds above 0, at most 1000000000 but was [1e308]"),
    (["--require", MAPS], {"GUARD_DRY_RUN": "maybe"},
     "guard: GUARD_DRY_RUN must be [1|0|true|false|yes|no|on|off] but was [maybe]"),
    (["--require", MAPS, "--watch"], {}, "unrecognized arguments: --watch"),
])
def test_bad_usage_exits_2_naming_the_value_and_writes_nothing(node, args, env, message):
    done = run_guard("fix", *args, env={**node, **env})
    assert done.returncode == 2 and message in text(done)
    assert value(node, "vm.max_map_count") == "65530"


@pytest.mark.parametrize("key", ["vm/../../outside", "vm.//.//.outside", "vm/./../../outside"])
def test_a_key_that_climbs_out_of_proc_sys_is_a_usage_error_and_nothing_is_written(node, key):
    # sysctl(8) writes only under /proc/sys (procps is_proc_path): ".." in a key names no sysctl.
    outside = os.path.join(node["GUARD_PROCFS"], "outside")
    with open(outside, "w") as f:
        f.write("7\n")
    done = run_guard("fix", "--require", f"{key}>=9", env=node)
    assert done.returncode == 2 and f"[{key}]" in text(done), text(done)
    with open(outside) as f:
        assert f.read() == "7\n"


def test_command_selects_the_profile_and_its_settings_and_never_runs(node, tmp_path):
    marker = tmp_path / "ran"
    done = run_guard("fix", "--", "redis-server", "--tcp-backlog", "2048", "--", str(marker), env=node)
    assert "set net.core.somaxconn [128] -> [2048]" in text(done)
    assert not marker.exists()


def test_a_backlog_the_kernel_would_wrap_is_capped_in_what_fix_sets_and_prints(node, tmp_path):
    # Linux 3.10 (RHEL 7) keeps a listen backlog in 16 bits: somaxconn 70000 would give Redis 4464.
    proc = crafted_proc(tmp_path / "old", {"vm.max_map_count": 65530, "vm.overcommit_memory": 0,
                                           "net.core.somaxconn": 128}, osrelease="3.10.0-1160.el7.x86_64")
    env = {**node, "GUARD_PROCFS": proc}
    checked = run_guard("check", "--", "redis-server", "--tcp-backlog", "70000", env=env)
    assert "sysctl -w net.core.somaxconn=65535" in text(checked) and "somaxconn=70000" not in text(checked)
    done = run_guard("fix", "--", "redis-server", "--tcp-backlog", "70000", env=env)
    assert "guard: set net.core.somaxconn [128] -> [65535]\n" in text(done)
    assert ("guard: redis: net.core.somaxconn [70000] (Redis server.c checkTcpBacklogSettings: tcp-backlog [70000]) "
            "is above [65535], the most a listen backlog keeps before Linux 4.1 (16 bits: above, it wraps): guard "
            "asks for [65535]\n") in text(done)
    with open(os.path.join(proc, "sys", "net", "core", "somaxconn")) as f:
        assert f.read() == "65535\n"


def test_mongod_connections_beyond_its_file_limit_ask_no_map_count_the_kernel_refuses(node):
    done = run_guard("fix", "--", "mongod", "--maxConns", "2000000000", env=node, limits={"nofile": (1024, 4096)})
    assert "4000000000" not in text(done)
    assert "leave vm.max_map_count [65530] (already >= [1638])" in text(done)  # 2 x 80% of 1024


# --- --every: a node agent ---------------------------------------------------------------------


def poll(condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def start_guard(*args, env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    return subprocess.Popen([guard_executable(), *args], env={**clean, **env}, stderr=subprocess.PIPE, text=True,
                            cwd="/")


def test_every_raises_again_what_is_lowered_reports_only_changes_and_ends_0_on_sigterm(node):
    guard = start_guard("fix", "--require", MAPS, "--every", "0.05", env=node)
    try:
        poll(lambda: value(node, "vm.max_map_count") == "262144", what="the first pass")
        time.sleep(0.5)  # ten passes that find nothing new
        set_value(node, "vm.max_map_count", 1000)  # something lowers it
        poll(lambda: value(node, "vm.max_map_count") == "262144", what="the value raised again")
        time.sleep(0.3)
    finally:
        guard.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = guard.wait(timeout=10)
    assert code == 0 and time.monotonic() - stopped < 2
    assert guard.stderr.read() == (
        "guard: set vm.max_map_count [65530] -> [262144]\n"
        "guard: pass  max-map-count  max virtual memory areas vm.max_map_count [262144] >= [262144]\n"
        "guard: all [1] checks passed\n"
        "guard: set vm.max_map_count [1000] -> [262144]\n"
        "guard: pass  max-map-count  max virtual memory areas vm.max_map_count [262144] >= [262144]\n"
        "guard: all [1] checks passed\n")


def test_every_reports_a_failure_once_not_every_pass(node):
    guard = start_guard("fix", "--require", "nofile.hard>=99999999", "--every", "0.02", "--quiet", env=node)
    time.sleep(1)
    guard.send_signal(signal.SIGINT)
    assert guard.wait(timeout=10) == 0
    assert guard.stderr.read().count("cannot set nofile.hard") == 1


# --- the read-back -----------------------------------------------------------------------------

UNSHARE = shutil.which("unshare")


def in_a_network_namespace_of_its_own(*args):
    """guard ARGS as root in a fresh network namespace: its net.* sysctls are the test's own, and
    no place but a plain host (guard writes namespaced sysctls only there)."""
    if not (ROOT and UNSHARE):
        pytest.skip("needs root and unshare(1) for a network namespace of the test's own")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    return subprocess.run([UNSHARE, "--net", guard_executable(), *args], env=clean, capture_output=True, text=True,
                          cwd="/", timeout=30)


def test_namespaced_sysctl_is_written_on_a_plain_host():
    done = in_a_network_namespace_of_its_own("fix", "--require", "net.core.somaxconn>=65535")
    assert done.returncode == 0, done.stderr
    assert "guard: set net.core.somaxconn [4096] -> [65535]\n" in done.stderr
    with open("/proc/sys/net/core/somaxconn") as f:
        assert f.read().strip() != "65535"  # the host's own namespace was not touched


def test_value_the_kernel_does_not_keep_is_written_a_bounded_number_of_times_then_said():
    # The kernel keeps retrans_time_ms in jiffies: at HZ 250 a write of 1001 reads back 1004, as if
    # another writer changed it after each write.
    knob = "net.ipv4.neigh.lo.retrans_time_ms"
    done = in_a_network_namespace_of_its_own("fix", "--require", f"{knob}=1001")
    if f"guard: set {knob} [1000] -> [1001]" in done.stderr:
        pytest.skip("this kernel's HZ keeps 1001 ms exactly")
    assert done.returncode == 78, done.stderr
    read_back = done.stderr.split("read back [")[1].split("]")[0]
    assert (f"guard: cannot set {knob} [1000] -> [1001]: read back [{read_back}] after [{fix.ATTEMPTS}] writes of "
            "[1001]: the kernel does not keep it, or another writer keeps changing it\n") in done.stderr


# --- the real host, under the tests' lock ------------------------------------------------------


def host_value(name):
    return current_value(sysctl_path(name))


@as_root
def test_raises_the_hosts_low_map_count():
    with sysctl("vm.max_map_count", 65530):
        done = run_guard("fix", "--require", MAPS)
        assert host_value("vm.max_map_count") == "262144"
    assert done.returncode == 0, text(done)
    assert text(done).startswith("guard: set vm.max_map_count [65530] -> [262144]\n")


@as_root
def test_leaves_the_hosts_higher_map_count_alone():
    with sysctl("vm.max_map_count", 1048576):
        done = run_guard("fix", "--require", MAPS)
        assert host_value("vm.max_map_count") == "1048576"
    assert done.returncode == 0 and "leave vm.max_map_count [1048576] (already >= [262144])" in text(done)


@as_root
def test_sets_the_hosts_overcommit_for_redis():
    with sysctl("vm.overcommit_memory", 0):
        done = run_guard("fix", "--profile", "redis")
        assert host_value("vm.overcommit_memory") == "1"
    assert done.returncode == 0, text(done)
    assert "set vm.overcommit_memory [0] -> [1]" in text(done)


@as_root
@pytest.mark.parametrize("name, low, args, code", [("vm.max_map_count", "65530", ["--require", MAPS], 78),
                                                   ("vm.overcommit_memory", "0", ["--profile", "redis"], 0)])
def test_dry_run_leaves_the_host_as_it_is(name, low, args, code):
    with sysctl(name, low):  # one at a time: the lock is not taken twice by one process
        done = run_guard("fix", *args, "--dry-run")
        assert host_value(name) == low
    # Still short afterwards: a hard requirement refuses (78), Redis's overcommit only warns (0).
    assert done.returncode == code and f"would set {name} [{low}] -> [" in text(done)


@as_root
def test_persists_the_hosts_fix_once(tmp_path):
    env = {"GUARD_SYSCTL_D": str(tmp_path), "GUARD_SYSCTL_ROOT": str(tmp_path)}  # no boot file of the host's
    with sysctl("vm.max_map_count", 65530):
        first = run_guard("fix", "--require", MAPS, "--persist", env=env)
        second = run_guard("fix", "--require", MAPS, "--persist", env=env)
    assert (first.returncode, second.returncode) == (0, 0)
    assert "leave vm.max_map_count [262144]" in text(second) and "already persisted" in text(second)
    assert (tmp_path / "zz-guard.conf").read_text().splitlines()[1:] == ["vm.max_map_count=262144"]


@as_root
@pytest.mark.skipif(not os.path.exists(THP_ENABLED), reason="this kernel has no transparent huge pages")
def test_sets_the_hosts_thp_to_madvise():
    with host_setting(THP_ENABLED, "always"):
        done = run_guard("fix", "--require", "transparent_hugepage!=always")
        assert current_value(THP_ENABLED) == "madvise"
    assert done.returncode == 0 and "set transparent_hugepage [always] -> [madvise]" in text(done)


@as_root
def test_a_second_fixer_waits_for_the_first_ones_lock():
    with sysctl("vm.max_map_count", 65530):
        fd = os.open(fix.LOCK_PATH, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            guard = start_guard("fix", "--require", MAPS, env={})
            time.sleep(1)
            assert guard.poll() is None and host_value("vm.max_map_count") == "65530"
        finally:
            os.close(fd)
        assert guard.wait(timeout=10) == 0
        assert host_value("vm.max_map_count") == "262144"


@as_root
@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1) for a mount namespace of its own")
@pytest.mark.parametrize("args, made", [(["--dry-run"], []), ([], ["guard-fix.lock"])], ids=["dry-run", "fix"])
def test_only_a_fixer_that_may_write_makes_the_lock_file(node, args, made):
    # An empty /run/lock of the test's own: a dry run writes nothing, not even the lock file.
    script = 'mount -t tmpfs guard-test /run/lock || exit 99; "$@" >/dev/null 2>&1; ls -A /run/lock'
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                           guard_executable(), "fix", "--require", MAPS, *args],
                          env={**os.environ, **node}, capture_output=True, text=True, timeout=60)
    if done.returncode == 99 or "unshare" in done.stderr:
        pytest.skip(f"no mount namespace here: {done.stderr}")
    assert done.stdout.split() == made, done.stderr


def test_persist_waits_for_another_fixer_holding_the_folder(node):
    # Two containers mounting the node's sysctl.d share no /run/lock, only the folder: a fixer
    # that read the file while another replaced it would drop what the other had just kept.
    fd = os.open(node["GUARD_SYSCTL_D"], os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        guard = start_guard("fix", "--require", MAPS, "--persist", env=node)
        time.sleep(1)
        assert guard.poll() is None and os.listdir(node["GUARD_SYSCTL_D"]) == []
    finally:
        os.close(fd)
    assert guard.wait(timeout=10) == 0, guard.stderr.read()
    assert os.listdir(node["GUARD_SYSCTL_D"]) == ["zz-guard.conf"]


@as_root
def test_two_fixers_at_once_end_at_the_higher_value():
    with sysctl("vm.max_map_count", 65530):
        for _ in range(5):
            with open(sysctl_path("vm.max_map_count"), "w") as f:
                f.write("65530")
            fixers = [start_guard("fix", "--require", f"vm.max_map_count>={n}", env={}) for n in (1048576, 262144)]
            assert [p.wait(timeout=30) for p in fixers] == [0, 0]
            assert host_value("vm.max_map_count") == "1048576"
