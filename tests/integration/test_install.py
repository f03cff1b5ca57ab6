"""guard install: the bundle image (FROM scratch, no cp) copies /opt/guard into a folder, and
another container, with nothing of guard's, runs guard from that folder mounted at /opt/guard: a
Kubernetes init container handing guard over through an emptyDir.
"""

import io
import os
import stat
import tarfile

import pytest
from containers import NO_LIBC_IMAGE, NO_PYTHON_IMAGE, finish

USER = "4242:0"  # any user, as a pod's runAsUser
GUARD = "/opt/guard/bin/guard"


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


def copied_tree(folder):
    tree = {}
    for parent, folders, names in os.walk(folder):
        for name in folders + names:
            path = os.path.join(parent, name)
            info = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            tree[os.path.relpath(path, folder)] = (stat.S_IFMT(info.st_mode) | stat.S_IMODE(info.st_mode), link)
    return tree


def test_install_copies_the_bundle_with_its_modes_and_another_image_runs_guard_from_it(made, bundle_image, empty_dir):
    status, log = install(made, bundle_image, empty_dir)
    assert status == 0, log
    assert log == "guard: copied /opt/guard into /target: mount it at /opt/guard where guard is to run\n"
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


def test_install_over_a_previous_copy_replaces_it(made, bundle_image, empty_dir):
    assert install(made, bundle_image, empty_dir)[0] == 0
    stale = empty_dir / "lib" / "left-over.so"
    stale.write_text("from an older copy\n")
    (empty_dir / ".guard-install-cut-short").mkdir()  # a copy interrupted earlier
    status, log = install(made, bundle_image, empty_dir)
    assert status == 0, log
    assert not stale.exists()
    assert sorted(os.listdir(empty_dir)) == ["bin", "lib", "libexec"]


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
