"""`guard install DIR`: copy the running bundle (/opt/guard) into DIR.

For a Kubernetes init container that hands guard to the program's container: the bundle image is
FROM scratch (no cp, no shell), so guard copies itself into an emptyDir, which the program's
container mounts at /opt/guard (deploy/kubernetes/components/guard-prefix). Modes and symlinks are
kept; files belong to whoever runs the copy (the pod's user).
"""

import glob
import os
import shutil
import sys
import tempfile

import guard
from guard import report
from guard.report import PREFIX

# What the bundle holds at its top (bundle/make_bundle.py): bin/guard (the static starter),
# libexec/guard (the embedded Python), lib/ (loader, libc, libpython, the standard library, guard).
PARTS = ("bin", "lib", "libexec")
STAGING = ".guard-install-"  # a copy under way; one left by an interrupted copy is replaced
# What each part of a previous copy holds: bin/ and libexec/ nothing but guard, lib/ guard's
# package under some pythonX.Y. A folder of the same name that holds anything else is not
# guard's to remove (a volume's lib/ of another program).
PART_SIGNS = {"bin": "guard", "libexec": "guard", "lib": os.path.join("python3*", "site-packages", "guard")}

EXIT_USAGE = 2
EXIT_IOERR = 74  # EX_IOERR (sysexits.h): the copy failed


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


def _unfit_target(target, bundle):
    """Why target cannot take the copy, or None: it must be a folder that exists (an emptyDir),
    outside the bundle, and hold nothing but a previous copy."""
    if not os.path.isdir(target):
        return "does not exist or is not a folder (an emptyDir mounted there, say)"
    real, source = os.path.realpath(target), os.path.realpath(bundle)
    if real == source or real.startswith(source + os.sep) or source.startswith(real + os.sep):
        return f"is or holds the running bundle {bundle}"
    try:
        names = sorted(os.listdir(target))
    except OSError as e:
        return f"cannot be listed: {e.strerror}"
    foreign = [name for name in names if name not in PARTS and not name.startswith(STAGING)]
    if foreign:
        return f"holds [{foreign[0]}], which is no part of a copy of guard ({', '.join(PARTS)}): give an empty folder"
    for part in (name for name in names if name in PARTS):
        if not _previous_part(os.path.join(target, part), part):
            sign = "holds no" if part == "lib" else "holds more than"
            return (f"holds [{part}], which is not the {part} of a copy of guard (it is no folder, or {sign} "
                    f"{PART_SIGNS[part]}): give an empty folder")
    return None


def _previous_part(path, part):
    """Whether path is the part of a previous copy: a folder (not a symlink) as the bundle has it."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    if part == "lib":
        return any(os.path.isdir(found) for found in glob.glob(os.path.join(glob.escape(path), PART_SIGNS[part])))
    return set(os.listdir(path)) <= {PART_SIGNS[part]}


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def copy(bundle, target):
    """Copy into a staging folder inside target, then swap each part for the previous copy's by
    rename (the old one goes into the staging folder, removed last), so that a copy cut short
    leaves every part whole, old or new, and the rest in staging folders the next run removes."""
    staging = tempfile.mkdtemp(prefix=STAGING, dir=target)
    for part in PARTS:
        shutil.copytree(os.path.join(bundle, part), os.path.join(staging, part), symlinks=True)
    for name in os.listdir(target):
        if name.startswith(STAGING) and name != os.path.basename(staging):
            _remove(os.path.join(target, name))
    previous = os.path.join(staging, "previous")
    os.mkdir(previous)
    for part in PARTS:
        if os.path.lexists(os.path.join(target, part)):
            os.rename(os.path.join(target, part), os.path.join(previous, part))
        os.rename(os.path.join(staging, part), os.path.join(target, part))
    shutil.rmtree(staging)


def run(target):
    """Copy the bundle into target; the exit code (0, 2 for usage, 74 when the copy failed)."""
    bundle = running_bundle()
    if bundle is None:
        report.write(f"{PREFIX}guard install works from the bundle only (/opt/guard, docker build --target "
                     f"bundle), and this guard runs from [{sys.executable}]: copy the bundle image's /opt/guard "
                     "instead\n")
        return EXIT_USAGE
    problem = _unfit_target(target, bundle)
    if problem:
        report.write(f"{PREFIX}guard install DIR: [{target}] {problem}\n")
        return EXIT_USAGE
    try:
        copy(bundle, target)
    except (OSError, shutil.Error) as e:
        report.write(f"{PREFIX}cannot copy {bundle} into {target}: {getattr(e, 'strerror', None) or e}\n")
        return EXIT_IOERR
    report.write(f"{PREFIX}copied {bundle} into {target}: mount it at {bundle} where guard is to run\n")
    return 0
