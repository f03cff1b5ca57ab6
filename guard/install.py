"""`guard install DIR`: copy the running bundle (/opt/guard) into DIR.

For a Kubernetes init container that hands guard to the program's container: the bundle image is
FROM scratch (no cp, no shell), so guard copies itself into an emptyDir, which the program's
container mounts at /opt/guard (deploy/kubernetes/components/guard-prefix). Modes and symlinks are
kept; files belong to whoever runs the copy (the pod's user).

What a copy of guard holds is exact: the bundle's parts (PARTS), every folder, file and symlink
in them listed in DIR/MANIFEST, which the copy writes. DIR may hold nothing else but staging
folders, and a path under a part that neither the running bundle nor that manifest names is not
guard's: the install refuses, naming it, and removes nothing. So a copy left half there (a run
killed mid-swap, a file deleted by hand) is repaired by the next install, and a volume's lib/ of
another program is never touched.

Installs into one DIR take turns on an flock on DIR itself (guard.turns): the kernel releases it
when its holder ends, even by SIGKILL, so a staging folder found while holding it belongs to no
live run and is removed. A copy is made in a staging folder inside DIR, then each part is swapped
in by rename, the manifest naming old and new meanwhile: a run cut short at any point leaves
whole parts, old or new, and a manifest that names them all.
"""

import contextlib
import errno
import os
import shutil
import sys
import tempfile
import time

import guard
from guard import host, report, turns
from guard.report import PREFIX

# What the bundle holds at its top (bundle/make_bundle.py): bin/guard (the static starter),
# libexec/guard (the embedded Python), lib/ (loader, libc, libpython, the standard library, guard).
PARTS = ("bin", "lib", "libexec")
MANIFEST = ".guard-manifest"
MANIFEST_HEADER = "# guard install: what this copy of guard holds, one kind (d folder, f file, l symlink) and path a line"
STAGING = ".guard-install-"  # a copy under way; one no live run holds is removed
KINDS = {"d", "f", "l"}

# A copy takes well under a second (21 MB); a holder this long is stuck (a live one: a dead holder's
# flock is gone with it).
PATIENCE = 120.0
# Where flock cannot be had (an NFS folder with no lock manager), a staging folder is another
# run's until it has been left untouched this long.
STALE_AFTER = 3600.0
# Without the lock, another run may swap its part in between this run's two renames.
SWAP_ATTEMPTS = 5

EXIT_USAGE = 2
EXIT_IOERR = 74  # EX_IOERR (sysexits.h): the copy failed
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: another install held DIR too long; try again


class CopyFailed(Exception):
    """A copy that could not be made: the path and the reason, short whatever went wrong."""

    def __init__(self, path, why):
        super().__init__(f"[{path}] {why}")


def _failed(path, error):
    return CopyFailed(getattr(error, "filename", None) or path, error.strerror or str(error))


def running_bundle():
    """The folder of the running bundle, or None when guard runs from a pip install.

    In the bundle, sys.executable is PREFIX/bin/guard (bundle/launcher.c sets it), beside
    PREFIX/libexec/guard, and guard's package lies under PREFIX/lib. A virtualenv at /opt/guard
    (guard's own image) has bin/python as its executable and no libexec/guard.
    """
    executable = os.path.abspath(sys.executable or "")
    prefix = os.path.dirname(os.path.dirname(executable))
    package = os.path.abspath(os.path.dirname(guard.__file__))
    if (executable == os.path.join(prefix, "bin", "guard") and os.path.isfile(os.path.join(prefix, "libexec", "guard"))
            and package.startswith(os.path.join(prefix, "lib") + os.sep)):
        return prefix
    return None


def _kind(entry):
    if entry.is_symlink():
        return "l"
    if entry.is_dir(follow_symlinks=False):
        return "d"
    return "f" if entry.is_file(follow_symlinks=False) else "?"  # a FIFO, socket or device


def _listing(root, folder):
    with os.scandir(os.path.join(root, folder)) as listing:
        return sorted((os.path.join(folder, entry.name), _kind(entry)) for entry in listing)


def tree(root, relative):
    """[(path, kind)] of everything under root/relative, each folder before what it holds,
    symlinks not followed. Raises OSError. A walk, not a recursion: a folder nested deeper than
    Python recurses is listed too (and refused by name when it is not guard's)."""
    found, pending = [], _listing(root, relative)[::-1]
    while pending:
        path, kind = pending.pop()
        found.append((path, kind))
        if kind == "d":
            pending += _listing(root, path)[::-1]
    return found


def bundle_manifest(bundle):
    """[(path, kind)] of the bundle's parts: what a copy of it holds."""
    found = []
    for part in PARTS:
        if os.path.islink(os.path.join(bundle, part)) or not os.path.isdir(os.path.join(bundle, part)):
            raise OSError(errno.ENOTDIR, "not a folder", os.path.join(bundle, part))
        found += [(part, "d")] + tree(bundle, part)
    return found


def _manifest_text(entries):
    lines = [MANIFEST_HEADER] + [f"{kind} {path}" for path, kind in sorted(set(entries))]
    return "\n".join(lines) + "\n"


def _read_manifest(path):
    """{(path, kind)} a previous copy wrote, or None when the file is not a manifest of guard install's."""
    try:
        text = host.read_bytes(path).decode("utf-8", errors="surrogateescape")
    except host.Unreadable:
        return None
    lines = text.split("\n")
    if lines[0] != MANIFEST_HEADER or lines[-1] != "":
        return None
    listed = set()
    for line in lines[1:-1]:
        kind, _, relative = line.partition(" ")
        if kind not in KINDS or not relative:
            return None
        listed.add((relative, kind))
    return listed


class Unfit(Exception):
    """Why DIR cannot take the copy: said after "[DIR] ", a usage error."""


def previous_copy(target, bundle, own):
    """What target's manifest names (empty without one), when target can take the copy: a folder
    that exists (an emptyDir), outside the bundle, holding nothing but a copy of guard, whole or in
    part. own: the running bundle's manifest. Raises Unfit."""
    if not os.path.isdir(target):
        raise Unfit("does not exist or is not a folder (an emptyDir mounted there, say)")
    real, source = os.path.realpath(target), os.path.realpath(bundle)
    if real == source or real.startswith(source + os.sep) or source.startswith(real + os.sep):
        raise Unfit(f"is or holds the running bundle {bundle}")
    try:
        with os.scandir(target) as listing:
            top = {entry.name: _kind(entry) for entry in listing}
    except OSError as e:
        raise Unfit(f"cannot be listed: {e.strerror}") from None
    foreign = sorted(name for name in top if name not in PARTS + (MANIFEST,) and not name.startswith(STAGING))
    if foreign:
        raise Unfit(_foreign(foreign[0]))
    listed = set()
    if MANIFEST in top:
        listed = _read_manifest(os.path.join(target, MANIFEST)) if top[MANIFEST] == "f" else None
        if listed is None:
            raise Unfit(f"holds [{MANIFEST}], which is not a list guard install wrote: give an empty folder")
    known = set(own) | listed
    for part in (name for name in PARTS if name in top):
        try:
            held = [(part, top[part])] + (tree(target, part) if top[part] == "d" else [])
        except OSError as e:
            raise Unfit(f"holds [{part}], which cannot be listed ([{e.filename}] {e.strerror}): "
                        "give an empty folder") from None
        foreign = next((path for path, kind in held if (path, kind) not in known), None)
        if foreign:
            raise Unfit(_foreign(foreign))
    return listed


def _foreign(path):
    return f"holds [{path}], which is no part of a copy of guard ({', '.join(PARTS)}): give an empty folder"


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _remove_stale_staging(target, locked):
    """Remove the staging folders of runs that ended before finishing. Holding the lock, every one
    is: a live run holds the lock for as long as its staging folder exists. Without one, only a
    folder untouched for STALE_AFTER: a live run's is never removed."""
    for name in os.listdir(target):
        path = os.path.join(target, name)
        if name.startswith(STAGING) and (locked or time.time() - os.lstat(path).st_mtime > STALE_AFTER):
            try:
                _remove(path)
            except FileNotFoundError:
                pass  # without the lock, another run removed it first


def _copy_entries(bundle, staging, entries):
    """Copy the bundle's entries (folders first) into staging: contents, modes and symlinks.
    A failure names the entry as the copy has it (lib/libc.so.6): the staging folder goes with it."""
    for path, kind in entries:
        source, copied = os.path.join(bundle, path), os.path.join(staging, path)
        try:
            if kind == "d":
                os.mkdir(copied, 0o700)
            elif kind == "l":
                os.symlink(os.readlink(source), copied)
            elif kind == "f":
                shutil.copy2(source, copied, follow_symlinks=False)
            else:
                raise CopyFailed(source, "is no file, folder or symlink")
        except OSError as e:
            raise CopyFailed(path, e.strerror or str(e)) from None
    for path, kind in reversed(entries):  # last, as a folder's mode may forbid writing into it
        if kind == "d":
            try:
                shutil.copystat(os.path.join(bundle, path), os.path.join(staging, path))
            except OSError as e:
                raise CopyFailed(path, e.strerror or str(e)) from None


def _write(path, text):
    try:
        with open(path, "x", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        os.chmod(path, 0o644)
    except OSError as e:
        raise CopyFailed(MANIFEST, e.strerror or str(e)) from None


def _swap(target, staging):
    """Put each part of staging in target, the one there before (if any) going into
    staging/previous; the manifests written ahead in staging go in around it. Raises OSError."""
    os.replace(os.path.join(staging, MANIFEST + ".both"), os.path.join(target, MANIFEST))
    previous = os.path.join(staging, "previous")
    os.mkdir(previous)
    for part in PARTS:
        for attempt in range(SWAP_ATTEMPTS):
            if os.path.lexists(os.path.join(target, part)):
                os.rename(os.path.join(target, part), os.path.join(previous, f"{part}.{attempt}"))
            try:
                os.rename(os.path.join(staging, part), os.path.join(target, part))
                break
            except OSError as e:  # another run (without the lock) put its own there in between
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == SWAP_ATTEMPTS - 1:
                    raise
    os.replace(os.path.join(staging, MANIFEST), os.path.join(target, MANIFEST))


def _put_back(target, staging):
    """After a failed swap, return the previous copy's parts to any place left empty."""
    for part in PARTS:
        moved = os.path.join(staging, "previous", f"{part}.0")
        with contextlib.suppress(OSError):  # then the part is missing: the manifest names it, the next install repairs
            if os.path.lexists(moved) and not os.path.lexists(os.path.join(target, part)):
                os.rename(moved, os.path.join(target, part))


def copy(bundle, target, own=None, known=(), locked=True):
    """Copy the bundle into target: into a staging folder first, then swapped in part by part.
    own: the bundle's manifest (read here when not given); known: what target's own manifest
    named; locked: whether this run holds the lock on target. Raises CopyFailed; what it made is
    gone then, and target holds what it held before."""
    own = bundle_manifest(bundle) if own is None else own
    try:
        _remove_stale_staging(target, locked)
        staging = tempfile.mkdtemp(prefix=STAGING, dir=target)
    except OSError as e:
        raise _failed(target, e) from None
    try:
        _copy_entries(bundle, staging, own)
        _write(os.path.join(staging, MANIFEST + ".both"), _manifest_text(list(own) + list(known)))
        _write(os.path.join(staging, MANIFEST), _manifest_text(own))
        try:
            _swap(target, staging)
        except OSError as e:
            _put_back(target, staging)
            raise _failed(target, e) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_from(bundle, target, patience=PATIENCE):
    """Copy bundle into target, taking turns with other installs; the exit code, said on stderr."""
    with turns.turn(target, patience, folder=True, create=False) as state:
        if state == turns.BUSY:
            report.write(f"{PREFIX}guard install DIR: another guard install has held [{target}] for more than "
                         f"[{patience:g}] seconds: nothing copied, try again when it ends\n")
            return EXIT_TEMPFAIL
        try:
            own = bundle_manifest(bundle)
        except OSError as e:
            report.write(f"{PREFIX}cannot read the bundle {bundle}: [{e.filename}] {e.strerror}\n")
            return EXIT_IOERR
        try:
            known = previous_copy(target, bundle, own)
        except Unfit as e:
            report.write(f"{PREFIX}guard install DIR: [{target}] {e}\n")
            return EXIT_USAGE
        try:
            copy(bundle, target, own, known, locked=state == turns.HELD)
        except CopyFailed as e:
            report.write(f"{PREFIX}cannot copy {bundle} into {target}: {e}\n")
            return EXIT_IOERR
    report.write(f"{PREFIX}copied {bundle} into {target}: mount it at {bundle} where guard is to run\n")
    return 0


def run(target):
    """Copy the running bundle into target; the exit code (0, 2 for usage, 74 when the copy
    failed, 75 when another install held target too long)."""
    bundle = running_bundle()
    if bundle is None:
        report.write(f"{PREFIX}guard install works from the bundle only (/opt/guard, docker build --target "
                     f"bundle), and this guard runs from [{sys.executable}]: copy the bundle image's /opt/guard "
                     "instead\n")
        return EXIT_USAGE
    return install_from(bundle, target)
