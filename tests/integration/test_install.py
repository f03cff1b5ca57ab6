"""guard install: the bundle image (FROM scratch, no cp) copies /opt/guard into a folder, and
another container, with nothing of guard's, runs guard from that folder mounted at /opt/guard: a
Kubernetes init container handing guard over through an emptyDir.
"""

import io
import os
import stat
import subprocess
import tarfile

import pytest
from containers import NO_LIBC_IMAGE, NO_PYTHON_IMAGE, finish
from support import small_tmpfs

USER = "4242:0"  # any user, as a pod's runAsUser
GUARD = "/opt/guard/bin/guard"
MANIFEST = ".guard-manifest"  # the list of what the copy holds, written by guard install
COPIED = "guard: copied /opt/guard into /target: mount it at /opt/guard where guard is to run\n"


@pytest.fixture
def empty_dir(tmp_path):
    """A folder as the kubelet makes an emptyDir: empty, writable by every user."""
    folder = tmp_path / "guard"
    folder.mkdir()
    os.chmod(folder, 0o777)
    return folder


def install(made, bundle_image, folder, *args):
    container = made.container(bundle_image, ["install", "/target", *args], user=USER,
                               volumes={str(folder): {"bind": "/target", "mode": "rw"}})
    return finish(container)


def bundle_tree(made, bundle_image):
    """{relative path: (file type and mode, link target)} of /opt/guard in the bundle image."""
    container = made.client.containers.create(bundle_image)
    made.containers.append(container.id)
    stream, _ = container.get_archive("/opt/guard")
    tree = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        for member in archive.getmembers():
            kind = stat.S_IFDIR if member.isdir() else stat.S_IFLNK if member.issym() else stat.S_IFREG
            tree[os.path.relpath(member.name, "guard")] = (kind | member.mode, member.linkname or None)
    tree.pop(".")
    return tree


def copied_tree(folder, manifest=True):
    """As bundle_tree, of a copy in folder; the manifest, which the bundle has not, is checked and
    left out."""
    if manifest:
        with open(os.path.join(folder, MANIFEST)) as f:
            assert f.readline().startswith("# guard install: what this copy of guard holds")
    tree = {}
    for parent, folders, names in os.walk(folder):
        for name in folders + names:
            path = os.path.join(parent, name)
            info = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            tree[os.path.relpath(path, folder)] = (stat.S_IFMT(info.st_mode) | stat.S_IMODE(info.st_mode), link)
    if manifest:
        tree.pop(MANIFEST)
    return tree


def runs_guard(made, folder):
    """Whether guard starts from the copy in folder, mounted at /opt/guard in an image with no libc."""
    mounted = {str(folder): {"bind": "/opt/guard", "mode": "ro"}}
    checked = made.container(NO_LIBC_IMAGE, [GUARD, "--quiet", "--profile", "none", "--", "sh", "-c", "echo pid $$"],
                             volumes=mounted, read_only=True, user=USER)
    return finish(checked) == (0, "pid 1\n")


def test_install_copies_the_bundle_with_its_modes_and_another_image_runs_guard_from_it(made, bundle_image, empty_dir):
    status, log = install(made, bundle_image, empty_dir)
    assert status == 0, log
    assert log == COPIED
    assert copied_tree(empty_dir) == bundle_tree(made, bundle_image)
    assert os.stat(empty_dir / "bin" / "guard").st_uid == 4242  # the pod's user owns the copy
    mounted = {str(empty_dir): {"bind": "/opt/guard", "mode": "ro"}}
    for image in (NO_PYTHON_IMAGE, NO_LIBC_IMAGE):
        checked = made.container(image, [GUARD, "check", "--profile", "none", "--require", "nofile>=1"],
                                 volumes=mounted, read_only=True, user=USER)
        status, log = finish(checked)
        assert status == 0 and "guard: pass  nofile  max file descriptors nofile [" in log, log
        prefixed = made.container(image, [GUARD, "--quiet", "--profile", "none", "--", "sh", "-c", "echo pid $$"],
                                  volumes=mounted, read_only=True, user=USER)
        assert finish(prefixed) == (0, "pid 1\n")


def test_install_over_a_copy_partly_removed_or_cut_short_repairs_it(made, bundle_image, empty_dir):
    assert install(made, bundle_image, empty_dir)[0] == 0
    for lost in ("lib/libc.so.6", "lib/ld-linux-x86-64.so.2", "lib/python3.11/site-packages/guard", "libexec"):
        subprocess.run(["rm", "-r", str(empty_dir / lost)], check=True)
    cut_short = empty_dir / ".guard-install-cut-short"  # a copy killed earlier, by the pod's user
    (cut_short / "lib").mkdir(parents=True)
    for folder in (cut_short, cut_short / "lib"):
        os.chown(folder, 4242, 0)
    assert not runs_guard(made, empty_dir)
    assert install(made, bundle_image, empty_dir) == (0, COPIED)
    assert copied_tree(empty_dir) == bundle_tree(made, bundle_image)
    assert runs_guard(made, empty_dir)


@pytest.mark.parametrize("foreign", ["lib/libfoo.so", "lib/python3.11/site-packages/other"])
def test_install_over_a_copy_beside_files_of_another_program_refuses_naming_one_and_removes_nothing(
        made, bundle_image, empty_dir, foreign):
    assert install(made, bundle_image, empty_dir)[0] == 0
    (empty_dir / foreign).write_text("not guard's\n")
    before = copied_tree(empty_dir)
    status, log = install(made, bundle_image, empty_dir)
    assert (status, log) == (2, f"guard: guard install DIR: [/target] holds [{foreign}], which is no part of a copy "
                                "of guard (bin, lib, libexec): give an empty folder\n")
    assert copied_tree(empty_dir) == before and (empty_dir / foreign).read_text() == "not guard's\n"


# Runs of guard install side by side in one container (busybox sh, from a copy mounted at
# /opt/guard), round after round into one folder; then runs killed at any point, each followed by
# one that must repair what it left.
SIDE_BY_SIDE = """
for round in $(seq "$1"); do
    pids=""
    for run in $(seq "$2"); do /opt/guard/bin/guard install /target 2>/tmp/said.$run & pids="$pids $!"; done
    for pid in $pids; do wait $pid; echo "exit $?"; done
    cat /tmp/said.*
done
for delay in copying 0.03 0.06 0.1 0.15 0.2 0.3 0.5; do
    /opt/guard/bin/guard install /target 2>/dev/null & pid=$!
    if [ "$delay" = copying ]; then  # the first is killed mid-copy, however busy the machine is
        until [ -n "$(ls -d /target/.guard-install-* 2>/dev/null)" ]; do :; done
    else
        sleep $delay
    fi
    kill -9 $pid 2>/dev/null; wait $pid; echo "killed: exit $?"
    /opt/guard/bin/guard install /target; echo "exit $?"
done
"""


def test_installs_side_by_side_and_killed_ones_leave_one_whole_copy_that_runs(made, bundle_image, tmp_path):
    bundle, target = tmp_path / "bundle", tmp_path / "target"
    for folder in (bundle, target):
        folder.mkdir()
        os.chmod(folder, 0o777)
    assert install(made, bundle_image, bundle)[0] == 0
    rounds, runs = 6, 4
    racing = made.container(NO_LIBC_IMAGE, ["sh", "-c", SIDE_BY_SIDE, "sh", str(rounds), str(runs)], user=USER,
                            tmpfs={"/tmp": ""}, volumes={str(bundle): {"bind": "/opt/guard", "mode": "ro"},
                                                         str(target): {"bind": "/target", "mode": "rw"}})
    status, log = finish(racing, timeout=300)
    assert status == 0
    lines = [line for line in log.splitlines(keepends=True) if line != "Killed\n"]  # busybox sh's job notice
    side_by_side = ("exit 0\n" * runs + COPIED * runs) * rounds
    assert "".join(lines[:len(side_by_side.splitlines())]) == side_by_side
    killed = lines[len(side_by_side.splitlines()):]
    assert killed[1::3] == [COPIED] * 8 and killed[2::3] == ["exit 0\n"] * 8, log
    assert killed[0] == "killed: exit 137\n", log  # the first, at least, mid-copy
    assert copied_tree(target) == bundle_tree(made, bundle_image)
    assert runs_guard(made, target)


# The folder takes 21 MB: 8 MB hold no copy, 32 MB one copy but not a second beside it.
@pytest.mark.parametrize("size, previous", [("8m", False), ("32m", True)], ids=["empty", "over-a-copy"])
def test_install_into_a_full_file_system_says_one_short_line_and_leaves_what_was_there(
        made, bundle_image, tmp_path, size, previous):
    with small_tmpfs(tmp_path / "full", size, "mode=0777") as folder:
        if previous:
            assert install(made, bundle_image, folder) == (0, COPIED)
        before = copied_tree(folder, manifest=previous)
        status, log = install(made, bundle_image, folder)
        assert status == 74
        assert log.startswith("guard: cannot copy /opt/guard into /target: [") and log.count("\n") == 1, log
        assert log.endswith("] No space left on device\n") and len(log) < 300, log
        assert copied_tree(folder, manifest=previous) == before
        if previous:
            assert runs_guard(made, folder)


def test_install_into_a_folder_holding_other_files_is_a_usage_error_and_touches_nothing(made, bundle_image, empty_dir):
    kept = empty_dir / "data.txt"
    kept.write_text("kept\n")
    status, log = install(made, bundle_image, empty_dir)
    assert status == 2
    assert log == ("guard: guard install DIR: [/target] holds [data.txt], which is no part of a copy of guard "
                   "(bin, lib, libexec): give an empty folder\n")
    assert os.listdir(empty_dir) == ["data.txt"] and kept.read_text() == "kept\n"


def test_install_into_a_folder_that_does_not_exist_is_a_usage_error(made, bundle_image):
    status, log = finish(made.container(bundle_image, ["install", "/nowhere"]))
    assert status == 2
    assert log == ("guard: guard install DIR: [/nowhere] does not exist or is not a folder (an emptyDir mounted there, "
                   "say)\n")
