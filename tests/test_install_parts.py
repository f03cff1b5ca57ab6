"""guard install DIR: what it replaces in DIR, how installs into one DIR take turns, and what a
failed or killed one leaves, on real folders and real processes (a crafted bundle stands in for
/opt/guard: the copy itself is the same whatever the files hold; tests/integration/test_install.py
runs the real bundle)."""

import fcntl
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from guard import install
from support import small_tmpfs

ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="mounting a tmpfs of the test's own takes root")
MANIFEST = install.MANIFEST
# install_from in a process of its own, as `guard install` runs it: its exit code is the command's.
INSTALL = "import sys; from guard import install; sys.exit(install.install_from(sys.argv[1], sys.argv[2]))"


def crafted_bundle(root, modules=3, size=64, extra=()):
    """A folder laid out as the bundle is: bin/guard, libexec/guard, lib/ with the loader's
    symlink, libc and guard's package (modules files of size bytes)."""
    files = ["bin/guard", "libexec/guard", "lib/libc.so.6", *extra]
    files += [f"lib/python3.11/site-packages/guard/module{n}.pyc" for n in range(modules)]
    for relative in files:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(relative.encode().ljust(size, b"."))
    for executable in ("bin/guard", "libexec/guard"):
        os.chmod(root / executable, 0o755)
    (root / "lib" / "libc.so").symlink_to("libc.so.6")
    return str(root)


def snapshot(folder):
    """{relative path: (type and mode, link target or content)} of everything under folder."""
    tree = {}
    for parent, folders, names in os.walk(folder):
        for name in folders + names:
            path = os.path.join(parent, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                held = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as f:
                    held = f.read()
            else:
                held = None
            tree[os.path.relpath(path, folder)] = (info.st_mode, held)
    return tree


def assert_whole_copy(bundle, target):
    copied = snapshot(target)
    assert copied.pop(MANIFEST)[1].decode().startswith(install.MANIFEST_HEADER + "\n")
    assert copied == snapshot(bundle)


def start_install(bundle, target):
    return subprocess.Popen([sys.executable, "-c", INSTALL, bundle, str(target)], stderr=subprocess.PIPE, text=True)


@pytest.fixture
def bundle(tmp_path):
    return crafted_bundle(tmp_path / "bundle")


@pytest.fixture
def target(tmp_path):
    folder = tmp_path / "target"
    folder.mkdir()
    return folder


def test_installs_into_an_empty_folder_with_a_manifest_of_what_it_copied(bundle, target, capfd):
    assert install.install_from(bundle, str(target)) == 0
    assert capfd.readouterr().err == f"guard: copied {bundle} into {target}: mount it at {bundle} where guard is to run\n"
    assert_whole_copy(bundle, target)
    listed = (target / MANIFEST).read_text().splitlines()
    assert listed[1:4] == ["d bin", "f bin/guard", "d lib"] and "l lib/libc.so" in listed


def test_a_previous_copy_is_replaced_with_what_only_it_held(tmp_path, target, capfd):
    older = crafted_bundle(tmp_path / "older", extra=["lib/libold.so.1", "lib/python3.10/os.pyc"])
    newer = crafted_bundle(tmp_path / "newer", size=128)
    assert install.install_from(older, str(target)) == 0
    assert install.install_from(newer, str(target)) == 0, capfd.readouterr().err
    assert_whole_copy(newer, target)


@pytest.mark.parametrize("foreign", [
    "lib/libfoo.so",  # beside guard's own python3.11/site-packages/guard
    "lib/python3.11/site-packages/other/__init__.py",
    "lib/python3.11/site-packages/guard/plugin.py",
    "bin/backup.sh",
    "libexec/helper",
])
def test_a_path_no_copy_of_guard_holds_is_refused_by_name_and_nothing_is_removed(bundle, target, capfd, foreign):
    assert install.install_from(bundle, str(target)) == 0
    (target / foreign).parent.mkdir(parents=True, exist_ok=True)
    (target / foreign).write_text("not guard's\n")
    before = snapshot(target)
    capfd.readouterr()
    assert install.install_from(bundle, str(target)) == 2
    assert capfd.readouterr().err == (f"guard: guard install DIR: [{target}] holds [{foreign.replace('/__init__.py', '')}], "
                                      "which is no part of a copy of guard (bin, lib, libexec): give an empty folder\n")
    assert snapshot(target) == before


@pytest.mark.parametrize("part,holds", [
    ("lib", "data/customers.db"),  # a volume's lib/ of something else
    ("bin", "backup.sh"),
    ("libexec", "helper"),
])
def test_a_folder_named_like_a_part_but_not_guards_is_left_alone(bundle, target, capfd, part, holds):
    precious = target / part / holds
    precious.parent.mkdir(parents=True)
    precious.write_text("not guard's\n")
    assert install.install_from(bundle, str(target)) == 2
    assert f"holds [{os.path.join(part, holds.split('/')[0])}], which is no part of a copy" in capfd.readouterr().err
    assert precious.read_text() == "not guard's\n" and sorted(os.listdir(target)) == [part]


def test_a_folder_nested_deeper_than_python_recurses_is_refused_by_name(bundle, target, capfd):
    (target / "lib").mkdir()
    fd = os.open(target / "lib", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1200):  # beyond Python's recursion limit (1000), within PATH_MAX
        os.mkdir("a", dir_fd=fd)
        fd, parent = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)
    listed = ["find", str(target), "-printf", "%y %P\\n"]  # os.walk and shutil.rmtree recurse too
    before = subprocess.run(listed, capture_output=True, check=True).stdout
    try:
        assert install.install_from(bundle, str(target)) == 2
        assert "holds [lib/a], which is no part of a copy of guard" in capfd.readouterr().err
        assert subprocess.run(listed, capture_output=True, check=True).stdout == before
    finally:
        subprocess.run(["rm", "-r", str(target / "lib")], check=True)


def test_a_symlink_named_like_a_part_is_left_alone(tmp_path, bundle, target, capfd):
    (tmp_path / "elsewhere").mkdir()
    (target / "lib").symlink_to(tmp_path / "elsewhere")
    assert install.install_from(bundle, str(target)) == 2
    assert "holds [lib], which is no part of a copy" in capfd.readouterr().err
    assert os.path.islink(target / "lib")


def test_a_manifest_guard_did_not_write_is_refused(bundle, target, capfd):
    (target / MANIFEST).write_text("lib/libfoo.so\n")
    assert install.install_from(bundle, str(target)) == 2
    assert f"holds [{MANIFEST}], which is not a list guard install wrote" in capfd.readouterr().err
    assert os.listdir(target) == [MANIFEST]


@pytest.mark.parametrize("removed", [
    ["lib"],  # a copy killed between taking the old lib out and putting the new one in
    ["lib/libc.so.6", "lib/python3.11/site-packages/guard", "libexec"],
    [MANIFEST, "lib/python3.11/site-packages"],  # a partial copy of this bundle, its list lost
])
def test_a_copy_partly_removed_is_repaired_by_the_next_install(bundle, target, capfd, removed):
    assert install.install_from(bundle, str(target)) == 0
    for relative in removed:
        subprocess.run(["rm", "-r", str(target / relative)], check=True)
    assert install.install_from(bundle, str(target)) == 0, capfd.readouterr().err
    assert_whole_copy(bundle, target)


def test_a_copy_cut_short_earlier_is_removed_once_its_run_has_ended(bundle, target):
    left = target / (install.STAGING + "cut-short") / "lib"
    left.mkdir(parents=True)
    (left / "libc.so.6").write_text("half\n")
    assert install.install_from(bundle, str(target)) == 0
    assert_whole_copy(bundle, target)


def test_without_a_lock_a_staging_folder_is_removed_only_once_it_is_old(bundle, target):
    """Where flock cannot be had, a fresh staging folder may be a live run's."""
    live, stale = target / (install.STAGING + "live"), target / (install.STAGING + "stale")
    live.mkdir()
    stale.mkdir()
    hour_ago = time.time() - install.STALE_AFTER - 60
    os.utime(stale, (hour_ago, hour_ago))
    install.copy(bundle, str(target), locked=False)
    assert sorted(os.listdir(target)) == [install.STAGING + "live", MANIFEST, "bin", "lib", "libexec"]


def test_concurrent_installs_into_one_folder_take_turns_and_leave_one_whole_copy(tmp_path, target):
    bundle = crafted_bundle(tmp_path / "bundle", modules=200, size=16384)
    for _ in range(8):
        runs = [start_install(bundle, target) for _ in range(4)]
        said = [run.communicate(timeout=120)[1] for run in runs]
        assert [run.returncode for run in runs] == [0] * 4, said
        assert_whole_copy(bundle, target)


def test_an_install_killed_at_any_point_is_repaired_by_the_next(tmp_path, target):
    bundle = crafted_bundle(tmp_path / "bundle", modules=200, size=16384)
    assert install.install_from(bundle, str(target)) == 0
    for delay in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5):
        run = start_install(bundle, target)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.communicate()
        again = start_install(bundle, target)
        assert again.wait(timeout=120) == 0, again.stderr.read()
        assert_whole_copy(bundle, target)


# install_from killed by SIGKILL just before its Nth rename (the swap is nothing but renames).
KILLED_BEFORE_RENAME = """
import os, signal, sys
from guard import install
left = int(sys.argv[3])
def kill_before_rename(event, args):
    global left
    if event == "os.rename":
        left -= 1
        if left < 0:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(kill_before_rename)
sys.exit(install.install_from(sys.argv[1], sys.argv[2]))
"""


def test_an_install_killed_at_each_step_of_its_swap_leaves_a_copy_the_next_one_replaces(tmp_path):
    older = crafted_bundle(tmp_path / "older", extra=["lib/libold.so.1", "lib/python3.10/os.pyc"])
    newer = crafted_bundle(tmp_path / "newer", size=128, extra=["lib/libnew.so.1", "libexec/newer"])
    newest = crafted_bundle(tmp_path / "newest", size=256)
    renames = 1 + 2 * len(install.PARTS) + 1  # the manifest naming both, each part out and in, the new manifest
    for step in range(renames):
        target = tmp_path / f"target{step}"
        target.mkdir()
        assert install.install_from(older, str(target)) == 0
        killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_RENAME, newer, str(target), str(step)])
        assert killed.returncode == -signal.SIGKILL
        assert install.install_from(newest, str(target)) == 0, step
        assert_whole_copy(newest, target)


def test_an_install_waits_for_the_one_holding_the_folder(bundle, target):
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        run = start_install(bundle, target)
        time.sleep(1)
        assert run.poll() is None and os.listdir(target) == []
    finally:
        os.close(fd)
    assert run.wait(timeout=60) == 0
    assert_whole_copy(bundle, target)


def test_an_install_held_off_past_its_patience_says_so_and_copies_nothing(bundle, target, capfd):
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert install.install_from(bundle, str(target), patience=0.2) == 75
    finally:
        os.close(fd)
    assert capfd.readouterr().err == (f"guard: guard install DIR: another guard install has held [{target}] for more "
                                      "than [0.2] seconds: nothing copied, try again when it ends\n")
    assert os.listdir(target) == []


@as_root
def test_a_full_file_system_is_one_short_line_and_leaves_nothing(tmp_path, capfd):
    bundle = crafted_bundle(tmp_path / "bundle", modules=400, size=4096)  # 1.6 MB in 400 files
    with small_tmpfs(tmp_path / "full", "1m") as full:
        assert install.install_from(bundle, str(full)) == 74
        assert os.listdir(full) == []
    said = capfd.readouterr().err
    assert said.startswith(f"guard: cannot copy {bundle} into {full}: [lib/")
    assert said.endswith("] No space left on device\n") and said.count("\n") == 1 and len(said) < 300, said


@as_root
def test_a_copy_that_does_not_fit_beside_the_previous_leaves_the_previous_whole(tmp_path, capfd):
    bundle = crafted_bundle(tmp_path / "bundle", modules=150, size=4096)  # 0.6 MB: one copy fits, two do not
    with small_tmpfs(tmp_path / "full", "1m") as full:
        assert install.install_from(bundle, str(full)) == 0
        assert install.install_from(bundle, str(full)) == 74
        assert "No space left on device" in capfd.readouterr().err
        assert_whole_copy(bundle, full)


@as_root
def test_a_read_only_folder_is_one_short_line(tmp_path, bundle, capfd):
    with small_tmpfs(tmp_path / "read-only", "1m", "ro") as read_only:
        assert install.install_from(bundle, str(read_only)) == 74
    said = capfd.readouterr().err
    assert said.startswith(f"guard: cannot copy {bundle} into {read_only}: [") and len(said) < 300
    assert said.endswith("] Read-only file system\n"), said
