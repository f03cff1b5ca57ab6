"""The map scanner's Python face: how many memory mappings (VMAs) processes have.

The count is the kernel's ``mm->map_count``, the number it compares with vm.max_map_count when a
process maps more memory. The C core (csrc/maps.c, built into ``guard._maps``) does the reading;
this is the only module that imports it, and it only marshals: encode the arguments, call, turn
a negative result into ``OSError(-rc, os.strerror(-rc), path)``.
"""

import errno
import os
from typing import Dict, NamedTuple

from guard import host
from guard._maps import ffi, lib

# How /proc/PID/maps is read. "auto" picks per process (text for mostly anonymous mappings, the
# PROCMAP_QUERY ioctl for file-backed ones); the others force one path, for tests and benchmarks.
MODES = {"auto": lib.GUARD_MAPS_AUTO, "text": lib.GUARD_MAPS_TEXT, "ioctl": lib.GUARD_MAPS_IOCTL}

# Grown to what the last scan needed; a scan that finds more processes is retried once bigger.
_capacity = 1024


class Scan(NamedTuple):
    """A whole-system scan: map counts by pid, and the pids that could not be read, with why."""

    counts: Dict[int, int]
    failed: Dict[int, OSError]


def _root(proc_root):
    return os.fsencode(proc_root if proc_root is not None else host.proc_root())


def _error(err, root, pid):
    """The OSError for an errno (its subclass by errno); a missing /proc/PID reads as ESRCH, and
    EBADFD is the scanner's word for a maps file that is not a regular file (not read)."""
    if err == errno.ENOENT:
        err = errno.ESRCH
    reason = "not a regular file" if err == errno.EBADFD else os.strerror(err)
    return OSError(err, reason, os.path.join(os.fsdecode(root), str(pid), "maps"))


def count(pid, proc_root=None, mode="auto"):
    """The number of memory mappings of process ``pid``: 0 for kernel threads and zombies.

    Raises ProcessLookupError when there is no such process, PermissionError when its maps are
    not ours to read (another user's process, hidepid), OSError otherwise.
    """
    root = _root(proc_root)
    rc = lib.guard_maps_count(root, int(pid), MODES[mode])
    if rc < 0:
        raise _error(-rc, root, pid)
    return rc


def scan(proc_root=None, mode="auto", threads=0):
    """Count every process under the proc root in one C call (``threads`` 0: the CPUs, up to 4).

    A process that exits during the scan is left out: it no longer has mappings to count.
    """
    global _capacity
    root = _root(proc_root)
    while True:
        capacity = _capacity
        entries = ffi.new("struct guard_maps_entry[]", capacity)
        found = lib.guard_maps_scan(root, entries, capacity, MODES[mode], threads)
        if found < 0:
            raise OSError(-found, os.strerror(-found), os.fsdecode(root))
        if found <= capacity:
            break
        _capacity = found + found // 4
    counts, failed = {}, {}
    for entry in entries[0:found]:
        if entry.error == 0:
            counts[entry.pid] = entry.count
        # The race: a process listed by readdir can exit before its maps are opened (ENOENT) or
        # while they are walked (ESRCH, its mm gone). It has no mappings left: not an error.
        elif entry.error not in (errno.ENOENT, errno.ESRCH):
            failed[entry.pid] = _error(entry.error, root, entry.pid)
    return Scan(counts, failed)
