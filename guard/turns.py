"""Taking turns on an flock(2): guard fix on its lock file and on the sysctl.d folder it keeps a
file in, guard install on the folder it copies into.

An flock belongs to the open file, so it is released when its holder ends, however it ends (a
SIGKILL included): a lock nobody holds is never stale. It is taken on the folder or file itself,
which every process that opens the same file system shares, containers that mount it included.
"""

import contextlib
import fcntl
import os
import time

from guard import host

HELD = "held"  # the body runs with the lock
BUSY = "busy"  # another process held the lock for longer than the patience given: the body runs without it
ALONE = "alone"  # no lock to be had here (no lock file, a file system without flock): nobody to take turns with

POLL = 0.05  # seconds between attempts


def _descriptor(path, folder, create):
    """A descriptor to flock path by, or None when there is none to be had. A folder is opened as
    it is; a lock file is made if missing (and create), and only a regular file is opened (never
    a FIFO or a device in its place), only to lock it: nothing is written to it."""
    with contextlib.suppress(OSError):  # no /run/lock, or read-only: nobody to take turns with here
        if folder:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if host.unfit_to_replace(path) is None:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_CREAT if create else 0)
            return os.open(path, flags, 0o644)
    return None


@contextlib.contextmanager
def turn(path, patience, folder=False, create=True):
    """Hold an flock on path (a lock file, or a folder), if it can be had, while the body runs,
    waiting up to patience seconds for another holder; yields HELD, BUSY or ALONE. Without create,
    a missing lock file is not made, and the body runs ALONE."""
    fd, state = _descriptor(path, folder, create), ALONE
    try:
        deadline = time.monotonic() + patience
        while fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                state = HELD
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    state = BUSY
                    break
                time.sleep(POLL)
            except OSError:  # flock(2) ENOLCK: an NFS folder with no lock manager, nobody to take turns with
                break
        yield state
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the flock
