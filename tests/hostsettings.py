"""Change a host setting for the length of a test and always put it back.

Host settings (vm.max_map_count, vm.overcommit_memory, transparent huge pages) are shared by
every process and container on the machine. A test that changes one takes an exclusive lock,
saves the value, and restores it in ``finally`` even when the test fails. A test whose verdict
depends on the current host value takes the shared lock, so no other test run on this machine
changes the value under it.
"""

import contextlib
import fcntl
import os

LOCK_PATH = "/run/lock/guard-host-settings.lock" if os.path.isdir("/run/lock") else "/tmp/guard-host-settings.lock"

SYSCTL_ROOT = "/proc/sys"
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def sysctl_path(name):
    return os.path.join(SYSCTL_ROOT, *name.split("."))


def current_value(path):
    """The value as it would be written back: THP files show ``always [madvise] never``."""
    with open(path) as f:
        text = f.read().strip()
    if "[" in text:
        return text[text.index("[") + 1 : text.index("]")]
    return text


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


# This process's locks, innermost last: (descriptor, mode). A flock belongs to the open file, so
# a nested `with` that opened the lock file again would wait for this very process forever.
_held = []


@contextlib.contextmanager
def _locked(mode):
    if _held:
        fd, outer = _held[-1]
        if outer == fcntl.LOCK_SH and mode == fcntl.LOCK_EX:
            fcntl.flock(fd, fcntl.LOCK_EX)  # converted in place, and back on the way out
        _held.append((fd, fcntl.LOCK_EX if fcntl.LOCK_EX in (outer, mode) else fcntl.LOCK_SH))
        try:
            yield
        finally:
            _held.pop()
            if outer == fcntl.LOCK_SH and mode == fcntl.LOCK_EX:
                fcntl.flock(fd, fcntl.LOCK_SH)
        return
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode)
        _held.append((fd, mode))
        try:
            yield
        finally:
            _held.pop()
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def host_setting(path, value):
    """Set the file at ``path`` (a /proc/sys or /sys knob) to ``value``; yield the saved value."""
    with _locked(fcntl.LOCK_EX):
        saved = current_value(path)
        try:
            _write(path, value)
            yield saved
        finally:
            _write(path, saved)


@contextlib.contextmanager
def sysctl(name, value):
    with host_setting(sysctl_path(name), value) as saved:
        yield saved


@contextlib.contextmanager
def host_settings_unchanged():
    """Hold the host settings still (shared lock) while a test depends on their current values."""
    with _locked(fcntl.LOCK_SH):
        yield
